/* pv-ctrl/engine.c: the client side of the engine's private socket: framed requests with ids,
 * a few connections shared by the HTTP threads, reconnect after an engine restart, timeouts → 503,
 * and coalescing of identical read requests in flight (one engine round trip answers them all).
 */
#include <errno.h>
#include <fcntl.h>
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

/* Reads (GETs) do not hold an HTTP thread: they go out on one multiplexed connection owned by
 * the I/O thread below, and the HTTP connection is parked (MHD suspend) until the reply. Callers
 * asking the same op+args while one such request is in flight join it as waiters: one engine
 * round trip answers them all. */
struct waiter {
	struct waiter *next;
	pv_ctrl_read_done done;
	void *ctx;
};

struct inflight {
	struct inflight *next;
	char *key; /* op NUL args */
	size_t key_len;
	uint64_t gen; /* writes completed when it was asked */
	uint64_t id;
	long long deadline;
	struct waiter *waiters;
	size_t n_waiters;
	char op[64];
};

struct io {
	pthread_t thread;
	bool running, stop;
	int fd;
	int wake[2];
	struct pv_proto_decoder dec;
	char *out; /* frames not yet written */
	size_t out_len, out_cap;
};

struct pv_ctrl_engine {
	struct chan ch[PV_CTRL_ENGINE_CHANNELS];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int timeout_ms;
	uint64_t next_id;      /* atomic */
	unsigned rr;	       /* atomic: where the next caller starts looking for a free channel */
	pthread_mutex_t co_mu; /* the fields below and the io queue */
	struct inflight *inflight;
	/* Completed writes. A read joins only a request asked at the current generation, so a
	 * client that wrote and then reads never gets an answer computed before its write. */
	uint64_t write_gen;
	uint64_t reads, joined; /* for the log at exit */
	struct io io;
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
	strcpy(eng->path, path);
	eng->timeout_ms = timeout_ms;
	eng->io.fd = -1;
	eng->io.wake[0] = eng->io.wake[1] = -1;
	pv_proto_decoder_init(&eng->io.dec, PV_PROTO_MAX_DEFAULT);
	eng->next_id = 1;
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
	pv_proto_decoder_free(&eng->io.dec);
	free(eng->io.out);
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

/* ---- the read path: one connection, many requests in flight, waiters per request ---- */

static void wake_io(struct pv_ctrl_engine *eng)
{
	char c = 1;
	if (write(eng->io.wake[1], &c, 1) < 0 && errno != EAGAIN)
		return; /* a full pipe already wakes it */
}

/* Removes f from the list (co_mu held) and answers its waiters (co_mu released). */
static void complete(struct pv_ctrl_engine *eng, struct inflight *f,
		     const struct pv_ctrl_reply *rep)
{
	for (struct inflight **pp = &eng->inflight; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	pthread_mutex_unlock(&eng->co_mu);
	for (struct waiter *w = f->waiters, *n; w; w = n) {
		n = w->next;
		w->done(w->ctx, rep);
		free(w);
	}
	free(f->key);
	free(f);
	pthread_mutex_lock(&eng->co_mu);
}

static void complete_error(struct pv_ctrl_engine *eng, struct inflight *f, int retry,
			   const char *why)
{
	struct pv_ctrl_reply rep = {.fd = -1};
	pv_ctrl_reply_error(&rep, 503, "engine %s: %s", f->op, why);
	rep.retry_after = retry;
	complete(eng, f, &rep);
	pv_ctrl_reply_clear(&rep);
}

/* Fails what a broken connection lost (all: unsent frames are dropped with the buffer). */
static void io_disconnect(struct pv_ctrl_engine *eng, const char *why)
{
	struct io *io = &eng->io;
	if (io->fd >= 0)
		close(io->fd);
	io->fd = -1;
	io->out_len = 0;
	pv_proto_decoder_free(&io->dec);
	pv_proto_decoder_init(&io->dec, PV_PROTO_MAX_DEFAULT);
	while (eng->inflight)
		complete_error(eng, eng->inflight, 2, why);
}

static void io_replies(struct pv_ctrl_engine *eng)
{
	char *p;
	size_t n;
	int r;
	while ((r = pv_proto_decoder_next(&eng->io.dec, &p, &n)) > 0) {
		struct pv_msg m;
		struct pv_error err = PV_ERROR_INIT;
		memset(&m, 0, sizeof(m));
		int pr = pv_msg_parse(p, n, &m, &err);
		free(p);
		struct inflight *f = eng->inflight;
		while (f && f->id != m.id)
			f = f->next;
		if (f && pr == 0 && m.kind == PV_MSG_REPLY) {
			struct pv_ctrl_reply rep = {.fd = -1};
			reply_msg(&rep, &m);
			complete(eng, f, &rep);
			pv_ctrl_reply_clear(&rep);
		} else if (f && pr < 0) {
			struct pv_ctrl_reply rep = {.fd = -1};
			pv_ctrl_reply_error(&rep, 500, "engine reply to %s: %s", f->op,
					    pv_error_msg(&err));
			complete(eng, f, &rep);
			pv_ctrl_reply_clear(&rep);
		}
		/* else: a reply to a request that timed out, or a pushed event */
		pv_error_clear(&err);
		pv_msg_free(&m);
	}
	if (r < 0)
		io_disconnect(eng, "protocol error");
}

static void *io_main(void *arg)
{
	struct pv_ctrl_engine *eng = arg;
	struct io *io = &eng->io;
	char buf[65536];
	pthread_mutex_lock(&eng->co_mu);
	while (!io->stop) {
		if (io->fd < 0 && io->out_len) {
			struct chan tmp = {.fd = -1};
			strcpy(tmp.path, eng->path);
			if (connect_engine(&tmp) < 0)
				io_disconnect(eng, "not reachable");
			else
				io->fd = tmp.fd;
		}
		/* the nearest deadline bounds the wait */
		long long now = now_ms(), next = now + 1000;
		for (struct inflight *f = eng->inflight, *n; f; f = n) {
			n = f->next;
			if (f->deadline <= now) {
				complete_error(eng, f, 5, "no answer in time");
				n = eng->inflight; /* the list changed while unlocked */
				continue;
			}
			if (f->deadline < next)
				next = f->deadline;
		}
		struct pollfd pf[2] = {{.fd = io->wake[0], .events = POLLIN},
				       {.fd = io->fd, .events = POLLIN}};
		if (io->fd >= 0 && io->out_len)
			pf[1].events |= POLLOUT;
		pthread_mutex_unlock(&eng->co_mu);
		int pr = poll(pf, io->fd >= 0 ? 2 : 1, (int)(next - now));
		pthread_mutex_lock(&eng->co_mu);
		if (pr < 0)
			continue;
		if (pf[0].revents & POLLIN)
			while (read(io->wake[0], buf, sizeof(buf)) > 0)
				;
		if (io->fd < 0 || pr == 0)
			continue;
		if (pf[1].revents & POLLOUT) {
			ssize_t w = send(io->fd, io->out, io->out_len, MSG_NOSIGNAL);
			if (w > 0) {
				memmove(io->out, io->out + w, io->out_len - (size_t)w);
				io->out_len -= (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				io_disconnect(eng, "not reachable");
				continue;
			}
		}
		if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t got = recv(io->fd, buf, sizeof(buf), 0);
			if (got > 0) {
				if (pv_proto_decoder_feed(&io->dec, buf, (size_t)got) < 0)
					io_disconnect(eng, "protocol error");
				else
					io_replies(eng);
			} else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
				io_disconnect(eng, "connection lost");
			}
		}
	}
	io_disconnect(eng, "pv-ctrl is stopping");
	pthread_mutex_unlock(&eng->co_mu);
	return NULL;
}

int pv_ctrl_engine_start(struct pv_ctrl_engine *eng)
{
	if (pipe2(eng->io.wake, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	eng->io.stop = false;
	int r = pthread_create(&eng->io.thread, NULL, io_main, eng);
	if (r) {
		close(eng->io.wake[0]);
		close(eng->io.wake[1]);
		eng->io.wake[0] = eng->io.wake[1] = -1;
		return -r;
	}
	eng->io.running = true;
	return 0;
}

void pv_ctrl_engine_stop(struct pv_ctrl_engine *eng)
{
	if (!eng->io.running)
		return;
	pthread_mutex_lock(&eng->co_mu);
	eng->io.stop = true;
	pthread_mutex_unlock(&eng->co_mu);
	wake_io(eng);
	pthread_join(eng->io.thread, NULL);
	eng->io.running = false;
	close(eng->io.wake[0]);
	close(eng->io.wake[1]);
	eng->io.wake[0] = eng->io.wake[1] = -1;
	if (eng->reads)
		fprintf(stderr, "pv-ctrl: %llu reads, %llu answered by a shared engine request\n",
			(unsigned long long)eng->reads, (unsigned long long)eng->joined);
}

int pv_ctrl_engine_read_async(struct pv_ctrl_engine *eng, const char *op, const char *args_json,
			      pv_ctrl_read_park park, pv_ctrl_read_done done, void *ctx)
{
	size_t ol = strlen(op), al = args_json ? strlen(args_json) : 0;
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->done = done;
	w->ctx = ctx;
	pthread_mutex_lock(&eng->co_mu);
	if (!eng->io.running || eng->io.stop) {
		pthread_mutex_unlock(&eng->co_mu);
		free(w);
		return -ESHUTDOWN;
	}
	eng->reads++;
	uint64_t gen = __atomic_load_n(&eng->write_gen, __ATOMIC_SEQ_CST);
	struct inflight *f = eng->inflight;
	for (; f; f = f->next)
		if (f->gen == gen && f->key_len == ol + 1 + al && !memcmp(f->key, op, ol + 1) &&
		    (!al || !memcmp(f->key + ol + 1, args_json, al)))
			break;
	if (f) {
		eng->joined++;
	} else {
		/* a new request: framed here, written by the I/O thread */
		uint64_t id = __atomic_fetch_add(&eng->next_id, 1, __ATOMIC_RELAXED);
		char *req = pv_msg_request(op, id, args_json), *frame = NULL;
		size_t flen = 0;
		f = calloc(1, sizeof(*f));
		char *key = malloc(ol + 1 + al + 1);
		if (!req || !f || !key ||
		    pv_proto_frame(req, strlen(req), PV_PROTO_MAX_DEFAULT, &frame, &flen) < 0 ||
		    (eng->io.out_len + flen > eng->io.out_cap &&
		     !(eng->io.out =
			   realloc(eng->io.out, eng->io.out_cap = (eng->io.out_len + flen) * 2)))) {
			pthread_mutex_unlock(&eng->co_mu);
			free(req);
			free(frame);
			free(f);
			free(key);
			free(w);
			return -ENOMEM;
		}
		memcpy(eng->io.out + eng->io.out_len, frame, flen);
		eng->io.out_len += flen;
		free(req);
		free(frame);
		memcpy(key, op, ol + 1);
		if (al)
			memcpy(key + ol + 1, args_json, al);
		f->key = key;
		f->key_len = ol + 1 + al;
		f->gen = gen;
		f->id = id;
		f->deadline = now_ms() + eng->timeout_ms;
		snprintf(f->op, sizeof(f->op), "%s", op);
		f->next = eng->inflight;
		eng->inflight = f;
		/* the caller's thread writes it when the connection is up (one wakeup less per
		 * request); the I/O thread only reads, connects, and writes what did not fit */
		if (eng->io.fd >= 0) {
			ssize_t sn = send(eng->io.fd, eng->io.out, eng->io.out_len,
					  MSG_NOSIGNAL | MSG_DONTWAIT);
			if (sn > 0) {
				memmove(eng->io.out, eng->io.out + sn,
					eng->io.out_len - (size_t)sn);
				eng->io.out_len -= (size_t)sn;
			}
		}
		if (eng->io.fd < 0 || eng->io.out_len)
			wake_io(eng);
	}
	w->next = f->waiters;
	f->waiters = w;
	f->n_waiters++;
	/* parked before the I/O thread can see the waiter: done() always follows park() */
	park(ctx);
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
