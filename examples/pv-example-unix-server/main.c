/* pv-example-unix-server: a line echo server on a Unix socket (the "raw-unix" export), which also
 * answers "FD?" with a pipe end passed by SCM_RIGHTS to show fd passing through xconnect. */
#include "pvex.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/example/raw.sock"
#define MAX_CLIENTS    64
#define LINE_MAX_LEN   4096
/* What a client reads from the passed fd; tests compare it byte for byte. */
#define FD_PAYLOAD "hello through a passed fd from pv-example-unix-server\n"

struct client {
	int fd;
	unsigned id;
	size_t len;
	char buf[LINE_MAX_LEN];
};

static const char usage[] =
    "usage: pv-example-unix-server [-s SOCKET]\n"
    "  -s, --socket PATH  listen here (env PV_EXAMPLE_SOCKET, default " DEFAULT_SOCKET ")\n"
    "Echoes every line; a line \"FD?\" is answered with \"FD\" plus a pipe fd.\n";

/* Send "FD\n" with the read end of a pipe that already holds FD_PAYLOAD. */
static int send_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = "FD\n", .iov_len = 3};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	int p[2], r = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (pvex_write_all(p[1], FD_PAYLOAD, strlen(FD_PAYLOAD)) < 0)
		r = -errno;
	close(p[1]);
	if (r == 0) {
		memset(cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &p[0], sizeof(int));
		if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
			r = -errno;
	}
	close(p[0]);
	return r;
}

/* Handle one complete line; returns 0 or -errno (the client is then dropped). */
static int handle_line(struct client *c, const char *line)
{
	char eb[128];
	int r;

	if (strcmp(line, "FD?") == 0) {
		r = send_fd(c->fd);
		if (r < 0)
			pvex_log("client %u: send fd: %s", c->id, pvex_errstr(-r, eb, sizeof(eb)));
		else
			pvex_log("client %u: sent a pipe fd", c->id);
		return r;
	}
	pvex_log("client %u: echo \"%s\"", c->id, line);
	r = pvex_write_all(c->fd, line, strlen(line));
	if (r == 0)
		r = pvex_write_all(c->fd, "\n", 1);
	return r;
}

/* Read what is available and answer each complete line. Returns 0, or <0 to drop the client. */
static int client_read(struct client *c)
{
	ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	char *start, *nl;
	int r;

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	start = c->buf;
	while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
		*nl = '\0';
		r = handle_line(c, start);
		if (r < 0)
			return r;
		start = nl + 1;
	}
	c->len -= (size_t)(start - c->buf);
	memmove(c->buf, start, c->len);
	/* A line that fills the whole buffer is echoed as it is rather than stalling the client. */
	if (c->len == sizeof(c->buf) - 1) {
		c->buf[c->len] = '\0';
		c->len = 0;
		return handle_line(c, c->buf);
	}
	return 0;
}

static void client_accept(int lfd, struct client *clients, unsigned *next_id)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	char eb[128];
	int fd, i;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EINTR && errno != EAGAIN)
			pvex_log("accept: %s", pvex_errstr(errno, eb, sizeof(eb)));
		return;
	}
	for (i = 0; i < MAX_CLIENTS && clients[i].fd >= 0; i++)
		;
	if (i == MAX_CLIENTS) {
		pvex_log("refusing a client: already %d connected", MAX_CLIENTS);
		close(fd);
		return;
	}
	clients[i].fd = fd;
	clients[i].id = ++*next_id;
	clients[i].len = 0;
	/* The peer's credentials show who xconnect connects as (the proxy, or the consumer). */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		pvex_log("client %u connected (pid %d uid %u gid %u)", clients[i].id, (int)cred.pid,
			 (unsigned)cred.uid, (unsigned)cred.gid);
	else
		pvex_log("client %u connected", clients[i].id);
}

int main(int argc, char **argv)
{
	struct pvex_cli cli = {.usage = usage, PVEX_CLI_SOCKET(DEFAULT_SOCKET)};
	struct client *clients;
	struct pollfd pfd[MAX_CLIENTS + 1];
	const char *path;
	unsigned next_id = 0;
	char eb[128];
	int lfd, i, r;

	pvex_init(argv[0]);
	r = pvex_cli_parse(&cli, argc, argv);
	if (r >= 0)
		return r;
	path = cli.target;
	lfd = pvex_unix_listen(path);
	if (lfd < 0)
		return 1;
	clients = calloc(MAX_CLIENTS, sizeof(*clients));
	if (!clients) {
		pvex_log("out of memory");
		return 1;
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	pvex_log("listening on %s", path);

	while (!pvex_stopping()) {
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < MAX_CLIENTS; i++) {
			pfd[i + 1].fd = clients[i].fd;
			pfd[i + 1].events = POLLIN;
		}
		r = poll(pfd, MAX_CLIENTS + 1, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			pvex_log("poll: %s", pvex_errstr(errno, eb, sizeof(eb)));
			break;
		}
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (clients[i].fd < 0 || !pfd[i + 1].revents)
				continue;
			r = client_read(&clients[i]);
			if (r < 0) {
				if (r == -ECONNRESET)
					pvex_log("client %u disconnected", clients[i].id);
				else
					pvex_log("client %u dropped: %s", clients[i].id,
						 pvex_errstr(-r, eb, sizeof(eb)));
				close(clients[i].fd);
				clients[i].fd = -1;
			}
		}
		if (pfd[0].revents & POLLIN)
			client_accept(lfd, clients, &next_id);
	}

	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
			close(clients[i].fd);
	free(clients);
	close(lfd);
	unlink(path);
	pvex_log("stopped");
	return 0;
}
