/* relay.c: the floor baseline of bench/xconnect: the least a sleeping user-space proxy can do
 * per hop (epoll_wait, recv, send: no libuv, no fds, no splice, no policy), so the mediated
 * link's ratios can be read against what any proxy costs on this machine. Not a product:
 * blocking sends, no backpressure, connections never reaped beyond EOF. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "relay.h"

#define RELAY_BUF (256 * 1024)
#define MAX_FD	  4096

static char ended[MAX_FD]; /* this fd has sent EOF */

static int unix_socket(const char *path, int listen_it)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (listen_it) {
		unlink(path);
		if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 128) < 0)
			goto fail;
	} else if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		goto fail;
	}
	return s;
fail:
	perror(path);
	close(s);
	return -1;
}

/* epoll data: the fd in the low 32 bits, its peer in the high 32 */
static void watch(int ep, int fd, int peer)
{
	struct epoll_event ev = {.events = EPOLLIN,
				 .data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)peer << 32};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int send_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int pvx_bench_relay(const char *listen_path, const char *target)
{
	char *buf = malloc(RELAY_BUF);
	int l = unix_socket(listen_path, 1), ep = epoll_create1(EPOLL_CLOEXEC);
	if (!buf || l < 0 || ep < 0)
		return 1;
	watch(ep, l, -1);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = (int)(uint32_t)evs[i].data.u64,
			    peer = (int)(evs[i].data.u64 >> 32);
			if (fd == l) {
				int c = accept4(l, NULL, NULL, SOCK_CLOEXEC), t = -1;
				if (c >= 0 && (t = unix_socket(target, 0)) >= 0) {
					watch(ep, c, t);
					watch(ep, t, c);
				} else if (c >= 0) {
					close(c);
				}
				continue;
			}
			ssize_t r = recv(fd, buf, RELAY_BUF, MSG_DONTWAIT);
			if (r > 0 && send_all(peer, buf, (size_t)r) == 0)
				continue;
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue; /* spurious wake-up */
			/* EOF: pass the half-close on; the pair goes when both sides ended */
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			shutdown(peer, SHUT_WR);
			if (fd < MAX_FD && peer < MAX_FD && !ended[peer]) {
				ended[fd] = 1;
				continue;
			}
			if (peer < MAX_FD)
				ended[peer] = 0;
			close(fd);
			close(peer);
		}
	}
}
