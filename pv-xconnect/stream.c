/* stream.c: the byte-stream core of the rewriting plugins (rest, dbus): accept on the injected
 * socket, connect the provider, move bytes both ways through a plugin's rewrite callback.
 *
 * Costs per request are what the proxy adds to a round trip, so the common path touches no
 * buffer of ours: a read lands in a stack buffer; a processed direction is parsed right there
 * (only an incomplete tail is kept), a verbatim direction is written on at once when nothing is
 * queued before it. Buffers exist only for what a socket did not take, and a large one is given
 * back when it drains. The poll interest of a side changes only when backpressure or a pending
 * write says so, so a steady request/response exchange costs one epoll_wait, one read and one
 * write per hop. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream.h"

#define FDS_PER_MSG 64		 /* SCM_RIGHTS per read or write */
#define FDS_MAX	    1024	 /* fds queued per direction before the connection is dropped */
#define CHUNK_MAX   (64u * 1024) /* largest read_chunk a plugin may ask for */
#define KEEP_CAP    (64u * 1024) /* a drained buffer larger than this is freed */
#define RUN_PASSES  8		 /* read/write rounds per wake-up before yielding */

/* ---- buffers ---- */

static int buf_reserve(struct pvx_buf *b, size_t n)
{
	if (b->cap - b->off - b->len >= n)
		return 0;
	if (b->off && b->cap - b->len >= n) {
		memmove(b->d, b->d + b->off, b->len);
		b->off = 0;
		return 0;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	char *d = malloc(cap);
	if (!d)
		return -ENOMEM;
	if (b->len)
		memcpy(d, b->d + b->off, b->len);
	free(b->d);
	b->d = d;
	b->cap = cap;
	b->off = 0;
	return 0;
}

int pvx_buf_add(struct pvx_buf *b, const void *p, size_t n)
{
	if (!n)
		return 0;
	int rc = buf_reserve(b, n);
	if (rc < 0)
		return rc;
	memcpy(b->d + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

void pvx_buf_eat(struct pvx_buf *b, size_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len)
		return;
	b->off = 0;
	/* cap 0 marks a view on the read buffer (not ours to free) */
	if (b->cap > KEEP_CAP) {
		free(b->d);
		b->d = NULL;
		b->cap = 0;
	}
}

static void buf_free(struct pvx_buf *b)
{
	free(b->d);
	memset(b, 0, sizeof(*b));
}

/* ---- fd queues ---- */

int pvx_fdq_push(struct pvx_fdq *q, int fd)
{
	if (q->n >= FDS_MAX)
		return -EMFILE;
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		int *v = realloc(q->v, cap * sizeof(int));
		if (!v)
			return -ENOMEM;
		q->v = v;
		q->cap = cap;
	}
	q->v[q->n++] = fd;
	return 0;
}

int pvx_fdq_move(struct pvx_fdq *from, struct pvx_fdq *to, size_t n)
{
	int rc = 0;
	size_t i = 0;
	if (n > from->n)
		n = from->n;
	for (; i < n; i++) {
		if (!to)
			close(from->v[i]);
		else if ((rc = pvx_fdq_push(to, from->v[i])) < 0)
			break;
	}
	/* what moved (or was closed) leaves from, so no fd is owned twice */
	if (i)
		memmove(from->v, from->v + i, (from->n - i) * sizeof(int));
	from->n -= i;
	return rc;
}

static void fdq_free(struct pvx_fdq *q)
{
	for (size_t i = 0; i < q->n; i++)
		close(q->v[i]);
	free(q->v);
	memset(q, 0, sizeof(*q));
}

/* ---- socket I/O ---- */

static bool blocked(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* Writes p[0, n) to side j as far as it takes it; queued fds ride on the first byte(s).
 * Returns bytes written or -errno (0 when it would block). */
static ssize_t side_send(struct pvx_stream *s, int j, const char *p, size_t n)
{
	struct pvx_stream_side *d = &s->side[j];
	size_t nf = d->out_fds.n < FDS_PER_MSG ? d->out_fds.n : FDS_PER_MSG;
	ssize_t w;
	if (!nf) {
		w = send(d->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	} else {
		union {
			char b[CMSG_SPACE(sizeof(int) * FDS_PER_MSG)];
			struct cmsghdr align;
		} ctl;
		/* one byte per batch of fds, so a second batch has bytes of its own */
		struct iovec iov = {(void *)p, d->out_fds.n > nf ? 1 : n};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = ctl.b,
				   .msg_controllen = CMSG_SPACE(sizeof(int) * nf)};
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int) * nf);
		memcpy(CMSG_DATA(h), d->out_fds.v, sizeof(int) * nf);
		w = sendmsg(d->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0)
			pvx_fdq_move(&d->out_fds, NULL, nf); /* the peer has its own copies */
	}
	if (w < 0)
		return blocked(errno) ? 0 : -errno;
	d->written += (uint64_t)w;
	return w;
}

static int side_flush(struct pvx_stream *s, int j)
{
	struct pvx_buf *b = &s->side[j].out;
	while (b->len) {
		ssize_t w = side_send(s, j, pvx_buf_data(b), b->len);
		if (w < 0)
			return (int)w;
		if (w == 0)
			return 0;
		pvx_buf_eat(b, (size_t)w);
	}
	return 0;
}

/* Bytes the plugin (or the verbatim path) produced for side j while reading side i. */
static int deliver(struct pvx_stream *s, int j, const char *p, size_t n)
{
	struct pvx_stream_side *d = &s->side[j];
	if (!d->out.len && !d->out_fds.n && !d->shut) {
		ssize_t w = side_send(s, j, p, n);
		if (w < 0)
			return (int)w;
		p += w;
		n -= (size_t)w;
	}
	return pvx_buf_add(&d->out, p, n);
}

/* Reads once from side i and hands the bytes on. 1 got bytes, 0 would block, -1 end of input,
 * < -1 -errno. */
static int side_read(struct pvx_stream *s, int i)
{
	const struct pvx_stream_ops *ops = s->ops;
	struct pvx_stream_side *sd = &s->side[i];
	bool verbatim = !ops->process[i];
	char tmp[CHUNK_MAX];
	size_t want = ops->read_chunk && ops->read_chunk < CHUNK_MAX ? ops->read_chunk : CHUNK_MAX;
	ssize_t n;
	if (!ops->fds) {
		n = recv(sd->fd, tmp, want, MSG_DONTWAIT);
	} else {
		union {
			char b[CMSG_SPACE(sizeof(int) * FDS_PER_MSG)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = {tmp, want};
		struct msghdr m = {.msg_iov = &iov,
				   .msg_iovlen = 1,
				   .msg_control = ctl.b,
				   .msg_controllen = sizeof(ctl.b)};
		n = recvmsg(sd->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return blocked(errno) ? 0 : -errno;
		/* a verbatim direction hands fds straight on, with the bytes they came with */
		struct pvx_fdq *q = verbatim ? &s->side[!i].out_fds : &sd->in_fds;
		int rc = 0;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
			if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			const char *data = (const char *)CMSG_DATA(h);
			for (size_t f = 0; f < k; f++) {
				int one;
				memcpy(&one, data + f * sizeof(int), sizeof(int));
				if (rc == 0)
					rc = pvx_fdq_push(q, one);
				if (rc < 0)
					close(one);
			}
		}
		if (rc < 0)
			return rc;
		if (m.msg_flags & MSG_CTRUNC)
			return -EMSGSIZE;
	}
	if (n < 0)
		return blocked(errno) ? 0 : -errno;
	if (n == 0)
		return -1;
	int rc;
	if (verbatim) {
		rc = deliver(s, !i, tmp, (size_t)n);
		return rc < 0 ? (rc == -1 ? -EPROTO : rc) : 1;
	}
	if (!sd->in.len) {
		/* parsed in place; only what the plugin leaves is copied */
		struct pvx_buf view = {.d = tmp, .len = (size_t)n};
		rc = ops->process[i](s, i, &view);
		if (rc == 0 && view.len && !sd->eof)
			rc = pvx_buf_add(&sd->in, pvx_buf_data(&view), view.len);
	} else {
		rc = pvx_buf_add(&sd->in, tmp, (size_t)n);
		if (rc == 0)
			rc = ops->process[i](s, i, &sd->in);
	}
	return rc < 0 ? (rc == -1 ? -EPROTO : rc) : 1;
}

/* ---- one connection ---- */

/* Side i may be read: what it produced is not backed up and the unit being collected may grow
 * up to its own size. Answers of ours (a 400, an AccessDenied) only ever go to the consumer, so
 * the consumer is also not read while its own output is backed up. The provider's reading must
 * not wait for its output: a provider blocked writing to us reads nothing until we read it. */
static bool want_read(const struct pvx_stream *s, int i)
{
	const struct pvx_stream_side *sd = &s->side[i];
	size_t lim = s->ops->limit;
	return !sd->eof && s->side[!i].out.len < lim && (i == PVX_PROVIDER || sd->out.len < lim) &&
	       (sd->in.len < lim || sd->in.len < sd->need);
}

static void poll_cb(uv_poll_t *h, int status, int events);

static void handle_closed(uv_handle_t *h)
{
	struct pvx_stream *s = h->data;
	if (--s->handles)
		return;
	if (s->ops->on_free)
		s->ops->on_free(s);
	for (int i = 0; i < 2; i++) {
		close(s->side[i].fd);
		buf_free(&s->side[i].in);
		buf_free(&s->side[i].out);
		fdq_free(&s->side[i].in_fds);
		fdq_free(&s->side[i].out_fds);
	}
	free(s);
}

static void unlink_stream(struct pvx_stream *s)
{
	if (s->detached)
		return;
	struct pvx_stream_link *sl = s->sl;
	if (s->prev)
		s->prev->next = s->next;
	else
		sl->conns = s->next;
	if (s->next)
		s->next->prev = s->prev;
	sl->n_conns--;
	s->detached = true;
}

void pvx_stream_close(struct pvx_stream *s)
{
	if (s->closing)
		return;
	s->closing = true;
	unlink_stream(s);
	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&s->side[i].poll, handle_closed);
}

void pvx_stream_finish(struct pvx_stream *s, int side)
{
	s->side[side].eof = true;
	pvx_buf_eat(&s->side[side].in, s->side[side].in.len);
}

/* Applies the end-of-input rules. true when the connection is over. */
static bool ended(struct pvx_stream *s)
{
	for (int i = 0; i < 2; i++) {
		struct pvx_stream_side *o = &s->side[!i];
		if (!s->side[i].eof || o->out.len)
			continue;
		if (s->ops->eof_closes[i])
			return true; /* that side is done and everything it sent was delivered */
		if (!o->shut) {
			o->shut = true;
			shutdown(o->fd, SHUT_WR);
		}
	}
	return s->side[0].eof && s->side[1].eof && !s->side[0].out.len && !s->side[1].out.len;
}

/* rd: bit i = side i is readable. Only signalled sides are read (the poll is level-triggered:
 * what is left is signalled again), so a request costs one read per hop, not a read more that
 * would only say EAGAIN. */
static void run(struct pvx_stream *s, int rd)
{
	int rc = 0;
	for (int pass = 0; pass < RUN_PASSES && !s->closing; pass++) {
		bool progress = false;
		for (int i = 0; i < 2; i++) {
			struct pvx_stream_side *o = &s->side[!i];
			if ((rd & (1 << i)) && want_read(s, i)) {
				rc = side_read(s, i);
				if (rc < -1)
					goto fail;
				if (rc == -1) {
					s->side[i].eof = true;
					if (s->ops->on_eof)
						s->ops->on_eof(s, i);
				}
				progress = progress || rc != 0;
			}
			if (o->out.len && !o->shut) {
				size_t before = o->out.len;
				if ((rc = side_flush(s, !i)) < 0)
					goto fail;
				progress = progress || o->out.len != before;
			}
		}
		if (ended(s)) {
			pvx_stream_close(s);
			return;
		}
		if (!progress)
			break;
		rd = 0;
	}
	for (int i = 0; i < 2; i++) {
		struct pvx_stream_side *sd = &s->side[i];
		int want = (want_read(s, i) ? UV_READABLE : 0) |
			   (sd->out.len && !sd->shut ? UV_WRITABLE : 0);
		if (want == sd->ev)
			continue;
		sd->ev = want;
		if (want)
			uv_poll_start(&sd->poll, want, poll_cb);
		else
			uv_poll_stop(&sd->poll);
	}
	return;
fail:
	/* a protocol violation or a dead socket ends this connection only */
	pvx_log(PVX_DEBUG, "link %s/%s: %s connection closed: %s", s->sl->l->spec.consumer,
		s->sl->l->spec.name, s->sl->l->spec.type ? s->sl->l->spec.type : "stream",
		strerror(-rc));
	pvx_stream_close(s);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct pvx_stream *s = h->data;
	if (s->closing)
		return;
	if (status < 0) {
		pvx_stream_close(s);
		return;
	}
	int side = h == &s->side[0].poll ? 0 : 1;
	run(s, (events & (UV_READABLE | UV_DISCONNECT)) ? 1 << side : 0);
}

static void on_accept(void *opaque, int cfd)
{
	struct pvx_stream_link *sl = opaque;
	const struct pv_link *ls = &sl->l->spec;
	const struct pvx_stream_ops *ops = sl->ops;
	int pfd = -1;
	int rc = ops->connect ? ops->connect(sl, &pfd)
			      : pvx_plumb_connect_cached(&sl->provider, sl->provider_pid,
							 ls->socket, false, &pfd);
	if (rc < 0) {
		pvx_log(PVX_WARN, "link %s/%s: provider %s: %s", ls->consumer, ls->name, ls->socket,
			strerror(-rc));
		close(cfd);
		return;
	}
	struct pvx_stream *s = calloc(1, sizeof(*s) + ops->priv_size);
	if (!s) {
		close(cfd);
		close(pfd);
		return;
	}
	s->ops = ops;
	s->sl = sl;
	s->priv = ops->priv_size ? (void *)(s + 1) : NULL;
	s->side[0].fd = cfd;
	s->side[1].fd = pfd;
	for (int i = 0; i < 2; i++) {
		uv_poll_init(sl->l->loop, &s->side[i].poll, s->side[i].fd);
		s->side[i].poll.data = s;
		s->handles++;
	}
	s->next = sl->conns;
	if (sl->conns)
		sl->conns->prev = s;
	sl->conns = s;
	sl->n_conns++;
	if (ops->on_start)
		ops->on_start(s);
	run(s, 3);
}

int pvx_stream_link_add(struct pvx_link *l, pid_t provider_pid, const struct pvx_stream_ops *ops,
			size_t extra, struct pv_error *err)
{
	struct pvx_stream_link *sl = calloc(1, sizeof(*sl) + extra);
	if (!sl)
		return pv_error_set(err, -ENOMEM, "out of memory");
	sl->l = l;
	sl->ops = ops;
	sl->opaque = extra ? (void *)(sl + 1) : NULL;
	sl->provider_pid = provider_pid;
	/* inject only when the provider is there (else the link is pending, retried) */
	int rc = pvx_plumb_open_in_root(provider_pid, l->spec.socket, &sl->provider, err);
	if (rc == 0)
		rc = pvx_listener_start(l, on_accept, sl, &sl->ls, err);
	if (rc < 0) {
		if (sl->provider >= 0)
			close(sl->provider);
		free(sl);
		return rc;
	}
	l->priv = sl;
	return 0;
}

void pvx_stream_link_remove(struct pvx_link *l)
{
	struct pvx_stream_link *sl = l->priv;
	if (!sl)
		return;
	pvx_listener_stop(sl->ls);
	while (sl->conns)
		pvx_stream_close(sl->conns);
	if (sl->provider >= 0)
		close(sl->provider);
	free(sl);
	l->priv = NULL;
}

size_t pvx_stream_link_conns(const struct pvx_link *l)
{
	const struct pvx_stream_link *sl = l->priv;
	return sl ? sl->n_conns : 0;
}
