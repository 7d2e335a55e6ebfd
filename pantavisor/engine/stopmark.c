/* stopmark.c: what the engine must not forget when it is killed and respawned in the same
 * boot: which containers are stopped on purpose. The running ones are re-adopted from liblxc;
 * a stopped one leaves no trace there, so a respawned engine would start it again. A mark
 * <rundir>/.pv-stopped/<name> holds "user", "failed" or "backoff" while such a container is
 * stopped, and goes at its next start. The run dir is a tmpfs: a new boot starts clean. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/fileio.h"

#define MARK_DIR ".pv-stopped"

static void mark_path(const struct pv_ctr *c, char *out, size_t n)
{
	snprintf(out, n, "%s/%s/%s", c->e->rundir, MARK_DIR, c->spec->name);
}

void pv_stopmark_note(struct pv_ctr *c)
{
	char p[4400];
	mark_path(c, p, sizeof(p));
	const char *kind = NULL;
	if (c->status == PV_CS_STOPPED && c->user_stopped)
		kind = "user";
	else if (c->status == PV_CS_STOPPED && c->recovery_failed)
		kind = "failed";
	else if (c->status == PV_CS_RECOVERING && c->recovery_failed)
		kind = "backoff";
	if (!kind) {
		unlink(p);
		return;
	}
	char dir[4300];
	snprintf(dir, sizeof(dir), "%s/%s", c->e->rundir, MARK_DIR);
	pv_mkdir_p(dir, 0700);
	pv_file_write_atomic(p, kind, strlen(kind), 0600, NULL);
}

void pv_stopmark_restore(struct pv_ctr *c)
{
	char p[4400], *kind = NULL;
	mark_path(c, p, sizeof(p));
	if (pv_file_read_all(p, 64, &kind, NULL, NULL) < 0)
		return;
	if (!strcmp(kind, "user")) {
		c->user_stopped = true;
		c->status = PV_CS_STOPPED;
	} else if (!strcmp(kind, "failed")) {
		c->recovery_failed = true;
		c->status = PV_CS_STOPPED;
	} else if (!strcmp(kind, "backoff")) {
		c->recovery_failed = true;
		c->status = PV_CS_RECOVERING;
		pv_recovery_backoff_start(c); /* the whole wait again: the time left is lost */
	}
	if (c->status == PV_CS_STOPPED || c->status == PV_CS_RECOVERING)
		pv_log(PV_LOG_INFO, "container", "%s: stays %s (%s before the engine restarted)",
		       c->spec->name, pv_cstatus_str(c->status), kind);
	free(kind);
}

void pv_stopmark_forget(struct pv_ctr *c)
{
	char p[4400];
	mark_path(c, p, sizeof(p));
	unlink(p);
}

void pv_stopmark_clear_all(struct pv_engine *e)
{
	char dir[4300];
	snprintf(dir, sizeof(dir), "%s/%s", e->rundir, MARK_DIR);
	pv_remove_tree(dir);
}
