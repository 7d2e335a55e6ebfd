/* pv-example-drm-master: waits for the card node xconnect injects (drm-master) and runs a KMS
 * query (drmGetVersion, drmModeGetResources), logging the result or which call failed how. */
#include "pvex.h"
#include "pvex_drm.h"

#include <errno.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#define DEFAULT_DEVICE "/dev/dri/card0"

static const char usage[] =
    "usage: pv-example-drm-master [-d DEVICE] [-i SECONDS] [-n COUNT] [-w SECONDS]\n"
    "  -d, --device PATH     card node (env PV_EXAMPLE_DRM_DEVICE, default " DEFAULT_DEVICE ")\n"
    "  -i, --interval SECS   between queries (default 10)\n"
    "  -n, --count N         exit after N queries; status 0 only if the last worked\n"
    "  -w, --wait SECS       how long each query waits for the node to be injected\n"
    "                        (default 30; 0: do not wait)\n";

static void log_connectors(int fd, const drmModeRes *res)
{
	for (int i = 0; i < res->count_connectors; i++) {
		drmModeConnector *c = drmModeGetConnector(fd, res->connectors[i]);
		if (!c)
			continue;
		pvex_log("connector %u: %s-%u %s, %d mode(s)", c->connector_id,
			 drmModeGetConnectorTypeName(c->connector_type)
			     ? drmModeGetConnectorTypeName(c->connector_type)
			     : "unknown",
			 c->connector_type_id,
			 c->connection == DRM_MODE_CONNECTED ? "connected" : "not connected",
			 c->count_modes);
		drmModeFreeConnector(c);
	}
}

/* The KMS query on the opened card; returns 0 or drmModeGetResources' -errno. */
static int report(const char *dev, int fd, drmVersionPtr v)
{
	drmModeResPtr res;
	char eb[128];
	int err;

	pvex_log("%s: driver %s %d.%d.%d (%s), master: %s", dev, v->name, v->version_major,
		 v->version_minor, v->version_patchlevel, v->desc, drmIsMaster(fd) ? "yes" : "no");
	res = drmModeGetResources(fd);
	if (!res) {
		err = errno ? errno : EOPNOTSUPP;
		pvex_log("drmModeGetResources %s: %s", dev, pvex_errstr(err, eb, sizeof(eb)));
		return -err;
	}
	pvex_log("KMS: %d crtc(s), %d connector(s), %d encoder(s), %d fb(s), size %ux%u..%ux%u",
		 res->count_crtcs, res->count_connectors, res->count_encoders, res->count_fbs,
		 res->min_width, res->min_height, res->max_width, res->max_height);
	log_connectors(fd, res);
	drmModeFreeResources(res);
	return 0;
}

int main(int argc, char **argv)
{
	return pvex_drm_main(argc, argv, usage, DEFAULT_DEVICE, report);
}
