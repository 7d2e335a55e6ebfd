/* container.c: one container's life through liblxc: the revision's LXC config plus the engine's
 * overrides (spec §5.3), daemonized start, lenient stop, re-adoption, and status changes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lxc/lxccontainer.h>

#include "engine.h"
#include "pvstate/fileio.h"

#define PV_STOP_GRACE_MS 5000

const char *pv_cstatus_str(enum pv_cstatus s)
{
	static const char *const n[] = {"NONE",	    "INSTALLED", "MOUNTED", "BLOCKED",
					"STARTING", "STARTED",	 "READY",   "RECOVERING",
					"STOPPING", "STOPPED"};
	return (s >= PV_CS_NONE && s <= PV_CS_STOPPED) ? n[s] : "NONE";
}

void pv_container_set_status(struct pv_ctr *c, enum pv_cstatus s)
{
	if (c->status == s)
		return;
	pv_log(PV_LOG_INFO, "container", "%s: %s -> %s", c->spec->name, pv_cstatus_str(c->status),
	       pv_cstatus_str(s));
	c->status = s;
	if (s != PV_CS_STARTED && s != PV_CS_READY)
		c->goal_ms = 0;
	else if (!c->goal_ms)
		c->goal_ms =
		    pv_now_ms(); /* stable_timeout counts from here (STARTED -> READY too) */
}

static struct lxc_container *lxc_get(struct pv_ctr *c)
{
	return lxc_container_new(c->spec->name, c->e->lxcpath);
}

/* Copies trails/<rev>/_config/<c>/ to <confdir>/<c> (fresh each start) so the container sees the
 * revision's config overlay as the top lower layer. Regular files, dirs and symlinks only. */
static int copy_tree(const char *from, const char *to)
{
	DIR *d = opendir(from);
	struct dirent *de;
	int r = 0;
	if (!d)
		return -errno;
	pv_mkdir_p(to, 0755);
	while (r == 0 && (de = readdir(d))) {
		char s[4096], t[4096];
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(s, sizeof(s), "%s/%s", from, de->d_name);
		snprintf(t, sizeof(t), "%s/%s", to, de->d_name);
		if (stat(s, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			r = copy_tree(s, t);
		} else if (S_ISREG(st.st_mode)) {
			char *buf = NULL;
			size_t len = 0;
			r = pv_file_read_all(s, 64u * 1024 * 1024, &buf, &len, NULL);
			if (r == 0)
				r = pv_file_write_atomic(t, buf, len, st.st_mode & 07777, NULL);
			free(buf);
		}
	}
	closedir(d);
	return r;
}

static int stage_config(struct pv_ctr *c, struct pv_error *err)
{
	char from[4096], to[4096];
	struct stat st;
	snprintf(from, sizeof(from), "%s/trails/%s/_config/%s", c->e->storage, c->e->rev,
		 c->spec->name);
	snprintf(to, sizeof(to), "%s/%s", c->e->confdir, c->spec->name);
	pv_remove_tree(to);
	if (stat(from, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	int r = copy_tree(from, to);
	if (r < 0)
		return pv_error_set(err, r, "container %s: copy %s to %s: %s", c->spec->name, from,
				    to, strerror(-r));
	return 0;
}

/* An lxc.mount.entry value is an fstab line: a space, tab, newline or backslash in a path is
 * written as its octal escape (liblxc reads entries with getmntent, which decodes them), else
 * "/a b/logs dst" would mount "/a" on "b/logs". NULL if it does not fit. */
static const char *fstab_path(const char *in, char *out, size_t n)
{
	size_t o = 0;
	for (; *in; in++) {
		if (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\\') {
			if (o + 4 >= n)
				return NULL;
			o += (size_t)snprintf(out + o, n - o, "\\%03o", (unsigned char)*in);
		} else {
			if (o + 1 >= n)
				return NULL;
			out[o++] = *in;
		}
	}
	out[o] = '\0';
	return out;
}

static bool set_item(struct lxc_container *lc, const char *key, const char *val,
		     struct pv_error *err, const char *name)
{
	if (lc->set_config_item(lc, key, val))
		return true;
	pv_error_set(err, -EINVAL, "container %s: lxc config %s = %s rejected", name, key, val);
	return false;
}

/* lxc.mount.entry "<src> <rest>" with src escaped as an fstab field. */
static bool add_mount(struct lxc_container *lc, const char *src, const char *rest,
		      struct pv_error *err, const char *name)
{
	char esc[4 * 4096 + 1], line[sizeof(esc) + 256];
	if (!fstab_path(src, esc, sizeof(esc)) ||
	    snprintf(line, sizeof(line), "%s %s", esc, rest) >= (int)sizeof(line)) {
		pv_error_set(err, -ENAMETOOLONG, "container %s: mount source %s: path too long",
			     name, src);
		return false;
	}
	return set_item(lc, "lxc.mount.entry", line, err, name);
}

/* The overrides of spec §5.3 (rootfs, uts, logs, /pantavisor binds per role, env). */
static int apply_overrides(struct pv_ctr *c, struct lxc_container *lc, struct pv_error *err)
{
	struct pv_engine *e = c->e;
	const char *name = c->spec->name;
	char buf[8192];
	char *ldir = pv_log_lxc_dir(e->logdir, e->rev, name);
	char *rootfs = pv_volumes_rootfs(c);
	bool ok = ldir && rootfs;

	if (ok)
		ok = set_item(lc, "lxc.rootfs.path", rootfs, err, name);
	char uts[256] = "";
	if (ok && lc->get_config_item(lc, "lxc.uts.name", uts, sizeof(uts)) <= 0)
		ok = set_item(lc, "lxc.uts.name", name, err, name);
	if (ok) {
		snprintf(buf, sizeof(buf), "%s/console.log", ldir);
		ok = set_item(lc, "lxc.console.logfile", buf, err, name);
	}
	if (ok) {
		snprintf(buf, sizeof(buf), "%s/lxc.log", ldir);
		ok = set_item(lc, "lxc.log.file", buf, err, name);
	}
	if (ok)
		ok = set_item(lc, "lxc.log.level",
			      pv_config_get(e->cfg, "PV_LXC_LOG_LEVEL")
				  ? pv_config_get(e->cfg, "PV_LXC_LOG_LEVEL")
				  : "INFO",
			      err, name);
	if (ok && (c->spec->roles & PV_ROLE_MGMT)) {
		ok = add_mount(lc, e->rundir, "pantavisor none bind,ro,create=dir 0 0", err, name);
	} else if (ok) {
		/* a directory, not the socket file: a respawned pv-ctrl stays reachable (the
		 * engine re-links its new socket inode into this dir, see ctrlsock.c) */
		char *cdir = pv_ctrlsock_dir(e, name);
		ok = cdir != NULL;
		if (ok) {
			ok = add_mount(lc, cdir, "pantavisor none bind,ro,create=dir 0 0", err,
				       name);
		}
		free(cdir);
		if (ok) {
			snprintf(buf, sizeof(buf), "%s/%s/%s", e->logdir, e->rev, name);
			pv_mkdir_p(buf, 0755);
			ok = add_mount(lc, buf,
				       "pantavisor/logs none bind,ro,create=dir,optional 0 0", err,
				       name);
		}
		/* its own metadata view: keys "<c>.<k>" of the user/device metadata as <k>
		 * (ops_meta.c keeps <rundir>/{user,device}-meta.<c>/ current) */
		for (int k = 0; ok && k < 2; k++) {
			const char *kind = k ? "device-meta" : "user-meta";
			char rest[128];
			snprintf(buf, sizeof(buf), "%s/%s.%s", e->rundir, kind, name);
			pv_mkdir_p(buf, 0755);
			snprintf(rest, sizeof(rest),
				 "pantavisor/%s none bind,ro,create=dir,optional 0 0", kind);
			ok = add_mount(lc, buf, rest, err, name);
		}
	}
	if (ok) {
		snprintf(buf, sizeof(buf), "container=pv-%s",
			 c->spec->group ? c->spec->group : "root");
		ok = set_item(lc, "lxc.environment", buf, err, name);
	}
	free(ldir);
	free(rootfs);
	if (!ok && err && err->count == 0)
		pv_error_set(err, -ENOMEM, "container %s: out of memory", name);
	return ok ? 0 : -EINVAL;
}

/* Why liblxc failed, from what it wrote to lxc.log during this start (from offset `from`):
 * the "Failed to exec" line when there is one (it names the init), else the first ERROR line that
 * is not about an optional mount, so the engine's own log line is enough to act on. */
static void lxc_log_reason(struct pv_engine *e, const char *name, long from, char *out, size_t n)
{
	char path[4096], *buf = NULL;
	size_t len = 0;
	snprintf(out, n, "no reason in lxc.log");
	snprintf(path, sizeof(path), "%s/%s/%s/lxc/lxc.log", e->logdir, e->rev, name);
	if (pv_file_read_all(path, 16u * 1024 * 1024, &buf, &len, NULL) < 0)
		return;
	const char *pick = NULL;
	for (char *line = buf + ((size_t)from <= len ? (size_t)from : len); *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (strstr(line, " ERROR ")) {
			if (strstr(line, "Failed to exec")) {
				pick = line;
				break;
			}
			if (!pick && !strstr(line, "safe_mount"))
				pick = line;
		}
		if (!end)
			break;
		line = end + 1;
	}
	if (pick) {
		const char *msg = strstr(pick, ".c:");
		msg = msg ? strstr(msg, " - ") : NULL;
		snprintf(out, n, "%s", msg ? msg + 3 : pick);
	}
	free(buf);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* What the start helper reports through its pipe. */
struct start_result {
	int pid; /* init pid, <= 0 on failure */
	char msg[1024];
};

/* Runs in the forked helper: liblxc's daemonized start blocks (it waits for RUNNING), so it must
 * not run on the engine's loop. Only liblxc and plain writes here; the helper _exits. */
static void helper_run(struct pv_ctr *c, const char *conf, long log_from, int fd)
{
	struct pv_engine *e = c->e;
	const char *name = c->spec->name;
	struct pv_error err = PV_ERROR_INIT;
	struct start_result res;
	memset(&res, 0, sizeof(res));

	struct lxc_container *lc = lxc_get(c);
	if (!lc) {
		pv_error_set(&err, -ENOMEM, "container %s: liblxc: cannot create handle in %s",
			     name, e->lxcpath);
		goto out;
	}
	/* A previous run's monitor may still be tearing down (restart right after an exit). */
	if (lc->is_running(lc))
		lc->wait(lc, "STOPPED", 3);
	lc->clear_config(lc);
	if (!lc->load_config(lc, conf)) {
		pv_error_set(&err, -EINVAL, "container %s: liblxc cannot load %s", name, conf);
		goto out;
	}
	if (apply_overrides(c, lc, &err) < 0)
		goto out;
	lc->want_daemonize(lc, true);
	lc->want_close_all_fds(lc, true);
	if (!lc->start(lc, 0, NULL) || lc->init_pid(lc) <= 0) {
		char why[512];
		lxc_log_reason(e, name, log_from, why, sizeof(why));
		pv_error_set(&err, -ECHILD, "container %s: start failed: %s (%s/%s/%s/lxc/lxc.log)",
			     name, why, e->logdir, e->rev, name);
		goto out;
	}
	res.pid = lc->init_pid(lc);
out:
	if (res.pid <= 0)
		snprintf(res.msg, sizeof(res.msg), "%s", pv_error_msg(&err));
	if (write(fd, &res, sizeof(res)) < 0) {
		/* the engine sees EOF and reports the start as failed */
	}
	_exit(0);
}

static void helper_close_cb(uv_handle_t *h)
{
	free(h);
}

static void start_failed(struct pv_ctr *c, const char *msg)
{
	pv_log(PV_LOG_ERROR, "container", "%s", msg);
	c->pid = 0;
	/* handled like an exit: recovery or failure per policy */
	pv_recovery_on_exit(c);
}

static void start_done_cb(uv_poll_t *p, int status, int events)
{
	struct pv_ctr *c = p->data;
	struct pv_engine *e = c->e;
	struct start_result res;
	memset(&res, 0, sizeof(res));
	ssize_t n = read(c->helper_fd, &res, sizeof(res));
	uv_poll_stop(p);
	uv_close((uv_handle_t *)p, helper_close_cb);
	c->helper_poll = NULL;
	close(c->helper_fd);
	c->helper_fd = -1;
	waitpid(c->helper_pid, NULL, 0); /* it _exits right after writing */
	c->helper_pid = 0;

	if (n != (ssize_t)sizeof(res) || res.pid <= 0) {
		char msg[1200];
		snprintf(msg, sizeof(msg), "%s",
			 n == (ssize_t)sizeof(res) && res.msg[0]
			     ? res.msg
			     : "start helper died without a result");
		if (n != (ssize_t)sizeof(res) || !res.msg[0])
			snprintf(msg, sizeof(msg),
				 "container %s: start helper died without a result", c->spec->name);
		start_failed(c, msg);
		pv_engine_wake(e);
		return;
	}
	c->pid = res.pid;
	if (pv_watch_start(c) < 0) {
		char msg[512];
		snprintf(msg, sizeof(msg),
			 "container %s: init %d exited at once (see %s/%s/%s/lxc)", c->spec->name,
			 res.pid, e->logdir, e->rev, c->spec->name);
		start_failed(c, msg);
		pv_engine_wake(e);
		return;
	}
	pv_log(PV_LOG_INFO, "container", "%s: started, init pid %d", c->spec->name, c->pid);
	pv_container_set_status(c, PV_CS_STARTED);
	if (c->ready_pending && c->spec->status_goal == PV_GOAL_READY)
		pv_container_set_status(c, PV_CS_READY);
	c->ready_pending = false;
	if (e->shutting_down || c->stop_requested)
		pv_container_stop(c);
	pv_engine_wake(e);
}

int pv_container_start(struct pv_ctr *c, struct pv_error *err)
{
	struct pv_engine *e = c->e;
	const char *name = c->spec->name;
	char conf[4096], lpath[4200];
	int fds[2], r;

	snprintf(conf, sizeof(conf), "%s/trails/%s/%s/%s", e->storage, e->rev, name,
		 c->spec->config);
	if (access(conf, R_OK) < 0)
		return pv_error_set(err, -errno, "container %s: lxc config %s: %s", name, conf,
				    strerror(errno));
	r = stage_config(c, err);
	if (r < 0)
		return r;
	char *ldir = pv_log_lxc_dir(e->logdir, e->rev, name); /* created before the fork */
	free(ldir);
	snprintf(lpath, sizeof(lpath), "%s/%s/%s/lxc/lxc.log", e->logdir, e->rev, name);
	long log_from = file_size(lpath);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return pv_error_set(err, -errno, "container %s: pipe: %s", name, strerror(errno));
	uv_poll_t *p = calloc(1, sizeof(*p));
	if (!p || uv_poll_init(e->loop, p, fds[0]) < 0) {
		free(p);
		close(fds[0]);
		close(fds[1]);
		return pv_error_set(err, -ENOMEM, "container %s: cannot watch start helper", name);
	}
	c->stop_requested = false;
	c->api_stop = c->api_restart = false; /* whatever asked for a stop is done with */
	c->ready_pending = false;
	c->start_ms = pv_now_ms();
	if (!c->first_start_ms)
		c->first_start_ms = c->start_ms;
	pv_container_set_status(c, PV_CS_STARTING);
	pv_stopmark_forget(c);
	pid_t h = fork();
	if (h < 0) {
		r = -errno;
		uv_close((uv_handle_t *)p, helper_close_cb);
		close(fds[0]);
		close(fds[1]);
		return pv_error_set(err, r, "container %s: fork start helper: %s", name,
				    strerror(-r));
	}
	if (h == 0) {
		close(fds[0]);
		helper_run(c, conf, log_from, fds[1]);
	}
	close(fds[1]);
	p->data = c;
	c->helper_pid = h;
	c->helper_fd = fds[0];
	c->helper_poll = p;
	uv_poll_start(p, UV_READABLE | UV_DISCONNECT, start_done_cb);
	return 0;
}

static void stop_grace_cb(uv_timer_t *t)
{
	struct pv_ctr *c = t->data;
	if (c->status != PV_CS_STOPPING || c->pid <= 0)
		return;
	pv_log(PV_LOG_WARN, "container", "%s: still running after %d ms, killing", c->spec->name,
	       PV_STOP_GRACE_MS);
	/* SIGKILL to the namespace's init ends the container; liblxc's monitor cleans up. No
	 * lxc stop() here: it waits for the monitor, and the loop must not wait. */
	kill(c->pid, SIGKILL);
}

void pv_container_stop(struct pv_ctr *c)
{
	c->stop_requested = true;
	if (c->pid <= 0)
		return;
	pv_container_set_status(c, PV_CS_STOPPING);
	struct lxc_container *lc = lxc_get(c);
	if (lc) {
		/* timeout 0: send the halt signal and return; the pidfd tells us when it is gone */
		lc->shutdown(lc, 0);
		lxc_container_put(lc);
	}
	/* PID 1 of a namespace ignores signals it has no handler for; SIGTERM helps shells. */
	kill(c->pid, SIGTERM);
	pv_container_arm_stop_grace(c);
}

void pv_container_arm_stop_grace(struct pv_ctr *c)
{
	uv_timer_start(&c->timer, stop_grace_cb, PV_STOP_GRACE_MS, 0);
}

bool pv_container_adopt(struct pv_ctr *c)
{
	struct lxc_container *lc = lxc_get(c);
	bool ok = false;
	if (!lc)
		return false;
	if (lc->is_running(lc) && lc->init_pid(lc) > 0) {
		c->pid = lc->init_pid(lc);
		if (pv_watch_start(c) == 0) {
			pv_volumes_adopt(c);
			c->adopted = true;
			c->start_ms = pv_now_ms();
			/* at its goal since before we came: stable_timeout counts from now (0 would
			 * mean "not at its goal" and hold every commit) */
			c->goal_ms = c->start_ms;
			/* a re-adopted container had reached its goal before the engine died */
			c->status =
			    c->spec->status_goal == PV_GOAL_READY ? PV_CS_READY : PV_CS_STARTED;
			pv_log(PV_LOG_INFO, "container", "%s: re-adopted running init pid %d as %s",
			       c->spec->name, c->pid, pv_cstatus_str(c->status));
			ok = true;
		} else {
			c->pid = 0;
		}
	}
	lxc_container_put(lc);
	return ok;
}

int pv_container_action(struct pv_ctr *c, const char *action, const char **why)
{
	bool stop = !strcmp(action, "stop"), start = !strcmp(action, "start"),
	     restart = !strcmp(action, "restart");
	/* upstream: only restart_policy container can be controlled through the API (checked
	 * before the action, as upstream) */
	if (c->spec->restart_policy != PV_RESTART_CONTAINER) {
		*why = "container has restart_policy system";
		return 403;
	}
	if (!stop && !start && !restart) {
		*why = "action is not start, stop or restart";
		return 400;
	}
	if (c->e->shutting_down || c->e->failing) {
		*why = "engine is stopping";
		return 409;
	}
	bool running = c->pid > 0 || c->helper_pid > 0;
	pv_log(PV_LOG_INFO, "container", "%s: API %s (%s)", c->spec->name, action,
	       pv_cstatus_str(c->status));
	if (pv_update_claims(c)) {
		*why = "container is being stopped by an update";
		return 409;
	}
	if (running && c->stop_requested) {
		/* already stopping: the last action says what happens once it is gone (a start
		 * then is a restart); the grace timer already runs and is not re-armed */
		c->api_stop = stop;
		c->api_restart = !stop;
		return 0;
	}
	if (running && (stop || restart)) {
		c->api_stop = stop;
		c->api_restart = restart;
		c->stop_requested = true;
		if (c->pid > 0)
			pv_container_stop(c);
		/* a start in flight is stopped when its helper reports (stop_requested) */
		return 0;
	}
	if (running) /* start of a running container */
		return 0;
	if (stop) {
		/* not running: waiting to retry, or not started yet (installed, blocked by an
		 * earlier group, or mounted only): it stays stopped until started again */
		uv_timer_stop(&c->timer);
		if (c->n_mounts)
			pv_volumes_umount(c);
		if (c->status != PV_CS_STOPPED)
			pv_container_set_status(c, PV_CS_STOPPED);
		c->user_stopped = true;
		pv_stopmark_note(c);
		pv_engine_wake(c->e); /* a later group may no longer wait for it */
		return 0;
	}
	/* start / restart of a stopped (or recovering, or blocked) container */
	uv_timer_stop(&c->timer);
	c->user_stopped = c->recovery_failed = false;
	c->retries = 0;
	c->first_start_ms = 0;
	if (c->status == PV_CS_STOPPED || c->status == PV_CS_RECOVERING)
		pv_container_set_status(c, PV_CS_INSTALLED);
	pv_stopmark_note(c);
	pv_engine_wake(c->e);
	return 0;
}
