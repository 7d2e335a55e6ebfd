/* plugins/rest.c: the `rest` link type: an HTTP/1.1-over-unix-socket proxy that stamps the
 * caller's true identity (X-PV-Client, X-PV-Role) on every request of every connection.
 *
 * Only the consumer -> provider direction is parsed, with a small strict request parser of our
 * own (no suitable HTTP parser library with pkg-config in Debian stable): request line, header
 * fields, Content-Length or chunked framing (trailers included), so that each request of a
 * keep-alive or pipelined connection is found and stamped. Client-supplied X-PV-Client/X-PV-Role
 * fields (headers and trailers) are dropped. Anything malformed, and every framing ambiguity that
 * enables request smuggling (Transfer-Encoding with Content-Length, conflicting lengths, a
 * transfer coding other than chunked, obs-fold, bare LF) ends the connection with our own 400.
 * Responses are copied back unchanged. Buffers are capped per direction (backpressure). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugins/plugin.h"

#define HEAD_MAX   (16u * 1024) /* request line + headers, and the trailer section */
#define BUF_LIMIT  (64u * 1024) /* stop reading a side while this much waits to be written */
#define READ_CHUNK (16u * 1024)

static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
				  "Content-Type: text/plain\r\n"
				  "Content-Length: 12\r\n"
				  "Connection: close\r\n"
				  "\r\n"
				  "Bad Request\n";

struct buf {
	char *d;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		char *d = realloc(b->d, cap);
		if (!d)
			return -ENOMEM;
		b->d = d;
		b->cap = cap;
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
	return 0;
}

static void buf_eat(struct buf *b, size_t n)
{
	memmove(b->d, b->d + n, b->len - n);
	b->len -= n;
}

enum pstate { P_HEAD, P_BODY, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER, P_BAD };

struct rconn;
struct rlink {
	struct pvx_link *l;
	int provider; /* cached O_PATH of the provider socket */
	struct pvx_listener *ls;
	struct rconn *conns;
	size_t n_conns;
	uint64_t requests;
};

struct rconn {
	struct rlink *rl;
	struct rconn *prev, *next;
	int fd[2]; /* 0 consumer, 1 provider */
	uv_poll_t poll[2];
	int ev[2];
	int handles;
	struct buf cin;	 /* consumer bytes not parsed yet */
	struct buf pout; /* parsed bytes for the provider */
	struct buf cout; /* provider bytes for the consumer */
	enum pstate st;
	uint64_t remain;
	bool c_eof, p_eof, p_shut, forwarded, answered_bad, closing;
	bool detached; /* link gone: no list to unlink from */
};

/* ---- the request parser ---- */

static bool tchar(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_identity(const char *name, size_t n)
{
	return (n == 11 && !strncasecmp(name, "X-PV-Client", 11)) ||
	       (n == 9 && !strncasecmp(name, "X-PV-Role", 9));
}

/* Splits one header field line [p, e) (no CRLF). Returns false when malformed. */
static bool field_split(const char *p, const char *e, const char **name, size_t *nlen,
			const char **val, size_t *vlen)
{
	const char *c = p;
	while (c < e && tchar((unsigned char)*c))
		c++;
	if (c == p || c == e || *c != ':')
		return false; /* empty name, obs-fold (leading space) or no colon */
	*name = p;
	*nlen = (size_t)(c - p);
	c++;
	while (c < e && (*c == ' ' || *c == '\t'))
		c++;
	const char *ve = e;
	while (ve > c && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	for (const char *q = c; q < ve; q++) {
		unsigned char u = (unsigned char)*q;
		if ((u < 0x20 && u != '\t') || u == 0x7f)
			return false;
	}
	*val = c;
	*vlen = (size_t)(ve - c);
	return true;
}

static bool parse_len(const char *v, size_t n, uint64_t *out)
{
	if (n == 0 || n > 18)
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return true;
}

/* Parses one complete head [d, d+len) ending in CRLFCRLF and emits it, stamped, to out. */
static bool head_emit(struct rconn *c, const char *d, size_t len)
{
	const struct pv_link *s = &c->rl->l->spec;
	const char *end = d + len - 2; /* at the final empty line's CRLF */
	const char *le = memchr(d, '\r', (size_t)(end - d));
	if (!le || le[1] != '\n')
		return false;
	/* request-line = method SP request-target SP HTTP-version */
	const char *p = d;
	while (p < le && tchar((unsigned char)*p))
		p++;
	if (p == d || p >= le || *p != ' ')
		return false;
	const char *t = ++p;
	while (p < le && (unsigned char)*p > 0x20 && (unsigned char)*p != 0x7f)
		p++;
	if (p == t || p >= le || *p != ' ')
		return false;
	p++;
	bool http10;
	if (le - p == 8 && !memcmp(p, "HTTP/1.1", 8))
		http10 = false;
	else if (le - p == 8 && !memcmp(p, "HTTP/1.0", 8))
		http10 = true;
	else
		return false;
	if (buf_add(&c->pout, d, (size_t)(le + 2 - d)) < 0)
		return false;
	bool have_len = false, chunked = false, have_te = false;
	uint64_t clen = 0;
	for (const char *ls = le + 2; ls < end;) {
		const char *e = memchr(ls, '\r', (size_t)(end - ls));
		if (!e || e[1] != '\n')
			return false;
		const char *name, *val;
		size_t nlen, vlen;
		if (!field_split(ls, e, &name, &nlen, &val, &vlen))
			return false;
		if (nlen == 14 && !strncasecmp(name, "Content-Length", 14)) {
			uint64_t v;
			if (!parse_len(val, vlen, &v) || (have_len && v != clen))
				return false;
			have_len = true;
			clen = v;
		} else if (nlen == 17 && !strncasecmp(name, "Transfer-Encoding", 17)) {
			/* only a lone "chunked" is framed unambiguously */
			if (have_te || vlen != 7 || strncasecmp(val, "chunked", 7))
				return false;
			have_te = chunked = true;
		}
		if (!is_identity(name, nlen) && buf_add(&c->pout, ls, (size_t)(e + 2 - ls)) < 0)
			return false;
		ls = e + 2;
	}
	if ((have_te && have_len) || (have_te && http10))
		return false;
	char id[600];
	int n = snprintf(id, sizeof(id), "X-PV-Client: %s\r\nX-PV-Role: %s\r\n\r\n",
			 s->consumer ? s->consumer : "", s->role ? s->role : "any");
	if (n < 0 || (size_t)n >= sizeof(id) || buf_add(&c->pout, id, (size_t)n) < 0)
		return false;
	c->rl->requests++;
	if (chunked)
		c->st = P_CHUNK_SIZE;
	else if (clen) {
		c->st = P_BODY;
		c->remain = clen;
	} else
		c->st = P_HEAD;
	return true;
}

/* Consumes what it can from cin. Returns false on malformed input. */
static bool parse(struct rconn *c)
{
	for (;;) {
		struct buf *in = &c->cin;
		switch (c->st) {
		case P_HEAD: {
			/* RFC 9112 2.2: ignore empty lines before a request-line */
			size_t skip = 0;
			while (skip + 1 < in->len && in->d[skip] == '\r' && in->d[skip + 1] == '\n')
				skip += 2;
			if (skip)
				buf_eat(in, skip);
			if (!in->len)
				return true;
			const char *e = memmem(in->d, in->len, "\r\n\r\n", 4);
			size_t lim = in->len < HEAD_MAX ? in->len : HEAD_MAX;
			/* a bare LF or NUL anywhere in the head is not HTTP */
			size_t scan = e ? (size_t)(e - in->d) + 4 : lim;
			for (size_t i = 0; i < scan; i++)
				if (in->d[i] == '\0' ||
				    (in->d[i] == '\n' && (i == 0 || in->d[i - 1] != '\r')))
					return false;
			if (!e)
				return in->len < HEAD_MAX;
			size_t hl = (size_t)(e - in->d) + 4;
			size_t mark = c->pout.len;
			if (hl > HEAD_MAX || !head_emit(c, in->d, hl)) {
				c->pout.len = mark; /* nothing of a bad head reaches the provider */
				return false;
			}
			buf_eat(in, hl);
			break;
		}
		case P_BODY:
		case P_CHUNK_DATA: {
			if (!in->len)
				return true;
			size_t n = in->len < c->remain ? in->len : (size_t)c->remain;
			if (buf_add(&c->pout, in->d, n) < 0)
				return false;
			buf_eat(in, n);
			c->remain -= n;
			if (!c->remain)
				c->st = c->st == P_BODY ? P_HEAD : P_CHUNK_CRLF;
			break;
		}
		case P_CHUNK_SIZE: {
			const char *e = memmem(in->d, in->len, "\r\n", 2);
			if (!e)
				return in->len < 1024;
			size_t ll = (size_t)(e - in->d);
			uint64_t sz = 0;
			size_t i = 0;
			for (; i < ll && isxdigit((unsigned char)in->d[i]); i++) {
				if (i >= 15)
					return false;
				char h = (char)tolower((unsigned char)in->d[i]);
				sz = sz * 16 + (uint64_t)(h <= '9' ? h - '0' : h - 'a' + 10);
			}
			if (i == 0)
				return false;
			/* chunk-ext: ;name[=value], kept verbatim but no control bytes */
			for (size_t k = i; k < ll; k++)
				if ((unsigned char)in->d[k] < 0x20 && in->d[k] != '\t')
					return false;
			if (i < ll && in->d[i] != ';' && in->d[i] != ' ' && in->d[i] != '\t')
				return false;
			if (buf_add(&c->pout, in->d, ll + 2) < 0)
				return false;
			buf_eat(in, ll + 2);
			c->remain = sz;
			c->st = sz ? P_CHUNK_DATA : P_TRAILER;
			break;
		}
		case P_CHUNK_CRLF:
			if (in->len < 2)
				return true;
			if (in->d[0] != '\r' || in->d[1] != '\n')
				return false;
			if (buf_add(&c->pout, "\r\n", 2) < 0)
				return false;
			buf_eat(in, 2);
			c->st = P_CHUNK_SIZE;
			break;
		case P_TRAILER: {
			const char *e = memmem(in->d, in->len, "\r\n", 2);
			if (!e)
				return in->len < HEAD_MAX;
			size_t ll = (size_t)(e - in->d);
			if (ll == 0) {
				if (buf_add(&c->pout, "\r\n", 2) < 0)
					return false;
				buf_eat(in, 2);
				c->st = P_HEAD;
				break;
			}
			const char *name, *val;
			size_t nlen, vlen;
			if (!field_split(in->d, e, &name, &nlen, &val, &vlen))
				return false;
			if (!is_identity(name, nlen) && buf_add(&c->pout, in->d, ll + 2) < 0)
				return false;
			buf_eat(in, ll + 2);
			break;
		}
		case P_BAD:
			return false;
		}
	}
}

/* ---- the connection ---- */

static void conn_poll_cb(uv_poll_t *h, int status, int events);

static void conn_handle_closed(uv_handle_t *h)
{
	struct rconn *c = h->data;
	if (--c->handles)
		return;
	close(c->fd[0]);
	close(c->fd[1]);
	free(c->cin.d);
	free(c->pout.d);
	free(c->cout.d);
	free(c);
}

static void conn_unlink(struct rconn *c)
{
	if (c->detached)
		return;
	struct rlink *rl = c->rl;
	if (c->prev)
		c->prev->next = c->next;
	else
		rl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	rl->n_conns--;
	c->detached = true;
}

static void conn_close(struct rconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	conn_unlink(c);
	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&c->poll[i], conn_handle_closed);
}

static bool blocked(int e)
{
	return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

/* Writes as much of b as the socket takes. <0 on error. */
static int flush(int fd, struct buf *b)
{
	while (b->len) {
		ssize_t n = send(fd, b->d, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return blocked(errno) ? 0 : -errno;
		buf_eat(b, (size_t)n);
	}
	return 0;
}

/* Reads once into b. 1 got bytes, 0 would block, -1 eof, <-1 error. */
static int fill(int fd, struct buf *b)
{
	char tmp[READ_CHUNK];
	ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
	if (n < 0)
		return blocked(errno) ? 0 : -errno;
	if (n == 0)
		return -1;
	return buf_add(b, tmp, (size_t)n) < 0 ? -ENOMEM : 1;
}

static void go_bad(struct rconn *c)
{
	c->st = P_BAD;
	c->cin.len = 0;
	/* Answer at once when nothing was sent to the provider; otherwise the earlier requests
	 * are delivered, the provider's input ended, and our 400 follows its last response. */
	if (!c->forwarded && !c->pout.len && !c->answered_bad) {
		c->answered_bad = true;
		buf_add(&c->cout, bad_request, sizeof(bad_request) - 1);
		c->p_eof = true;
	}
}

/* rd: bit 0 = the consumer is readable, bit 1 = the provider is. Only signalled sides are
 * read (the poll is level-triggered: what is left is signalled again), so a request/response
 * costs one read and one write per side instead of extra reads that would only say EAGAIN. */
static void conn_run(struct rconn *c, int rd)
{
	for (int pass = 0; pass < 8 && !c->closing; pass++) {
		bool progress = false;
		int rc;
		/* consumer -> parser -> provider */
		if ((rd & 1) && !c->c_eof && c->st != P_BAD && c->pout.len < BUF_LIMIT &&
		    c->cin.len < HEAD_MAX) {
			rc = fill(c->fd[0], &c->cin);
			if (rc == -1)
				c->c_eof = true;
			else if (rc < -1)
				goto fail;
			if (rc != 0)
				progress = true;
			if (rc == 1 && !parse(c))
				go_bad(c);
		}
		if (c->pout.len && !c->p_shut) {
			size_t before = c->pout.len;
			if (flush(c->fd[1], &c->pout) < 0)
				goto fail;
			if (c->pout.len != before) {
				progress = true;
				c->forwarded = true;
			}
		}
		if ((c->c_eof || c->st == P_BAD) && !c->pout.len && !c->p_shut) {
			c->p_shut = true;
			shutdown(c->fd[1], SHUT_WR);
		}
		/* provider -> consumer (verbatim) */
		if ((rd & 2) && !c->p_eof && c->cout.len < BUF_LIMIT) {
			rc = fill(c->fd[1], &c->cout);
			if (rc == -1)
				c->p_eof = true;
			else if (rc < -1)
				goto fail;
			if (rc != 0)
				progress = true;
		}
		if (c->p_eof && c->st == P_BAD && !c->answered_bad) {
			c->answered_bad = true;
			buf_add(&c->cout, bad_request, sizeof(bad_request) - 1);
		}
		if (c->cout.len) {
			size_t before = c->cout.len;
			if (flush(c->fd[0], &c->cout) < 0)
				goto fail;
			progress = progress || c->cout.len != before;
		}
		if (c->p_eof && !c->cout.len) {
			conn_close(c); /* the provider is done and everything was delivered */
			return;
		}
		if (!progress)
			break;
		rd = 0; /* further passes only flush what the reads produced */
	}
	/* poll for what we wait on */
	int want[2] = {0, 0};
	if (!c->c_eof && c->st != P_BAD && c->pout.len < BUF_LIMIT && c->cin.len < HEAD_MAX)
		want[0] |= UV_READABLE;
	if (c->cout.len)
		want[0] |= UV_WRITABLE;
	if (!c->p_eof && c->cout.len < BUF_LIMIT)
		want[1] |= UV_READABLE;
	if (c->pout.len && !c->p_shut)
		want[1] |= UV_WRITABLE;
	for (int i = 0; i < 2; i++)
		if (want[i] != c->ev[i]) {
			c->ev[i] = want[i];
			if (want[i])
				uv_poll_start(&c->poll[i], want[i], conn_poll_cb);
			else
				uv_poll_stop(&c->poll[i]);
		}
	return;
fail:
	conn_close(c);
}

static void conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct rconn *c = h->data;
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	int side = h == &c->poll[0] ? 0 : 1;
	conn_run(c, (events & (UV_READABLE | UV_DISCONNECT)) ? 1 << side : 0);
}

static void rest_accept(void *opaque, int cfd)
{
	struct rlink *rl = opaque;
	const struct pv_link *s = &rl->l->spec;
	int pfd;
	int rc = pvx_plumb_connect_cached(&rl->provider, s->provider_pid, s->socket, &pfd);
	if (rc < 0) {
		pvx_log(PVX_WARN, "link %s/%s: provider %s: %s", s->consumer, s->name, s->socket,
			strerror(-rc));
		close(cfd);
		return;
	}
	struct rconn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		close(pfd);
		return;
	}
	c->rl = rl;
	c->fd[0] = cfd;
	c->fd[1] = pfd;
	for (int i = 0; i < 2; i++) {
		uv_poll_init(rl->l->loop, &c->poll[i], c->fd[i]);
		c->poll[i].data = c;
		c->handles++;
	}
	c->next = rl->conns;
	if (rl->conns)
		rl->conns->prev = c;
	rl->conns = c;
	rl->n_conns++;
	conn_run(c, 3);
}

static int rest_add(struct pvx_link *l, struct pv_error *err)
{
	struct rlink *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return pv_error_set(err, -ENOMEM, "out of memory");
	rl->l = l;
	/* inject only when the provider is there (else the link is pending, retried) */
	int rc = pvx_plumb_open_in_root(l->spec.provider_pid, l->spec.socket, &rl->provider, err);
	if (rc == 0)
		rc = pvx_listener_start(l, rest_accept, rl, &rl->ls, err);
	if (rc < 0) {
		if (rl->provider >= 0)
			close(rl->provider);
		free(rl);
		return rc;
	}
	l->priv = rl;
	return 0;
}

static void rest_remove(struct pvx_link *l)
{
	struct rlink *rl = l->priv;
	if (!rl)
		return;
	pvx_listener_stop(rl->ls);
	while (rl->conns)
		conn_close(rl->conns);
	if (rl->provider >= 0)
		close(rl->provider);
	free(rl);
	l->priv = NULL;
}

static size_t rest_conns(const struct pvx_link *l)
{
	const struct rlink *rl = l->priv;
	return rl ? rl->n_conns : 0;
}

const struct pvx_plugin pvx_rest = {
    .type = "rest",
    .link_add = rest_add,
    .link_remove = rest_remove,
    .link_conns = rest_conns,
};
