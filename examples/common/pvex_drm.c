/* Shared by the DRM consumer examples (see pvex_drm.h): waiting for the injected node and the
 * open + drmGetVersion steps, each failure logged with its errno name. */
#include "pvex_drm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pvex.h"

int pvex_drm_open(const char *dev, long wait_ms, struct pvex_drm_node *node, drmVersionPtr *ver)
{
	struct stat st;
	long waited;
	char eb[128];
	int fd, err, r;

	r = pvex_wait_path(dev, wait_ms, &st, &waited);
	if (r == -EINTR)
		return r;
	if (r < 0) {
		if (r == -ETIMEDOUT)
			pvex_log("%s still missing after %ld ms", dev, waited);
		node->seen = false;
		/* The open below then reports the errno a program without waiting would see. */
	} else if (!node->seen || node->rdev != st.st_rdev) {
		/* The node's numbers are the proof it is the provider's device: xconnect mknods
		 * the provider's major:minor at our target. */
		if (waited > 0)
			pvex_log("node %s: %s %u:%u mode %04o, appeared after %ld ms", dev,
				 S_ISCHR(st.st_mode) ? "char" : "not a char device",
				 major(st.st_rdev), minor(st.st_rdev),
				 (unsigned)(st.st_mode & 07777), waited);
		else
			pvex_log("node %s: %s %u:%u mode %04o", dev,
				 S_ISCHR(st.st_mode) ? "char" : "not a char device",
				 major(st.st_rdev), minor(st.st_rdev),
				 (unsigned)(st.st_mode & 07777));
		node->seen = true;
		node->rdev = st.st_rdev;
	}
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		pvex_log("open %s: %s", dev, pvex_errstr(err, eb, sizeof(eb)));
		return -err;
	}
	*ver = drmGetVersion(fd);
	if (!*ver) {
		err = errno ? errno : EIO;
		pvex_log("drmGetVersion %s: %s", dev, pvex_errstr(err, eb, sizeof(eb)));
		close(fd);
		return -err;
	}
	return fd;
}

struct query {
	const char *dev;
	long wait_ms;
	struct pvex_drm_node node;
	pvex_drm_report_fn report;
};

static int query(void *ctx)
{
	struct query *q = ctx;
	drmVersionPtr v;
	int fd, r;

	fd = pvex_drm_open(q->dev, q->wait_ms, &q->node, &v);
	if (fd < 0)
		return fd;
	r = q->report(q->dev, fd, v);
	drmFreeVersion(v);
	close(fd);
	return r;
}

int pvex_drm_main(int argc, char **argv, const char *usage, const char *default_device,
		  pvex_drm_report_fn report)
{
	struct query q = {.wait_ms = 30000, .report = report};
	const struct pvex_opt extra[] = {{.name = "wait", .short_name = 'w', .ms = &q.wait_ms},
					 {.name = NULL}};
	struct pvex_cli cli = {.usage = usage,
			       .target_short = 'd',
			       .target_long = "device",
			       .target_env = "PV_EXAMPLE_DRM_DEVICE",
			       .target_default = default_device,
			       .rounds = true,
			       .extra = extra,
			       .interval_ms = 10000};
	int r;

	pvex_init(argv[0]);
	r = pvex_cli_parse(&cli, argc, argv);
	if (r >= 0)
		return r;
	q.dev = cli.target;
	/* Keep querying: the node may come and go with its provider, and the log shows each try. */
	return pvex_rounds(&cli, query, &q, "queries");
}
