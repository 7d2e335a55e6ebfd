/* update.c: local updates (spec core §4): LOCAL_RUN checks, install into the trail, pv_try, the
 * hot-vs-reboot decision, the hot switch, goals/testing/commit, rollback and crash recovery. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootenv.h"
#include "crashpoint.h"
#include "engine.h"
#include "pvstate/fileio.h"
#include "pvstate/status.h"

#define PROGRESS_MAX 4096

/* exact upstream strings (spec core §4.2): Hub UIs and scripts match on them */
#define MSG_READY	"Update ready to be run"
#define MSG_HOT		"Transitioning to new revision without rebooting"
#define MSG_REBOOT	"Rebooting"
#define MSG_TRYING	"Trying new revision"
#define MSG_TEST_HOT	"Awaiting to see if update is stable"
#define MSG_TEST_REBOOT "Awaiting to set rollback point if update is stable"
#define MSG_WAIT_STABLE "Waiting for all containers to become stable"
#define MSG_UPDATED	"Update finished, revision not set as rollback point"
#define MSG_DONE	"Update finished, revision set as rollback point"
#define MSG_FACTORY	"Factory revision"
#define ERR_GOAL	"Status goal not reached"
#define ERR_START	"A container could not be started"
#define ERR_ROLLBACK	"Unexpected rollback"
#define ERR_OBJECTS	"Object validation went wrong"
#define ERR_FORMAT	"State JSON has bad format"
#define ERR_INTERNAL	"Internal error"

/* Files in the (volatile) run dir: what survives an engine crash but not a reboot. */
#define SESSION_FILE ".pv-engine-session" /* who started this boot's first engine */
#define RECORD_FILE  ".pv-update"	  /* "<from>\n<to>\n": an update begun in this boot */

enum phase {
	PH_INSTALL,	/* objects being linked into the trail (worker thread) */
	PH_STOPPING,	/* hot: changed containers stopping before the switch */
	PH_TRACK,	/* INPROGRESS: waiting for every status goal */
	PH_TESTING,	/* TESTING: commit timer running */
	PH_RB_STOPPING, /* hot rollback: new containers stopping before switching back */
	PH_REBOOTING,	/* waiting for init to take the device down */
};

struct pv_update {
	struct pv_engine *e;
	char rev[128];	/* the update */
	char from[128]; /* the revision running before it (hot rollback target) */
	enum phase phase;
	bool hot;	   /* switched in this boot; false: try boot of a reboot update */
	bool force_reboot; /* LOCAL_RUN_COMMIT */
	struct pv_state next, prev;
	bool have_next, have_prev;
	char **names; /* containers stopped by the switch (changed, removed, new) */
	size_t n_names;
	uv_work_t work;
	int wres;
	struct pv_error werr;
	char wstorage[4096];
	bool wchecksum;
	bool abandon;	    /* failed before the switch: restart the stopped ones, no switch */
	uv_timer_t *commit; /* heap: closing is asynchronous */
	bool commit_due;
	bool waiting_stable;  /* "Waiting for all containers to become stable" was reported */
	char stable_who[128]; /* the container the commit waits for, as last logged */
	uint64_t phase_ms;
	uint64_t track_ms;	  /* when the goals began to be tracked (PH_TRACK): goal timeouts of
				   * containers recovering since count from here at the earliest */
	bool waiting_goal;	  /* the commit waits for a container back at its goal (logged) */
	uint64_t commit_delay_ms; /* of this update's TESTING */
};

/* ---------------------------------------------------------------- small helpers */

static bool is_final(const char *st)
{
	return !strcmp(st, "DONE") || !strcmp(st, "UPDATED") || !strcmp(st, "WONTGO") ||
	       !strcmp(st, "ERROR");
}

static bool is_failed(const char *st)
{
	return !strcmp(st, "WONTGO") || !strcmp(st, "ERROR");
}

static int pct_of(const char *st)
{
	if (!strcmp(st, "NEW"))
		return 0;
	if (!strcmp(st, "INPROGRESS"))
		return 50;
	if (!strcmp(st, "TESTING"))
		return 75;
	return 100;
}

static void progress_get(struct pv_engine *e, const char *rev, char *st, size_t sn, char *msg,
			 size_t mn)
{
	char *p = pv_storage_trail_path(e->storage, rev, ".pv/progress"), *text = NULL;
	size_t len = 0;
	st[0] = '\0';
	if (msg)
		msg[0] = '\0';
	if (p && pv_file_read_all(p, PROGRESS_MAX, &text, &len, NULL) == 0)
		pv_status_parse_progress(text, len, st, sn, msg, mn);
	free(text);
	free(p);
}

/* trails/<rev>/.pv/progress, crash-safely; logs is the reason of a failure (may be NULL). */
static int progress_set(struct pv_engine *e, const char *rev, const char *status, const char *msg,
			const char *logs)
{
	struct pv_error err = PV_ERROR_INIT;
	char *dir = pv_storage_trail_path(e->storage, rev, ".pv");
	char *p = pv_storage_trail_path(e->storage, rev, ".pv/progress");
	char *body = pv_status_emit_progress_logs(status, msg, pct_of(status), logs);
	int r = -ENOMEM;
	if (dir && p && body) {
		pv_mkdir_p(dir, 0755);
		r = pv_file_write_atomic(p, body, strlen(body), 0644, &err);
	}
	if (r < 0)
		pv_log(PV_LOG_ERROR, "update", "revision %s: cannot write progress %s: %s", rev,
		       status, err.count ? pv_error_msg(&err) : strerror(-r));
	else
		pv_log(PV_LOG_INFO, "update", "revision %s: %s \"%s\"", rev, status, msg);
	pv_error_clear(&err);
	free(dir);
	free(p);
	free(body);
	return r;
}

static int bootenv(struct pv_engine *e, struct pv_bootenv *b)
{
	struct pv_error err = PV_ERROR_INIT;
	const char *type = NULL;
	if (pv_config_get_level(e->cfg, "PV_BOOTLOADER_TYPE") != PV_CFG_DEFAULT)
		type = pv_config_get(e->cfg, "PV_BOOTLOADER_TYPE");
	int r = pv_bootenv_open(b, e->storage, type, e->appengine, &err);
	if (r < 0)
		pv_log_error(PV_LOG_ERROR, "update", &err);
	pv_error_clear(&err);
	return r;
}

static void env_get(struct pv_engine *e, const char *key, char *out, size_t n)
{
	struct pv_bootenv b;
	struct pv_error err = PV_ERROR_INIT;
	out[0] = '\0';
	if (bootenv(e, &b) < 0)
		return;
	if (pv_bootenv_get(&b, key, out, n, &err) < 0)
		pv_log_error(PV_LOG_ERROR, "update", &err);
	pv_error_clear(&err);
}

/* kv: {"key", "value", ..., NULL} in one crash-safe write */
static int env_set(struct pv_engine *e, const char *const *kv)
{
	struct pv_bootenv b;
	struct pv_error err = PV_ERROR_INIT;
	int r = bootenv(e, &b);
	if (r == 0)
		r = pv_bootenv_set(&b, kv, &err);
	if (r < 0)
		pv_log_error(PV_LOG_ERROR, "update", &err);
	else
		for (size_t i = 0; kv[i] && kv[i + 1]; i += 2)
			pv_log(PV_LOG_INFO, "update", "bootloader env: %s=%s", kv[i], kv[i + 1]);
	pv_error_clear(&err);
	return r;
}

/* pv_try after an update ended on `running` without a try boot: the revision a reboot must try
 * (an earlier hot update of this boot still waiting for its commit), else none. */
static void env_settle_try(struct pv_engine *e, const char *running)
{
	char committed[128];
	env_get(e, "pv_rev", committed, sizeof(committed));
	const char *try = strcmp(running, committed[0] ? committed : "0") ? running : "";
	const char *kv[] = {"pv_try", try, NULL};
	env_set(e, kv);
}

static void run_path(struct pv_engine *e, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", e->rundir, name);
}

/* stopping: the switch began stopping the changed containers (a restart must restart them) */
static void record_write(struct pv_engine *e, const char *from, const char *to, bool stopping)
{
	char p[4200], body[300];
	run_path(e, RECORD_FILE, p, sizeof(p));
	snprintf(body, sizeof(body), "%s\n%s\n%s", from, to, stopping ? "stopping\n" : "");
	pv_file_write_atomic(p, body, strlen(body), 0600, NULL);
}

static bool record_read(struct pv_engine *e, char *from, size_t fn, char *to, size_t tn,
			bool *stopping)
{
	char p[4200], *buf = NULL;
	size_t len = 0;
	run_path(e, RECORD_FILE, p, sizeof(p));
	*stopping = false;
	if (pv_file_read_all(p, 1024, &buf, &len, NULL) < 0)
		return false;
	char *nl = strchr(buf, '\n');
	bool ok = false;
	if (nl) {
		*nl = '\0';
		char *nl2 = strchr(nl + 1, '\n');
		if (nl2) {
			*nl2 = '\0';
			*stopping = !strncmp(nl2 + 1, "stopping", 8);
		}
		snprintf(from, fn, "%s", buf);
		snprintf(to, tn, "%s", nl + 1);
		ok = pv_storage_rev_name_ok(from) && pv_storage_rev_name_ok(to);
	}
	free(buf);
	return ok;
}

static void record_remove(struct pv_engine *e)
{
	char p[4200];
	run_path(e, RECORD_FILE, p, sizeof(p));
	unlink(p);
}

static bool names_has(char **names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

static void names_add(char ***names, size_t *n, const char *name)
{
	if (names_has(*names, *n, name))
		return;
	char **v = realloc(*names, (*n + 1) * sizeof(**names));
	if (!v)
		return;
	*names = v;
	v[*n] = strdup(name);
	if (v[*n])
		(*n)++;
}

static void names_free(char ***names, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*names)[i]);
	free(*names);
	*names = NULL;
	*n = 0;
}

/* ---------------------------------------------------------------- boot session */

/* Init's pid and start time: a respawned engine has the same parent, a new boot (or a relaunch
 * by pv-appengine) a different one. */
static void session_id(char *out, size_t n)
{
	char p[64], *buf = NULL;
	unsigned long long start = 0;
	pid_t pp = getppid();
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pp);
	if (pv_file_read_all(p, 4096, &buf, NULL, NULL) == 0) {
		char *s = strrchr(buf, ')');
		/* field 22 (starttime) is the 20th after the command's closing parenthesis */
		for (int f = 0; s && f < 20; f++)
			s = strchr(s + 1, ' ');
		if (s)
			start = strtoull(s + 1, NULL, 10);
	}
	free(buf);
	snprintf(out, n, "%d %llu\n", (int)pp, start);
}

bool pv_update_session_begin(struct pv_engine *e)
{
	char p[4200], id[64], *old = NULL;
	session_id(id, sizeof(id));
	run_path(e, SESSION_FILE, p, sizeof(p));
	bool same = pv_file_read_all(p, 256, &old, NULL, NULL) == 0 && !strcmp(old, id);
	free(old);
	if (!same) {
		record_remove(e); /* an update record of an earlier boot means nothing now */
		pv_file_write_atomic(p, id, strlen(id), 0600, NULL);
	}
	return same;
}

void pv_update_session_end(struct pv_engine *e)
{
	char p[4200];
	run_path(e, SESSION_FILE, p, sizeof(p));
	unlink(p);
}

bool pv_update_running_rev(struct pv_engine *e, char *rev, size_t n)
{
	char cur[4200], target[256];
	snprintf(cur, sizeof(cur), "%s/trails/current", e->storage);
	ssize_t l = readlink(cur, target, sizeof(target) - 1);
	if (l <= 0)
		return false;
	target[l] = '\0';
	if (!pv_storage_rev_name_ok(target) || !strcmp(target, e->booted))
		return false;
	char *p = pv_storage_trail_path(e->storage, target, ".pvr/json");
	bool ok = p && access(p, F_OK) == 0;
	free(p);
	if (ok)
		snprintf(rev, n, "%s", target);
	return ok;
}

/* ---------------------------------------------------------------- update lifecycle */

static struct pv_update *update_new(struct pv_engine *e, const char *rev, const char *from)
{
	struct pv_update *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->e = e;
	snprintf(u->rev, sizeof(u->rev), "%s", rev);
	snprintf(u->from, sizeof(u->from), "%s", from);
	u->werr = (struct pv_error)PV_ERROR_INIT;
	u->phase_ms = pv_now_ms();
	e->update = u;
	snprintf(e->update_rev, sizeof(e->update_rev), "%s", rev); /* the GC keeps it */
	return u;
}

static void timer_close_cb(uv_handle_t *h)
{
	free(h);
}

static void update_end(struct pv_engine *e)
{
	struct pv_update *u = e->update;
	if (!u)
		return;
	e->update = NULL;
	e->update_rev[0] = '\0';
	if (u->commit) {
		uv_timer_stop(u->commit);
		uv_close((uv_handle_t *)u->commit, timer_close_cb);
	}
	if (u->have_next)
		pv_state_free(&u->next);
	if (u->have_prev)
		pv_state_free(&u->prev);
	names_free(&u->names, &u->n_names);
	pv_error_clear(&u->werr);
	free(u);
}

void pv_update_free(struct pv_engine *e)
{
	/* a worker still linking objects owns the record: let the process exit take it */
	if (e->update && e->update->phase == PH_INSTALL)
		return;
	update_end(e);
}

bool pv_update_active(const struct pv_engine *e)
{
	return e->update != NULL;
}

bool pv_update_claims(const struct pv_ctr *c)
{
	const struct pv_update *u = c->e->update;
	return u && (u->phase == PH_STOPPING || u->phase == PH_RB_STOPPING) &&
	       names_has(u->names, u->n_names, c->spec->name);
}

bool pv_update_is(const struct pv_engine *e, const char *rev)
{
	return e->update && !strcmp(e->update->rev, rev);
}

static void set_phase(struct pv_update *u, enum phase p)
{
	u->phase = p;
	u->phase_ms = pv_now_ms();
	if (p == PH_TRACK)
		u->track_ms = u->phase_ms;
}

/* ---------------------------------------------------------------- install (worker thread) */

/* Hard-links every object of st into trail (a copy for .bind files, which containers may
 * write), writes every json value byte-identical, fsyncs what changed. Runs off the loop. */
static int install_trail(const char *storage, const char *trail, const struct pv_state *st,
			 bool crash, struct pv_error *err)
{
	size_t n_obj = 0, linked = 0;
	for (size_t i = 0; i < st->n_entries; i++)
		n_obj += st->entries[i].kind == PV_ENTRY_OBJECT;
	for (size_t i = 0; i < st->n_entries; i++) {
		const struct pv_entry *en = &st->entries[i];
		char path[4096], obj[4096], dir[4096];
		struct stat so, sp;
		int r;
		snprintf(path, sizeof(path), "%s/%s", trail, en->key);
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		if ((r = pv_mkdir_p(dir, 0755)) < 0)
			return pv_error_set(err, r, "install %s: mkdir %s: %s", en->key, dir,
					    strerror(-r));
		if (en->kind == PV_ENTRY_JSON) {
			char *buf = NULL;
			size_t len = 0;
			bool same =
			    pv_file_read_all(path, PV_STATE_MAX_BYTES, &buf, &len, NULL) == 0 &&
			    len == en->raw_len && !memcmp(buf, en->raw, len);
			free(buf);
			if (!same &&
			    (r = pv_file_write_atomic(path, en->raw, en->raw_len, 0644, err)) < 0)
				return r;
			continue;
		}
		snprintf(obj, sizeof(obj), "%s/objects/%s", storage, en->sha);
		if (stat(obj, &so) < 0)
			return pv_error_set(err, -ENOENT, "%s: object %s missing (objects/%s)",
					    en->key, en->sha, en->sha);
		size_t kl = strlen(en->key);
		if (kl > 5 && !strcmp(en->key + kl - 5, ".bind")) {
			char *buf = NULL;
			size_t len = 0;
			if (lstat(path, &sp) == 0)
				goto linked; /* a copy the container may have changed: kept */
			r = pv_file_read_all(obj, 1u << 30, &buf, &len, err);
			if (r == 0)
				r = pv_file_write_atomic(path, buf, len, 0644, err);
			free(buf);
			if (r < 0)
				return r;
			goto linked;
		}
		if (lstat(path, &sp) == 0 && sp.st_ino == so.st_ino && sp.st_dev == so.st_dev)
			goto linked;
		unlink(path);
		if (link(obj, path) < 0) {
			r = -errno;
			return pv_error_set(err, r, "install %s: link objects/%s to %s: %s",
					    en->key, en->sha, path, strerror(-r));
		}
		pv_fsync_dir(dir);
	linked:
		linked++;
		if (crash && linked == (n_obj + 1) / 2)
			pv_crashpoint("install-objects");
	}
	pv_fsync_dir(trail);
	return 0;
}

static void install_work_cb(uv_work_t *w)
{
	struct pv_update *u = w->data;
	char trail[4300];
	snprintf(trail, sizeof(trail), "%s/trails/%s", u->wstorage, u->rev);
	u->wres = install_trail(u->wstorage, trail, &u->next, true, &u->werr);
	if (u->wres == 0)
		u->wres = pv_storage_verify(u->wstorage, u->rev, &u->next, u->wchecksum, &u->werr);
}

/* ---------------------------------------------------------------- decide (spec core §4.5) */

static bool entry_same(const struct pv_entry *a, const struct pv_entry *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == PV_ENTRY_OBJECT)
		return !strcmp(a->sha, b->sha);
	/* formatting aside: a state re-serialized by another tool restarts nothing */
	return pv_status_json_same(a->raw, a->raw_len, b->raw, b->raw_len);
}

/* The containers touched between a and b into names. 1 (and why) when a reboot is needed:
 * a changed item no container owns, or an owner whose old or new restart_policy is system. */
static int diff_states(const struct pv_state *a, const struct pv_state *b, char ***names, size_t *n,
		       char *why, size_t wn)
{
	for (int pass = 0; pass < 2; pass++) {
		const struct pv_state *s = pass ? b : a, *o = pass ? a : b;
		for (size_t i = 0; i < s->n_entries; i++) {
			const struct pv_entry *en = &s->entries[i];
			const struct pv_entry *other = pv_state_find_entry(o, en->key);
			if (other && (pass || entry_same(en, other)))
				continue;
			if (en->owner < 0 || (size_t)en->owner >= s->n_containers) {
				snprintf(why, wn, "%s changed and belongs to no container",
					 en->key);
				return 1;
			}
			names_add(names, n, s->containers[en->owner].name);
		}
	}
	for (size_t i = 0; i < *n; i++) {
		const struct pv_container *ca = pv_state_find_container(a, (*names)[i]);
		const struct pv_container *cb = pv_state_find_container(b, (*names)[i]);
		if ((ca && ca->restart_policy == PV_RESTART_SYSTEM) ||
		    (cb && cb->restart_policy == PV_RESTART_SYSTEM)) {
			snprintf(why, wn, "container %s changed and has restart_policy system",
				 (*names)[i]);
			return 1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- stop / switch */

static struct pv_ctr *find_ctr(struct pv_engine *e, const char *name)
{
	for (size_t i = 0; i < e->n_ctrs; i++)
		if (!strcmp(e->ctrs[i].spec->name, name))
			return &e->ctrs[i];
	return NULL;
}

static void stop_names(struct pv_engine *e, char **names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct pv_ctr *c = find_ctr(e, names[i]);
		if (!c)
			continue;
		uv_timer_stop(&c->timer);
		c->stop_requested = true;
		/* the update's stop wins over a pending API one: a restart would start the old
		 * container again in the middle of the switch (API actions on it are 409 now) */
		c->api_stop = c->api_restart = false;
		if (c->pid > 0) {
			pv_log(PV_LOG_INFO, "update", "%s: stopping for the switch", names[i]);
			pv_container_stop(c);
		} else if (c->helper_pid <= 0) {
			pv_volumes_umount(c);
			pv_container_set_status(c, PV_CS_STOPPED);
		}
	}
}

/* Nothing of names running and no start helper in flight (its poll points at a record). */
static bool names_stopped(struct pv_engine *e, char **names, size_t n)
{
	for (size_t i = 0; i < e->n_ctrs; i++) {
		struct pv_ctr *c = &e->ctrs[i];
		if (c->helper_pid > 0)
			return false;
		if (c->pid > 0 && names_has(names, n, c->spec->name))
			return false;
	}
	return true;
}

/* Switches the running revision in memory to st (taken) as rev, keeping every container of st
 * not in names running as it is. */
static int switch_to(struct pv_engine *e, const char *rev, struct pv_state *st, char **names,
		     size_t n)
{
	const char **keep = calloc(st->n_containers ? st->n_containers : 1, sizeof(*keep));
	size_t nk = 0;
	if (!keep)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_containers; i++)
		if (!names_has(names, n, st->containers[i].name))
			keep[nk++] = st->containers[i].name;
	char old[128];
	snprintf(old, sizeof(old), "%s", e->rev);
	/* names in keep point into st, which the swap takes over: still valid during it */
	int r = pv_revision_swap(e, rev, st, keep, nk);
	free(keep);
	if (r < 0)
		return r;
	pv_log_open(e->logdir, rev, e->log_rotate, e->log_level);
	pv_log(PV_LOG_INFO, "update",
	       "switched from revision %s to %s: %zu container(s) kept "
	       "running, %zu (re)started",
	       old, rev, nk, e->n_ctrs - nk);
	struct pv_error err = PV_ERROR_INIT;
	if (pv_storage_set_current(e->storage, rev, &err) < 0)
		pv_log_error(PV_LOG_ERROR, "update", &err);
	pv_error_clear(&err);
	pv_graph_update(e);
	pv_engine_wake(e);
	return 0;
}

/* ---------------------------------------------------------------- fail / rollback */

static void begin_rollback(struct pv_update *u);

static void reboot_for(struct pv_engine *e, const char *why)
{
	if (e->update)
		set_phase(e->update, PH_REBOOTING);
	pv_engine_reboot(e, why);
}

/* ERROR with the reason; hot: roll back in place, try boot: reboot to the committed revision. */
static void update_fail(struct pv_update *u, const char *status_msg, const char *detail)
{
	struct pv_engine *e = u->e;
	pv_log(PV_LOG_ERROR, "update", "update to %s failed: %s: %s; rolling back to %s", u->rev,
	       status_msg, detail, u->from[0] ? u->from : "the committed revision");
	progress_set(e, u->rev, "ERROR", status_msg, detail);
	pv_crashpoint("rollback");
	if (u->hot) {
		begin_rollback(u);
		return;
	}
	char why[400];
	snprintf(why, sizeof(why), "try of revision %s failed (%s)", u->rev, status_msg);
	reboot_for(e, why);
}

static void begin_rollback(struct pv_update *u)
{
	struct pv_engine *e = u->e;
	struct pv_error err = PV_ERROR_INIT;
	char why[512] = "";
	if (u->commit)
		uv_timer_stop(u->commit);
	if (!u->have_prev) {
		if (pv_revision_parse(e, u->from, &u->prev, &err) < 0 ||
		    pv_storage_verify(e->storage, u->from, &u->prev, false, &err) < 0) {
			pv_log_error(PV_LOG_ERROR, "update", &err);
			pv_error_clear(&err);
			pv_state_free(&u->prev);
			/* no way back in place: the bootloader's committed revision is */
			env_settle_try(e, "");
			reboot_for(e, "revision to roll back to cannot be loaded");
			return;
		}
		u->have_prev = true;
	}
	names_free(&u->names, &u->n_names);
	if (diff_states(&e->state, &u->prev, &u->names, &u->n_names, why, sizeof(why)) == 1) {
		pv_log(PV_LOG_WARN, "update", "rollback to %s needs a reboot: %s", u->from, why);
		env_settle_try(e, "");
		reboot_for(e, "rollback needs a reboot");
		return;
	}
	pv_log(PV_LOG_INFO, "update", "hot rollback from %s to %s: %zu container(s) to restore",
	       u->rev, u->from, u->n_names);
	set_phase(u, PH_RB_STOPPING);
	stop_names(e, u->names, u->n_names);
	pv_engine_wake(e);
}

static void finish_rollback(struct pv_update *u)
{
	struct pv_engine *e = u->e;
	if (switch_to(e, u->from, &u->prev, u->names, u->n_names) < 0) {
		reboot_for(e, "rollback: out of memory");
		return;
	}
	u->have_prev = false;
	env_settle_try(e, e->rev);
	record_remove(e);
	pv_log(PV_LOG_WARN, "update", "rolled back to revision %s; %s stays ERROR", e->rev, u->rev);
	update_end(e);
}

/* liblxc's monitor logs how the init ended ("Child <pid> ended on error (1)", "... killed by
 * signal") just after the exit the engine sees: the reason is added to the log and progress a
 * moment later, so the user reads the exit status and not only "exited". */
struct exit_note {
	uv_timer_t t;
	struct pv_engine *e;
	char rev[128], name[PV_NAME_MAX + 1], status_msg[64], detail[300], lxclog[4200];
};

/* One note at a time (the failure that ends an update); static so that an engine exiting
 * before it fires (a try boot reboots at once) leaves nothing allocated. */
static struct exit_note g_note;

static void exit_note_cb(uv_timer_t *t)
{
	struct exit_note *n = t->data;
	char *buf = NULL, st[32];
	size_t len = 0;
	const char *pick = NULL;
	if (pv_file_read_all(n->lxclog, 16u * 1024 * 1024, &buf, &len, NULL) == 0) {
		for (char *line = buf; line && *line;) {
			char *end = strchr(line, '\n');
			if (end)
				*end = '\0';
			if (strstr(line, "ended on error") || strstr(line, "killed by signal") ||
			    strstr(line, "exited with status"))
				pick = line;
			line = end ? end + 1 : NULL;
		}
	}
	if (pick) {
		const char *m = strstr(pick, ".c:"); /* "<file>.c:<func>:<line> - <message>" */
		m = m ? strstr(m, " - ") : NULL;
		m = m ? m + 3 : pick;
		char detail[700];
		snprintf(detail, sizeof(detail), "%s; lxc: %s", n->detail, m);
		pv_log(PV_LOG_ERROR, "update", "revision %s: container %s: %s", n->rev, n->name, m);
		progress_get(n->e, n->rev, st, sizeof(st), NULL, 0);
		if (!strcmp(st, "ERROR"))
			progress_set(n->e, n->rev, "ERROR", n->status_msg, detail);
	}
	free(buf);
}

static void exit_note(struct pv_engine *e, const char *name, const char *status_msg,
		      const char *detail)
{
	struct exit_note *n = &g_note;
	if (n->e && uv_is_active((uv_handle_t *)&n->t))
		return;
	if (!n->e) {
		uv_timer_init(e->loop, &n->t);
		n->t.data = n;
	}
	n->e = e;
	snprintf(n->rev, sizeof(n->rev), "%s", e->rev);
	snprintf(n->name, sizeof(n->name), "%s", name);
	snprintf(n->status_msg, sizeof(n->status_msg), "%s", status_msg);
	snprintf(n->detail, sizeof(n->detail), "%s", detail);
	snprintf(n->lxclog, sizeof(n->lxclog), "%s/%s/%s/lxc/lxc.log", e->logdir, e->rev, name);
	uv_timer_start(&n->t, exit_note_cb, 300, 0);
}

bool pv_update_container_failed(struct pv_ctr *c, const char *why)
{
	struct pv_update *u = c->e->update;
	if (u && u->phase == PH_STOPPING && !u->abandon) {
		/* before the switch: the old revision stays; what was stopped starts again */
		exit_note(c->e, c->spec->name, ERR_START, why);
		pv_log(PV_LOG_ERROR, "update", "update to %s failed before the switch: %s", u->rev,
		       why);
		progress_set(c->e, u->rev, "ERROR", ERR_START, why);
		u->abandon = true;
		/* a fresh start, as after a rollback */
		c->retries = 0;
		c->recovery_failed = false;
		pv_container_set_status(c, PV_CS_INSTALLED);
		pv_engine_wake(c->e);
		return true;
	}
	if (!u || (u->phase != PH_TRACK && u->phase != PH_TESTING))
		return false;
	exit_note(c->e, c->spec->name, ERR_START, why);
	update_fail(u, ERR_START, why);
	return true;
}

/* ---------------------------------------------------------------- track / commit */

static void commit_cb(uv_timer_t *t)
{
	struct pv_engine *e = t->data;
	if (e->update)
		e->update->commit_due = true;
	pv_engine_wake(e);
}

static void enter_testing(struct pv_update *u)
{
	struct pv_engine *e = u->e;
	progress_set(e, u->rev, "TESTING", u->hot ? MSG_TEST_HOT : MSG_TEST_REBOOT, NULL);
	pv_crashpoint("testing");
	set_phase(u, PH_TESTING);
	int delay = e->appengine ? 5 : 25;
	if (pv_config_get_level(e->cfg, "PV_UPDATER_COMMIT_DELAY") != PV_CFG_DEFAULT)
		delay = pv_config_get_seconds(e->cfg, "PV_UPDATER_COMMIT_DELAY", delay);
	if (!u->commit) {
		u->commit = calloc(1, sizeof(*u->commit));
		if (!u->commit) {
			u->commit_due = true;
			return;
		}
		uv_timer_init(e->loop, u->commit);
		u->commit->data = e;
	}
	u->commit_due = false;
	u->commit_delay_ms = (uint64_t)delay * 1000;
	uv_timer_start(u->commit, commit_cb, u->commit_delay_ms, 0);
	pv_log(PV_LOG_INFO, "update", "revision %s: every goal reached; commit in %d s", u->rev,
	       delay);
}

/* After the commit delay: true while a container with an auto_recovery stable_timeout has not
 * yet run that long at its goal (spec 4.6), or one that left its goal during TESTING (it exited
 * and was recovered) has not been back for a whole commit delay (so a crash loop passing
 * through STARTED is never committed); the commit timer then fires again when the last one
 * will be. A container that fails meanwhile fails the update as during TESTING. */
static bool wait_stable(struct pv_update *u)
{
	struct pv_engine *e = u->e;
	uint64_t wait = 0;
	const char *who = NULL;
	if (!u->commit)
		return false; /* no timer to wait with (out of memory): commit as before */
	uint64_t now = pv_now_ms();
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_ctr *c = &e->ctrs[i];
		uint64_t ms = pv_container_unstable_ms(c);
		if (!pv_container_left_stopped(c) && c->goal_ms > u->phase_ms) {
			uint64_t due = c->goal_ms + u->commit_delay_ms;
			if (due > now && due - now > ms)
				ms = due - now;
		}
		if (ms > wait) {
			wait = ms;
			who = e->ctrs[i].spec->name;
		}
	}
	if (!wait)
		return false;
	if (!u->waiting_stable) {
		u->waiting_stable = true;
		progress_set(e, u->rev, "TESTING", MSG_WAIT_STABLE, NULL);
	}
	bool at_goal = wait != UINT64_MAX;
	if (!at_goal)
		wait = 1000; /* not at its goal right now: look again */
	/* once per container waited for, not at every look */
	if (strcmp(u->stable_who, who) != 0) {
		snprintf(u->stable_who, sizeof(u->stable_who), "%s", who);
		if (at_goal)
			pv_log(PV_LOG_INFO, "update",
			       "revision %s: commit waits %" PRIu64 " ms for %s to be stable",
			       u->rev, wait, who);
		else
			pv_log(PV_LOG_INFO, "update",
			       "revision %s: commit waits for %s to be back at its goal", u->rev,
			       who);
	}
	u->commit_due = false;
	uv_timer_start(u->commit, commit_cb, wait + 1, 0);
	return true;
}

static void commit(struct pv_update *u)
{
	struct pv_engine *e = u->e;
	if (u->hot) {
		/* no bootloader commit: pv_try stays, the next boot tries this revision and
		 * commits it then (as upstream) */
		progress_set(e, u->rev, "UPDATED", MSG_UPDATED, NULL);
		pv_crashpoint("done");
		record_remove(e);
		update_end(e);
		return;
	}
	const char *kv[] = {"pv_rev", u->rev, "pv_try", "", NULL};
	if (env_set(e, kv) < 0) {
		update_fail(u, ERR_INTERNAL, "cannot write the bootloader environment");
		return;
	}
	pv_crashpoint("commit-env");
	struct pv_error err = PV_ERROR_INIT;
	if (pv_storage_mark_done(e->storage, u->rev, &err) < 0)
		pv_log_error(PV_LOG_ERROR, "update", &err);
	pv_error_clear(&err);
	progress_set(e, u->rev, "DONE", MSG_DONE, NULL);
	pv_crashpoint("done");
	snprintf(e->fallback, sizeof(e->fallback), "%s", u->rev);
	update_end(e);
}

static void do_switch(struct pv_update *u)
{
	struct pv_engine *e = u->e;
	pv_crashpoint("hot-stopped");
	if (switch_to(e, u->rev, &u->next, u->names, u->n_names) < 0) {
		update_fail(u, ERR_INTERNAL, "out of memory switching revisions");
		return;
	}
	u->have_next = false;
	pv_crashpoint("hot-switched");
	set_phase(u, PH_TRACK);
}

static void abandon(struct pv_update *u)
{
	struct pv_engine *e = u->e;
	for (size_t i = 0; i < u->n_names; i++) {
		struct pv_ctr *c = find_ctr(e, u->names[i]);
		if (!c || c->pid > 0 || c->helper_pid > 0)
			continue;
		c->stop_requested = false;
		if (pv_container_left_stopped(c))
			continue; /* stopped before the update (API, recovery used up): stays so */
		pv_container_set_status(c, PV_CS_INSTALLED);
	}
	env_settle_try(e, e->rev);
	record_remove(e);
	pv_log(PV_LOG_WARN, "update", "update to %s abandoned before the switch; %s runs on",
	       u->rev, e->rev);
	update_end(e);
	pv_engine_wake(e);
}

void pv_update_tick(struct pv_engine *e)
{
	struct pv_update *u = e->update;
	if (!u || e->shutting_down || e->failing)
		return;
	const char *who = NULL;
	char detail[300];
	switch (u->phase) {
	case PH_STOPPING:
		if (!names_stopped(e, u->names, u->n_names))
			break;
		if (u->abandon)
			abandon(u);
		else
			do_switch(u);
		break;
	case PH_RB_STOPPING:
		if (names_stopped(e, u->names, u->n_names))
			finish_rollback(u);
		break;
	case PH_TRACK: {
		int g = pv_group_goals(e, u->track_ms, &who);
		if (g < 0) {
			snprintf(detail, sizeof(detail),
				 "container %s did not reach its status goal within its group "
				 "timeout",
				 who);
			update_fail(u, ERR_GOAL, detail);
		} else if (g > 0) {
			enter_testing(u);
		}
		break;
	}
	case PH_TESTING: {
		/* a container that left its goal meanwhile (recovering) holds the commit until it
		 * is back, and fails the update if it is not within its group timeout */
		int g = pv_group_goals(e, u->track_ms, &who);
		if (g < 0) {
			snprintf(
			    detail, sizeof(detail),
			    "container %s did not get back to its status goal within its group "
			    "timeout",
			    who);
			update_fail(u, ERR_GOAL, detail);
			break;
		}
		if (!u->commit_due)
			break;
		if (g == 0) { /* one is away from its goal (recovering): looked at every tick */
			if (!u->waiting_goal)
				pv_log(PV_LOG_INFO, "update",
				       "revision %s: a container left its goal while testing; the "
				       "commit waits until it is back",
				       u->rev);
			u->waiting_goal = true;
			break;
		}
		if (!wait_stable(u))
			commit(u);
		break;
	}
	default:
		break;
	}
}

/* ---------------------------------------------------------------- after install */

static void install_after_cb(uv_work_t *w, int status)
{
	struct pv_update *u = w->data;
	struct pv_engine *e = u->e;
	char why[512] = "";
	if (e->shutting_down || e->failing) {
		/* the device is going down: the update never began; it can be run again */
		progress_set(e, u->rev, "NEW", MSG_READY, NULL);
		record_remove(e);
		update_end(e);
		return;
	}
	if (status < 0 || u->wres < 0) {
		pv_log(PV_LOG_ERROR, "update", "revision %s: install failed:", u->rev);
		pv_log_error(PV_LOG_ERROR, "update", &u->werr);
		progress_set(e, u->rev, "WONTGO", ERR_OBJECTS,
			     u->werr.count ? pv_error_msg(&u->werr) : "install failed");
		record_remove(e);
		update_end(e);
		return;
	}
	pv_crashpoint("install-done");
	const char *kv[] = {"pv_try", u->rev, NULL};
	if (env_set(e, kv) < 0) {
		progress_set(e, u->rev, "WONTGO", ERR_INTERNAL,
			     "cannot write the bootloader environment");
		record_remove(e);
		update_end(e);
		return;
	}
	pv_crashpoint("try-set");
	bool reboot = true;
	if (u->force_reboot)
		snprintf(why, sizeof(why), "LOCAL_RUN_COMMIT asks for a reboot");
	else if (!e->have_state)
		snprintf(why, sizeof(why), "no revision is running");
	else
		reboot =
		    diff_states(&e->state, &u->next, &u->names, &u->n_names, why, sizeof(why)) == 1;
	if (reboot) {
		progress_set(e, u->rev, "INPROGRESS", MSG_REBOOT, NULL);
		pv_crashpoint("inprogress");
		char msg[700];
		snprintf(msg, sizeof(msg), "update to %s needs a reboot: %s", u->rev, why);
		reboot_for(e, msg);
		return;
	}
	u->hot = true;
	progress_set(e, u->rev, "INPROGRESS", MSG_HOT, NULL);
	pv_crashpoint("inprogress");
	pv_log(PV_LOG_INFO, "update", "update to %s without reboot: %zu container(s) to restart",
	       u->rev, u->n_names);
	for (size_t i = 0; i < u->n_names; i++)
		pv_log(PV_LOG_INFO, "update", "  %s", u->names[i]);
	set_phase(u, PH_STOPPING);
	record_write(e, u->from, u->rev, true);
	stop_names(e, u->names, u->n_names);
	pv_engine_wake(e);
}

/* ---------------------------------------------------------------- commands */

/* "locals/<name>" (name <= 64, no dot first) or a decimal revision. */
static bool payload_ok(const char *p)
{
	if (!p || !*p || !pv_storage_rev_name_ok(p))
		return false;
	if (!strncmp(p, "locals/", 7)) {
		const char *n = p + 7;
		return *n && strlen(n) <= 64 && n[0] != '.';
	}
	for (const char *c = p; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return strlen(p) <= 20;
}

static bool trail_has_state(struct pv_engine *e, const char *rev)
{
	char *p = pv_storage_trail_path(e->storage, rev, ".pvr/json");
	bool ok = p && access(p, F_OK) == 0;
	free(p);
	return ok;
}

static char *busy_reply(struct pv_engine *e, const struct pv_msg *m, const char *op)
{
	char msg[300];
	snprintf(msg, sizeof(msg), "%s: update in progress%s%s", op, e->update ? " (revision " : "",
		 e->update ? e->update->rev : "");
	if (e->update)
		strncat(msg, ")", sizeof(msg) - strlen(msg) - 1);
	return pv_msg_reply_error(m->id, 503, msg);
}

static char *local_run(struct pv_engine *e, const struct pv_msg *m, const char *op, const char *rev)
{
	char msg[700], st[32], smsg[160];
	struct pv_error err = PV_ERROR_INIT;
	if (!payload_ok(rev)) {
		snprintf(msg, sizeof(msg), "%s: payload \"%.80s\" is not a revision name", op,
			 rev ? rev : "");
		return pv_msg_reply_error(m->id, 400, msg);
	}
	if (!trail_has_state(e, rev)) {
		snprintf(msg, sizeof(msg), "%s: revision %s: no such revision", op, rev);
		return pv_msg_reply_error(m->id, 404, msg);
	}
	if (!strcmp(rev, e->rev)) {
		snprintf(msg, sizeof(msg), "%s: revision %s is the running revision", op, rev);
		return pv_msg_reply_error(m->id, 409, msg);
	}
	progress_get(e, rev, st, sizeof(st), smsg, sizeof(smsg));
	if (st[0] && strcmp(st, "NEW") != 0) {
		snprintf(msg, sizeof(msg), "%s: revision %s is %s (%s), not ready to be run", op,
			 rev, st, smsg);
		return pv_msg_reply_error(m->id, 409, msg);
	}
	pv_crashpoint("run-start");
	struct pv_update *u = update_new(e, rev, e->have_state ? e->rev : "");
	if (!u)
		return pv_msg_reply_error(m->id, 500, "out of memory");
	u->force_reboot = !strcmp(op, "LOCAL_RUN_COMMIT");
	if (pv_revision_parse(e, rev, &u->next, &err) < 0) {
		pv_log(PV_LOG_ERROR, "update", "revision %s: state is invalid:", rev);
		pv_log_error(PV_LOG_ERROR, "update", &err);
		progress_set(e, rev, "WONTGO", ERR_FORMAT, pv_error_msg(&err));
		char *reply = pv_op_reply_errors(m, 422, &err);
		pv_error_clear(&err);
		update_end(e);
		return reply;
	}
	u->have_next = true;
	/* every object must be here before anything is touched */
	for (size_t i = 0; i < u->next.n_entries; i++) {
		const struct pv_entry *en = &u->next.entries[i];
		char obj[4200];
		if (en->kind != PV_ENTRY_OBJECT)
			continue;
		snprintf(obj, sizeof(obj), "%s/objects/%s", e->storage, en->sha);
		if (access(obj, F_OK) == 0)
			continue;
		snprintf(msg, sizeof(msg), "%s: %s: object %s missing", ERR_OBJECTS, en->key,
			 en->sha);
		pv_log(PV_LOG_ERROR, "update", "revision %s: %s", rev, msg);
		progress_set(e, rev, "WONTGO", ERR_OBJECTS, msg + strlen(ERR_OBJECTS) + 2);
		update_end(e);
		return pv_msg_reply_error(m->id, 422, msg);
	}
	record_write(e, u->from, rev, false);
	pv_log(PV_LOG_INFO, "update", "%s %s accepted (running %s)", op, rev, u->from);
	snprintf(u->wstorage, sizeof(u->wstorage), "%s", e->storage);
	u->wchecksum = pv_config_get_bool(e->cfg, "PV_SECUREBOOT_CHECKSUM", true);
	u->work.data = u;
	set_phase(u, PH_INSTALL);
	int r = uv_queue_work(e->loop, &u->work, install_work_cb, install_after_cb);
	if (r < 0) {
		record_remove(e);
		update_end(e);
		return pv_msg_reply_error(m->id, 500, "cannot queue the install");
	}
	return pv_msg_reply(m->id, 200, NULL);
}

static int exchange_dirs(const char *a, const char *b)
{
#ifdef RENAME_EXCHANGE
	if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0)
		return 0;
#endif
	return -errno;
}

/* Trail 0 becomes a copy of rev (objects linked), committed as the factory revision. */
static char *make_factory(struct pv_engine *e, const struct pv_msg *m, const char *payload)
{
	char msg[600], tmp[4200], zero[4200], json[4300];
	struct pv_error err = PV_ERROR_INIT;
	const char *rev = payload && *payload ? payload : e->rev;
	struct pv_state st;
	char *text = NULL;
	size_t len = 0;
	if (!payload_ok(rev)) {
		snprintf(msg, sizeof(msg), "MAKE_FACTORY: \"%.80s\" is not a revision name", rev);
		return pv_msg_reply_error(m->id, 400, msg);
	}
	if (!trail_has_state(e, rev)) {
		snprintf(msg, sizeof(msg), "MAKE_FACTORY: revision %s: no such revision", rev);
		return pv_msg_reply_error(m->id, 404, msg);
	}
	if (strcmp(rev, "0") != 0) {
		if (pv_storage_read_state(e->storage, rev, &text, &len, &err) < 0 ||
		    pv_revision_parse(e, rev, &st, &err) < 0) {
			free(text);
			char *reply = pv_op_reply_errors(m, 422, &err);
			pv_error_clear(&err);
			return reply;
		}
		snprintf(tmp, sizeof(tmp), "%s/trails/.factory.%d", e->storage, (int)getpid());
		snprintf(zero, sizeof(zero), "%s/trails/0", e->storage);
		snprintf(json, sizeof(json), "%s/.pvr/json", tmp);
		pv_remove_tree(tmp);
		char pvr[4300];
		snprintf(pvr, sizeof(pvr), "%s/.pvr", tmp);
		int r = pv_mkdir_p(pvr, 0755);
		if (r == 0)
			r = pv_file_write_atomic(json, text, len, 0644, &err);
		if (r == 0)
			r = install_trail(e->storage, tmp, &st, false, &err);
		pv_state_free(&st);
		free(text);
		if (r == 0) {
			/* one atomic step: trail 0 is the old or the new copy, never missing */
			if (access(zero, F_OK) == 0)
				r = exchange_dirs(tmp, zero);
			else
				r = rename(tmp, zero) < 0 ? -errno : 0;
			if (r < 0)
				pv_error_set(&err, r, "MAKE_FACTORY: replace %s: %s", zero,
					     strerror(-r));
			else
				pv_remove_tree(tmp);
			snprintf(tmp, sizeof(tmp), "%s/trails", e->storage);
			pv_fsync_dir(tmp);
		}
		if (r < 0) {
			pv_remove_tree(tmp);
			char *reply = pv_op_reply_errors(m, 500, &err);
			pv_error_clear(&err);
			return reply;
		}
	}
	if (pv_storage_mark_done(e->storage, "0", &err) < 0)
		pv_log_error(PV_LOG_ERROR, "update", &err);
	pv_error_clear(&err);
	progress_set(e, "0", "DONE", MSG_FACTORY, NULL);
	pv_log(PV_LOG_INFO, "update", "MAKE_FACTORY: revision %s is the factory revision 0", rev);
	return pv_msg_reply(m->id, 200, NULL);
}

char *pv_update_command(struct pv_engine *e, const struct pv_msg *m, const char *op,
			const char *payload)
{
	if (e->update || e->cmd_busy || e->shutting_down || e->failing)
		return busy_reply(e, m, op);
	if (!strcmp(op, "MAKE_FACTORY"))
		return make_factory(e, m, payload);
	return local_run(e, m, op, payload);
}

/* ---------------------------------------------------------------- boot-time recovery (§4.7) */

void pv_update_try_failed(struct pv_engine *e, const char *rev, bool bad_format)
{
	char st[32];
	progress_get(e, rev, st, sizeof(st), NULL, 0);
	pv_log(PV_LOG_ERROR, "update", "try revision %s failed validation; running %s instead", rev,
	       e->rev);
	if (!is_failed(st))
		progress_set(e, rev, "ERROR", bad_format ? ERR_FORMAT : ERR_OBJECTS,
			     "the try boot found the revision invalid (see pantavisor.log)");
	const char *kv[] = {"pv_try", "", NULL};
	env_set(e, kv);
}

/* The earlier engine died while stopping the containers the update touches: the ones still
 * running were sent the halt signal and may exit any moment; they are restarted on purpose so the
 * old revision ends with all of them running. */
static void restart_touched(struct pv_engine *e, const char *to)
{
	struct pv_state st;
	struct pv_error err = PV_ERROR_INIT;
	char **names = NULL, why[300];
	size_t n = 0;
	if (pv_revision_parse(e, to, &st, &err) < 0) {
		pv_error_clear(&err);
		return;
	}
	diff_states(&e->state, &st, &names, &n, why, sizeof(why));
	for (size_t i = 0; i < n; i++) {
		struct pv_ctr *c = find_ctr(e, names[i]);
		const char *whynot = NULL;
		if (c && c->pid > 0 && pv_container_action(c, "restart", &whynot) == 0)
			pv_log(PV_LOG_WARN, "update", "%s: was being stopped for %s: restarted",
			       names[i], to);
	}
	names_free(&names, &n);
	pv_state_free(&st);
}

/* A hot update this boot's earlier engine left behind (it was killed). */
static void resume_record(struct pv_engine *e, const char *from, const char *to, bool stopping)
{
	char st[32], msg[160];
	progress_get(e, to, st, sizeof(st), msg, sizeof(msg));
	if (!strcmp(e->rev, to)) {
		/* the switch happened: the new revision runs */
		struct pv_update *u = update_new(e, to, from);
		if (!u)
			return;
		u->hot = true;
		if (!strcmp(st, "ERROR")) {
			pv_log(PV_LOG_WARN, "update",
			       "engine restarted during the rollback of %s: "
			       "rolling back to %s",
			       to, from);
			begin_rollback(u);
		} else if (is_final(st)) {
			record_remove(e);
			update_end(e);
		} else {
			pv_log(PV_LOG_WARN, "update",
			       "engine restarted during the update to %s: "
			       "resuming it",
			       to);
			progress_set(e, to, "INPROGRESS", MSG_HOT, NULL);
			set_phase(u, PH_TRACK);
		}
		return;
	}
	/* not switched yet (or rolled back): the old revision runs; the update is abandoned */
	if (!is_final(st)) {
		pv_log(PV_LOG_ERROR, "update",
		       "engine restarted before the switch to %s (progress %s): abandoned, "
		       "still on %s",
		       to, st[0] ? st : "none", e->rev);
		progress_set(e, to, "ERROR", ERR_ROLLBACK,
			     "the engine was restarted before the new revision was switched in");
	}
	if (stopping)
		restart_touched(e, to);
	env_settle_try(e, e->rev);
	record_remove(e);
}

void pv_update_resume(struct pv_engine *e, bool same_session)
{
	char from[128], to[128], try[128], committed[128], st[32], msg[160];
	if (!e->have_state)
		return;
	bool stopping = false;
	if (same_session && record_read(e, from, sizeof(from), to, sizeof(to), &stopping)) {
		resume_record(e, from, to, stopping);
		return;
	}
	env_get(e, "pv_try", try, sizeof(try));
	env_get(e, "pv_rev", committed, sizeof(committed));
	if (!try[0]) {
		progress_get(e, e->rev, st, sizeof(st), msg, sizeof(msg));
		if (!strcmp(e->rev, "0")) {
			/* the factory revision is committed without testing */
			struct pv_error err = PV_ERROR_INIT;
			if (pv_storage_mark_done(e->storage, "0", &err) < 0)
				pv_log_error(PV_LOG_WARN, "storage", &err);
			pv_error_clear(&err);
			if (strcmp(st, "DONE") != 0)
				progress_set(e, "0", "DONE", MSG_FACTORY, NULL);
		} else if (!strcmp(committed, e->rev) && !is_final(st) && st[0]) {
			/* killed between the bootloader commit and DONE: finish it */
			struct pv_error err = PV_ERROR_INIT;
			pv_storage_mark_done(e->storage, e->rev, &err);
			pv_error_clear(&err);
			progress_set(e, e->rev, "DONE", MSG_DONE, NULL);
		}
		return;
	}
	progress_get(e, try, st, sizeof(st), msg, sizeof(msg));
	bool trying = !strcmp(e->booted, try) && !strcmp(e->rev, try);
	if (!trying && !strcmp(e->rev, try))
		return; /* a hot update of this boot runs, waiting for the next try boot */
	if (trying) {
		if (is_failed(st)) {
			char why[512];
			snprintf(why, sizeof(why), "try revision %s already failed (%s): rollback",
				 try, msg);
			update_new(e, try, committed);
			reboot_for(e, why);
			return;
		}
		if (!strcmp(st, "DONE")) {
			const char *kv[] = {"pv_rev", try, "pv_try", "", NULL};
			env_set(e, kv);
			return;
		}
		struct pv_update *u = update_new(e, try, committed);
		if (!u)
			return;
		progress_set(e, try, "INPROGRESS", MSG_TRYING, NULL);
		set_phase(u, PH_TRACK);
		return;
	}
	/* booted the committed revision while pv_try is set: the try is over */
	if (is_failed(st)) {
		pv_log(PV_LOG_WARN, "update", "revision %s failed (%s %s); back on %s", try, st,
		       msg, e->rev);
	} else if (strcmp(st, "DONE") != 0) {
		pv_log(PV_LOG_ERROR, "update",
		       "revision %s was being tried (%s) and the device is back on %s", try,
		       st[0] ? st : "no progress", e->rev);
		progress_set(e, try, "ERROR", ERR_ROLLBACK,
			     "booted the committed revision while the try was not finished");
	}
	const char *kv[] = {"pv_try", "", NULL};
	env_set(e, kv);
}
