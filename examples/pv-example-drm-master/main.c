/* pv-example-drm-master: opens the card node xconnect injected (drm-master) and runs a KMS query
 * (drmGetVersion, drmModeGetResources), logging the result or exactly which call failed how. */
#include "pvex.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#define DEFAULT_DEVICE "/dev/dri/card0"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pv-example-drm-master [-d DEVICE] [-i SECONDS] [-n COUNT]\n"
	    "  -d, --device PATH     card node (env PV_EXAMPLE_DRM_DEVICE, default " DEFAULT_DEVICE
	    ")\n"
	    "  -i, --interval SECS   between queries (default 10)\n"
	    "  -n, --count N         exit after N queries; status 0 only if the last worked\n");
}

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

/* One full query; returns 0 when every step worked, else the failing step's -errno. */
static int query(const char *dev)
{
	drmVersionPtr v;
	drmModeResPtr res;
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
	pvex_log("%s: driver %s %d.%d.%d (%s), master: %s", dev, v->name, v->version_major,
		 v->version_minor, v->version_patchlevel, v->desc, drmIsMaster(fd) ? "yes" : "no");
	drmFreeVersion(v);
	res = drmModeGetResources(fd);
	if (!res) {
		err = errno ? errno : EOPNOTSUPP;
		pvex_log("drmModeGetResources %s: %s", dev, pvex_errstr(err, eb, sizeof(eb)));
		close(fd);
		return -err;
	}
	pvex_log("KMS: %d crtc(s), %d connector(s), %d encoder(s), %d fb(s), size %ux%u..%ux%u",
		 res->count_crtcs, res->count_connectors, res->count_encoders, res->count_fbs,
		 res->min_width, res->min_height, res->max_width, res->max_height);
	log_connectors(fd, res);
	drmModeFreeResources(res);
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

	/* Keep querying: the node may be injected after start, and the log shows each attempt. */
	while (!pvex_stopping() && (count == 0 || rounds < count)) {
		r = query(dev);
		rounds++;
		if (count == 0 || rounds < count)
			pvex_sleep_ms(interval_ms);
	}
	pvex_log("stopped after %lu queries, last %s", rounds, r == 0 ? "worked" : "failed");
	return r == 0 ? 0 : 1;
}
