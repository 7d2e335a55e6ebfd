/* main.c: pv-xconnect's process: arguments and config, the libuv loop, the engine client
 * (subscribe-graph with reconnect and backoff, link-status reports) and orderly shutdown. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pvstate/config.h"
#include "pvstate/proto.h"
#include "plugins/plugin.h"

#define RECONNECT_FIRST_MS 50
#define RECONNECT_MAX_MS   2000

/* ---- logging ---- */

static enum pvx_log_level log_level = PVX_INFO;

void pvx_log_set_level(enum pvx_log_level lvl)
{
	log_level = lvl;
}

void pvx_log(enum pvx_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	if (lvl > log_level)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* upstream's line format, so pantavisor.log reads the same */
	fprintf(stderr, "[pantavisor] %lld %s\t -- [xconnect]: %s\n", (long long)ts.tv_sec,
		names[lvl], msg);
}

/* ---- the engine client ---- */

struct engine {
	uv_loop_t *loop;
	char *path;
	uv_pipe_t pipe;
	bool pipe_open, connected, stopping;
	uv_connect_t conn_req;
	uv_timer_t retry;
	uint64_t backoff_ms;
	struct pv_proto_decoder dec;
	uint64_t next_id;
	uint64_t generation;
	unsigned rejected; /* replies >= 400 seen */
	struct pvx_reconciler *rec;
};

static void engine_connect(struct engine *e);

static void retry_cb(uv_timer_t *t)
{
	engine_connect(t->data);
}

static void write_done(uv_write_t *w, int status)
{
	free(w->data);
	free(w);
}

/* Frames and queues one payload (takes it). */
static int engine_send(struct engine *e, char *payload)
{
	if (!payload)
		return -ENOMEM;
	char *frame;
	size_t flen;
	int rc = pv_proto_frame(payload, strlen(payload), PV_PROTO_MAX_DEFAULT, &frame, &flen);
	free(payload);
	if (rc < 0)
		return rc;
	uv_write_t *w = malloc(sizeof(*w));
	if (!w) {
		free(frame);
		return -ENOMEM;
	}
	w->data = frame;
	uv_buf_t b = uv_buf_init(frame, (unsigned)flen);
	rc = uv_write(w, (uv_stream_t *)&e->pipe, &b, 1, write_done);
	if (rc < 0) {
		free(frame);
		free(w);
	}
	return rc;
}

static void pipe_closed(uv_handle_t *h)
{
	struct engine *e = h->data;
	e->pipe_open = false;
	if (e->stopping)
		return;
	pvx_log(PVX_DEBUG, "engine: reconnect in %llu ms", (unsigned long long)e->backoff_ms);
	uv_timer_start(&e->retry, retry_cb, e->backoff_ms, 0);
	e->backoff_ms = e->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : e->backoff_ms * 2;
}

static void engine_drop(struct engine *e, const char *why)
{
	if (e->connected)
		/* Links keep serving: the engine being away changes nothing in the containers. */
		pvx_log(PVX_WARN, "engine: %s; keeping %zu links, reconnecting", why,
			pvx_reconciler_count(e->rec));
	if (e->connected)
		pv_proto_decoder_free(&e->dec);
	e->connected = false;
	if (e->pipe_open && !uv_is_closing((uv_handle_t *)&e->pipe))
		uv_close((uv_handle_t *)&e->pipe, pipe_closed);
}

static void on_message(struct engine *e, const char *payload, size_t len)
{
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	if (pv_msg_parse(payload, len, &m, &err) < 0) {
		pvx_log(PVX_WARN, "engine: bad message: %s", pv_error_msg(&err));
		pv_error_clear(&err);
		return;
	}
	if (m.kind == PV_MSG_EVENT && !strcmp(m.op, "graph")) {
		struct pv_graph *g = calloc(1, sizeof(*g));
		if (g && pv_msg_parse_graph_event(&m, g, &err) == 0) {
			e->generation = g->generation;
			pvx_reconciler_apply(e->rec, g);
		} else {
			pvx_log(PVX_WARN, "engine: bad graph: %s", pv_error_msg(&err));
			free(g);
		}
	} else if (m.kind == PV_MSG_REPLY && m.status >= 400) {
		/* Status reports repeat: an engine that rejects them is said once, not per link
		 * change. */
		pvx_log(e->rejected++ ? PVX_DEBUG : PVX_WARN,
			"engine: request %llu failed (%d): %s", (unsigned long long)m.id, m.status,
			m.error ? m.error : "");
	}
	pv_error_clear(&err);
	pv_msg_free(&m);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char chunk[64 * 1024]; /* one loop thread: a static read buffer is enough */
	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct engine *e = s->data;
	if (n < 0) {
		engine_drop(e, n == UV_EOF ? "connection closed" : uv_strerror((int)n));
		return;
	}
	if (n == 0)
		return;
	if (pv_proto_decoder_feed(&e->dec, buf->base, (size_t)n) < 0) {
		engine_drop(e, "framing error");
		return;
	}
	char *payload;
	size_t len;
	int rc;
	while ((rc = pv_proto_decoder_next(&e->dec, &payload, &len)) > 0) {
		on_message(e, payload, len);
		free(payload);
		if (!e->connected)
			return;
	}
	if (rc < 0)
		engine_drop(e, "framing error");
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct engine *e = req->data;
	if (status < 0) {
		pvx_log(PVX_DEBUG, "engine: connect %s: %s", e->path, uv_strerror(status));
		uv_close((uv_handle_t *)&e->pipe, pipe_closed);
		return;
	}
	e->connected = true;
	e->backoff_ms = RECONNECT_FIRST_MS;
	pv_proto_decoder_init(&e->dec, PV_PROTO_MAX_DEFAULT);
	pvx_log(PVX_INFO, "engine: connected to %s, subscribing to the graph", e->path);
	uv_read_start((uv_stream_t *)&e->pipe, alloc_cb, read_cb);
	if (engine_send(e, pv_msg_request("subscribe-graph", ++e->next_id, NULL)) < 0)
		engine_drop(e, "subscribe failed");
}

static void engine_connect(struct engine *e)
{
	if (e->stopping || e->pipe_open)
		return;
	uv_pipe_init(e->loop, &e->pipe, 0);
	e->pipe.data = e;
	e->pipe_open = true;
	e->conn_req.data = e;
	uv_pipe_connect(&e->conn_req, &e->pipe, e->path, connect_cb);
}

/* Status of every link to the engine (it shows them in GET /xconnect-graph). */
static void status_cb(void *opaque, const struct pvx_link *const *links, size_t n)
{
	struct engine *e = opaque;
	if (!e->connected)
		return; /* the next graph after reconnecting triggers a fresh report */
	struct pv_link *v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		v[i] = links[i]->spec; /* shallow: only read by the builder */
		v[i].state = links[i]->state;
		v[i].error = links[i]->error;
	}
	engine_send(e, pv_msg_link_status(++e->next_id, v, n));
	free(v);
}

/* ---- process ---- */

struct opts {
	const char *mode, *rundir, *storage, *config, *cmdline, *engine_socket;
	int verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pv-xconnect [--mode embedded|appengine] [--rundir DIR] [--storage DIR]\n"
		"                   [--config FILE] [--cmdline \"pv_KEY=v ...\"]\n"
		"                   [--engine-socket PATH] [-v]\n"
		"Subscribes to the xconnect graph pushed by the engine and makes every link real\n"
		"inside the consumer's namespaces. Plugins:");
	for (size_t i = 0; pvx_plugins[i]; i++)
		fprintf(f, " %s", pvx_plugins[i]->type);
	fprintf(f, "\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"mode", required_argument, NULL, 'm'},
	    {"rundir", required_argument, NULL, 'r'},
	    {"storage", required_argument, NULL, 's'},
	    {"config", required_argument, NULL, 'c'},
	    {"cmdline", required_argument, NULL, 'k'},
	    {"engine-socket", required_argument, NULL, 'e'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case 'm':
			o->mode = optarg;
			break;
		case 'r':
			o->rundir = optarg;
			break;
		case 's':
			o->storage = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'k':
			o->cmdline = optarg;
			break;
		case 'e':
			o->engine_socket = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	return 0;
}

/* Engine socket: --engine-socket, else PV_ENGINE_SOCKET, else <dirname rundir>/engine.sock. */
static char *engine_path(const struct opts *o, struct pv_config *cfg)
{
	if (o->engine_socket)
		return strdup(o->engine_socket);
	return pv_config_engine_socket(cfg, o->rundir);
}

struct app {
	struct engine eng;
	uv_signal_t sig[2];
};

static void sig_closed(uv_handle_t *h)
{
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct app *a = s->data;
	struct engine *e = &a->eng;
	pvx_log(PVX_INFO, "signal %d: tearing down %zu links and exiting", signum,
		pvx_reconciler_count(e->rec));
	e->stopping = true;
	/* Stopped on purpose: nothing we injected may stay behind in the consumers. */
	pvx_reconciler_free(e->rec);
	e->rec = NULL;
	uv_timer_stop(&e->retry);
	uv_close((uv_handle_t *)&e->retry, NULL);
	if (e->pipe_open && !uv_is_closing((uv_handle_t *)&e->pipe))
		uv_close((uv_handle_t *)&e->pipe, NULL);
	if (e->connected)
		pv_proto_decoder_free(&e->dec);
	e->connected = false;
	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&a->sig[i], sig_closed);
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	if (parse_opts(argc, argv, &o) < 0)
		return 2;
	pvx_log_set_level(o.verbose ? PVX_DEBUG : PVX_INFO);
	struct pv_config *cfg = pv_config_new();
	if (!cfg) {
		pvx_log(PVX_ERROR, "out of memory");
		return 1;
	}
	struct pv_error err = PV_ERROR_INIT;
	extern char **environ;
	if (pv_config_load_layers(cfg, o.config, o.cmdline, environ, &err) < 0 && err.count)
		pvx_log(PVX_WARN, "config %s: %s", o.config, pv_error_msg(&err));
	pv_error_clear(&err);
	if (o.rundir)
		pv_config_set(cfg, "PV_SYSTEM_RUNDIR", o.rundir, PV_CFG_ARGS);

	/* A consumer vanishing mid-write must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	/* Namespace helpers are waited for explicitly; nothing else forks. */

	static struct app a;
	struct engine *e = &a.eng;
	e->loop = uv_default_loop();
	e->path = engine_path(&o, cfg);
	pv_config_free(cfg);
	if (!e->path) {
		pvx_log(PVX_ERROR, "out of memory");
		return 1;
	}
	e->backoff_ms = RECONNECT_FIRST_MS;
	e->rec = pvx_reconciler_new(e->loop, status_cb, e);
	if (!e->rec)
		return 1;
	uv_timer_init(e->loop, &e->retry);
	e->retry.data = e;
	const int sigs[2] = {SIGTERM, SIGINT};
	for (int i = 0; i < 2; i++) {
		uv_signal_init(e->loop, &a.sig[i]);
		a.sig[i].data = &a;
		uv_signal_start(&a.sig[i], on_signal, sigs[i]);
	}
	pvx_log(PVX_INFO, "started (mode %s), engine socket %s", o.mode ? o.mode : "embedded",
		e->path);
	engine_connect(e);
	uv_run(e->loop, UV_RUN_DEFAULT);
	uv_loop_close(e->loop);
	free(e->path);
	return 0;
}
