/* listener.c: the listening socket injected at a link's target (shared by the mediating
 * plugins): its owner and mode, inject through plumbing, accept on the loop, remove on stop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xconnect.h"

/* Accepts per wake-up before yielding to other handles (fairness under a connect flood). */
#define ACCEPT_BATCH 64

struct pvx_listener {
	uv_poll_t poll;
	int fd;
	struct pvx_injected inj;
	pvx_accept_cb cb;
	void *opaque;
};

static void closed_cb(uv_handle_t *h)
{
	struct pvx_listener *ls = h->data;
	close(ls->fd);
	free(ls);
}

static void accept_cb(uv_poll_t *h, int status, int events)
{
	struct pvx_listener *ls = h->data;
	if (status < 0)
		return;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int c = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				pvx_log(PVX_WARN, "accept on %s: %s", ls->inj.path,
					strerror(errno));
			return;
		}
		ls->cb(ls->opaque, c);
	}
}

/* The link's declared owner ("UID" or "UID:GID", inside the consumer) and socket_mode (octal),
 * both validated when the graph was parsed; default the consumer's root and 0660: the
 * container's root (and a group it gives access to) may connect, not every user in it. */
static void link_owner(const struct pvx_link *l, struct pvx_owner *own)
{
	own->uid = 0;
	own->gid = 0;
	own->mode = 0660;
	own->passcred = pvx_link_passes_credentials(l);
	if (l->spec.owner) {
		unsigned long u = 0, g = 0;
		char *e;
		u = strtoul(l->spec.owner, &e, 10);
		if (*e == ':')
			g = strtoul(e + 1, NULL, 10);
		own->uid = (uid_t)u;
		own->gid = (gid_t)g;
	}
	if (l->spec.socket_mode)
		own->mode = (mode_t)strtoul(l->spec.socket_mode, NULL, 8) & 0777;
}

int pvx_listener_start(struct pvx_link *l, pvx_accept_cb cb, void *opaque,
		       struct pvx_listener **out, struct pv_error *err)
{
	char tbuf[512];
	const char *target = pvx_link_target(l, tbuf, sizeof(tbuf));
	struct pvx_listener *ls = calloc(1, sizeof(*ls));
	if (!ls)
		return pv_error_set(err, -ENOMEM, "out of memory");
	struct pvx_owner own;
	link_owner(l, &own);
	int rc = pvx_plumb_listen(l->spec.consumer_pid, target, &own, &ls->fd, &ls->inj, err);
	if (rc < 0) {
		free(ls);
		return rc;
	}
	ls->cb = cb;
	ls->opaque = opaque;
	ls->poll.data = ls;
	rc = uv_poll_init(l->loop, &ls->poll, ls->fd);
	if (rc == 0)
		rc = uv_poll_start(&ls->poll, UV_READABLE, accept_cb);
	if (rc < 0) {
		pvx_plumb_remove(&ls->inj);
		close(ls->fd);
		free(ls);
		return pv_error_set(err, rc, "poll %s: %s", target, uv_strerror(rc));
	}
	*out = ls;
	return 0;
}

void pvx_listener_stop(struct pvx_listener *ls)
{
	if (!ls)
		return;
	pvx_plumb_remove(&ls->inj);
	uv_close((uv_handle_t *)&ls->poll, closed_cb);
}
