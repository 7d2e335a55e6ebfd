/* plugins/plugin.h: the one shape every pv-xconnect plugin has (unix, rest, dbus, drm, wayland)
 * and the table of plugins compiled in. The core looks a plugin up by the link's type only. */
#ifndef PVX_PLUGIN_H
#define PVX_PLUGIN_H

#include "xconnect.h"

struct pvx_plugin {
	const char *type; /* the provider export's type this plugin serves */
	/* Makes the link real: inject into the consumer, start serving. Sets l->priv.
	 * Return 0 when up; -ENOENT/-ECONNREFUSED/-ESRCH when a side is not there yet (link
	 * "pending", retried); any other -errno = "error" (also retried, slower). The message in
	 * err names what failed (path, pid). May be called again after link_remove. */
	int (*link_add)(struct pvx_link *l, struct pv_error *err);
	/* Undoes link_add completely: removes what was injected, closes live connections,
	 * frees l->priv. Called for links that left the graph, changed, or before a retry. */
	void (*link_remove)(struct pvx_link *l);
	/* Optional: number of live proxied connections (tests, status). */
	size_t (*link_conns)(const struct pvx_link *l);
};

/* NULL-terminated table of the plugins compiled in (see CMake options PV_XCONNECT_<TYPE>). */
extern const struct pvx_plugin *const pvx_plugins[];
const struct pvx_plugin *pvx_plugin_find(const char *type);

#ifdef PVX_HAVE_UNIX
extern const struct pvx_plugin pvx_unix;
#endif
#ifdef PVX_HAVE_REST
extern const struct pvx_plugin pvx_rest;
#endif
#ifdef PVX_HAVE_DBUS
extern const struct pvx_plugin pvx_dbus;
#endif
#ifdef PVX_HAVE_DRM
extern const struct pvx_plugin pvx_drm;
#endif
#ifdef PVX_HAVE_WAYLAND
extern const struct pvx_plugin pvx_wayland;
#endif

#endif
