/* main.c: pv-engine's arguments, configuration, boot of the revision (with fallback), the libuv
 * loop (scheduler wake-ups, signals) and the ordered stop on SIGTERM or failure. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lxc/lxccontainer.h>

#include "bootenv.h"
#include "engine.h"
#include "initctl.h"
#include "pvstate/fileio.h"

extern char **environ;

uint64_t pv_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pv-engine --mode appengine|embedded --rundir DIR --storage DIR\n"
		   "                 [--config FILE] [--cmdline \"pv_rev=.. pv_try=..\"]\n");
}

static char *cfg_path(struct pv_config *cfg, const char *key, const char *def)
{
	const char *v = pv_config_get(cfg, key);
	return strdup(v && *v ? v : def);
}

/* Size with an optional K/M/G suffix (binary), as PV_LOG_DIR_MAXSIZE is written. */
static long parse_size(const char *s, long def)
{
	char *end;
	if (!s || !*s)
		return def;
	double v = strtod(s, &end);
	if (end == s || v <= 0)
		return def;
	switch (*end) {
	case 'K':
	case 'k':
		v *= 1024;
		break;
	case 'M':
	case 'm':
		v *= 1024 * 1024;
		break;
	case 'G':
	case 'g':
		v *= 1024.0 * 1024 * 1024;
		break;
	default:
		break;
	}
	return (long)v;
}

/* PV_LOG_LEVEL's code default is FATAL only; the engine's file keeps INFO unless configured. */
static int log_level(struct pv_engine *e)
{
	if (pv_config_get_level(e->cfg, "PV_LOG_LEVEL") == PV_CFG_DEFAULT)
		return PV_LOG_INFO;
	return pv_config_get_int(e->cfg, "PV_LOG_LEVEL", PV_LOG_INFO);
}

static void all_stopped_check(struct pv_engine *e)
{
	if (!e->shutting_down)
		return;
	for (size_t i = 0; i < e->n_ctrs; i++)
		if (e->ctrs[i].pid > 0 || e->ctrs[i].helper_pid > 0)
			return;
	for (size_t i = 0; i < e->n_ctrs; i++)
		pv_volumes_umount(&e->ctrs[i]);
	pv_log(PV_LOG_INFO, "engine", "all containers stopped, volumes unmounted; exiting %d",
	       e->exit_code);
	uv_stop(e->loop);
}

static void wake_cb(uv_timer_t *t)
{
	struct pv_engine *e = t->data;
	pv_group_run(e);
	pv_update_tick(e);
	all_stopped_check(e);
}

void pv_engine_wake(struct pv_engine *e)
{
	if (!uv_is_active((uv_handle_t *)&e->wake))
		uv_timer_start(&e->wake, wake_cb, 0, 0);
}

static void shutdown_begin(struct pv_engine *e, int exit_code)
{
	if (e->shutting_down)
		return;
	e->shutting_down = true;
	e->exit_code = exit_code;
	pv_log(PV_LOG_INFO, "engine", "stopping all containers");
	for (size_t i = e->n_ctrs; i-- > 0;) {
		struct pv_ctr *c = &e->ctrs[i];
		uv_timer_stop(&c->timer);
		if (c->pid > 0)
			pv_container_stop(c);
	}
	pv_engine_wake(e);
}

void pv_engine_shutdown(struct pv_engine *e, int exit_code)
{
	shutdown_begin(e, exit_code);
}

static void reboot(struct pv_engine *e, const char *why, enum pv_log_level lvl)
{
	if (e->failing || e->shutting_down)
		return;
	e->failing = true;
	pv_log(lvl, "engine", "%s: rebooting", why);
	if (e->initctl_fd >= 0) {
		int r = pv_initctl_request(e->initctl_fd, PV_INITCTL_REBOOT, NULL);
		if (r == 0)
			return; /* init stops us (SIGTERM) as part of its ordered shutdown */
		pv_log(PV_LOG_ERROR, "engine", "initctl REBOOT: %s; exiting for init instead",
		       strerror(-r));
	}
	shutdown_begin(e, PV_ENGINE_EXIT_REBOOT);
}

void pv_engine_fail(struct pv_engine *e, const char *why)
{
	reboot(e, why, PV_LOG_ERROR);
}

void pv_engine_reboot(struct pv_engine *e, const char *why)
{
	reboot(e, why, PV_LOG_INFO);
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct pv_engine *e = s->data;
	pv_log(PV_LOG_INFO, "engine", "signal %d: ordered stop", signum);
	shutdown_begin(e, 0);
}

static void tick_cb(uv_timer_t *t)
{
	/* group timeouts are time-driven: re-evaluate blocked groups once a second */
	pv_group_run(t->data);
	pv_update_tick(t->data); /* goal timeouts of an update in flight */
	pv_gc_auto_tick(t->data);
	/* fallback for a missed watch event: a respawned pv-ctrl is reachable within a second */
	pv_ctrlsock_refresh(t->data);
}

static int load_config(struct pv_engine *e, const char *file, const char *cmdline)
{
	struct pv_error err = PV_ERROR_INIT;
	e->cfg = pv_config_new();
	if (!e->cfg)
		return -ENOMEM;
	pv_config_load_layers(e->cfg, file, cmdline, environ, &err);
	for (size_t i = 0; i < err.count; i++)
		fprintf(stderr, "pv-engine: config %s: %s\n", file, err.msgs[i]);
	pv_error_clear(&err);
	return 0;
}

/* The value of the cmdline word `key=value` (last one wins), "" when absent. */
static void cmdline_word(const char *c, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	out[0] = '\0';
	for (const char *p = c; *p;) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		size_t wl = strcspn(p, " \t\n");
		if (wl > kl && !strncmp(p, key, kl) && p[kl] == '=') {
			size_t vl = wl - kl - 1 < n - 1 ? wl - kl - 1 : n - 1;
			memcpy(out, p + kl + 1, vl);
			out[vl] = '\0';
		}
		p += wl;
	}
}

/* pv_rev/pv_try as pv_storage_boot_revision reads them ("pv_rev=<committed> [pv_try=<rev to
 * try>]"), from the cmdline the bootloader passed, else from its environment. */
static void boot_words(struct pv_engine *e, char *out, size_t n)
{
	const char *c = e->cmdline ? e->cmdline : "";
	struct pv_bootenv b;
	char rev[128] = "", try[128] = "";
	const char *type = NULL;
	if (pv_config_get_level(e->cfg, "PV_BOOTLOADER_TYPE") != PV_CFG_DEFAULT)
		type = pv_config_get(e->cfg, "PV_BOOTLOADER_TYPE");
	bool have_env = pv_bootenv_open(&b, e->storage, type, e->appengine, NULL) == 0;
	if (have_env) {
		pv_bootenv_get(&b, "pv_rev", rev, sizeof(rev), NULL);
		pv_bootenv_get(&b, "pv_try", try, sizeof(try), NULL);
	}
	if (!strstr(c, "pv_rev=") && !strstr(c, "pv_try=")) {
		snprintf(out, n, "pv_rev=%s pv_try=%s", rev, try);
		return;
	}
	if (!have_env || b.type == PV_BOOTENV_APPENGINE) {
		/* pv-appengine passes the committed pv_rev, plus pv_try only on the one boot that
		 * tries it */
		snprintf(out, n, "%s", c);
		return;
	}
	/* U-Boot and GRUB scripts pass pv_rev=<the revision they booted> and pv_try as the env
	 * holds it (spec §4.3): a try boot has both equal; on the fallback boot after a try
	 * pv_try is still set but the booted revision is the committed one, which must run */
	char booted[128], ctry[128];
	cmdline_word(c, "pv_rev", booted, sizeof(booted));
	cmdline_word(c, "pv_try", ctry, sizeof(ctry));
	if (ctry[0] && !strcmp(ctry, booted))
		snprintf(out, n, "pv_rev=%s pv_try=%s", rev, ctry);
	else
		snprintf(out, n, "pv_rev=%s", booted);
}

/* Boots rev; on failure logs every error and tries the fallback; none left = error state. After
 * an engine crash in the same boot the revision that was running (a hot update's) is loaded. */
static bool boot(struct pv_engine *e)
{
	char rev[128], fallback[128], words[600], running[128];
	struct pv_error err = PV_ERROR_INIT;

	boot_words(e, words, sizeof(words));
	pv_storage_boot_revision(e->storage, words, rev, sizeof(rev), fallback, sizeof(fallback));
	snprintf(e->booted, sizeof(e->booted), "%s", rev);
	snprintf(e->rev, sizeof(e->rev), "%s", rev);
	snprintf(e->fallback, sizeof(e->fallback), "%s", fallback);
	bool same = pv_update_session_begin(e);
	e->log_rotate = parse_size(pv_config_get(e->cfg, "PV_LOG_DIR_MAXSIZE"), 10L << 20) / 4 / 5;
	e->log_level = log_level(e);
	if (same && pv_update_running_rev(e, running, sizeof(running))) {
		pv_log_open(e->logdir, running, e->log_rotate, e->log_level);
		pv_log(PV_LOG_WARN, "engine",
		       "restarted in the same boot: revision %s was running (booted %s)", running,
		       rev);
		if (pv_revision_load(e, running, &err) == 0)
			goto loaded;
		pv_log_error(PV_LOG_ERROR, "revision", &err);
		pv_error_clear(&err);
	}
	pv_log_open(e->logdir, rev, e->log_rotate, e->log_level);
	pv_log(PV_LOG_INFO, "engine", "pv-engine %s mode, storage %s, booting revision %s%s%s",
	       e->appengine ? "appengine" : "embedded", e->storage, rev,
	       fallback[0] ? ", fallback " : "", fallback);

	if (pv_revision_load(e, rev, &err) < 0) {
		bool bad_format = e->load_bad_format;
		pv_log(PV_LOG_ERROR, "revision",
		       "revision %s is invalid; no container started:", rev);
		pv_log_error(PV_LOG_ERROR, "revision", &err);
		pv_error_clear(&err);
		if (!fallback[0]) {
			snprintf(e->error, sizeof(e->error),
				 "revision %s failed validation and there is no revision to fall "
				 "back to",
				 rev);
			pv_log(PV_LOG_ERROR, "engine", "%s: staying up with no containers",
			       e->error);
			return same;
		}
		pv_log(PV_LOG_WARN, "revision", "falling back to revision %s", fallback);
		pv_log_open(e->logdir, fallback, e->log_rotate, e->log_level);
		e->fallback[0] = '\0';
		if (pv_revision_load(e, fallback, &err) < 0) {
			pv_log_error(PV_LOG_ERROR, "revision", &err);
			pv_error_clear(&err);
			snprintf(e->error, sizeof(e->error),
				 "revisions %s and %s both failed validation", rev, fallback);
			pv_log(PV_LOG_ERROR, "engine", "%s: staying up with no containers",
			       e->error);
			return same;
		}
		snprintf(e->fallback, sizeof(e->fallback), "%s", fallback);
		/* the try revision is marked failed and pv_try cleared: it is not tried again */
		pv_update_try_failed(e, rev, bad_format);
	}
loaded:
	if (pv_storage_set_current(e->storage, e->rev, &err) < 0)
		pv_log_error(PV_LOG_WARN, "storage", &err);
	pv_error_clear(&err);
	pv_log(PV_LOG_INFO, "revision", "revision %s loaded: %zu containers, %zu groups", e->rev,
	       e->n_ctrs, e->state.n_groups);
	return same;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* What main allocated, whether the loop ran or not. */
static void free_engine(struct pv_engine *e)
{
	pv_update_free(e);
	if (e->have_state)
		pv_state_free(&e->state);
	free(e->ctrs);
	free(e->graph_links);
	pv_graph_free(&e->link_status);
	pv_config_free(e->cfg);
	free(e->rundir);
	free(e->storage);
	free(e->socket_path);
	free(e->lxcpath);
	free(e->logdir);
	free(e->voldir);
	free(e->confdir);
	free(e->cmdline);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"mode", required_argument, NULL, 'm'},
					     {"rundir", required_argument, NULL, 'r'},
					     {"storage", required_argument, NULL, 's'},
					     {"config", required_argument, NULL, 'c'},
					     {"cmdline", required_argument, NULL, 'k'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct pv_engine eng;
	struct pv_engine *e = &eng;
	const char *mode = NULL, *config = NULL;
	char *rundir = NULL, *storage = NULL;
	int o;

	memset(e, 0, sizeof(*e));
	while ((o = getopt_long(argc, argv, "m:r:s:c:k:h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			mode = optarg;
			break;
		case 'r':
			rundir = optarg;
			break;
		case 's':
			storage = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'k':
			e->cmdline = strdup(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			free_engine(e);
			return 2;
		}
	}
	if (!mode || !rundir || !storage ||
	    (strcmp(mode, "appengine") != 0 && strcmp(mode, "embedded") != 0)) {
		usage(stderr);
		free_engine(e);
		return 2;
	}
	e->appengine = !strcmp(mode, "appengine");
	if (load_config(e, config, e->cmdline) < 0) {
		free_engine(e);
		return 1;
	}
	e->rundir = strdup(rundir);
	e->storage = strdup(storage);
	e->socket_path = pv_config_engine_socket(e->cfg, rundir);
	e->lxcpath = cfg_path(e->cfg, "PV_LXC_PATH", "/var/lib/lxc");
	char def[4096];
	snprintf(def, sizeof(def), "%s/logs", storage);
	/* the log tree belongs to the storage we were given unless configured explicitly */
	if (pv_config_get_level(e->cfg, "PV_LOG_DIR") == PV_CFG_DEFAULT)
		e->logdir = strdup(def);
	else
		e->logdir = cfg_path(e->cfg, "PV_LOG_DIR", def);
	e->voldir = cfg_path(e->cfg, "PV_DISK_VOLDIR", "/volumes");
	e->confdir = cfg_path(e->cfg, "PV_SYSTEM_CONFDIR", "/configs");
	/* a container's rootfs is "overlayfs:<lower>:<upper>" below these dirs, and liblxc
	 * splits that on ':' and its overlay mount options on ',': name the key now rather than
	 * fail every container start with a mount error */
	const char *dirs[][2] = {{"PV_DISK_VOLDIR", e->voldir}, {"PV_SYSTEM_CONFDIR", e->confdir}};
	for (size_t i = 0; i < 2; i++)
		if (strpbrk(dirs[i][1], ":,")) {
			pv_log(PV_LOG_ERROR, "config",
			       "%s: `%s` has a ':' or ',', which liblxc's "
			       "overlayfs rootfs cannot carry: choose another directory",
			       dirs[i][0], dirs[i][1]);
			free_engine(e);
			return 1;
		}
	e->initctl_fd = pv_initctl_present(PV_INITCTL_FD) ? PV_INITCTL_FD : -1;
	if (e->initctl_fd >= 0) {
		/* init gone = the device rebooted (appengine relaunches init, which starts a new
		 * engine): this engine must not keep writing the same storage next to the new one.
		 * SIGKILL, as a power cut would: the next engine recovers from there. */
		pid_t parent = getppid();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
	}
	pv_mkdir_p(e->rundir, 0755);
	pv_mkdir_p(e->lxcpath, 0755);
	pv_mkdir_p(e->voldir, 0755);
	pv_mkdir_p(e->confdir, 0755);

	e->loop = uv_default_loop();
	uv_timer_init(e->loop, &e->wake);
	uv_timer_init(e->loop, &e->tick);
	e->wake.data = e->tick.data = e;
	uv_signal_init(e->loop, &e->sigterm);
	uv_signal_init(e->loop, &e->sigint);
	e->sigterm.data = e->sigint.data = e;
	uv_signal_start(&e->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&e->sigint, signal_cb, SIGINT);

	bool same_session = boot(e);
	if (!same_session)
		pv_stopmark_clear_all(e);
	for (size_t i = 0; i < e->n_ctrs; i++) {
		struct pv_ctr *c = &e->ctrs[i];
		/* engine restart: containers still running under the lxcpath are kept, the ones
		 * stopped on purpose stay stopped */
		if (!pv_container_adopt(c)) {
			pv_volumes_adopt(c); /* stale mounts of a dead container: clean first */
			pv_volumes_umount(c);
			if (same_session)
				pv_stopmark_restore(c);
		}
	}
	struct pv_error err = PV_ERROR_INIT;
	if (pv_ipc_start(e, &err) < 0) {
		pv_log_error(PV_LOG_ERROR, "ipc", &err);
		pv_error_clear(&err);
	}
	pv_meta_sync(e);
	pv_update_resume(e, same_session);
	pv_graph_update(e);
	if (pv_ctrlsock_watch(e) < 0)
		pv_log(PV_LOG_WARN, "ctrlsock",
		       "no run dir watch: pv-ctrl re-linked once a second");
	uv_timer_start(&e->tick, tick_cb, 1000, 1000);
	pv_engine_wake(e);

	uv_run(e->loop, UV_RUN_DEFAULT);

	pv_ipc_stop(e);
	/* an orderly exit: the next engine start is a new boot, not a crash recovery */
	pv_update_session_end(e);
	pv_stopmark_clear_all(e);
	for (size_t i = 0; i < e->n_ctrs; i++)
		pv_watch_stop(&e->ctrs[i]);
	/* close every handle and let their close callbacks free what they own */
	uv_walk(e->loop, close_walk_cb, NULL);
	uv_run(e->loop, UV_RUN_DEFAULT);
	uv_loop_close(e->loop);
	pv_log(PV_LOG_INFO, "engine", "exit %d", e->exit_code);
	pv_log_close();
	free_engine(e);
	return e->exit_code;
}
