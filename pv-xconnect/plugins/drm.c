/* plugins/drm.c: the `drm` link type. Injects the provider's DRM device node
 * (card = master, renderD = render) at the consumer's target and grants it in
 * the consumer's device cgroup; a node not there yet is waited for with inotify.
 *
 * Hot-plug: when the provider's node is missing, the deepest existing directory
 * of its path (resolved inside /proc/<pid>/root, so the provider's symlinks stay
 * in its root) is watched on the loop; every creation there re-checks the node
 * (and moves the watch deeper when a directory of the path appeared), so the
 * link completes within one loop turn of the node's mknod instead of at the
 * next backoff retry (up to 10 s later). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "plugins/plugin.h"

/* Linux's DRM character major (include/drm/drm.h DRM_MAJOR); card and render
 * nodes share it. */
#define PVX_DRM_MAJOR 226

struct watch;

struct dlink {
	struct pvx_link *l;
	struct pvx_injected inj;
	struct watch *w; /* waiting for the provider's node (NULL when not) */
};

/* The inotify fd on the loop; freed when its poll handle is closed. */
struct watch {
	uv_poll_t poll;
	int fd;
	int wd;
	struct dlink *d; /* NULL once the link let go of it */
	struct timespec since;
};

/* Refuses anything but a DRM character node before anything is created or
 * granted: a drm export must not become a way to hand a consumer an arbitrary
 * disk or tty. */
static int check_provider_node(const struct pvx_link *l, struct pv_error *err)
{
	int fd = -1;
	int rc = pvx_plumb_open_in_root(l->spec.provider_pid, l->spec.socket, &fd, err);
	if (rc < 0)
		return rc; /* -ENOENT: not plugged yet (pending, retried) */
	struct stat st;
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return pv_error_set(err, rc, "provider `%s` node `%s`: stat: %s", l->spec.provider,
				    l->spec.socket, strerror(-rc));
	if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != PVX_DRM_MAJOR)
		return pv_error_set(err, -ENODEV,
				    "provider `%s` node `%s`: not a DRM character device "
				    "(mode %o, %u:%u)",
				    l->spec.provider, l->spec.socket, (unsigned)st.st_mode,
				    major(st.st_rdev), minor(st.st_rdev));
	return 0;
}

/* mknod in the consumer + cgroup grant: the link's real work once the node is there. */
static int inject(struct dlink *d, struct pv_error *err)
{
	struct pvx_link *l = d->l;
	char tbuf[512];
	int rc = pvx_plumb_mknod(l->spec.provider_pid, l->spec.socket, l->spec.consumer_pid,
				 pvx_link_target(l, tbuf, sizeof(tbuf)), &d->inj, err);
	if (rc < 0)
		/* The node may exist already while the grant failed: a node the consumer
		 * can't open would look like a broken GPU rather than a failed link. */
		pvx_plumb_remove(&d->inj);
	return rc;
}

static void watch_closed(uv_handle_t *h)
{
	struct watch *w = h->data;
	close(w->fd);
	free(w);
}

static void watch_stop(struct dlink *d)
{
	struct watch *w = d->w;
	if (!w)
		return;
	d->w = NULL;
	w->d = NULL;
	uv_close((uv_handle_t *)&w->poll, watch_closed);
}

/* Watches the deepest existing directory of the node's path in the provider's root, then
 * looks for the node again (it may have appeared before the watch was in place).
 * 0: the node is there; -ENOENT: watching; other -errno: cannot watch. */
static int watch_arm(struct dlink *d, struct pv_error *err)
{
	const struct pv_link *s = &d->l->spec;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", s->socket);
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (!slash)
			return -ENOENT;
		if (slash == dir)
			slash[1] = '\0'; /* the root itself */
		else
			*slash = '\0';
		int fd = -1;
		int rc = pvx_plumb_open_in_root(s->provider_pid, dir, &fd, NULL);
		if (rc == -ENOENT || rc == -ENOTDIR) {
			if (slash == dir)
				return rc;
			continue;
		}
		if (rc < 0)
			return rc;
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		if (d->w->wd >= 0)
			inotify_rm_watch(d->w->fd, d->w->wd);
		d->w->wd = inotify_add_watch(d->w->fd, proc,
					     IN_CREATE | IN_MOVED_TO | IN_ONLYDIR | IN_DELETE_SELF |
						 IN_MOVE_SELF);
		rc = d->w->wd < 0 ? -errno : 0;
		close(fd);
		if (rc < 0)
			return rc;
		break;
	}
	pv_error_clear(err);
	return check_provider_node(d->l, err);
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void watch_cb(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct watch *w = h->data;
	struct dlink *d = w->d;
	if (!d)
		return;
	/* the events only say "look again": drain them */
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	while (read(w->fd, buf, sizeof(buf)) > 0)
		;
	struct pvx_link *l = d->l;
	struct pv_error err = PV_ERROR_INIT;
	int rc = status < 0 ? status : watch_arm(d, &err);
	if (rc == -ENOENT) {
		pv_error_clear(&err);
		return; /* not yet: still watching */
	}
	if (rc == 0) {
		double waited = ms_since(&w->since);
		watch_stop(d);
		rc = inject(d, &err);
		if (rc == 0) {
			pvx_log(PVX_INFO, "link %s/%s: node %s appeared after %.0f ms: up",
				l->spec.consumer, l->spec.name, l->spec.socket, waited);
			pvx_link_report(l, PV_LINK_UP, NULL);
			pv_error_clear(&err);
			return;
		}
	}
	/* anything else goes the ordinary way: torn down, retried with backoff */
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", err.count ? pv_error_msg(&err) : strerror(-rc));
	pv_error_clear(&err);
	pvx_link_report(l, rc == -ENOENT || rc == -ESRCH ? PV_LINK_PENDING : PV_LINK_ERROR, msg);
}

/* Starts waiting for the node. -EINPROGRESS: watching (the link is pending until the
 * watch completes it); 0: the node turned up meanwhile; other -errno: no watch possible. */
static int watch_start(struct dlink *d, struct pv_error *err)
{
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		int rc = -errno;
		free(w);
		return rc;
	}
	w->wd = -1;
	w->d = d;
	w->poll.data = w;
	clock_gettime(CLOCK_MONOTONIC, &w->since);
	int rc = uv_poll_init(d->l->loop, &w->poll, w->fd);
	if (rc < 0) {
		close(w->fd);
		free(w);
		return rc;
	}
	d->w = w;
	struct pv_error e2 = PV_ERROR_INIT;
	rc = watch_arm(d, &e2);
	if (rc == -ENOENT) {
		rc = uv_poll_start(&w->poll, UV_READABLE, watch_cb);
		if (rc == 0) {
			/* "node ... not found" stays the link's pending message */
			pv_error_clear(err);
			*err = e2;
			return -EINPROGRESS;
		}
	}
	pv_error_clear(&e2);
	watch_stop(d);
	return rc; /* 0: the node is there now */
}

static int drm_add(struct pvx_link *l, struct pv_error *err)
{
	if (!l->spec.socket || l->spec.socket[0] != '/')
		return pv_error_set(err, -EINVAL, "link %s/%s: export has no device node path",
				    l->spec.consumer, l->spec.name);
	if (pvx_link_direct(l))
		return pv_error_set(err, -EINVAL,
				    "link %s/%s: mode `direct` means nothing for drm (a device "
				    "node is always handed over as is)",
				    l->spec.consumer, l->spec.name);
	struct dlink *d = calloc(1, sizeof(*d));
	if (!d)
		return pv_error_set(err, -ENOMEM, "out of memory");
	d->l = l;
	int rc = check_provider_node(l, err);
	if (rc == -ENOENT) {
		/* not plugged yet: wait for it on the loop */
		rc = watch_start(d, err);
		if (rc == -EINPROGRESS) {
			l->priv = d;
			return rc;
		}
		if (rc == 0) {
			pv_error_clear(err);
		} else {
			/* no watch (or the node changed meanwhile): the ordinary retry looks
			 * again and reports what it finds */
			pvx_log(PVX_WARN, "link %s/%s: cannot watch for node %s: %s",
				l->spec.consumer, l->spec.name, l->spec.socket, strerror(-rc));
			rc = -ENOENT;
		}
	}
	if (rc == 0)
		rc = inject(d, err);
	if (rc < 0) {
		free(d);
		return rc; /* a node gone since the check is still "not plugged yet" */
	}
	l->priv = d;
	return 0;
}

static void drm_remove(struct pvx_link *l)
{
	struct dlink *d = l->priv;
	if (!d)
		return;
	watch_stop(d);
	/* The cgroup grant stays: taking it back could revoke an access the
	 * container's own configuration gave it; without the node the grant opens
	 * nothing. */
	pvx_plumb_remove(&d->inj);
	free(d);
	l->priv = NULL;
}

const struct pvx_plugin pvx_drm = {
    .type = "drm",
    .link_add = drm_add,
    .link_remove = drm_remove,
};
