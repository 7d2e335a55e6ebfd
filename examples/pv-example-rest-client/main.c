/* pv-example-rest-client: GETs the "network-manager" REST service over the socket xconnect
 * injects, on one HTTP/1.1 keep-alive connection, and logs each JSON body it gets back. */
#include "pvex.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_SOCKET	 "/run/pv/services/network-manager.sock"
#define REPLY_TIMEOUT_MS 5000

/* One connection and the bytes received on it but not consumed yet. */
struct conn {
	int fd;
	bool one_shot;	   /* --close: a new connection per request (Connection: close) */
	unsigned long seq; /* request number, in the path */
	size_t len;
	char buf[16384];
};

struct response {
	int status;
	bool close; /* the server will close after this response */
	char body[8192];
};

static const char usage[] =
    "usage: pv-example-rest-client [-s SOCKET] [-i SECONDS] [-n COUNT] [--close]\n"
    "  -s, --socket PATH     connect here (env PV_EXAMPLE_SOCKET, default " DEFAULT_SOCKET ")\n"
    "  -i, --interval SECS   between requests (default 2; \"250ms\" works too)\n"
    "  -n, --count N         exit 0 after N responses (default: run forever)\n"
    "      --close           one connection per request instead of keep-alive\n";

/* Read more bytes into c->buf, waiting at most REPLY_TIMEOUT_MS. Returns bytes read or -errno. */
static int fill(struct conn *c)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	ssize_t n;
	int r;

	if (c->len == sizeof(c->buf) - 1)
		return -EMSGSIZE;
	r = poll(&pfd, 1, REPLY_TIMEOUT_MS);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	return (int)n;
}

/* Value of header name in the header block hdrs (lines ending \r\n), copied into out. */
static bool header(const char *hdrs, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = hdrs;

	while ((p = strstr(p, "\r\n"))) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *e;
			while (*v == ' ' || *v == '\t')
				v++;
			e = strstr(v, "\r\n");
			snprintf(out, len, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
			return true;
		}
	}
	return false;
}

/* Read one response (status line, headers, Content-Length body). Returns 0 or -errno. */
static int read_response(struct conn *c, struct response *res)
{
	char val[64], *end;
	size_t hlen, blen;
	int r;

	while (!(end = strstr(c->buf, "\r\n\r\n")))
		if ((r = fill(c)) < 0)
			return r;
	hlen = (size_t)(end - c->buf) + 4;
	end[2] = '\0'; /* the header block now ends with its last \r\n */
	if (sscanf(c->buf, "HTTP/%*d.%*d %d", &res->status) != 1)
		return -EPROTO;
	res->close =
	    header(c->buf, "Connection", val, sizeof(val)) && strcasecmp(val, "close") == 0;
	if (header(c->buf, "Transfer-Encoding", val, sizeof(val)))
		return -EPROTONOSUPPORT; /* a test client: the example server never chunks */
	if (!header(c->buf, "Content-Length", val, sizeof(val)) || !isdigit((unsigned char)val[0]))
		return -EPROTO;
	blen = strtoul(val, NULL, 10);
	if (blen >= sizeof(res->body) || hlen + blen >= sizeof(c->buf))
		return -EMSGSIZE;
	while (c->len < hlen + blen)
		if ((r = fill(c)) < 0)
			return r;
	memcpy(res->body, c->buf + hlen, blen);
	res->body[blen] = '\0';
	c->len -= hlen + blen;
	memmove(c->buf, c->buf + hlen + blen, c->len);
	c->buf[c->len] = '\0';
	return 0;
}

/* One GET and its response; the connection is finished when either side asked to close. */
static int exchange(int fd, bool fresh, void *ctx)
{
	struct conn *c = ctx;
	struct response res;
	char req[256];
	int r;

	if (fresh) {
		c->fd = fd;
		c->len = 0;
		c->buf[0] = '\0';
	}
	snprintf(req, sizeof(req),
		 "GET /ping/%lu HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
		 "%s\r\n",
		 ++c->seq, c->one_shot ? "Connection: close\r\n" : "");
	r = pvex_write_all(c->fd, req, strlen(req));
	if (r == 0)
		r = read_response(c, &res);
	if (r < 0)
		return r;
	pvex_log("response %d: %s", res.status, res.body);
	if (c->one_shot)
		return 1;
	if (res.close) {
		pvex_log("server closes the connection");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* The buffers are too big to sit on a container init's stack comfortably. */
	struct conn *c = calloc(1, sizeof(*c));
	bool one_shot = false;
	const struct pvex_opt extra[] = {{.name = "close", .flag = &one_shot}, {.name = NULL}};
	struct pvex_cli cli = {.usage = usage,
			       PVEX_CLI_SOCKET(DEFAULT_SOCKET),
			       .rounds = true,
			       .extra = extra,
			       .interval_ms = 2000};
	int r;

	pvex_init(argv[0]);
	if (!c) {
		pvex_log("out of memory");
		return 1;
	}
	r = pvex_cli_parse(&cli, argc, argv);
	if (r < 0) {
		c->fd = -1;
		c->one_shot = one_shot;
		r = pvex_client_loop(&cli, exchange, c, "responses");
	}
	free(c);
	return r;
}
