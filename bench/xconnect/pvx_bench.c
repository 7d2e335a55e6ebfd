/* pvx_bench.c: the hot loops of bench/xconnect: a sink/echo server and a client measuring bulk
 * throughput, 64-byte round-trip latency and connections per second over a unix socket path. */
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

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "server"))
		return server(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "http-server")) {
		http_mode = 1;
		return server(argv[2]);
	}
	if (argc < 4) {
		fprintf(stderr, "usage: pvx-bench server|http-server PATH | tput PATH MIB | "
				"rtt PATH N | conns PATH SECONDS | reqs PATH SECONDS\n");
		return 2;
	}
	const char *path = argv[2];
	long n = atol(argv[3]);
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
		/* keep-alive GETs, one at a time, for n seconds: requests/s */
		static const char req[] = "GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
		int s = dial(path);
		double t0 = now(), end = t0 + (double)n;
		long count = 0;
		char buf[4096];
		while (now() < end) {
			if (full_write(s, req, sizeof(req) - 1) < 0)
				return 1;
			size_t len = 0;
			while (len < 4 || memcmp(buf + len - 4, "\r\nok", 4)) {
				ssize_t r = read(s, buf + len, sizeof(buf) - len);
				if (r <= 0)
					return 1;
				len += (size_t)r;
			}
			count++;
		}
		printf("%.0f\n", (double)count / (now() - t0));
		return 0;
	}
	if (!strcmp(argv[1], "conns")) {
		double t0 = now(), end = t0 + (double)n;
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
