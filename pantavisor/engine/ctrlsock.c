/* ctrlsock.c: how non-mgmt containers reach pv-ctrl across its respawns: a per-container dir
 * <rundir>/pantavisor.<c>/ (bound read-only at /pantavisor) holding hard links of the sockets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/fileio.h"

/* Sockets pv-ctrl (re)binds in the run dir that a non-mgmt container may use. */
static const char *const socks[] = {"pv-ctrl", "pv-ctrl-log"};

/* Binding the socket file itself would pin the inode of the pv-ctrl that ran at container start;
 * a hard link in a bound directory can be replaced (link + rename) whenever pv-ctrl rebinds. */
static void relink(struct pv_engine *e, const char *dir)
{
	for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
		char src[4200], dst[4400], tmp[4500];
		struct stat s, d;
		snprintf(src, sizeof(src), "%s/%s", e->rundir, socks[i]);
		snprintf(dst, sizeof(dst), "%s/%s", dir, socks[i]);
		if (lstat(src, &s) < 0 || !S_ISSOCK(s.st_mode)) {
			unlink(dst); /* no server: better "no such file" than a dead link */
			continue;
		}
		if (lstat(dst, &d) == 0 && d.st_ino == s.st_ino && d.st_dev == s.st_dev)
			continue;
		snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
		unlink(tmp);
		if (link(src, tmp) < 0 || rename(tmp, dst) < 0) {
			pv_log(PV_LOG_WARN, "ctrlsock", "link %s -> %s: %s", src, dst,
			       strerror(errno));
			unlink(tmp);
		}
	}
}

char *pv_ctrlsock_dir(struct pv_engine *e, const char *container)
{
	char *dir = NULL, *logs = NULL;
	if (asprintf(&dir, "%s/pantavisor.%s", e->rundir, container) < 0)
		return NULL;
	/* logs/, user-meta/ and device-meta/ are the mount points of the container's own views
	 * inside the read-only bind (container.c binds them) */
	static const char *const points[] = {"logs", "user-meta", "device-meta"};
	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		if (asprintf(&logs, "%s/%s", dir, points[i]) < 0 || pv_mkdir_p(logs, 0755) < 0) {
			free(logs);
			free(dir);
			return NULL;
		}
		free(logs);
	}
	relink(e, dir);
	return dir;
}

void pv_ctrlsock_refresh(struct pv_engine *e)
{
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_container *c = e->ctrs[i].spec;
		char dir[4200];
		struct stat st;
		if (c->roles & PV_ROLE_MGMT)
			continue;
		snprintf(dir, sizeof(dir), "%s/pantavisor.%s", e->rundir, c->name);
		if (stat(dir, &st) == 0)
			relink(e, dir);
	}
}

static void watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct pv_engine *e = h->data;
	if (status < 0 || !filename)
		return;
	for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++)
		if (!strcmp(filename, socks[i]))
			pv_ctrlsock_refresh(e);
}

int pv_ctrlsock_watch(struct pv_engine *e)
{
	int r = uv_fs_event_init(e->loop, &e->ctrl_watch);
	if (r < 0)
		return r;
	e->ctrl_watch.data = e;
	r = uv_fs_event_start(&e->ctrl_watch, watch_cb, e->rundir, 0);
	if (r < 0)
		uv_close((uv_handle_t *)&e->ctrl_watch, NULL);
	return r;
}
