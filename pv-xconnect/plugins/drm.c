/* plugins/drm.c: the `drm` link type. Injects the provider's DRM device node
 * (card = master, renderD = render) at the consumer's target and grants it in
 * the consumer's device cgroup. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "plugins/plugin.h"

/* Linux's DRM character major (include/drm/drm.h DRM_MAJOR); card and render
 * nodes share it. */
#define PVX_DRM_MAJOR 226

struct dlink {
	struct pvx_injected inj;
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
	int rc = check_provider_node(l, err);
	if (rc < 0)
		return rc;
	struct dlink *d = calloc(1, sizeof(*d));
	if (!d)
		return pv_error_set(err, -ENOMEM, "out of memory");
	char tbuf[512];
	rc = pvx_plumb_mknod(l->spec.provider_pid, l->spec.socket, l->spec.consumer_pid,
			     pvx_link_target(l, tbuf, sizeof(tbuf)), &d->inj, err);
	if (rc < 0) {
		/* The node may exist already while the grant failed: a node the consumer
		 * can't open would look like a broken GPU rather than a failed link. */
		pvx_plumb_remove(&d->inj);
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
