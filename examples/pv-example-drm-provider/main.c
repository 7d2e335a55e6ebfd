/* pv-example-drm-provider: the container that owns the DRM nodes xconnect exports (drm-master,
 * drm-render); it only stays alive and logs the nodes it sees, and when they come or go. */
#include "pvex.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define DEFAULT_DIR "/dev/dri"
#define MAX_NODES   32

struct node {
	char name[256];
	dev_t rdev;
	mode_t mode;
};

static const char usage[] =
    "usage: pv-example-drm-provider [-d DIR] [-i SECONDS] [-n COUNT] [--mknod-missing]\n"
    "  -d, --dir DIR         where the nodes are (env PV_EXAMPLE_DRM_DIR, default " DEFAULT_DIR
    ")\n"
    "  -i, --interval SECS   between scans (default 10)\n"
    "  -n, --count N         exit after N scans (default: run forever)\n"
    "      --mknod-missing   create card0 (226:0) and renderD128 (226:128) in DIR\n"
    "                        when absent (env PV_EXAMPLE_DRM_MKNOD=1), so a host\n"
    "                        without a GPU still has nodes to export\n";

/* On a machine without a GPU the export still needs nodes for xconnect to mirror: create them
 * with the kernel's fixed DRM numbers. Opening them then fails with ENXIO, which is the
 * consumers' honest answer on such a host. */
static void mknod_missing(const char *dir)
{
	static const struct {
		const char *name;
		unsigned minor;
		mode_t mode;
	} std_nodes[] = {{"card0", 0, 0660}, {"renderD128", 128, 0666}};
	char path[4096], eb[128];
	struct stat st;
	int r;

	r = pvex_mkdir_parents(dir);
	if (r == 0 && mkdir(dir, 0755) < 0 && errno != EEXIST)
		r = -errno;
	if (r < 0) {
		pvex_log("mkdir %s: %s", dir, pvex_errstr(-r, eb, sizeof(eb)));
		return;
	}
	for (size_t i = 0; i < sizeof(std_nodes) / sizeof(std_nodes[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, std_nodes[i].name);
		if (lstat(path, &st) == 0)
			continue;
		/* chmod after mknod: the requested mode must not depend on the umask. */
		if (mknod(path, S_IFCHR | std_nodes[i].mode, makedev(226, std_nodes[i].minor)) <
			0 ||
		    chmod(path, std_nodes[i].mode) < 0)
			pvex_log("mknod %s: %s", path, pvex_errstr(errno, eb, sizeof(eb)));
		else
			pvex_log("created %s (char 226:%u): no such node here, made a stand-in",
				 path, std_nodes[i].minor);
	}
}

/* Fill nodes with the character devices in dir; returns how many, or -errno. */
static int scan(const char *dir, struct node *nodes)
{
	struct dirent *de;
	struct stat st;
	char path[4096];
	DIR *d;
	int n = 0;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < MAX_NODES) {
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_name[0] == '.' || lstat(path, &st) < 0 || !S_ISCHR(st.st_mode))
			continue;
		snprintf(nodes[n].name, sizeof(nodes[n].name), "%s", de->d_name);
		nodes[n].rdev = st.st_rdev;
		nodes[n].mode = st.st_mode & 07777;
		n++;
	}
	closedir(d);
	return n;
}

static bool contains(const struct node *set, int n, const struct node *x)
{
	for (int i = 0; i < n; i++)
		if (strcmp(set[i].name, x->name) == 0 && set[i].rdev == x->rdev)
			return true;
	return false;
}

static void log_node(const char *dir, const char *what, const struct node *x)
{
	pvex_log("%s %s/%s: char %u:%u mode %04o", what, dir, x->name, major(x->rdev),
		 minor(x->rdev), (unsigned)x->mode);
}

int main(int argc, char **argv)
{
	bool want_mknod = false;
	const struct pvex_opt extra[] = {{.name = "mknod-missing", .flag = &want_mknod},
					 {.name = NULL}};
	struct pvex_cli cli = {.usage = usage,
			       .target_short = 'd',
			       .target_long = "dir",
			       .target_env = "PV_EXAMPLE_DRM_DIR",
			       .target_default = DEFAULT_DIR,
			       .rounds = true,
			       .extra = extra,
			       .interval_ms = 10000};
	struct node prev[MAX_NODES], cur[MAX_NODES];
	unsigned long count, scans = 0;
	long interval_ms;
	const char *dir;
	int nprev = -1, ncur, i, last_err = 0;
	char eb[128];

	pvex_init(argv[0]);
	i = pvex_cli_parse(&cli, argc, argv);
	if (i >= 0)
		return i;
	dir = cli.target;
	count = cli.count;
	interval_ms = cli.interval_ms;
	if (want_mknod || strcmp(pvex_pick(NULL, "PV_EXAMPLE_DRM_MKNOD", "0"), "1") == 0)
		mknod_missing(dir);

	while (!pvex_stopping() && (count == 0 || scans < count)) {
		ncur = scan(dir, cur);
		scans++;
		if (ncur < 0) {
			/* Log a failing scan once, not every interval. */
			if (ncur != last_err)
				pvex_log("scan %s: %s", dir, pvex_errstr(-ncur, eb, sizeof(eb)));
			last_err = ncur;
			nprev = 0;
		} else if (nprev < 0) {
			pvex_log("%d DRM node(s) in %s", ncur, dir);
			for (i = 0; i < ncur; i++)
				log_node(dir, "node", &cur[i]);
		} else {
			for (i = 0; i < ncur; i++)
				if (!contains(prev, nprev, &cur[i]))
					log_node(dir, "node appeared", &cur[i]);
			for (i = 0; i < nprev; i++)
				if (!contains(cur, ncur, &prev[i]))
					log_node(dir, "node gone", &prev[i]);
		}
		if (ncur >= 0) {
			last_err = 0;
			memcpy(prev, cur, sizeof(cur[0]) * (size_t)ncur);
			nprev = ncur;
		}
		if (count == 0 || scans < count)
			pvex_sleep_ms(interval_ms);
	}
	pvex_log("stopped");
	return 0;
}
