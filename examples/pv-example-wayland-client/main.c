/* pv-example-wayland-client: connects to the compositor xconnect exposes (wayland-0), opens an
 * xdg-shell toplevel and draws frames into memfd shm buffers paced by frame callbacks. */
#include "pvex.h"
#include "xdg-shell-client-protocol.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <wayland-client.h>

#define DEFAULT_DISPLAY "/run/wayland-0"
/* The size used until the compositor asks for another (kiosk-shell asks for the output's). */
#define DEFAULT_WIDTH	 320
#define DEFAULT_HEIGHT	 240
#define MAX_SIDE	 8192
#define FRAME_TIMEOUT_MS 5000

struct buffer {
	struct wl_buffer *wl;
	uint32_t *pixels;
	bool busy; /* attached and not yet released by the compositor */
};

struct app {
	struct wl_display *display;
	struct wl_registry *registry;
	struct wl_compositor *compositor;
	struct wl_shm *shm;
	struct xdg_wm_base *wm_base;
	struct wl_surface *surface;
	struct xdg_surface *xdg_surface;
	struct xdg_toplevel *toplevel;
	struct wl_callback *frame_cb;
	struct wl_callback *sync_cb;
	struct buffer buffers[2];
	void *pool_data;
	size_t pool_size;
	bool synced, configured, closed, frame_done;
	unsigned presented;
	int width, height;	     /* size of the current buffers */
	int want_width, want_height; /* size from the last toplevel configure (0: ours) */
};

static const char usage[] =
    "usage: pv-example-wayland-client [-d DISPLAY] [-f FRAMES] [--once]\n"
    "  -d, --display NAME  socket name or absolute path (env WAYLAND_DISPLAY, "
    "default " DEFAULT_DISPLAY ")\n"
    "  -f, --frames N      frames to present (default 60)\n"
    "      --once          exit after presenting them (default: keep the window)\n";

static void wm_base_ping(void *data, struct xdg_wm_base *wm, uint32_t serial)
{
	(void)data;
	xdg_wm_base_pong(wm, serial);
}

static const struct xdg_wm_base_listener wm_base_listener = {.ping = wm_base_ping};

static void registry_global(void *data, struct wl_registry *reg, uint32_t name, const char *iface,
			    uint32_t version)
{
	struct app *a = data;

	if (strcmp(iface, wl_compositor_interface.name) == 0) {
		a->compositor = wl_registry_bind(reg, name, &wl_compositor_interface,
						 version < 4 ? version : 4);
	} else if (strcmp(iface, wl_shm_interface.name) == 0) {
		a->shm = wl_registry_bind(reg, name, &wl_shm_interface, 1);
	} else if (strcmp(iface, xdg_wm_base_interface.name) == 0) {
		a->wm_base = wl_registry_bind(reg, name, &xdg_wm_base_interface, 1);
		xdg_wm_base_add_listener(a->wm_base, &wm_base_listener, a);
	}
}

static void registry_remove(void *data, struct wl_registry *reg, uint32_t name)
{
	(void)data;
	(void)reg;
	(void)name;
}

static const struct wl_registry_listener registry_listener = {.global = registry_global,
							      .global_remove = registry_remove};

static void xdg_surface_configure(void *data, struct xdg_surface *s, uint32_t serial)
{
	struct app *a = data;

	xdg_surface_ack_configure(s, serial);
	a->configured = true;
}

static const struct xdg_surface_listener xdg_surface_listener = {.configure =
								     xdg_surface_configure};

static void toplevel_configure(void *data, struct xdg_toplevel *t, int32_t w, int32_t h,
			       struct wl_array *states)
{
	struct app *a = data;

	/* Honour the suggested size: a fullscreen shell (kiosk) only shows a matching buffer. */
	(void)t;
	(void)states;
	a->want_width = w > 0 && w <= MAX_SIDE ? w : 0;
	a->want_height = h > 0 && h <= MAX_SIDE ? h : 0;
}

static void toplevel_close(void *data, struct xdg_toplevel *t)
{
	struct app *a = data;

	(void)t;
	a->closed = true;
}

static const struct xdg_toplevel_listener toplevel_listener = {.configure = toplevel_configure,
							       .close = toplevel_close};

static void buffer_release(void *data, struct wl_buffer *wl)
{
	struct buffer *b = data;

	(void)wl;
	b->busy = false;
}

static const struct wl_buffer_listener buffer_listener = {.release = buffer_release};

static void frame_done(void *data, struct wl_callback *cb, uint32_t time_ms)
{
	struct app *a = data;

	(void)time_ms;
	wl_callback_destroy(cb);
	a->frame_cb = NULL;
	a->frame_done = true;
	a->presented++;
}

static const struct wl_callback_listener frame_listener = {.done = frame_done};

static void sync_done(void *data, struct wl_callback *cb, uint32_t serial)
{
	struct app *a = data;

	(void)serial;
	wl_callback_destroy(cb);
	a->sync_cb = NULL;
	a->synced = true;
}

static const struct wl_callback_listener sync_listener = {.done = sync_done};

static void destroy_buffers(struct app *a)
{
	for (int i = 0; i < 2; i++) {
		if (a->buffers[i].wl)
			wl_buffer_destroy(a->buffers[i].wl);
		a->buffers[i].wl = NULL;
		a->buffers[i].busy = false;
	}
	if (a->pool_data)
		munmap(a->pool_data, a->pool_size);
	a->pool_data = NULL;
}

/* Both buffers (w x h, XRGB8888) live in one memfd-backed pool shared with the compositor. */
static int create_buffers(struct app *a, int w, int h)
{
	size_t one = (size_t)w * 4 * (size_t)h;
	struct wl_shm_pool *pool;
	int fd, err;

	fd = memfd_create("pv-example-wayland-client", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)(one * 2)) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	a->pool_data = mmap(NULL, one * 2, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a->pool_data == MAP_FAILED) {
		err = errno;
		a->pool_data = NULL;
		close(fd);
		return -err;
	}
	a->pool_size = one * 2;
	pool = wl_shm_create_pool(a->shm, fd, (int32_t)(one * 2));
	for (int i = 0; i < 2; i++) {
		a->buffers[i].wl = wl_shm_pool_create_buffer(pool, (int32_t)(one * (size_t)i), w, h,
							     w * 4, WL_SHM_FORMAT_XRGB8888);
		a->buffers[i].pixels = (uint32_t *)((char *)a->pool_data + one * (size_t)i);
		a->buffers[i].busy = false;
		wl_buffer_add_listener(a->buffers[i].wl, &buffer_listener, &a->buffers[i]);
	}
	wl_shm_pool_destroy(pool);
	/* The compositor has its own reference to the memory through the pool. */
	close(fd);
	a->width = w;
	a->height = h;
	return 0;
}

/* A moving vertical bar over a gradient, so consecutive frames really differ. */
static void paint(uint32_t *px, int w, int h, unsigned frame)
{
	unsigned bar = (frame * 8) % (unsigned)w;

	for (unsigned y = 0; y < (unsigned)h; y++)
		for (unsigned x = 0; x < (unsigned)w; x++) {
			uint32_t r = x * 255 / (unsigned)w, g = y * 255 / (unsigned)h;
			uint32_t b = (frame * 4) & 0xff;
			px[y * (unsigned)w + x] = (x >= bar && x < bar + 16)
						      ? 0xffffffff
						      : 0xff000000 | r << 16 | g << 8 | b;
		}
}

static int draw_frame(struct app *a)
{
	int w = a->want_width ? a->want_width : DEFAULT_WIDTH;
	int h = a->want_height ? a->want_height : DEFAULT_HEIGHT;
	struct buffer *b;
	int r;

	/* Resize only when the compositor holds neither buffer, so none vanishes under it. */
	if ((w != a->width || h != a->height) && !a->buffers[0].busy && !a->buffers[1].busy) {
		destroy_buffers(a);
		r = create_buffers(a, w, h);
		if (r < 0)
			return r;
		pvex_log("buffers %dx%d", w, h);
	}
	b = !a->buffers[0].busy ? &a->buffers[0] : !a->buffers[1].busy ? &a->buffers[1] : NULL;
	if (!b)
		return -EBUSY; /* both still with the compositor: wait for a release */
	paint(b->pixels, a->width, a->height, a->presented);
	wl_surface_attach(a->surface, b->wl, 0, 0);
	wl_surface_damage_buffer(a->surface, 0, 0, a->width, a->height);
	a->frame_cb = wl_surface_frame(a->surface);
	wl_callback_add_listener(a->frame_cb, &frame_listener, a);
	a->frame_done = false;
	b->busy = true;
	wl_surface_commit(a->surface);
	return 0;
}

/* Dispatch events, waiting at most timeout_ms for new ones. Returns >0 if events were read, 0
 * on timeout, -errno on a broken connection or a stop request (-EINTR). */
static int dispatch_timeout(struct wl_display *d, int timeout_ms)
{
	struct pollfd pfd = {.fd = wl_display_get_fd(d), .events = POLLIN};
	int r;

	while (wl_display_prepare_read(d) != 0)
		if (wl_display_dispatch_pending(d) < 0)
			return -errno;
	if (wl_display_flush(d) < 0 && errno != EAGAIN) {
		r = -errno;
		wl_display_cancel_read(d);
		return r;
	}
	r = poll(&pfd, 1, timeout_ms);
	if (r <= 0) {
		r = r < 0 ? -errno : 0;
		wl_display_cancel_read(d);
		return r;
	}
	if (wl_display_read_events(d) < 0 || wl_display_dispatch_pending(d) < 0)
		return -errno ? -errno : -EPIPE;
	return 1;
}

static void app_destroy(struct app *a)
{
	destroy_buffers(a);
	if (a->frame_cb)
		wl_callback_destroy(a->frame_cb);
	if (a->sync_cb)
		wl_callback_destroy(a->sync_cb);
	if (a->toplevel)
		xdg_toplevel_destroy(a->toplevel);
	if (a->xdg_surface)
		xdg_surface_destroy(a->xdg_surface);
	if (a->surface)
		wl_surface_destroy(a->surface);
	if (a->wm_base)
		xdg_wm_base_destroy(a->wm_base);
	if (a->shm)
		wl_shm_destroy(a->shm);
	if (a->compositor)
		wl_compositor_destroy(a->compositor);
	if (a->registry)
		wl_registry_destroy(a->registry);
	if (a->display)
		wl_display_disconnect(a->display);
	memset(a, 0, sizeof(*a));
}

/* Wait for a condition flag driven by events; returns 0, or -ETIMEDOUT / -errno. */
static int wait_for(struct app *a, const bool *flag, int timeout_ms)
{
	int r;

	while (!*flag) {
		if (pvex_stopping())
			return -EINTR;
		r = dispatch_timeout(a->display, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && r != -EINTR)
			return r;
	}
	return 0;
}

/* One session on a connected display: window, N frames, then idle unless once. */
static int session(struct app *a, unsigned frames, bool once)
{
	char eb[128];
	int r;

	a->registry = wl_display_get_registry(a->display);
	wl_registry_add_listener(a->registry, &registry_listener, a);
	/* A roundtrip with a deadline (wl_display_roundtrip would wait forever on a stuck peer). */
	a->sync_cb = wl_display_sync(a->display);
	wl_callback_add_listener(a->sync_cb, &sync_listener, a);
	r = wait_for(a, &a->synced, FRAME_TIMEOUT_MS);
	if (r < 0) {
		pvex_log("no answer to the registry query: %s", pvex_errstr(-r, eb, sizeof(eb)));
		return r;
	}
	if (!a->compositor || !a->shm || !a->wm_base) {
		pvex_log("compositor lacks %s", !a->compositor ? "wl_compositor"
						: !a->shm      ? "wl_shm"
							       : "xdg_wm_base");
		return -ENOTSUP;
	}
	a->surface = wl_compositor_create_surface(a->compositor);
	a->xdg_surface = xdg_wm_base_get_xdg_surface(a->wm_base, a->surface);
	xdg_surface_add_listener(a->xdg_surface, &xdg_surface_listener, a);
	a->toplevel = xdg_surface_get_toplevel(a->xdg_surface);
	xdg_toplevel_add_listener(a->toplevel, &toplevel_listener, a);
	xdg_toplevel_set_title(a->toplevel, "pv-example-wayland-client");
	xdg_toplevel_set_app_id(a->toplevel, "pv-example-wayland-client");
	wl_surface_commit(a->surface);
	r = wait_for(a, &a->configured, FRAME_TIMEOUT_MS);
	if (r < 0) {
		pvex_log("no configure from the compositor: %s", pvex_errstr(-r, eb, sizeof(eb)));
		return r;
	}
	pvex_log("window configured, drawing %u frames", frames);

	while (a->presented < frames && !a->closed) {
		r = draw_frame(a);
		if (r == 0)
			r = wait_for(a, &a->frame_done, FRAME_TIMEOUT_MS);
		else if (r == -EBUSY)
			r = dispatch_timeout(a->display, FRAME_TIMEOUT_MS) > 0 ? 0 : -ETIMEDOUT;
		if (r < 0) {
			pvex_log("after %u frames: %s", a->presented,
				 pvex_errstr(-r, eb, sizeof(eb)));
			return r;
		}
		if (a->presented == 1)
			pvex_log("first frame presented");
	}
	pvex_log("presented %u frames", a->presented);
	if (once || a->closed)
		return 0;
	/* Keep the window up and answer pings until stopped or the compositor goes away. */
	while (!pvex_stopping() && !a->closed) {
		r = dispatch_timeout(a->display, 1000);
		if (r < 0 && r != -EINTR) {
			pvex_log("compositor connection lost: %s", pvex_errstr(-r, eb, sizeof(eb)));
			return r;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long frames = 60;
	bool once = false, told = false;
	const struct pvex_opt extra[] = {
	    {.name = "frames", .short_name = 'f', .num = &frames, .num_min = 1, .num_max = 1000000},
	    {.name = "once", .flag = &once},
	    {.name = NULL}};
	struct pvex_cli cli = {.usage = usage,
			       .target_short = 'd',
			       .target_long = "display",
			       .target_env = "WAYLAND_DISPLAY",
			       .target_default = DEFAULT_DISPLAY,
			       .extra = extra};
	const char *display;
	struct app a;
	int r;

	pvex_init(argv[0]);
	r = pvex_cli_parse(&cli, argc, argv);
	if (r >= 0)
		return r;
	display = cli.target;
	r = 0;

	memset(&a, 0, sizeof(a));
	while (!pvex_stopping()) {
		/* An absolute WAYLAND_DISPLAY is used as the socket path by libwayland itself. */
		a.display = wl_display_connect(display);
		if (!a.display) {
			if (!told)
				pvex_log("waiting for the compositor at %s", display);
			told = true;
			pvex_sleep_ms(500);
			continue;
		}
		told = false;
		pvex_log("connected to %s", display);
		r = session(&a, (unsigned)frames, once);
		app_destroy(&a);
		if (once || r == 0 || r == -EINTR)
			break;
		pvex_sleep_ms(1000);
	}
	/* Without --once only a stop request (or the window being closed) ends the loop, and
	 * that is a clean exit even if the compositor went away just before. */
	if (!once)
		return 0;
	return r == 0 ? 0 : 1;
}
