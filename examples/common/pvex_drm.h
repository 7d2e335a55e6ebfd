/* The part pv-example-drm-master and -render share: wait for the DRM node xconnect injects, say
 * which device it is, open it and ask the driver its version, logging exactly which step failed. */
#ifndef PVEX_DRM_H
#define PVEX_DRM_H

#include <stdbool.h>
#include <sys/types.h>
#include <xf86drm.h>

/* What the last query saw of the node, so its identity is logged when it changes, not every
 * round. Zero-initialise. */
struct pvex_drm_node {
	bool seen;
	dev_t rdev;
};

/* Wait up to wait_ms (< 0: until stopped) for dev, log "node DEV: char MAJ:MIN ..." when it is
 * new or changed, open it read-write and read the driver version. Returns the open fd with
 * *ver set (drmFreeVersion it), or -errno after logging "open DEV: ERR" or
 * "drmGetVersion DEV: ERR". */
int pvex_drm_open(const char *dev, long wait_ms, struct pvex_drm_node *node, drmVersionPtr *ver);

/* What a consumer does with the opened node after drmGetVersion worked: log what it learns and
 * return 0, or the failing call's -errno. It must not close fd or free ver. */
typedef int (*pvex_drm_report_fn)(const char *dev, int fd, drmVersionPtr ver);

/* The whole program of a DRM consumer: the common options (-d DEVICE, -i, -n) plus -w/--wait
 * (default 30 s), then a query every interval: pvex_drm_open, report, close. usage must
 * describe exactly those options. Returns main's exit status. */
int pvex_drm_main(int argc, char **argv, const char *usage, const char *default_device,
		  pvex_drm_report_fn report);

#endif
