/* pv-ctrl/engine.c: the client side of the engine's private socket: framed requests with ids,
 * one connection shared by the HTTP threads, reconnect after an engine restart, timeouts → 503. */
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

struct pv_ctrl_engine {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;
	int timeout_ms;
	uint64_t next_id;
	struct pv_proto_decoder dec;
	/* the engine answers in order and fast; one request in flight keeps the matching trivial
	 * and never lets a slow HTTP client hold the engine (bodies are complete before we send) */
	pthread_mutex_t mu;
};

struct pv_ctrl_engine *pv_ctrl_engine_new(const char *path, int timeout_ms)
{
	struct pv_ctrl_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	if (strlen(path) >= sizeof(e->path)) {
		free(e);
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(e->path, path);
	e->fd = -1;
	e->timeout_ms = timeout_ms;
	e->next_id = 1;
	pv_proto_decoder_init(&e->dec, PV_PROTO_MAX_DEFAULT);
	pthread_mutex_init(&e->mu, NULL);
	return e;
}

static void disconnect(struct pv_ctrl_engine *e)
{
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	pv_proto_decoder_free(&e->dec);
	pv_proto_decoder_init(&e->dec, PV_PROTO_MAX_DEFAULT);
}

void pv_ctrl_engine_free(struct pv_ctrl_engine *e)
{
	if (!e)
		return;
	disconnect(e);
	pv_proto_decoder_free(&e->dec);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

static int connect_engine(struct pv_ctrl_engine *e)
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

static int send_all(struct pv_ctrl_engine *e, const char *buf, size_t len, long long deadline)
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
static int recv_reply(struct pv_ctrl_engine *e, uint64_t id, long long deadline, char **payload,
		      size_t *plen)
{
	char buf[16384];
	for (;;) {
		char *p = NULL;
		size_t n = 0;
		int r = pv_proto_decoder_next(&e->dec, &p, &n);
		if (r < 0)
			return -EPROTO;
		if (r > 0) {
			struct pv_msg m;
			memset(&m, 0, sizeof(m));
			/* peek at the id: cheap enough, and a reply to an older request that timed
			 * out must not be taken for this one */
			if (pv_msg_parse(p, n, &m, NULL) == 0 && m.kind == PV_MSG_REPLY &&
			    m.id == id) {
				pv_msg_free(&m);
				*payload = p;
				*plen = n;
				return 0;
			}
			pv_msg_free(&m);
			free(p);
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
			out->retry_after = 120;
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

void pv_ctrl_engine_relay(struct pv_ctrl_engine *e, const char *op, const char *args_json,
			  struct pv_ctrl_reply *out)
{
	pthread_mutex_lock(&e->mu);
	uint64_t id = e->next_id++;
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
	char *payload = NULL;
	size_t plen = 0;
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
		r = recv_reply(e, id, deadline, &payload, &plen);
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
		return;
	}
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	memset(&m, 0, sizeof(m));
	if (pv_msg_parse(payload, plen, &m, &err) < 0) {
		pv_ctrl_reply_error(out, 500, "engine reply to %s: %s", op, pv_error_msg(&err));
	} else {
		reply_msg(out, &m);
	}
	pv_error_clear(&err);
	pv_msg_free(&m);
	free(payload);
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
