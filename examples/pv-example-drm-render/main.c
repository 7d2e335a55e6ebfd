/* pv-example-drm-render: opens the render node xconnect injected (drm-render) and asks the
 * driver for its version, logging the result or the exact errno of the failing call. */
#include "pvex.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xf86drm.h>

#define DEFAULT_DEVICE "/dev/dri/renderD128"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pv-example-drm-render [-d DEVICE] [-i SECONDS] [-n COUNT]\n"
		"  -d, --device PATH     render node (env PV_EXAMPLE_DRM_DEVICE, "
		"default " DEFAULT_DEVICE ")\n"
		"  -i, --interval SECS   between queries (default 10)\n"
		"  -n, --count N         exit after N queries; status 0 only if the last worked\n");
}

/* Open the node and read the driver version; returns 0 or the failing step's -errno. */
static int query(const char *dev)
{
	drmVersionPtr v;
	char eb[128];
	int fd, err;

	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		pvex_log("open %s: %s", dev, pvex_errstr(err, eb, sizeof(eb)));
		return -err;
	}
	v = drmGetVersion(fd);
	if (!v) {
		err = errno;
		pvex_log("drmGetVersion %s: %s", dev, pvex_errstr(err, eb, sizeof(eb)));
		close(fd);
		return -err;
	}
	pvex_log("%s: driver %s %d.%d.%d (%s), node type %s", dev, v->name, v->version_major,
		 v->version_minor, v->version_patchlevel, v->desc,
		 drmGetNodeTypeFromFd(fd) == DRM_NODE_RENDER ? "render" : "not render");
	drmFreeVersion(v);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"device", required_argument, NULL, 'd'},
					     {"interval", required_argument, NULL, 'i'},
					     {"count", required_argument, NULL, 'n'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *dev_arg = NULL, *dev;
	unsigned long count = 0, rounds = 0;
	long interval_ms = 10000;
	int o, r = 0;

	pvex_init(argv[0]);
	while ((o = getopt_long(argc, argv, "d:i:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			dev_arg = optarg;
			break;
		case 'i':
			if (pvex_parse_ms(optarg, &interval_ms) < 0) {
				fprintf(stderr, "bad --interval '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (pvex_parse_uint(optarg, &count) < 0) {
				fprintf(stderr, "bad --count '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	dev = pvex_pick(dev_arg, "PV_EXAMPLE_DRM_DEVICE", DEFAULT_DEVICE);

	while (!pvex_stopping() && (count == 0 || rounds < count)) {
		r = query(dev);
		rounds++;
		if (count == 0 || rounds < count)
			pvex_sleep_ms(interval_ms);
	}
	pvex_log("stopped after %lu queries, last %s", rounds, r == 0 ? "worked" : "failed");
	return r == 0 ? 0 : 1;
}
