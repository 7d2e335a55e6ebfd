/* pvstate/proto.h: the private protocol between the engine, pv-ctrl and pv-xconnect.
 * Framing: 4-byte big-endian length + one JSON object. Requests {"op","id","args"}; replies
 * {"id","status","body"|"error"}; engine pushes {"op":"graph","generation","links"}.
 * Nothing outside libpvstate builds or parses these messages by hand. */
#ifndef PVSTATE_PROTO_H
#define PVSTATE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pvstate/error.h"
#include "pvstate/graph.h"

#define PV_PROTO_HDR_LEN     4
#define PV_PROTO_MAX_DEFAULT (16u * 1024 * 1024)

/* ---- framing ---- */

/* Writes header+payload into a new buffer (*out, *out_len). -EMSGSIZE above max. */
int pv_proto_frame(const char *payload, size_t len, size_t max, char **out, size_t *out_len);

/* Incremental decoder: feed any byte chunks, take complete messages out. */
struct pv_proto_decoder {
	char *buf;
	size_t len, cap;
	size_t max;  /* biggest payload accepted */
	bool broken; /* a framing error happened: the stream must be closed */
};

void pv_proto_decoder_init(struct pv_proto_decoder *d, size_t max);
void pv_proto_decoder_free(struct pv_proto_decoder *d);
/* Appends bytes. -EMSGSIZE as soon as a header announces more than max (stream is broken). */
int pv_proto_decoder_feed(struct pv_proto_decoder *d, const void *data, size_t n);
/* 1 and a NUL-terminated malloc'd payload when a message is complete, 0 when more bytes are
 * needed, <0 when the stream is broken. */
int pv_proto_decoder_next(struct pv_proto_decoder *d, char **payload, size_t *len);

/* ---- messages ---- */

enum pv_msg_kind { PV_MSG_REQUEST = 0, PV_MSG_REPLY, PV_MSG_EVENT };

/* A parsed message. JSON-valued parts (args, body) are kept as JSON text so a relay (pv-ctrl)
 * can forward them without knowing their shape; the op-specific parsers below read them. */
struct pv_msg {
	enum pv_msg_kind kind;
	char op[48];	    /* requests and events */
	uint64_t id;	    /* requests and replies */
	int status;	    /* replies: HTTP-like code */
	char *args;	    /* requests: JSON object text or NULL */
	char *body;	    /* replies: JSON text or NULL; events: the whole event object */
	char *error;	    /* replies with status >= 400: message */
	char *content_type; /* replies: body media type when not JSON (e.g. text/plain), else NULL;
			     * then body holds the decoded text itself, not JSON */
	void *priv; /* libpvstate's parsed tree of args/event (for the pv_msg_arg_* helpers) */
};

void pv_msg_free(struct pv_msg *m);

/* Parses and validates a payload: kind, required members, known op, args shape for that op.
 * Errors name the member, e.g. `request "container-action": args.action: missing`. */
int pv_msg_parse(const char *payload, size_t len, struct pv_msg *out, struct pv_error *err);

/* Builders: return a malloc'd JSON payload (not framed) or NULL on ENOMEM. */
char *pv_msg_request(const char *op, uint64_t id, const char *args_json /* may be NULL */);
char *pv_msg_reply(uint64_t id, int status, const char *body_json /* may be NULL */);
char *pv_msg_reply_error(uint64_t id, int status, const char *message);
/* A reply whose body is plain text (buildinfo): carried as a JSON string + content type. */
char *pv_msg_reply_text(uint64_t id, int status, const char *text, const char *content_type);

/* Known request ops (validated by pv_msg_parse). */
bool pv_msg_op_known(const char *op);

/* Builds {"Error":"message"}: the body of every pv-ctrl error. Caller frees. */
char *pv_msg_http_error_body(const char *message);

/* ---- typed access to a parsed request's args (nobody else touches cJSON) ----
 * 0 and the value; -ENOENT when the member is absent (or null); -EINVAL when it has another
 * type. Strings point into the message and live until pv_msg_free. */
int pv_msg_arg_str(const struct pv_msg *m, const char *name, const char **out);
int pv_msg_arg_int(const struct pv_msg *m, const char *name, int64_t *out);
int pv_msg_arg_bool(const struct pv_msg *m, const char *name, bool *out);
/* Any member as compact JSON text (malloc'd). */
int pv_msg_arg_json(const struct pv_msg *m, const char *name, char **out);

/* The args object of a request as JSON text, built from name/value string pairs:
 * pv_msg_args_str(2, "name", "nginx", "action", "stop"). NULL values are emitted as null. */
char *pv_msg_args_str(size_t n_pairs, ...);

/* ---- graph push and live status ---- */

/* {"op":"graph","generation":N,"links":[...]} (links without status). Caller frees. */
char *pv_msg_graph_event(uint64_t generation, const struct pv_graph *g);
/* Reads a parsed graph event (m->kind == PV_MSG_EVENT, op "graph") into *out (generation set). */
int pv_msg_parse_graph_event(const struct pv_msg *m, struct pv_graph *out, struct pv_error *err);
/* The request {"op":"link-status","id":id,"args":{"links":[{consumer,name,target,state,
 * error?}]}} for n links (only those members and the status are read). Caller frees. */
char *pv_msg_link_status(uint64_t id, const struct pv_link *links, size_t n);
/* Reads a parsed link-status request into out->links (consumer, name, target, state, error
 * filled; other members NULL/0). */
int pv_msg_parse_link_status(const struct pv_msg *m, struct pv_graph *out, struct pv_error *err);

/* Body of a whois reply: {"container": name|null, "roles": [roles...]}. Caller frees. */
char *pv_msg_whois_body(const char *container, const char *const *roles, size_t n_roles);

#endif
