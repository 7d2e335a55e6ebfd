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
 * Responses are copied back unchanged. Sockets, buffers, backpressure and teardown are the
 * stream core's (stream.c); a request is parsed where it was read and leaves in one write. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugins/plugin.h"
#include "stream.h"

#define HEAD_MAX   (16u * 1024) /* request line + headers, and the trailer section */
#define BUF_LIMIT  (64u * 1024) /* stop reading a side while this much waits to be written */
#define READ_CHUNK (16u * 1024)

static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
				  "Content-Type: text/plain\r\n"
				  "Content-Length: 12\r\n"
				  "Connection: close\r\n"
				  "\r\n"
				  "Bad Request\n";

enum pstate { P_HEAD, P_BODY, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER, P_BAD };

/* The link's own state (the stream link's opaque). */
struct rlink {
	uint64_t requests;
};

/* Per connection (the stream's priv): where the parser is in the consumer's byte stream. */
struct rconn {
	enum pstate st;
	uint64_t remain;
	bool answered_bad;
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
static bool head_emit(struct pvx_stream *st, const char *d, size_t len)
{
	struct rconn *c = st->priv;
	struct rlink *rl = st->sl->opaque;
	struct pvx_buf *pout = &st->side[PVX_PROVIDER].out;
	const struct pv_link *s = &st->sl->l->spec;
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
	if (pvx_buf_add(pout, d, (size_t)(le + 2 - d)) < 0)
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
		if (!is_identity(name, nlen) && pvx_buf_add(pout, ls, (size_t)(e + 2 - ls)) < 0)
			return false;
		ls = e + 2;
	}
	if ((have_te && have_len) || (have_te && http10))
		return false;
	char id[600];
	int n = snprintf(id, sizeof(id), "X-PV-Client: %s\r\nX-PV-Role: %s\r\n\r\n",
			 s->consumer ? s->consumer : "", s->role ? s->role : "any");
	if (n < 0 || (size_t)n >= sizeof(id) || pvx_buf_add(pout, id, (size_t)n) < 0)
		return false;
	rl->requests++;
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
static bool parse(struct pvx_stream *st, struct pvx_buf *in)
{
	struct rconn *c = st->priv;
	struct pvx_buf *pout = &st->side[PVX_PROVIDER].out;
	for (;;) {
		const char *d = pvx_buf_data(in);
		switch (c->st) {
		case P_HEAD: {
			/* RFC 9112 2.2: ignore empty lines before a request-line */
			size_t skip = 0;
			while (skip + 1 < in->len && d[skip] == '\r' && d[skip + 1] == '\n')
				skip += 2;
			if (skip) {
				pvx_buf_eat(in, skip);
				d = pvx_buf_data(in);
			}
			if (!in->len)
				return true;
			const char *e = memmem(d, in->len, "\r\n\r\n", 4);
			size_t lim = in->len < HEAD_MAX ? in->len : HEAD_MAX;
			/* a bare LF or NUL anywhere in the head is not HTTP */
			size_t scan = e ? (size_t)(e - d) + 4 : lim;
			for (size_t i = 0; i < scan; i++)
				if (d[i] == '\0' || (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')))
					return false;
			if (!e)
				return in->len < HEAD_MAX;
			size_t hl = (size_t)(e - d) + 4;
			size_t mark = pout->len;
			if (hl > HEAD_MAX || !head_emit(st, d, hl)) {
				pout->len = mark; /* nothing of a bad head reaches the provider */
				return false;
			}
			pvx_buf_eat(in, hl);
			break;
		}
		case P_BODY:
		case P_CHUNK_DATA: {
			if (!in->len)
				return true;
			size_t n = in->len < c->remain ? in->len : (size_t)c->remain;
			if (pvx_buf_add(pout, d, n) < 0)
				return false;
			pvx_buf_eat(in, n);
			c->remain -= n;
			if (!c->remain)
				c->st = c->st == P_BODY ? P_HEAD : P_CHUNK_CRLF;
			break;
		}
		case P_CHUNK_SIZE: {
			const char *e = memmem(d, in->len, "\r\n", 2);
			if (!e)
				return in->len < 1024;
			size_t ll = (size_t)(e - d);
			uint64_t sz = 0;
			size_t i = 0;
			for (; i < ll && isxdigit((unsigned char)d[i]); i++) {
				if (i >= 15)
					return false;
				char h = (char)tolower((unsigned char)d[i]);
				sz = sz * 16 + (uint64_t)(h <= '9' ? h - '0' : h - 'a' + 10);
			}
			if (i == 0)
				return false;
			/* chunk-ext: ;name[=value], kept verbatim but no control bytes */
			for (size_t k = i; k < ll; k++)
				if ((unsigned char)d[k] < 0x20 && d[k] != '\t')
					return false;
			if (i < ll && d[i] != ';' && d[i] != ' ' && d[i] != '\t')
				return false;
			if (pvx_buf_add(pout, d, ll + 2) < 0)
				return false;
			pvx_buf_eat(in, ll + 2);
			c->remain = sz;
			c->st = sz ? P_CHUNK_DATA : P_TRAILER;
			break;
		}
		case P_CHUNK_CRLF:
			if (in->len < 2)
				return true;
			if (d[0] != '\r' || d[1] != '\n')
				return false;
			if (pvx_buf_add(pout, "\r\n", 2) < 0)
				return false;
			pvx_buf_eat(in, 2);
			c->st = P_CHUNK_SIZE;
			break;
		case P_TRAILER: {
			const char *e = memmem(d, in->len, "\r\n", 2);
			if (!e)
				return in->len < HEAD_MAX;
			size_t ll = (size_t)(e - d);
			if (ll == 0) {
				if (pvx_buf_add(pout, "\r\n", 2) < 0)
					return false;
				pvx_buf_eat(in, 2);
				c->st = P_HEAD;
				break;
			}
			const char *name, *val;
			size_t nlen, vlen;
			if (!field_split(d, e, &name, &nlen, &val, &vlen))
				return false;
			if (!is_identity(name, nlen) && pvx_buf_add(pout, d, ll + 2) < 0)
				return false;
			pvx_buf_eat(in, ll + 2);
			break;
		}
		case P_BAD:
			return false;
		}
	}
}

/* ---- the connection ---- */

static void go_bad(struct pvx_stream *s, struct pvx_buf *in)
{
	struct rconn *c = s->priv;
	c->st = P_BAD;
	pvx_buf_eat(in, in->len);
	pvx_stream_finish(s, PVX_CONSUMER);
	/* Answer at once when nothing was sent to the provider; otherwise the earlier requests
	 * are delivered, the provider's input ended, and our 400 follows its last response. */
	if (!s->side[PVX_PROVIDER].written && !s->side[PVX_PROVIDER].out.len && !c->answered_bad) {
		c->answered_bad = true;
		pvx_buf_add(&s->side[PVX_CONSUMER].out, bad_request, sizeof(bad_request) - 1);
		pvx_stream_finish(s, PVX_PROVIDER);
	}
}

static int from_consumer(struct pvx_stream *s, int from, struct pvx_buf *in)
{
	(void)from;
	if (!parse(s, in))
		go_bad(s, in);
	return 0;
}

static void on_eof(struct pvx_stream *s, int side)
{
	struct rconn *c = s->priv;
	if (side == PVX_PROVIDER && c->st == P_BAD && !c->answered_bad) {
		c->answered_bad = true;
		pvx_buf_add(&s->side[PVX_CONSUMER].out, bad_request, sizeof(bad_request) - 1);
	}
}

/* The consumer's end of input is passed on as a half-close (its last requests are still
 * answered); the provider's end ends the connection once its responses are delivered.
 * Responses go back verbatim. */
static const struct pvx_stream_ops rest_ops = {.process = {from_consumer, NULL},
					       .on_eof = on_eof,
					       .priv_size = sizeof(struct rconn),
					       .limit = BUF_LIMIT,
					       .read_chunk = READ_CHUNK,
					       .eof_closes = {false, true}};

static int rest_add(struct pvx_link *l, struct pv_error *err)
{
	return pvx_stream_link_add(l, l->spec.provider_pid, &rest_ops, sizeof(struct rlink), err);
}

const struct pvx_plugin pvx_rest = {
    .type = "rest",
    .link_add = rest_add,
    .link_remove = pvx_stream_link_remove,
    .link_conns = pvx_stream_link_conns,
};
