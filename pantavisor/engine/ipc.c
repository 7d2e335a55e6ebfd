/* ipc.c: the engine's private socket (mode 0600): many clients, framed messages (pvstate/proto.h),
 * subscribe-graph pushes, and a table op -> handler (ops_*.c); 404 for ops not served. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/proto.h"
#include "pvstate/status.h"

struct ipc_client {
	uv_pipe_t pipe;
	struct pv_proto_decoder dec;
	bool subscribed, closing;
	bool reports_links; /* sent `link-status` (pv-xconnect): its close voids the report */
	struct ipc_client *next;
	struct pv_ipc *ipc;
};

struct pv_ipc {
	struct pv_engine *e;
	uv_pipe_t server;
	struct ipc_client *clients;
};

struct write_req {
	uv_write_t req;
	char *buf;
};

static void write_cb(uv_write_t *w, int status)
{
	struct write_req *wr = (struct write_req *)w;
	free(wr->buf);
	free(wr);
}

static void client_close_cb(uv_handle_t *h)
{
	struct ipc_client *cl = h->data;
	pv_proto_decoder_free(&cl->dec);
	free(cl);
}

static void client_close(struct ipc_client *cl)
{
	if (cl->closing)
		return;
	cl->closing = true;
	if (cl->reports_links)
		pv_graph_status_lost(cl->ipc->e);
	struct ipc_client **pp = &cl->ipc->clients;
	while (*pp && *pp != cl)
		pp = &(*pp)->next;
	if (*pp)
		*pp = cl->next;
	uv_close((uv_handle_t *)&cl->pipe, client_close_cb);
}

static void client_send(struct ipc_client *cl, char *payload)
{
	char *framed = NULL;
	size_t flen = 0;
	if (!payload || cl->closing) {
		free(payload);
		return;
	}
	int r = pv_proto_frame(payload, strlen(payload), PV_PROTO_MAX_DEFAULT, &framed, &flen);
	free(payload);
	if (r < 0)
		return;
	struct write_req *wr = calloc(1, sizeof(*wr));
	if (!wr) {
		free(framed);
		return;
	}
	wr->buf = framed;
	uv_buf_t b = uv_buf_init(framed, (unsigned)flen);
	if (uv_write(&wr->req, (uv_stream_t *)&cl->pipe, &b, 1, write_cb) < 0) {
		free(framed);
		free(wr);
		client_close(cl);
	}
}

static void fill_recovery(struct pv_status_recovery *o, const struct pv_auto_recovery *a)
{
	o->set = a->set;
	o->policy = pv_recovery_policy_str(a->policy);
	o->max_retries = a->max_retries;
	o->stable_timeout = a->stable_timeout;
	o->backoff_policy = a->backoff_str[0] ? a->backoff_str : "reboot";
	o->retry_delay = a->retry_delay;
	o->backoff_factor = a->backoff_factor;
	o->reset_window = a->reset_window;
}

static char *containers_list(struct pv_engine *e)
{
	struct pv_status_container *v = calloc(e->n_ctrs ? e->n_ctrs : 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_ctr *c = &e->ctrs[i];
		v[i].name = c->spec->name;
		v[i].group = c->spec->group;
		v[i].status = pv_cstatus_str(c->status);
		v[i].status_goal = pv_status_goal_str(c->spec->status_goal);
		v[i].restart_policy = pv_restart_policy_str(c->spec->restart_policy);
		v[i].roles = c->spec->roles;
		fill_recovery(&v[i].auto_recovery, &c->spec->auto_recovery);
		v[i].auto_recovery.current_retries = c->retries;
		v[i].auto_recovery.is_stable = c->goal_ms && pv_container_unstable_ms(c) == 0;
		v[i].user_stopped = c->user_stopped;
		v[i].pid = c->pid;
	}
	char *s = pv_status_emit_containers(v, e->n_ctrs);
	free(v);
	return s;
}

static char *groups_list(struct pv_engine *e)
{
	size_t n = e->have_state ? e->state.n_groups : 0;
	struct pv_status_group *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct pv_group *g = &e->state.groups[i];
		v[i].name = g->name;
		v[i].status_goal = pv_status_goal_str(g->status_goal);
		v[i].restart_policy = pv_restart_policy_str(g->restart_policy);
		v[i].status = pv_cstatus_str(pv_group_status(e, (int)i));
		v[i].timeout = g->timeout;
		fill_recovery(&v[i].auto_recovery, &g->auto_recovery);
	}
	char *s = pv_status_emit_groups(v, n);
	free(v);
	return s;
}

/* `signal` ready: a container whose goal is READY moves STARTED -> READY. */
static char *do_signal(struct pv_engine *e, const struct pv_msg *m)
{
	const char *name = NULL, *type = NULL;
	if (pv_msg_arg_str(m, "container", &name) < 0 || pv_msg_arg_str(m, "type", &type) < 0 ||
	    !name || !type)
		return pv_msg_reply_error(m->id, 400,
					  "signal: args.container and args.type needed");
	struct pv_ctr *c = NULL;
	for (size_t i = 0; i < e->n_ctrs; i++)
		if (!strcmp(e->ctrs[i].spec->name, name))
			c = &e->ctrs[i];
	if (!c)
		return pv_msg_reply_error(m->id, 404, "unknown container");
	if (!strcmp(type, "alive"))
		return pv_msg_reply(m->id, 200, NULL);
	if (strcmp(type, "ready") != 0)
		return pv_msg_reply_error(m->id, 400, "signal type not supported");
	if (c->spec->status_goal != PV_GOAL_READY)
		return pv_msg_reply_error(m->id, 400, "container status goal is not READY");
	if (c->status == PV_CS_STARTING) {
		/* the init can signal before the start helper has reported back */
		c->ready_pending = true;
	} else if (c->status == PV_CS_STARTED) {
		pv_container_set_status(c, PV_CS_READY);
		pv_engine_wake(e);
	}
	return pv_msg_reply(m->id, 200, NULL);
}

/* `container-action` {name, action}: stop / start / restart (restart_policy container only). */
static char *do_action(struct pv_engine *e, const struct pv_msg *m)
{
	const char *name = NULL, *action = NULL, *why = NULL;
	if (pv_msg_arg_str(m, "name", &name) < 0 || pv_msg_arg_str(m, "action", &action) < 0 ||
	    !name || !action)
		return pv_msg_reply_error(m->id, 400,
					  "container-action: args.name and args.action needed");
	for (size_t i = 0; i < e->n_ctrs; i++) {
		if (strcmp(e->ctrs[i].spec->name, name) != 0)
			continue;
		int st = pv_container_action(&e->ctrs[i], action, &why);
		if (!st)
			return pv_msg_reply(m->id, 200, NULL);
		char msg[256];
		snprintf(msg, sizeof(msg), "container %s: %s%s%.32s%s", name, why,
			 st == 400 ? " (\"" : "", st == 400 ? action : "", st == 400 ? "\")" : "");
		return pv_msg_reply_error(m->id, st, msg);
	}
	return pv_msg_reply_error(m->id, 404, "unknown container");
}

static char *op_containers_list(struct pv_engine *e, const struct pv_msg *m)
{
	return pv_op_reply_json(m, containers_list(e));
}

static char *op_groups_list(struct pv_engine *e, const struct pv_msg *m)
{
	return pv_op_reply_json(m, groups_list(e));
}

static const struct {
	const char *op;
	pv_op_fn fn;
} ops[] = {
    {"containers-list", op_containers_list},
    {"groups-list", op_groups_list},
    {"container-action", do_action},
    {"signal", do_signal},
    {"whois", pv_op_whois},
    {"graph", pv_op_graph},
    {"link-status", pv_op_link_status},
    {"buildinfo", pv_op_buildinfo},
    {"config", pv_op_config},
    {"config2", pv_op_config2},
    {"daemons-list", pv_op_daemons_list},
    {"daemon-action", pv_op_daemon_action},
    {"objects-list", pv_op_objects_list},
    {"object-installed", pv_op_object_installed},
    {"gc", pv_op_gc},
    {"drivers-list", pv_op_drivers_list},
    {"driver-action", pv_op_driver_action},
    {"steps-list", pv_op_steps_list},
    {"step-get", pv_op_step_get},
    {"step-put", pv_op_step_put},
    {"step-progress", pv_op_step_progress},
    {"step-commitmsg", pv_op_step_commitmsg},
    {"meta-list", pv_op_meta_list},
    {"meta-put", pv_op_meta_put},
    {"meta-delete", pv_op_meta_delete},
    {"command", pv_op_command},
};

static void handle(struct ipc_client *cl, const char *payload, size_t len)
{
	struct pv_engine *e = cl->ipc->e;
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	memset(&m, 0, sizeof(m));
	if (pv_msg_parse(payload, len, &m, &err) < 0) {
		/* an unknown op is a 404, a malformed message a 400 (both keep the connection) */
		int st = strstr(pv_error_msg(&err), "op") && strstr(pv_error_msg(&err), "unknown")
			     ? 404
			     : 400;
		client_send(cl, pv_msg_reply_error(m.id, st, pv_error_msg(&err)));
		pv_error_clear(&err);
		pv_msg_free(&m);
		return;
	}
	if (m.kind != PV_MSG_REQUEST) {
		client_send(cl, pv_msg_reply_error(m.id, 400, "not a request"));
		pv_msg_free(&m);
		return;
	}
	if (!strcmp(m.op, "subscribe-graph")) {
		char *ev = NULL;
		cl->subscribed = true;
		client_send(cl, pv_msg_reply(m.id, 200, NULL));
		if (pv_graph_current(e, &ev) == 0)
			client_send(cl, ev);
		pv_msg_free(&m);
		return;
	}
	char *reply = NULL;
	bool found = false;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!strcmp(m.op, ops[i].op)) {
			reply = ops[i].fn(e, &m);
			found = true;
			break;
		}
	}
	if (!strcmp(m.op, "link-status"))
		cl->reports_links = true;
	if (!found)
		reply = pv_msg_reply_error(m.id, 404, "operation not supported by the engine");
	/* a handler that could not even build its reply must not leave the peer waiting */
	if (!reply)
		reply = pv_msg_reply_error(m.id, 500, "engine: out of memory");
	client_send(cl, reply);
	pv_msg_free(&m);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char scratch[65536]; /* the loop is single-threaded; data is copied out at once */
	*buf = uv_buf_init(scratch, sizeof(scratch));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct ipc_client *cl = s->data;
	if (n < 0) {
		client_close(cl);
		return;
	}
	if (n == 0)
		return;
	if (pv_proto_decoder_feed(&cl->dec, buf->base, (size_t)n) < 0) {
		client_close(cl);
		return;
	}
	for (;;) {
		char *payload = NULL;
		size_t len = 0;
		int r = pv_proto_decoder_next(&cl->dec, &payload, &len);
		if (r < 0) {
			client_close(cl);
			return;
		}
		if (r == 0)
			return;
		handle(cl, payload, len);
		free(payload);
		if (cl->closing)
			return;
	}
}

static void connection_cb(uv_stream_t *server, int status)
{
	struct pv_ipc *ipc = server->data;
	if (status < 0)
		return;
	struct ipc_client *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return;
	cl->ipc = ipc;
	uv_pipe_init(ipc->e->loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	pv_proto_decoder_init(&cl->dec, PV_PROTO_MAX_DEFAULT);
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
		cl->closing = true;
		uv_close((uv_handle_t *)&cl->pipe, client_close_cb);
		return;
	}
	cl->next = ipc->clients;
	ipc->clients = cl;
	uv_read_start((uv_stream_t *)&cl->pipe, alloc_cb, read_cb);
}

static void server_close_cb(uv_handle_t *h);

int pv_ipc_start(struct pv_engine *e, struct pv_error *err)
{
	struct pv_ipc *ipc = calloc(1, sizeof(*ipc));
	if (!ipc)
		return -ENOMEM;
	ipc->e = e;
	uv_pipe_init(e->loop, &ipc->server, 0);
	ipc->server.data = ipc;
	/* a socket left by a killed engine is stale: this engine is the only server */
	/* Bound and listening under a temporary name, then renamed into place: a client that sees
	 * the path can always connect (a stale socket of a killed engine is replaced at once). */
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", e->socket_path, (int)getpid());
	unlink(tmp);
	mode_t old = umask(0077);
	int r = uv_pipe_bind(&ipc->server, tmp);
	umask(old);
	if (r == 0) {
		chmod(tmp, 0600);
		r = uv_listen((uv_stream_t *)&ipc->server, 64, connection_cb);
	}
	if (r == 0 && rename(tmp, e->socket_path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		e->ipc = NULL;
		uv_close((uv_handle_t *)&ipc->server, server_close_cb); /* frees ipc */
		return pv_error_set(err, r, "engine socket %s: %s", e->socket_path, uv_strerror(r));
	}
	e->ipc = ipc;
	return 0;
}

void pv_ipc_push(struct pv_engine *e, const char *event_json)
{
	if (!e->ipc)
		return;
	for (struct ipc_client *cl = e->ipc->clients; cl; cl = cl->next)
		if (cl->subscribed)
			client_send(cl, strdup(event_json));
}

static void server_close_cb(uv_handle_t *h)
{
	free(h->data);
}

void pv_ipc_stop(struct pv_engine *e)
{
	struct pv_ipc *ipc = e->ipc;
	if (!ipc)
		return;
	while (ipc->clients)
		client_close(ipc->clients);
	uv_close((uv_handle_t *)&ipc->server, server_close_cb);
	unlink(e->socket_path);
	e->ipc = NULL;
}
