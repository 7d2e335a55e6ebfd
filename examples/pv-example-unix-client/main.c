/* pv-example-unix-client: talks to the "raw-unix" service through the socket xconnect injects,
 * sending "ping N" every interval and logging each echo (and, with --ask-fd, a passed fd). */
#include "pvex.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_SOCKET	 "/run/pv/services/raw-unix.sock"
#define REPLY_TIMEOUT_MS 5000

struct conn {
	int fd;
	int passed_fd; /* an fd that arrived with the bytes, or -1 */
	bool want_fd;  /* --ask-fd */
	unsigned long seq;
	size_t len;
	char buf[4096];
};

static const char usage[] =
    "usage: pv-example-unix-client [-s SOCKET] [-i SECONDS] [-n COUNT] [--ask-fd]\n"
    "  -s, --socket PATH     connect here (env PV_EXAMPLE_SOCKET, default " DEFAULT_SOCKET ")\n"
    "  -i, --interval SECS   between pings (default 2; \"250ms\" works too)\n"
    "  -n, --count N         exit 0 after N echoes (default: run forever)\n"
    "      --ask-fd          after connecting, ask the server for a passed fd\n";

/* Receive until a full line is buffered; keeps any SCM_RIGHTS fd that came along. Returns the
 * line length (line NUL-terminated in out) or -errno; -ETIMEDOUT if no answer in time. */
static int read_line(struct conn *c, char *out, size_t outlen)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	char *nl;
	int r;

	while (!(nl = memchr(c->buf, '\n', c->len))) {
		struct iovec iov = {.iov_base = c->buf + c->len,
				    .iov_len = sizeof(c->buf) - c->len};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
		struct cmsghdr *cm;
		ssize_t n;

		if (c->len == sizeof(c->buf))
			return -EMSGSIZE;
		r = poll(&pfd, 1, REPLY_TIMEOUT_MS);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			int nfd = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)), i, fd;
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			for (i = 0; i < nfd; i++) {
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (c->passed_fd < 0)
					c->passed_fd = fd;
				else
					close(fd);
			}
		}
		c->len += (size_t)n;
	}
	*nl = '\0';
	snprintf(out, outlen, "%s", c->buf);
	r = (int)strlen(out);
	c->len -= (size_t)(nl + 1 - c->buf);
	memmove(c->buf, nl + 1, c->len);
	return r;
}

/* Ask for an fd and log what reading it gives; a proxy that only copies bytes loses the fd,
 * which is worth seeing, so that is logged too (and is not fatal). */
static int ask_fd(struct conn *c)
{
	char line[4096], data[256], eb[128];
	ssize_t n;
	int r;

	r = pvex_write_all(c->fd, "FD?\n", 4);
	if (r < 0)
		return r;
	r = read_line(c, line, sizeof(line));
	if (r < 0)
		return r;
	if (c->passed_fd < 0) {
		pvex_log("fd: none received (reply \"%s\")", line);
		return 0;
	}
	n = read(c->passed_fd, data, sizeof(data) - 1);
	if (n < 0) {
		pvex_log("fd: read: %s", pvex_errstr(errno, eb, sizeof(eb)));
	} else {
		data[n] = '\0';
		data[strcspn(data, "\n")] = '\0';
		pvex_log("fd: received \"%s\"", data);
	}
	close(c->passed_fd);
	c->passed_fd = -1;
	return 0;
}

/* One ping and its echo (after the fd question on a new connection, if asked for). */
static int exchange(int fd, bool fresh, void *ctx)
{
	struct conn *c = ctx;
	char line[4096], msg[64];
	int r = 0;

	if (fresh) {
		c->fd = fd;
		c->len = 0;
		if (c->want_fd)
			r = ask_fd(c);
	}
	if (r == 0) {
		snprintf(msg, sizeof(msg), "ping %lu\n", ++c->seq);
		r = pvex_write_all(c->fd, msg, strlen(msg));
	}
	if (r == 0)
		r = read_line(c, line, sizeof(line));
	if (r < 0)
		return r;
	pvex_log("echo: %s", line);
	return 0;
}

int main(int argc, char **argv)
{
	struct conn c = {.fd = -1, .passed_fd = -1};
	const struct pvex_opt extra[] = {{.name = "ask-fd", .flag = &c.want_fd}, {.name = NULL}};
	struct pvex_cli cli = {.usage = usage,
			       PVEX_CLI_SOCKET(DEFAULT_SOCKET),
			       .rounds = true,
			       .extra = extra,
			       .interval_ms = 2000};
	int r;

	pvex_init(argv[0]);
	r = pvex_cli_parse(&cli, argc, argv);
	if (r >= 0)
		return r;
	r = pvex_client_loop(&cli, exchange, &c, "echoes");
	if (c.passed_fd >= 0)
		close(c.passed_fd);
	return r;
}
