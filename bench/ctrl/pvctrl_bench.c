/* bench/ctrl/pvctrl_bench.c: pvctrl-bench, an HTTP/1.1 keep-alive load generator over a Unix
 * socket (libuv, one request in flight per connection) and a static MHD server as the baseline.
 *
 *   pvctrl-bench load <sock> <path> <clients> <seconds> [warmup_s]
 *       → one JSON line: {"requests","errors","seconds","rps","p50_us","p99_us","max_us"}
 *   pvctrl-bench serve <sock> <body_bytes> [threads]
 *       → MHD with pv-ctrl's options answering a static JSON body (the ceiling of the HTTP
 *         layer alone on this machine); runs until SIGTERM.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <uv.h>

#define MAX_SAMPLES (8u * 1024u * 1024u)

struct client {
	uv_pipe_t pipe;
	uv_write_t wr;
	struct bench *b;
	char buf[65536];
	size_t have;
	uint64_t sent_ns;
	int connected;
};

struct bench {
	uv_loop_t *loop;
	const char *sock;
	char req[512];
	size_t req_len;
	int clients;
	uint64_t start_ns, measure_ns, end_ns;
	uint64_t requests, errors;
	uint32_t *lat_us;
	size_t n_lat;
	int stopping;
	struct client *cl;
};

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
	struct client *c = h->data;
	(void)sz;
	*buf = uv_buf_init(c->buf + c->have, (unsigned)(sizeof(c->buf) - c->have));
}

static void send_req(struct client *c);

static void on_close(uv_handle_t *h)
{
	(void)h;
}

static void fail(struct client *c, const char *why)
{
	struct bench *b = c->b;
	b->errors++;
	if (b->errors < 5)
		fprintf(stderr, "pvctrl-bench: connection: %s\n", why);
	if (!uv_is_closing((uv_handle_t *)&c->pipe))
		uv_close((uv_handle_t *)&c->pipe, on_close);
}

/* A complete response in c->buf? Returns its length, 0 when more bytes are needed, -1 bad. */
static long complete(struct client *c, int *status)
{
	c->buf[c->have < sizeof(c->buf) ? c->have : sizeof(c->buf) - 1] = '\0';
	char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
	if (!end)
		return c->have >= sizeof(c->buf) - 1 ? -1 : 0;
	size_t head = (size_t)(end - c->buf) + 4;
	if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1)
		return -1;
	size_t len = 0;
	for (char *p = c->buf; p < end; p++) {
		if ((*p == '\n') && !strncasecmp(p + 1, "Content-Length:", 15)) {
			len = strtoul(p + 16, NULL, 10);
			break;
		}
	}
	if (head + len > sizeof(c->buf) - 1)
		return -1;
	return c->have >= head + len ? (long)(head + len) : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct client *c = s->data;
	struct bench *b = c->b;
	(void)buf;
	if (n < 0) {
		fail(c, uv_strerror((int)n));
		return;
	}
	c->have += (size_t)n;
	int status = 0;
	long len = complete(c, &status);
	if (len < 0) {
		fail(c, "response not understood");
		return;
	}
	if (len == 0)
		return;
	uint64_t t = now_ns();
	if (status != 200)
		b->errors++;
	if (c->sent_ns >= b->measure_ns && t <= b->end_ns) {
		b->requests++;
		if (b->n_lat < MAX_SAMPLES)
			b->lat_us[b->n_lat++] = (uint32_t)((t - c->sent_ns) / 1000);
	}
	memmove(c->buf, c->buf + len, c->have - (size_t)len);
	c->have -= (size_t)len;
	if (t >= b->end_ns) {
		uv_close((uv_handle_t *)&c->pipe, on_close);
		return;
	}
	send_req(c);
}

static void on_write(uv_write_t *w, int st)
{
	struct client *c = w->data;
	if (st < 0)
		fail(c, uv_strerror(st));
}

static void send_req(struct client *c)
{
	uv_buf_t bf = uv_buf_init(c->b->req, (unsigned)c->b->req_len);
	c->sent_ns = now_ns();
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &bf, 1, on_write) < 0)
		fail(c, "write");
}

static void on_connect(uv_connect_t *cr, int st)
{
	struct client *c = cr->data;
	free(cr);
	if (st < 0) {
		fail(c, uv_strerror(st));
		return;
	}
	c->connected = 1;
	uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	send_req(c);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int do_load(const char *sock, const char *path, int clients, double secs, double warm)
{
	struct bench b = {0};
	b.loop = uv_default_loop();
	b.sock = sock;
	b.clients = clients;
	b.req_len =
	    (size_t)snprintf(b.req, sizeof(b.req),
			     "GET %s HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n", path);
	b.lat_us = malloc(sizeof(uint32_t) * MAX_SAMPLES);
	b.cl = calloc((size_t)clients, sizeof(*b.cl));
	if (!b.lat_us || !b.cl)
		return 1;
	b.start_ns = now_ns();
	b.measure_ns = b.start_ns + (uint64_t)(warm * 1e9);
	b.end_ns = b.measure_ns + (uint64_t)(secs * 1e9);
	for (int i = 0; i < clients; i++) {
		struct client *c = &b.cl[i];
		c->b = &b;
		uv_pipe_init(b.loop, &c->pipe, 0);
		c->pipe.data = c;
		uv_connect_t *cr = malloc(sizeof(*cr));
		cr->data = c;
		uv_pipe_connect(cr, &c->pipe, sock, on_connect);
	}
	uv_run(b.loop, UV_RUN_DEFAULT);
	double real = (double)(b.end_ns - b.measure_ns) / 1e9;
	qsort(b.lat_us, b.n_lat, sizeof(uint32_t), cmp_u32);
	uint32_t p50 = b.n_lat ? b.lat_us[b.n_lat / 2] : 0;
	uint32_t p99 = b.n_lat ? b.lat_us[(size_t)((double)b.n_lat * 0.99)] : 0;
	uint32_t mx = b.n_lat ? b.lat_us[b.n_lat - 1] : 0;
	printf("{\"requests\":%llu,\"errors\":%llu,\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%u,"
	       "\"p99_us\":%u,\"max_us\":%u}\n",
	       (unsigned long long)b.requests, (unsigned long long)b.errors, real,
	       (double)b.requests / real, p50, p99, mx);
	free(b.lat_us);
	free(b.cl);
	uv_loop_close(b.loop);
	return b.requests ? 0 : 1;
}

/* ---- the baseline: MHD answering a fixed body, nothing behind it ---- */
static char *static_body;
static size_t static_len;

static enum MHD_Result serve_cb(void *cls, struct MHD_Connection *conn, const char *url,
				const char *method, const char *version, const char *upload_data,
				size_t *upload_data_size, void **con_cls)
{
	(void)cls, (void)url, (void)method, (void)version, (void)upload_data;
	/* answered on the second call, as pv-ctrl does: a response queued on the first one
	 * makes MHD close the connection (it cannot know the request had no body) */
	if (!*con_cls) {
		*con_cls = (void *)1;
		return MHD_YES;
	}
	*upload_data_size = 0;
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(static_len, static_body, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static int do_serve(const char *path, size_t body, unsigned threads)
{
	static_body = malloc(body + 1);
	if (!static_body)
		return 1;
	memset(static_body, ' ', body);
	static_body[0] = '[';
	static_body[body - 1] = ']';
	static_len = body;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
		perror(path);
		return 1;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, serve_cb, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, threads,
	    MHD_OPTION_CONNECTION_LIMIT, 512u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
	if (!d)
		return 1;
	int sig;
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	unlink(path);
	free(static_body);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "load"))
		return do_load(argv[2], argv[3], atoi(argv[4]), atof(argv[5]),
			       argc > 6 ? atof(argv[6]) : 0.5);
	if (argc >= 4 && !strcmp(argv[1], "serve"))
		return do_serve(argv[2], strtoul(argv[3], NULL, 10),
				argc > 4 ? (unsigned)atoi(argv[4]) : 4u);
	fprintf(stderr, "usage: pvctrl-bench load <sock> <path> <clients> <seconds> [warmup]\n"
			"       pvctrl-bench serve <sock> <body_bytes> [threads]\n");
	return 2;
}
