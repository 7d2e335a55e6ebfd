/* wlfilter.h: per-connection Wayland global filtering for wayland links (hide_globals).
 *
 * Fed the bytes of each direction as they are read, it hands back the complete messages to
 * forward (an incomplete tail waits for the next read): wl_registry.global events naming a
 * hidden interface are dropped, and so are their global_remove events; a client that binds a
 * hidden global's name anyway (it can guess names) breaks the protocol and is cut off. Registry
 * objects are learnt from wl_display.get_registry and forgotten on wl_display.delete_id.
 * File descriptors are not seen here: they travel beside the bytes (proxy.c). */
#ifndef PVX_WLFILTER_H
#define PVX_WLFILTER_H

#include <stddef.h>

/* The largest message the wire format can state (16-bit size): also the most a feed can add
 * to its input from an earlier incomplete tail. */
#define PVX_WL_MAX_MSG 65535u

struct pvx_wlfilter;

/* hide: interface names, n of them (copied). NULL on ENOMEM. */
struct pvx_wlfilter *pvx_wlfilter_new(const char *const *hide, size_t n);
void pvx_wlfilter_free(struct pvx_wlfilter *f);

/* dir 0: client -> compositor, 1: compositor -> client. Writes the bytes to forward to out,
 * which must hold len + PVX_WL_MAX_MSG; *out_len gets their count. 0, or -EPROTO (malformed
 * message, or a bind of a hidden global: close the connection). */
int pvx_wlfilter_feed(struct pvx_wlfilter *f, int dir, const char *in, size_t len, char *out,
		      size_t *out_len);

/* Globals hidden so far on this connection (tests, logs). */
size_t pvx_wlfilter_hidden(const struct pvx_wlfilter *f);

#endif
