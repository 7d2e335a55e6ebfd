/* pv-example-drm-render: waits for the render node xconnect injects (drm-render) and asks the
 * driver for its version, logging the result or the exact errno of the failing step. */
#include "pvex.h"
#include "pvex_drm.h"

#define DEFAULT_DEVICE "/dev/dri/renderD128"

static const char usage[] =
    "usage: pv-example-drm-render [-d DEVICE] [-i SECONDS] [-n COUNT] [-w SECONDS]\n"
    "  -d, --device PATH     render node (env PV_EXAMPLE_DRM_DEVICE, default " DEFAULT_DEVICE ")\n"
    "  -i, --interval SECS   between queries (default 10)\n"
    "  -n, --count N         exit after N queries; status 0 only if the last worked\n"
    "  -w, --wait SECS       how long each query waits for the node to be injected\n"
    "                        (default 30; 0: do not wait)\n";

/* The node type tells a render node from a card: the render link must hand out the former. */
static int report(const char *dev, int fd, drmVersionPtr v)
{
	pvex_log("%s: driver %s %d.%d.%d (%s), node type %s", dev, v->name, v->version_major,
		 v->version_minor, v->version_patchlevel, v->desc,
		 drmGetNodeTypeFromFd(fd) == DRM_NODE_RENDER ? "render" : "not render");
	return 0;
}

int main(int argc, char **argv)
{
	return pvex_drm_main(argc, argv, usage, DEFAULT_DEVICE, report);
}
