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

#define PV_PROTO_HDR_LEN     4
#define PV_PROTO_MAX_DEFAULT (16u * 1024 * 1024)

/* ---- framing ---- */

/* Writes header+payload into a new buffer (*out, *out_len). -EMSGSIZE above max. */
int pv_proto_frame(const char *payload, size_t len, size_t max, char **out, size_t *out_len);

/* Incremental decoder: feed any byte chunks, take complete messages out. */
struct pv_proto_decoder {
	char *buf;
	size_t len, cap;
	size_t max; /* biggest payload accepted */
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
	char op[48];     /* requests and events */
	uint64_t id;     /* requests and replies */
	int status;      /* replies: HTTP-like code */
	char *args;      /* requests: JSON object text or NULL */
	char *body;      /* replies: JSON text or NULL; events: the whole event object */
	char *error;     /* replies with status >= 400: message */
	char *content_type; /* replies: body media type when not JSON (e.g. text/plain), else NULL */
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

#endif
