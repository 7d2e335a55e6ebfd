/* pv-ctrl/ctrl.h: internal interfaces of the pv-ctrl server: the process context, the engine
 * client, caller identity, the router and the endpoint handlers' request/reply shapes. */
#ifndef PV_CTRL_H
#define PV_CTRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "route.h"

struct pv_ctrl_engine;
struct pv_sha256_ctx;

/* Process-wide context, passed explicitly to every handler (no globals). */
struct pv_ctrl {
	char *rundir;
	char *storage;
	char *objects_dir; /* <storage>/objects */
	struct pv_ctrl_engine *engine;
	uint64_t tmp_seq; /* unique suffix for object temp files (atomic increments) */
	int open_conns;	  /* HTTP connections open (atomic): a lone one reads synchronously */
	int conn_cap;	  /* connections served at once; the ones over it are answered 503 */
};

/* What a handler answers. body is malloc'd (or NULL); fd >= 0 streams a file instead. */
struct pv_ctrl_reply {
	int status;
	char *body;
	size_t len;
	const char *ctype; /* NULL = application/json */
	int retry_after;   /* seconds, 0 = no header */
	bool close;	   /* "Connection: close": the connection ends with this reply */
	int fd;
	uint64_t fd_size;
};

struct pv_ctrl_caller {
	pid_t pid;
	bool host;	     /* not inside a container */
	char container[128]; /* when !host: the engine's name for it once resolved (else the
			      * payload name in its cgroup; "" if the engine knows no such
			      * container) */
	bool roles_known;
	bool mgmt;
};

/* Per-HTTP-request state (MHD's con_cls). */
struct pv_ctrl_req {
	struct pv_ctrl *ctrl;
	const struct pv_ctrl_route *route;
	char caps[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN];
	struct pv_ctrl_caller caller;
	int method; /* PV_M_* */
	/* buffered body (routes other than object uploads) */
	char *body;
	size_t body_len, body_cap;
	bool too_big;
	/* a reply decided before the body was read (403, 400, 413 ...) */
	struct pv_ctrl_reply early;
	bool has_early;
	bool early_pending; /* decided mid-body: answered once the body is drained */
	size_t drained;
	/* object upload */
	int up_fd;
	char up_tmp[4200];
	struct pv_sha256_ctx *up_sha;
	bool up_present; /* already in storage: drain */
	int up_errno;
	/* a read handed to the engine I/O thread (ep_util.h defers it, main.c parks the
	 * connection until the reply) */
	const char *defer_op;
	char *defer_args;
	bool deferred, async_done;
	struct pv_ctrl_reply async_rep;
	void *conn; /* struct MHD_Connection * while parked */
};

/* ---- replies ---- */
void pv_ctrl_reply_error(struct pv_ctrl_reply *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pv_ctrl_reply_clear(struct pv_ctrl_reply *r);

/* ---- engine client (engine.c) ---- */
#define PV_CTRL_ENGINE_CHANNELS 4 /* connections to the engine, one request in flight each */
struct pv_ctrl_engine *pv_ctrl_engine_new(const char *path, int timeout_ms);
void pv_ctrl_engine_free(struct pv_ctrl_engine *e);
/* One request/reply round trip; the engine's status/body become the HTTP reply. Engine
 * unreachable or silent past the timeout → 503 + Retry-After. Never fails otherwise. */
void pv_ctrl_engine_relay(struct pv_ctrl_engine *e, const char *op, const char *args_json,
			  struct pv_ctrl_reply *out);
/* Reads (GET) without holding an HTTP thread. park(ctx) is called before this returns (the
 * HTTP connection is suspended there); done(ctx, reply) exactly once later, from the engine I/O
 * thread. Identical op+args already in flight are joined (one engine round trip answers every
 * waiter), never across a completed write (read-your-writes for every client). -ESHUTDOWN when
 * the I/O thread is not running, -ENOMEM: then park/done are never called. */
typedef void (*pv_ctrl_read_park)(void *ctx);
typedef void (*pv_ctrl_read_done)(void *ctx, const struct pv_ctrl_reply *rep);
int pv_ctrl_engine_read_async(struct pv_ctrl_engine *e, const char *op, const char *args_json,
			      pv_ctrl_read_park park, pv_ctrl_read_done done, void *ctx);
int pv_ctrl_engine_start(struct pv_ctrl_engine *e); /* the read I/O thread */
void pv_ctrl_engine_stop(struct pv_ctrl_engine *e); /* answers pending reads with 503 */
int pv_ctrl_reply_copy(struct pv_ctrl_reply *dst, const struct pv_ctrl_reply *src);
/* A write (PUT/POST/DELETE): a plain round trip that also ends the sharing of older reads. */
void pv_ctrl_engine_write(struct pv_ctrl_engine *e, const char *op, const char *args_json,
			  struct pv_ctrl_reply *out);
/* Retry-After seconds for an engine 503 (spec §8.2): 600 when an update is in progress. */
int pv_ctrl_retry_after(const char *engine_msg);

/* ---- caller identity (caller.c) ---- */
/* Fills c from the peer credentials of the connected socket fd. 0 or -errno. */
int pv_ctrl_caller_identify(struct pv_ctrl *ctrl, int fd, struct pv_ctrl_caller *c);
/* Parses /proc/<pid>/cgroup text: 1 and the lxc payload name when inside a container ("" when
 * the name does not fit), else 0. */
int pv_ctrl_cgroup_container(const char *text, char *name, size_t len);
/* Asks the engine (`whois`, once: c caches it) which container a non-host caller is in and its
 * roles; the engine's container name replaces the cgroup's (liblxc may suffix that one). */
void pv_ctrl_caller_resolve(struct pv_ctrl *ctrl, struct pv_ctrl_caller *c);
/* May the caller use a route of this role? Resolves the caller first. */
bool pv_ctrl_caller_allowed(struct pv_ctrl *ctrl, struct pv_ctrl_caller *c, int role);

/* ---- request bodies and private-protocol args (args.c) ---- */
/* The only JSON handling of pv-ctrl: read the small HTTP bodies and build op args. NULL + msg
 * on a bad body (→ 400). Results are malloc'd. */
char *pv_ctrl_args_kv(const char *const *kv); /* {"k":"v",...} from NULL-terminated pairs */
char *pv_ctrl_args_pid(int pid);
int pv_ctrl_body_field(const char *body, size_t len, const char *field, bool required, char *out,
		       size_t out_len, char *msg, size_t msg_len);
int pv_ctrl_body_check_json(const char *body, size_t len, char *msg, size_t msg_len);
/* Reads {"container":..,"roles":[..]} of a whois reply. */
int pv_ctrl_whois_parse(const char *body, char *container, size_t len, bool *mgmt);

/* ---- endpoints (ep_*.c): every handler fills out ---- */
typedef void (*pv_ctrl_handler)(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);

void pv_ep_containers_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_containers_action(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_groups_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_signal(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_commands(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_objects_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_objects_get(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_objects_put(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
/* streaming parts of PUT /objects/<sha> (called by main.c while the body arrives) */
int pv_ep_objects_put_begin(struct pv_ctrl_req *r, struct pv_ctrl_reply *early);
int pv_ep_objects_put_data(struct pv_ctrl_req *r, const char *data, size_t n);
void pv_ep_objects_put_abort(struct pv_ctrl_req *r);
void pv_ep_steps_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_steps_get(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_steps_put(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_steps_progress(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_steps_commitmsg(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_meta_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_meta_put(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_meta_delete(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_buildinfo(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_config(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_config2(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_daemons_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_daemons_action(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_graph(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_storage_gc(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_drivers_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);
void pv_ep_drivers_action(struct pv_ctrl_req *r, struct pv_ctrl_reply *out);

/* Looks up the handler of a route id (router.c). */
pv_ctrl_handler pv_ctrl_handler_of(int route_id);

#endif
