/* proxy.c: the byte pump between a consumer connection and a provider connection on the loop,
 * used by the unix plugin (and wayland): splice through pipes for bulk, fds carried with the bytes.
 *
 * Reads: a connection starts with recvmsg() into a 64 KiB buffer with a control buffer, so fds
 * and credentials arrive with the bytes of the read that carried them and leave with them in
 * one sendmsg (one syscall per hop each way: request/response traffic never pays for more).
 * A read that fills the buffer switches the direction to bulk: then the socket's queued byte
 * count (SIOCINQ) is taken first and its queued fd count (scm_fds in /proc/self/fdinfo) second;
 * no fds means those bytes move socket -> pipe -> socket with splice(2) and never enter user
 * space. splice() would silently drop fds (the kernel closes them), so with fds queued the
 * bytes go through recvmsg again. A bulk direction goes back to plain reads when a wake-up finds
 * less than 4 KiB queued.
 *
 * Boundaries: a unix stream read returns the queued bytes up to and including the first
 * message that carries fds, and no peek can tell where that message starts (a MSG_PEEK reports
 * MSG_CTRUNC as soon as any fd message is queued behind the peeked bytes). So fds arrive with
 * the bytes of that read: never later than on a direct connection, possibly together with bytes
 * the sender wrote just before them (at most 64 KiB), like any reader with a large buffer sees
 * them. Protocols that pass fds (Wayland, D-Bus) queue received fds and are unaffected.
 *
 * Backpressure: a side is read only while its direction's pipe (or message buffer) has room and
 * written only when there is something to write, so a peer that never reads stalls its sender
 * instead of growing memory: the worst case per connection is two pipes plus one buffer. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "xconnect.h"

#define MSG_BUF	     (64u * 1024)
#define SPLICE_MIN   4096 /* below this, one copy is cheaper than two splices */
#define PVX_SOCK_BUF (2 * 1024 * 1024)
#define MAX_FDS	     253 /* SCM_MAX_FD */
#define CMSG_ROOM    (CMSG_SPACE(sizeof(int) * MAX_FDS) + CMSG_SPACE(sizeof(struct ucred)))

struct side {
	int fd;
	int fdinfo; /* /proc/self/fdinfo/<fd>, opened on first bulk read */
	uv_poll_t poll;
	int events; /* currently polled */
	struct pvx_proxy *p;
};

struct dir {
	int from, to; /* side index */
	int pipe[2];
	size_t in_pipe;
	size_t pipe_cap;
	bool eof;     /* read side finished */
	bool shut;    /* write side shut down */
	bool want_rd; /* read would block */
	bool want_wr; /* write would block */
	bool drained; /* the last read emptied the queue */
	bool bulk;    /* a stream: splice when the queue allows */
	bool woken;   /* the next read is the first since poll said readable */
	/* message mode buffer */
	char *buf;
	size_t len, off;
	size_t last_read; /* bytes the last recvmsg returned (before any filter) */
	char *fbuf;	  /* the filter's output, swapped with buf */
	int fds[MAX_FDS];
	size_t nfds;
	bool have_cred;
	struct ucred cred;
};

struct pvx_proxy {
	uv_loop_t *loop;
	struct side s[2];
	struct dir d[2];
	pvx_proxy_close_cb cb;
	void *opaque;
	struct pvx_proxy_stats st;
	pvx_proxy_filter_fn filter; /* sees every byte before it goes on; NULL: none */
	void *filter_opaque;
	size_t filter_extra;
	int open_handles;
	bool closing;
};

static void poll_cb(uv_poll_t *h, int status, int events);

static void drop_fds(struct dir *d)
{
	for (size_t i = 0; i < d->nfds; i++)
		close(d->fds[i]);
	d->nfds = 0;
	d->have_cred = false;
}

static void handle_closed(uv_handle_t *h)
{
	struct side *s = h->data;
	struct pvx_proxy *p = s->p;
	close(s->fd);
	s->fd = -1;
	if (s->fdinfo >= 0)
		close(s->fdinfo);
	if (--p->open_handles == 0) {
		for (int i = 0; i < 2; i++) {
			if (p->d[i].pipe[0] >= 0)
				close(p->d[i].pipe[0]);
			if (p->d[i].pipe[1] >= 0)
				close(p->d[i].pipe[1]);
			drop_fds(&p->d[i]);
			free(p->d[i].buf);
			free(p->d[i].fbuf);
		}
		free(p);
	}
}

static void shutdown_all(struct pvx_proxy *p, bool notify)
{
	if (p->closing)
		return;
	p->closing = true;
	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&p->s[i].poll, handle_closed);
	if (notify && p->cb)
		p->cb(p, p->opaque);
}

void pvx_proxy_close(struct pvx_proxy *p)
{
	shutdown_all(p, false);
}

void pvx_proxy_set_filter(struct pvx_proxy *p, pvx_proxy_filter_fn fn, void *opaque, size_t extra)
{
	p->filter = fn;
	p->filter_opaque = opaque;
	p->filter_extra = extra;
}

void pvx_proxy_get_stats(const struct pvx_proxy *p, struct pvx_proxy_stats *st)
{
	*st = p->st;
}

static bool transient(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* Sends the buffered message (fds ride on the first byte that leaves). <0 fatal, 0 blocked,
 * 1 done. */
static int flush_msg(struct pvx_proxy *p, struct dir *d, int di)
{
	while (d->off < d->len) {
		struct iovec iov = {.iov_base = d->buf + d->off, .iov_len = d->len - d->off};
		union {
			char b[CMSG_ROOM];
			struct cmsghdr align;
		} u;
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
		if (d->nfds || d->have_cred) {
			memset(&u, 0, sizeof(u));
			m.msg_control = u.b;
			m.msg_controllen = 0;
			struct cmsghdr *c = (struct cmsghdr *)u.b;
			if (d->nfds) {
				c->cmsg_level = SOL_SOCKET;
				c->cmsg_type = SCM_RIGHTS;
				c->cmsg_len = CMSG_LEN(sizeof(int) * d->nfds);
				memcpy(CMSG_DATA(c), d->fds, sizeof(int) * d->nfds);
				m.msg_controllen += CMSG_SPACE(sizeof(int) * d->nfds);
				c = (struct cmsghdr *)(u.b + m.msg_controllen);
			}
			if (d->have_cred) {
				c->cmsg_level = SOL_SOCKET;
				c->cmsg_type = SCM_CREDENTIALS;
				c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
				memcpy(CMSG_DATA(c), &d->cred, sizeof(d->cred));
				m.msg_controllen += CMSG_SPACE(sizeof(struct ucred));
			}
		}
		ssize_t n = sendmsg(p->s[d->to].fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == ESRCH || errno == EPERM) && d->have_cred) {
			/* The sender is gone (or not ours to speak for): the bytes and fds still
			 * go, and the receiver sees our credentials on them, as with no
			 * passthrough. */
			d->have_cred = false;
			continue;
		}
		if (n < 0) {
			if (transient(errno)) {
				d->want_wr = true;
				return 0;
			}
			return -errno;
		}
		p->st.bytes[di] += (uint64_t)n;
		p->st.fds[di] += d->nfds;
		drop_fds(d); /* the kernel holds its own references now */
		d->off += (size_t)n;
	}
	d->off = d->len = 0;
	return 1;
}

/* Reads one message with its ancillary data into the buffer. <0 fatal, 0 blocked/eof, 1 got. */
static int read_msg(struct pvx_proxy *p, struct dir *d, int di)
{
	if (!d->buf && !(d->buf = malloc(MSG_BUF + p->filter_extra)))
		return -ENOMEM;
	struct iovec iov = {.iov_base = d->buf, .iov_len = MSG_BUF};
	union {
		char b[CMSG_ROOM];
		struct cmsghdr align;
	} u;
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
	ssize_t n = recvmsg(p->s[d->from].fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0) {
		if (transient(errno)) {
			d->want_rd = true;
			return 0;
		}
		return -errno;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k && d->nfds < MAX_FDS; i++)
				memcpy(&d->fds[d->nfds++], CMSG_DATA(c) + i * sizeof(int),
				       sizeof(int));
		} else if (c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(&d->cred, CMSG_DATA(c), sizeof(d->cred));
			d->have_cred = true;
		}
	}
	if (m.msg_flags & MSG_CTRUNC)
		return -EMSGSIZE; /* fds lost: the stream is no longer faithful */
	if (d->nfds || d->have_cred)
		p->st.cmsg_msgs[di]++;
	if (n == 0) {
		d->eof = true;
		drop_fds(d);
		return 0;
	}
	d->last_read = (size_t)n;
	if (p->filter) {
		/* what goes on is what the filter says; fds wait in d->fds for the next byte
		 * that leaves when it forwards nothing now */
		size_t out = 0;
		if (!d->fbuf && !(d->fbuf = malloc(MSG_BUF + p->filter_extra)))
			return -ENOMEM;
		int r = p->filter(p->filter_opaque, di, d->buf, (size_t)n, d->fbuf, &out);
		if (r < 0)
			return r;
		char *t = d->buf;
		d->buf = d->fbuf;
		d->fbuf = t;
		n = (ssize_t)out;
	}
	d->len = (size_t)n;
	d->off = 0;
	return 1;
}

/* fds queued on a socket's receive queue, from its fdinfo (Linux >= 5.7 "scm_fds:"); -1 when
 * unknown. The fdinfo file stays open per side; pread re-renders it. */
static long queued_fds(struct side *s)
{
	if (s->fdinfo < 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", s->fd);
		s->fdinfo = open(path, O_RDONLY | O_CLOEXEC);
		if (s->fdinfo < 0)
			return -1;
	}
	char buf[512];
	ssize_t n = pread(s->fdinfo, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *f = strstr(buf, "scm_fds:");
	return f ? strtol(f + 8, NULL, 10) : -1;
}

/* How many of the queued bytes can be spliced without losing ancillary data; 0 = read them
 * with recvmsg. Only for a bulk direction: the byte count is taken first, then the fd count, so
 * no fds queued means none in those bytes (an fd message arriving in between is counted). */
static size_t splice_len(struct side *s, struct dir *d)
{
	if (!d->bulk)
		return 0;
	int inq = 0;
	if (ioctl(s->fd, SIOCINQ, &inq) < 0 || inq < SPLICE_MIN) {
		/* a wake-up that finds little queued: the stream has become request/response */
		if (d->woken)
			d->bulk = false;
		d->woken = false;
		return 0;
	}
	d->woken = false;
	if (queued_fds(s) != 0)
		return 0;
	return (size_t)inq < d->pipe_cap ? (size_t)inq : d->pipe_cap;
}

/* Pipes are made on the first bulk read: request/response connections never need them, and
 * idle connections then cost no pipe buffers. The send buffer of the side the stream goes to is
 * raised then too (the unix default is ~208 KiB): bigger buffers let one splice move more per
 * wake-up; like the pipes they are a fixed per-connection bound, not growth. */
static int open_pipe(struct pvx_proxy *p, struct dir *d)
{
	int v = PVX_SOCK_BUF;
	if (setsockopt(p->s[d->to].fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(p->s[d->to].fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	/* A big pipe lets one splice move a large chunk; failing to grow it (limits) only costs
	 * throughput. */
	int sz = fcntl(d->pipe[1], F_SETPIPE_SZ, (int)PVX_PIPE_SIZE);
	if (sz < 0)
		sz = fcntl(d->pipe[1], F_GETPIPE_SZ);
	d->pipe_cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}

/* Moves as much as possible in direction di. Returns <0 on a fatal error. */
static int pump(struct pvx_proxy *p, int di)
{
	struct dir *d = &p->d[di];
	for (;;) {
		/* 1. drain what we hold, in order: message buffer, then pipe */
		if (d->len) {
			int rc = flush_msg(p, d, di);
			if (rc <= 0)
				return rc;
		}
		if (d->in_pipe) {
			ssize_t n = splice(d->pipe[0], NULL, p->s[d->to].fd, NULL, d->in_pipe,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0) {
				if (transient(errno)) {
					d->want_wr = true;
					return 0;
				}
				return -errno;
			}
			d->in_pipe -= (size_t)n;
			p->st.bytes[di] += (uint64_t)n;
			continue;
		}
		d->want_wr = false;
		if (d->drained) {
			/* level-triggered poll tells us when more arrives: no EAGAIN round trip */
			d->drained = false;
			d->want_rd = true;
			return 0;
		}
		if (d->eof) {
			if (!d->shut) {
				d->shut = true;
				shutdown(p->s[d->to].fd, SHUT_WR);
			}
			return 0;
		}
		/* 2. read more: splice in a bulk stream without fds queued, else recvmsg */
		size_t want = splice_len(&p->s[d->from], d);
		int rc;
		if (!want) {
			rc = read_msg(p, d, di);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				if (!d->eof)
					return 0; /* would block */
				continue;
			}
			/* A full buffer: more is likely queued, a stream: splice from now on. A
			 * short read took what was there: nothing to read until the next wake-up
			 * (level-triggered poll), so no EAGAIN round trip. */
			if (d->last_read == MSG_BUF && !p->filter)
				d->bulk = true;
			else if (d->last_read < MSG_BUF)
				d->drained = true;
			continue;
		}
		if (d->pipe[0] < 0 && (rc = open_pipe(p, d)) < 0)
			return rc;
		if (want > d->pipe_cap)
			want = d->pipe_cap;
		ssize_t n = splice(p->s[d->from].fd, NULL, d->pipe[1], NULL, want,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (transient(errno)) {
				d->want_rd = true;
				return 0;
			}
			return -errno;
		}
		if (n == 0) {
			d->eof = true;
			continue;
		}
		d->in_pipe = (size_t)n;
	}
}

static void update_polls(struct pvx_proxy *p)
{
	for (int i = 0; i < 2; i++) {
		struct side *s = &p->s[i];
		int ev = 0;
		/* read from side i: direction i (i is "from") when it is blocked on reading */
		struct dir *out = &p->d[i];
		struct dir *in = &p->d[1 - i];
		if (!out->eof && out->want_rd && !out->in_pipe && !out->len)
			ev |= UV_READABLE;
		if (in->want_wr)
			ev |= UV_WRITABLE;
		if (ev != s->events) {
			s->events = ev;
			if (ev)
				uv_poll_start(&s->poll, ev, poll_cb);
			else
				uv_poll_stop(&s->poll);
		}
	}
}

/* Pumps the directions in mask (bit i = direction i). */
static void run(struct pvx_proxy *p, int mask)
{
	for (int i = 0; i < 2; i++) {
		if (!(mask & (1 << i)))
			continue;
		int rc = pump(p, i);
		if (rc < 0) {
			pvx_log(PVX_DEBUG, "proxy: %s", strerror(-rc));
			shutdown_all(p, true);
			return;
		}
	}
	if (p->d[0].eof && p->d[1].eof && p->d[0].shut && p->d[1].shut) {
		shutdown_all(p, true);
		return;
	}
	update_polls(p);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct side *s = h->data;
	struct pvx_proxy *p = s->p;
	if (p->closing)
		return;
	int i = (int)(s - p->s);
	if (status < 0) {
		shutdown_all(p, true);
		return;
	}
	int mask = 0;
	if (events & UV_READABLE) {
		p->d[i].want_rd = false;
		p->d[i].woken = true;
		mask |= 1 << i;
	}
	if (events & UV_WRITABLE) {
		p->d[1 - i].want_wr = false;
		mask |= 1 << (1 - i);
	}
	/* Only the directions this event can move: an idle direction costs no syscall. */
	run(p, mask ? mask : 3);
}

int pvx_proxy_start(uv_loop_t *loop, int a, int b, pvx_proxy_close_cb cb, void *opaque,
		    struct pvx_proxy **out)
{
	struct pvx_proxy *p = calloc(1, sizeof(*p));
	if (!p) {
		close(a);
		close(b);
		return -ENOMEM;
	}
	p->loop = loop;
	p->cb = cb;
	p->opaque = opaque;
	p->s[0].fd = a;
	p->s[1].fd = b;
	p->s[0].fdinfo = p->s[1].fdinfo = -1;
	int rc = 0;
	for (int i = 0; i < 2; i++) {
		struct dir *d = &p->d[i];
		d->from = i;
		d->to = 1 - i;
		d->pipe[0] = d->pipe[1] = -1;
		d->pipe_cap = PVX_PIPE_SIZE; /* until the pipe exists */
		d->want_rd = true;
	}
	for (int i = 0; i < 2 && rc == 0; i++) {
		p->s[i].p = p;
		p->s[i].poll.data = &p->s[i];
		rc = uv_poll_init(loop, &p->s[i].poll, p->s[i].fd);
		if (rc == 0)
			p->open_handles++;
	}
	if (rc < 0) {
		for (int i = 0; i < 2; i++) {
			if (p->d[i].pipe[0] >= 0)
				close(p->d[i].pipe[0]);
			if (p->d[i].pipe[1] >= 0)
				close(p->d[i].pipe[1]);
		}
		if (p->open_handles) {
			/* handle_closed closes the fds and frees p */
			p->closing = true;
			for (int i = 0; i < 2; i++)
				p->d[i].pipe[0] = p->d[i].pipe[1] = -1;
			for (int i = 0; i < p->open_handles; i++)
				uv_close((uv_handle_t *)&p->s[i].poll, handle_closed);
			if (p->open_handles < 2)
				close(p->s[1].fd);
		} else {
			close(a);
			close(b);
			free(p);
		}
		return rc;
	}
	*out = p;
	update_polls(p);
	return 0;
}
