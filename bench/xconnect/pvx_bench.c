/* pvx_bench.c: the hot loops of bench/xconnect: a sink/echo server and a client measuring bulk
 * throughput, 64-byte round-trip latency, connections per second, HTTP keep-alive requests and
 * D-Bus method-call round trips over a unix socket path. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define CHUNK (256 * 1024)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int full_write(int fd, const void *b, size_t n)
{
	const char *p = b;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int full_read(int fd, void *b, size_t n)
{
	char *p = b;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int dial(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror(path);
		exit(1);
	}
	return s;
}

/* First byte chooses: 'T' sink (read to EOF, answer 1 byte), 'R' echo. */
static void serve(int c)
{
	char *buf = malloc(CHUNK);
	if (!buf)
		return;
	char mode;
	if (full_read(c, &mode, 1) < 0)
		return;
	if (mode == 'T') {
		while (read(c, buf, CHUNK) > 0)
			;
		full_write(c, "k", 1);
	} else {
		ssize_t n;
		while ((n = read(c, buf, CHUNK)) > 0)
			if (full_write(c, buf, (size_t)n) < 0)
				break;
	}
	free(buf);
}

/* Minimal HTTP/1.1 keep-alive responder: one fixed response per request head (no bodies). */
static const char http_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void serve_http(int c)
{
	char buf[16384];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(c, buf + len, sizeof(buf) - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		char *e;
		while ((e = memmem(buf, len, "\r\n\r\n", 4))) {
			size_t hl = (size_t)(e - buf) + 4;
			if (full_write(c, http_ok, sizeof(http_ok) - 1) < 0)
				return;
			memmove(buf, buf + hl, len - hl);
			len -= hl;
		}
		if (len == sizeof(buf))
			return;
	}
}

static int http_mode;

static void *serve_thread(void *arg)
{
	int c = (int)(intptr_t)arg;
	if (http_mode)
		serve_http(c);
	else
		serve(c);
	close(c);
	return NULL;
}

static int server(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1024) < 0) {
		perror(path);
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, &attr, serve_thread, (void *)(intptr_t)c) != 0)
			close(c);
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- D-Bus: a raw little-endian client (no libdbus in the loop, so the bench measures the
 * path, not a client library): SASL EXTERNAL, Hello, then sequential GetId calls to the bus. */

static size_t dbus_pad(char *b, size_t n, size_t to)
{
	while (n % to)
		b[n++] = 0;
	return n;
}

static size_t dbus_field(char *b, size_t n, int code, char type, const char *val)
{
	n = dbus_pad(b, n, 8);
	b[n++] = (char)code;
	b[n++] = 1;
	b[n++] = type;
	b[n++] = 0;
	uint32_t len = (uint32_t)strlen(val);
	memcpy(b + n, &len, 4); /* little endian host (x86, arm): 'l' messages */
	n += 4;
	memcpy(b + n, val, len + 1);
	return n + len + 1;
}

/* A body-less method call to the bus itself. */
static size_t dbus_call(char *b, uint32_t serial, const char *member)
{
	size_t n = dbus_field(b, 16, 1, 'o', "/org/freedesktop/DBus");
	n = dbus_field(b, n, 2, 's', "org.freedesktop.DBus");
	n = dbus_field(b, n, 3, 's', member);
	n = dbus_field(b, n, 6, 's', "org.freedesktop.DBus");
	uint32_t flen = (uint32_t)(n - 16), blen = 0;
	b[0] = 'l';
	b[1] = 1; /* METHOD_CALL */
	b[2] = 0;
	b[3] = 1;
	memcpy(b + 4, &blen, 4);
	memcpy(b + 8, &serial, 4);
	memcpy(b + 12, &flen, 4);
	return dbus_pad(b, n, 8);
}

struct rbuf {
	int fd;
	char b[65536];
	size_t len;
};

static int rbuf_fill(struct rbuf *r)
{
	if (r->len == sizeof(r->b))
		return -1;
	ssize_t n = read(r->fd, r->b + r->len, sizeof(r->b) - r->len);
	if (n <= 0)
		return -1;
	r->len += (size_t)n;
	return 0;
}

static void rbuf_eat(struct rbuf *r, size_t n)
{
	memmove(r->b, r->b + n, r->len - n);
	r->len -= n;
}

/* Reads messages until the reply (or error) to serial; 0 on a METHOD_RETURN, -1 otherwise. */
static int dbus_reply(struct rbuf *r, uint32_t serial)
{
	for (;;) {
		while (r->len < 16)
			if (rbuf_fill(r) < 0)
				return -1;
		uint32_t blen, alen;
		memcpy(&blen, r->b + 4, 4);
		memcpy(&alen, r->b + 12, 4);
		size_t hend = 16 + alen + ((8 - alen % 8) % 8), total = hend + blen;
		if (total > sizeof(r->b))
			return -1;
		while (r->len < total)
			if (rbuf_fill(r) < 0)
				return -1;
		int type = r->b[1];
		uint32_t rs = 0;
		for (size_t p = 16; p + 4 <= 16 + alen;) {
			int code = r->b[p], t = r->b[p + 2];
			p += 4;
			uint32_t v;
			if (t == 's' || t == 'o') {
				memcpy(&v, r->b + p, 4);
				p += 4 + v + 1;
			} else if (t == 'g') {
				p += (size_t)(unsigned char)r->b[p] + 2;
			} else {
				memcpy(&v, r->b + p, 4);
				if (code == 5)
					rs = v;
				p += 4;
			}
			p += (8 - p % 8) % 8;
		}
		rbuf_eat(r, total);
		if ((type == 2 || type == 3) && rs == serial)
			return type == 2 ? 0 : -1;
	}
}

static int dbus_bench(const char *path, double seconds)
{
	static struct rbuf r;
	r.fd = dial(path);
	char msg[512], auth[64];
	snprintf(auth, sizeof(auth), "AUTH EXTERNAL %02x\r\n", '0'); /* claims root; a link
								   masquerades anyway */
	if (full_write(r.fd, "", 1) < 0 || full_write(r.fd, auth, strlen(auth)) < 0)
		return 1;
	while (!memmem(r.b, r.len, "\r\n", 2))
		if (rbuf_fill(&r) < 0)
			return 1;
	if (memcmp(r.b, "OK ", 3)) {
		fprintf(stderr, "dbus auth: %.*s\n", (int)r.len, r.b);
		return 1;
	}
	r.len = 0;
	size_t n = dbus_call(msg, 1, "Hello");
	if (full_write(r.fd, "BEGIN\r\n", 7) < 0 || full_write(r.fd, msg, n) < 0 ||
	    dbus_reply(&r, 1) < 0) {
		fprintf(stderr, "dbus Hello failed\n");
		return 1;
	}
	size_t cap = 1 << 20, count = 0;
	double *lat = malloc(cap * sizeof(*lat));
	if (!lat)
		return 1;
	double t0 = now(), end = t0 + seconds;
	for (uint32_t serial = 2; now() < end && count < cap; serial++) {
		double t = now();
		n = dbus_call(msg, serial, "GetId");
		if (full_write(r.fd, msg, n) < 0 || dbus_reply(&r, serial) < 0) {
			fprintf(stderr, "dbus GetId %u failed\n", serial);
			return 1;
		}
		lat[count++] = (now() - t) * 1e6;
	}
	double dt = now() - t0;
	qsort(lat, count, sizeof(*lat), cmp);
	printf("%.0f %.1f\n", (double)count / dt, lat[count / 2]); /* calls/s, p50 us */
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "server"))
		return server(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "relay"))
		return pvx_bench_relay(argv[2], argv[3]);
	if (argc >= 3 && !strcmp(argv[1], "http-server")) {
		http_mode = 1;
		return server(argv[2]);
	}
	if (argc < 4) {
		fprintf(stderr, "usage: pvx-bench server|http-server PATH | relay PATH TARGET | "
				"tput PATH MIB | "
				"rtt PATH N | conns PATH SECONDS | reqs PATH SECONDS | "
				"dbus PATH SECONDS\n");
		return 2;
	}
	const char *path = argv[2];
	long n = atol(argv[3]);
	double secs = atof(argv[3]); /* conns, reqs, dbus: fractions allowed */
	if (!strcmp(argv[1], "dbus"))
		return dbus_bench(path, secs);
	if (!strcmp(argv[1], "tput")) {
		static char buf[CHUNK];
		memset(buf, 'x', sizeof(buf));
		int s = dial(path);
		double t0 = now();
		full_write(s, "T", 1);
		long total = n << 20;
		for (long sent = 0; sent < total; sent += CHUNK)
			if (full_write(s, buf, CHUNK) < 0)
				return 1;
		shutdown(s, SHUT_WR);
		char k;
		if (full_read(s, &k, 1) < 0)
			return 1;
		double dt = now() - t0;
		printf("%.1f\n", (double)total / dt / (1 << 20)); /* MiB/s */
		return 0;
	}
	if (!strcmp(argv[1], "rtt")) {
		char msg[64] = {0}, back[64];
		int s = dial(path);
		full_write(s, "R", 1);
		double *v = calloc((size_t)n, sizeof(*v));
		for (long i = -1000; i < n; i++) { /* 1000 warm-up round trips */
			double t0 = now();
			if (full_write(s, msg, sizeof(msg)) < 0 ||
			    full_read(s, back, sizeof(back)) < 0)
				return 1;
			if (i >= 0)
				v[i] = (now() - t0) * 1e6;
		}
		qsort(v, (size_t)n, sizeof(*v), cmp);
		printf("%.2f\n", v[n / 2]); /* median microseconds */
		return 0;
	}
	if (!strcmp(argv[1], "reqs")) {
		/* keep-alive GETs, one at a time, for secs seconds: requests/s and p50 latency */
		static const char req[] = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
		int s = dial(path);
		double t0 = now(), end = t0 + secs;
		size_t count = 0, cap = 1 << 21;
		double *lat = malloc(cap * sizeof(*lat));
		char buf[4096];
		if (!lat)
			return 1;
		while (now() < end && count < cap) {
			double t = now();
			if (full_write(s, req, sizeof(req) - 1) < 0)
				return 1;
			size_t len = 0;
			while (len < 4 || memcmp(buf + len - 4, "\r\nok", 4)) {
				ssize_t r = read(s, buf + len, sizeof(buf) - len);
				if (r <= 0)
					return 1;
				len += (size_t)r;
			}
			lat[count++] = (now() - t) * 1e6;
		}
		double dt = now() - t0;
		qsort(lat, count, sizeof(*lat), cmp);
		printf("%.0f %.1f\n", (double)count / dt, lat[count / 2]); /* req/s, p50 us */
		free(lat);
		return 0;
	}
	if (!strcmp(argv[1], "conns")) {
		double t0 = now(), end = t0 + secs;
		long count = 0;
		while (now() < end) {
			int s = dial(path);
			char c = 'R', b;
			if (full_write(s, &c, 1) < 0 || full_write(s, "p", 1) < 0 ||
			    full_read(s, &b, 1) < 0)
				return 1;
			close(s);
			count++;
		}
		printf("%.0f\n", (double)count / (now() - t0));
		return 0;
	}
	return 2;
}
