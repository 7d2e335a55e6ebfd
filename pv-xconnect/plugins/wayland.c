/* plugins/wayland.c: the `wayland` link type. A mediated socket at the
 * consumer's target (WAYLAND_DISPLAY-style name); each client connection is
 * proxied to the compositor by proxy.c, which moves SCM_RIGHTS fds (shm pools,
 * dmabufs, keymaps) with the bytes that carried them. A link with
 * hide_globals reads every message through wlfilter.c: the consumer never sees
 * those globals and is cut off if it binds one anyway. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugins/plugin.h"
#include "wlfilter.h"

struct wconn {
	struct pvx_proxy *proxy;
	struct pvx_wlfilter *filter; /* NULL without hide_globals */
	struct wconn *prev, *next;
	struct wlink *w;
};

struct wlink {
	struct pvx_link *l;
	struct pvx_listener *ls;
	int provider; /* O_PATH of the compositor's socket, re-resolved when it
			 restarted */
	struct wconn *conns;
	size_t n_conns;
};

static void conn_unlink(struct wconn *c)
{
	struct wlink *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
}

static void conn_closed(struct pvx_proxy *p, void *opaque)
{
	(void)p;
	struct wconn *c = opaque;
	if (c->filter && pvx_wlfilter_hidden(c->filter))
		pvx_log(PVX_DEBUG, "link %s/%s: a client closed; %zu globals were hidden from it",
			c->w->l->spec.consumer, c->w->l->spec.name, pvx_wlfilter_hidden(c->filter));
	conn_unlink(c);
	pvx_wlfilter_free(c->filter);
	free(c);
}

static int filter_cb(void *opaque, int dir, const char *in, size_t len, char *out, size_t *out_len)
{
	struct wconn *c = opaque;
	int r = pvx_wlfilter_feed(c->filter, dir, in, len, out, out_len);
	if (r < 0)
		pvx_log(PVX_WARN, "link %s/%s: client cut off: %s", c->w->l->spec.consumer,
			c->w->l->spec.name,
			r == -EPROTO ? "malformed message or a bind of a hidden global"
				     : strerror(-r));
	return r;
}

/* The link's hide_globals ("a,b") as a filter; NULL (no filter) when it has none. */
static int make_filter(const struct wlink *w, struct pvx_wlfilter **out)
{
	*out = NULL;
	const char *s = w->l->spec.hide_globals;
	if (!s || !*s)
		return 0;
	char buf[64 * 130], *names[64], *save = NULL;
	size_t n = 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save))
		names[n++] = t;
	*out = pvx_wlfilter_new((const char *const *)names, n);
	return *out ? 0 : -ENOMEM;
}

static void on_accept(void *opaque, int cfd)
{
	struct wlink *w = opaque;
	int pfd;
	int rc = pvx_plumb_connect_cached(&w->provider, w->l->spec.provider_pid, w->l->spec.socket,
					  false, &pfd);
	if (rc < 0) {
		/* The client sees its display go away (wl_display_connect fails or the
		 * first roundtrip gets EOF); the link stays: the compositor may be
		 * restarting. */
		pvx_log(PVX_WARN, "link %s/%s: compositor socket %s: %s", w->l->spec.consumer,
			w->l->spec.name, w->l->spec.socket, strerror(-rc));
		close(cfd);
		return;
	}
	struct wconn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		close(pfd);
		return;
	}
	c->w = w;
	if (make_filter(w, &c->filter) < 0) {
		close(cfd);
		close(pfd);
		free(c);
		return;
	}
	if (pvx_proxy_start(w->l->loop, cfd, pfd, conn_closed, c, &c->proxy) < 0) {
		pvx_wlfilter_free(c->filter);
		free(c);
		return;
	}
	if (c->filter)
		pvx_proxy_set_filter(c->proxy, filter_cb, c, PVX_WL_MAX_MSG);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->n_conns++;
}

static int wayland_add(struct pvx_link *l, struct pv_error *err)
{
	if (!l->spec.socket || l->spec.socket[0] != '/')
		return pv_error_set(err, -EINVAL, "link %s/%s: export has no socket path",
				    l->spec.consumer, l->spec.name);
	if (pvx_link_direct(l))
		/* Not supported: the compositor would see the client's pid (fine) but
		 * teardown could not cut live clients off, and the spec asks for mediation
		 * here. */
		return pv_error_set(err, -EINVAL,
				    "link %s/%s: wayland links are mediated only (mode `direct` "
				    "not supported)",
				    l->spec.consumer, l->spec.name);
	struct wlink *w = calloc(1, sizeof(*w));
	if (!w)
		return pv_error_set(err, -ENOMEM, "out of memory");
	w->l = l;
	w->provider = -1;
	/* Inject only once the compositor's socket exists: a display that refuses
	 * every client would look like a crashed compositor rather than a pending
	 * link. */
	int rc = pvx_plumb_open_in_root(l->spec.provider_pid, l->spec.socket, &w->provider, err);
	if (rc == 0)
		rc = pvx_listener_start(l, on_accept, w, &w->ls, err);
	if (rc < 0) {
		if (w->provider >= 0)
			close(w->provider);
		free(w);
		return rc;
	}
	l->priv = w;
	return 0;
}

static void wayland_remove(struct pvx_link *l)
{
	struct wlink *w = l->priv;
	if (!w)
		return;
	pvx_listener_stop(w->ls);
	/* Clients of a removed link lose their display now, not at their next
	 * connect. */
	while (w->conns) {
		struct wconn *c = w->conns;
		conn_unlink(c);
		pvx_proxy_close(c->proxy);
		pvx_wlfilter_free(c->filter);
		free(c);
	}
	if (w->provider >= 0)
		close(w->provider);
	free(w);
	l->priv = NULL;
}

static size_t wayland_conns(const struct pvx_link *l)
{
	const struct wlink *w = l->priv;
	return w ? w->n_conns : 0;
}

const struct pvx_plugin pvx_wayland = {
    .type = "wayland",
    .link_add = wayland_add,
    .link_remove = wayland_remove,
    .link_conns = wayland_conns,
};
