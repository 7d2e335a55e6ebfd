/* plugins/unix.c: the `unix` link type. Mediated (default): a socket injected at the consumer's
 * target, each connection proxied to the provider by proxy.c. Direct: the provider's own
 * listening socket bind-mounted at the target, so the consumer talks to the provider itself. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugins/plugin.h"

struct uconn {
	struct pvx_proxy *proxy;
	struct uconn *prev, *next;
	struct ulink *u;
};

struct ulink {
	struct pvx_link *l;
	struct pvx_listener *ls; /* mediated */
	struct pvx_injected inj; /* direct */
	int provider;		 /* O_PATH of the provider socket, reopened when stale */
	struct uconn *conns;
	size_t n_conns;
	uint64_t refused;
};

static void conn_unlink(struct uconn *c)
{
	struct ulink *u = c->u;
	if (c->prev)
		c->prev->next = c->next;
	else
		u->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	u->n_conns--;
}

static void conn_closed(struct pvx_proxy *p, void *opaque)
{
	struct uconn *c = opaque;
	conn_unlink(c);
	free(c);
}

static void on_accept(void *opaque, int cfd)
{
	struct ulink *u = opaque;
	int pfd;
	int rc = pvx_plumb_connect_cached(&u->provider, u->l->spec.provider_pid, u->l->spec.socket,
					  pvx_link_passes_credentials(u->l), &pfd);
	if (rc < 0) {
		/* Closing the consumer's connection is its signal; the link stays up because
		 * the provider may just be restarting (the graph will say so). */
		u->refused++;
		pvx_log(PVX_WARN, "link %s/%s: provider %s: %s", u->l->spec.consumer,
			u->l->spec.name, u->l->spec.socket, strerror(-rc));
		close(cfd);
		return;
	}
	struct uconn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		close(pfd);
		return;
	}
	c->u = u;
	rc = pvx_proxy_start(u->l->loop, cfd, pfd, conn_closed, c, &c->proxy);
	if (rc < 0) {
		free(c);
		return;
	}
	c->next = u->conns;
	if (u->conns)
		u->conns->prev = c;
	u->conns = c;
	u->n_conns++;
}

static int unix_add(struct pvx_link *l, struct pv_error *err)
{
	struct ulink *u = calloc(1, sizeof(*u));
	if (!u)
		return pv_error_set(err, -ENOMEM, "out of memory");
	u->l = l;
	u->provider = -1;
	int rc;
	if (pvx_link_direct(l)) {
		char tbuf[512];
		rc = pvx_plumb_bind_socket(l->spec.provider_pid, l->spec.socket,
					   l->spec.consumer_pid,
					   pvx_link_target(l, tbuf, sizeof(tbuf)), &u->inj, err);
	} else {
		/* Only inject once the provider is reachable: a socket that refuses every
		 * connection would look like a broken service rather than a pending one. */
		rc =
		    pvx_plumb_open_in_root(l->spec.provider_pid, l->spec.socket, &u->provider, err);
		if (rc == 0)
			rc = pvx_listener_start(l, on_accept, u, &u->ls, err);
	}
	if (rc < 0) {
		if (u->provider >= 0)
			close(u->provider);
		free(u);
		return rc;
	}
	l->priv = u;
	return 0;
}

static void unix_remove(struct pvx_link *l)
{
	struct ulink *u = l->priv;
	if (!u)
		return;
	pvx_listener_stop(u->ls);
	pvx_plumb_remove(&u->inj);
	/* Live connections end with the link: a removed service must stop being reachable. */
	while (u->conns) {
		struct uconn *c = u->conns;
		conn_unlink(c);
		pvx_proxy_close(c->proxy);
		free(c);
	}
	if (u->provider >= 0)
		close(u->provider);
	free(u);
	l->priv = NULL;
}

static size_t unix_conns(const struct pvx_link *l)
{
	const struct ulink *u = l->priv;
	return u ? u->n_conns : 0;
}

const struct pvx_plugin pvx_unix = {
    .type = "unix",
    .link_add = unix_add,
    .link_remove = unix_remove,
    .link_conns = unix_conns,
};
