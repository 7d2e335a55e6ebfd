/* pv-ctrl/engine.c: the client side of the engine's private socket: framed requests with ids,
 * a few connections shared by the HTTP threads, reconnect after an engine restart, timeouts → 503,
 * and coalescing of identical read requests in flight (one engine round trip answers them all).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pvstate/proto.h"

#include "ctrl.h"

/* One connection with one request in flight: the matching stays trivial, and a slow HTTP client
 * never holds the engine (bodies are complete before we send). Several channels let the HTTP
 * threads overlap their round trips. */
struct chan {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	int timeout_ms;
	struct pv_proto_decoder dec;
	pthread_mutex_t mu;
};

/* Identical reads (GETs) share one engine round trip. The first caller of an op+args (the
 * leader) makes the round trip on its own HTTP thread, as any request; callers asking the same
 * while it is in flight are parked waiters (MHD suspends their connection, no thread is held)
 * and get a copy of the leader's reply. A lone client pays nothing extra; 64 polling clients
 * cost the engine one request per round trip instead of 64. */
struct waiter {
	struct waiter *next;
	pv_ctrl_read_done done;
	void *ctx;
};

struct inflight {
	struct inflight *next;
	const char *op, *args; /* the leader's, valid while it is listed */
	uint64_t gen;	       /* writes completed when it was asked */
	struct waiter *waiters;
};

struct pv_ctrl_engine {
	struct chan ch[PV_CTRL_ENGINE_CHANNELS];
	uint64_t next_id;      /* atomic */
	unsigned rr;	       /* atomic: where the next caller starts looking for a free channel */
	pthread_mutex_t co_mu; /* the fields below */
	pthread_cond_t drained;
	struct inflight *inflight;
	bool stopping; /* no new waiters: MHD must not stop with parked connections */
	int leaders;   /* round trips whose waiters are not all answered yet */
	/* Completed writes. A read joins only a request asked at the current generation, so a
	 * client that wrote and then reads never gets an answer computed before its write. */
	uint64_t write_gen;
	uint64_t reads, joined; /* for the log at exit */
};

struct pv_ctrl_engine *pv_ctrl_engine_new(const char *path, int timeout_ms)
{
	struct pv_ctrl_engine *eng = calloc(1, sizeof(*eng));
	if (!eng)
		return NULL;
	if (strlen(path) >= sizeof(eng->ch[0].path)) {
		free(eng);
		errno = ENAMETOOLONG;
		return NULL;
	}
	for (int i = 0; i < PV_CTRL_ENGINE_CHANNELS; i++) {
		struct chan *e = &eng->ch[i];
		strcpy(e->path, path);
		e->fd = -1;
		e->timeout_ms = timeout_ms;
		pv_proto_decoder_init(&e->dec, PV_PROTO_MAX_DEFAULT);
		pthread_mutex_init(&e->mu, NULL);
	}
	eng->next_id = 1;
	pthread_cond_init(&eng->drained, NULL);
	pthread_mutex_init(&eng->co_mu, NULL);
	return eng;
}

static void disconnect(struct chan *e)
{
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	pv_proto_decoder_free(&e->dec);
	pv_proto_decoder_init(&e->dec, PV_PROTO_MAX_DEFAULT);
}

void pv_ctrl_engine_free(struct pv_ctrl_engine *eng)
{
	if (!eng)
		return;
	pv_ctrl_engine_stop(eng);
	pthread_cond_destroy(&eng->drained);
	for (int i = 0; i < PV_CTRL_ENGINE_CHANNELS; i++) {
		disconnect(&eng->ch[i]);
		pv_proto_decoder_free(&eng->ch[i].dec);
		pthread_mutex_destroy(&eng->ch[i].mu);
	}
	pthread_mutex_destroy(&eng->co_mu);
	free(eng);
}

static int connect_engine(struct chan *e)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, e->path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		int r = -errno;
		close(fd);
		return r;
	}
	e->fd = fd;
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short ev, long long deadline)
{
	long long left = deadline - now_ms();
	if (left <= 0)
		return -ETIMEDOUT;
	struct pollfd p = {.fd = fd, .events = ev};
	int r = poll(&p, 1, (int)left);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return -ETIMEDOUT;
	return 0;
}

static int send_all(struct chan *e, const char *buf, size_t len, long long deadline)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(e->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(e->fd, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		return n < 0 ? -errno : -EPIPE;
	}
	return 0;
}

/* Reads until the reply with this id is complete; other messages (pushed events) are dropped. */
static int recv_reply(struct chan *e, uint64_t id, long long deadline, struct pv_msg *out,
		      struct pv_error *err)
{
	char buf[16384];
	for (;;) {
		char *p = NULL;
		size_t n = 0;
		int r = pv_proto_decoder_next(&e->dec, &p, &n);
		if (r < 0)
			return -EPROTO;
		if (r > 0) {
			/* a reply to an older request that timed out, or a pushed event, must not
			 * be taken for this one */
			memset(out, 0, sizeof(*out));
			pv_error_clear(err);
			int pr = pv_msg_parse(p, n, out, err);
			free(p);
			if ((pr == 0 && out->kind == PV_MSG_REPLY && out->id == id) ||
			    (pr < 0 && out->id == id))
				return pr < 0 ? 1 : 0; /* 1: this reply, but malformed */
			pv_msg_free(out);
			continue;
		}
		ssize_t got = recv(e->fd, buf, sizeof(buf), 0);
		if (got == 0)
			return -ECONNRESET;
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int w = wait_fd(e->fd, POLLIN, deadline);
				if (w < 0)
					return w;
				continue;
			}
			return -errno;
		}
		if (pv_proto_decoder_feed(&e->dec, buf, (size_t)got) < 0)
			return -EPROTO;
	}
}

static void reply_msg(struct pv_ctrl_reply *out, struct pv_msg *m)
{
	out->status = m->status;
	if (m->status >= 400) {
		out->body = pv_msg_http_error_body(m->error ? m->error : "engine error");
		out->len = out->body ? strlen(out->body) : 0;
		out->ctype = NULL;
		/* one command at a time (spec §8.2): the engine's "busy" is a 503 to retry */
		if (m->status == 503)
			out->retry_after = pv_ctrl_retry_after(m->error);
		return;
	}
	if (m->body) {
		out->body = m->body;
		m->body = NULL;
		out->len = strlen(out->body);
	} else {
		out->body = strdup("{}");
		out->len = 2;
	}
	out->ctype = m->content_type ? (strstr(m->content_type, "text/") == m->content_type
					    ? "text/plain"
					    : "application/json")
				     : NULL;
}

/* A free channel if there is one, else wait for one (round robin). Returned locked. */
static struct chan *take(struct pv_ctrl_engine *eng)
{
	unsigned start = __atomic_fetch_add(&eng->rr, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < PV_CTRL_ENGINE_CHANNELS; i++) {
		struct chan *c = &eng->ch[(start + i) % PV_CTRL_ENGINE_CHANNELS];
		if (pthread_mutex_trylock(&c->mu) == 0)
			return c;
	}
	struct chan *c = &eng->ch[start % PV_CTRL_ENGINE_CHANNELS];
	pthread_mutex_lock(&c->mu);
	return c;
}

void pv_ctrl_engine_relay(struct pv_ctrl_engine *eng, const char *op, const char *args_json,
			  struct pv_ctrl_reply *out)
{
	struct chan *e = take(eng);
	uint64_t id = __atomic_fetch_add(&eng->next_id, 1, __ATOMIC_RELAXED);
	char *req = pv_msg_request(op, id, args_json), *frame = NULL;
	size_t flen = 0;
	if (!req || pv_proto_frame(req, strlen(req), PV_PROTO_MAX_DEFAULT, &frame, &flen) < 0) {
		free(req);
		pthread_mutex_unlock(&e->mu);
		pv_ctrl_reply_error(out, 500, "cannot build the engine request for %s", op);
		return;
	}
	free(req);
	long long deadline = now_ms() + e->timeout_ms;
	int r = -ENOTCONN;
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	memset(&m, 0, sizeof(m));
	/* a request never reached a restarted engine when the send fails: retry it once on a new
	 * connection; after the send we cannot know, so no retry (a command must not run twice) */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (e->fd < 0 && (r = connect_engine(e)) < 0)
			break;
		r = send_all(e, frame, flen, deadline);
		if (r < 0) {
			disconnect(e);
			continue;
		}
		r = recv_reply(e, id, deadline, &m, &err);
		if (r < 0)
			disconnect(e);
		break;
	}
	free(frame);
	pthread_mutex_unlock(&e->mu);

	if (r < 0) {
		pv_ctrl_reply_error(out, 503, "engine %s: %s", op,
				    r == -ETIMEDOUT ? "no answer in time" : "not reachable");
		out->retry_after = r == -ETIMEDOUT ? 5 : 2;
	} else if (r == 1) {
		pv_ctrl_reply_error(out, 500, "engine reply to %s: %s", op, pv_error_msg(&err));
	} else {
		reply_msg(out, &m);
	}
	pv_error_clear(&err);
	pv_msg_free(&m);
}

/* Spec §8.2: a command refused while an update runs is retried after 600 s, any other busy
 * engine after 120 s. The engine says which in its message. */
int pv_ctrl_retry_after(const char *engine_msg)
{
	if (engine_msg && strstr(engine_msg, "update") &&
	    (strstr(engine_msg, "in progress") || strstr(engine_msg, "running")))
		return 600;
	return 120;
}

static int reply_copy(struct pv_ctrl_reply *dst, const struct pv_ctrl_reply *src)
{
	*dst = *src;
	dst->fd = -1;
	dst->body = NULL;
	if (src->body && !(dst->body = malloc(src->len + 1)))
		return -ENOMEM;
	if (src->body) {
		memcpy(dst->body, src->body, src->len);
		dst->body[src->len] = '\0';
	}
	return 0;
}

/* ---- the read path: a leader's round trip answers the waiters that joined it ---- */

void pv_ctrl_engine_stop(struct pv_ctrl_engine *eng)
{
	pthread_mutex_lock(&eng->co_mu);
	eng->stopping = true;
	while (eng->leaders) /* leaders answer within the engine timeout */
		pthread_cond_wait(&eng->drained, &eng->co_mu);
	pthread_mutex_unlock(&eng->co_mu);
	if (eng->reads)
		fprintf(stderr, "pv-ctrl: %llu reads, %llu answered by a shared engine request\n",
			(unsigned long long)eng->reads, (unsigned long long)eng->joined);
	eng->reads = 0;
}

int pv_ctrl_engine_read(struct pv_ctrl_engine *eng, const char *op, const char *args_json,
			struct pv_ctrl_reply *out, pv_ctrl_read_park park, pv_ctrl_read_done done,
			void *ctx)
{
	const char *args = args_json ? args_json : "";
	pthread_mutex_lock(&eng->co_mu);
	eng->reads++;
	uint64_t gen = __atomic_load_n(&eng->write_gen, __ATOMIC_SEQ_CST);
	struct inflight *f = eng->inflight;
	for (; f; f = f->next)
		if (f->gen == gen && !strcmp(f->op, op) && !strcmp(f->args, args))
			break;
	if (f && !eng->stopping) {
		struct waiter *w = calloc(1, sizeof(*w));
		if (w) {
			w->done = done;
			w->ctx = ctx;
			w->next = f->waiters;
			f->waiters = w;
			eng->joined++;
			/* parked before the leader can see the waiter: done() always follows */
			park(ctx);
			pthread_mutex_unlock(&eng->co_mu);
			return 1;
		}
	}
	struct inflight me = {.op = op, .args = args, .gen = gen, .next = eng->inflight};
	eng->inflight = &me;
	eng->leaders++;
	pthread_mutex_unlock(&eng->co_mu);

	pv_ctrl_engine_relay(eng, op, args_json, out);

	pthread_mutex_lock(&eng->co_mu);
	for (struct inflight **pp = &eng->inflight; *pp; pp = &(*pp)->next)
		if (*pp == &me) {
			*pp = me.next;
			break;
		}
	pthread_mutex_unlock(&eng->co_mu);
	for (struct waiter *w = me.waiters, *n; w; w = n) {
		n = w->next;
		w->done(w->ctx, out);
		free(w);
	}
	pthread_mutex_lock(&eng->co_mu);
	if (--eng->leaders == 0)
		pthread_cond_broadcast(&eng->drained);
	pthread_mutex_unlock(&eng->co_mu);
	return 0;
}

int pv_ctrl_reply_copy(struct pv_ctrl_reply *dst, const struct pv_ctrl_reply *src)
{
	return reply_copy(dst, src);
}

void pv_ctrl_engine_write(struct pv_ctrl_engine *eng, const char *op, const char *args_json,
			  struct pv_ctrl_reply *out)
{
	pv_ctrl_engine_relay(eng, op, args_json, out);
	/* whatever it changed, later reads must not share a round trip sent before it */
	__atomic_fetch_add(&eng->write_gen, 1, __ATOMIC_SEQ_CST);
}

void pv_ctrl_reply_error(struct pv_ctrl_reply *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(r->body);
	r->status = status;
	r->body = pv_msg_http_error_body(msg);
	r->len = r->body ? strlen(r->body) : 0;
	r->ctype = NULL;
	r->fd = -1;
}

void pv_ctrl_reply_clear(struct pv_ctrl_reply *r)
{
	free(r->body);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}
