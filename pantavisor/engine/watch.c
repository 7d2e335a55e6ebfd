/* watch.c: container exit detection: a pidfd for the container's init, polled on the libuv loop,
 * so an exit is seen the moment it happens (upstream polls kill(pid, 0) every tick). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static void poll_close_cb(uv_handle_t *h)
{
	free(h);
}

void pv_watch_stop(struct pv_ctr *c)
{
	if (c->poll) {
		uv_poll_stop(c->poll);
		uv_close((uv_handle_t *)c->poll, poll_close_cb);
		c->poll = NULL;
	}
	if (c->pidfd >= 0) {
		close(c->pidfd);
		c->pidfd = -1;
	}
}

static void exit_cb(uv_poll_t *p, int status, int events)
{
	struct pv_ctr *c = p->data;
	int pid = c->pid;
	pv_watch_stop(c);
	c->pid = 0;
	uv_timer_stop(&c->timer);
	pv_log(c->stop_requested ? PV_LOG_INFO : PV_LOG_WARN, "container",
	       "%s: init pid %d exited%s", c->spec->name, pid,
	       c->stop_requested ? "" : " (not asked to stop)");
	pv_recovery_on_exit(c);
	pv_graph_update(c->e);
	pv_engine_wake(c->e);
}

int pv_watch_start(struct pv_ctr *c)
{
	int fd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (fd < 0)
		return -errno;
	uv_poll_t *p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	int r = uv_poll_init(c->e->loop, p, fd);
	if (r < 0) {
		free(p);
		close(fd);
		return r;
	}
	p->data = c;
	c->pidfd = fd;
	c->poll = p;
	uv_poll_start(p, UV_READABLE, exit_cb);
	pv_graph_update(c->e);
	return 0;
}
