/* init.c: pantavisor init, a supervisor like s6-svscan: mounts the basics when PID 1, runs
 * pv-engine, pv-ctrl and pv-xconnect, respawns them with backoff, reaps, shuts down in order. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "initctl.h"

#ifndef PV_LIBEXEC_DIR
#define PV_LIBEXEC_DIR "/usr/libexec/pantavisor"
#endif
#ifndef PV_DEFAULT_RUNDIR
#define PV_DEFAULT_RUNDIR "/run/pantavisor/pv"
#endif

#define BACKOFF_MIN_MS	   100
#define BACKOFF_MAX_MS	   5000
#define STABLE_RUN_MS	   30000
#define ENGINE_GRACE_MS	   60000 /* the engine stops every container before it exits */
#define DAEMON_GRACE_MS	   5000
#define APPENGINE_POWEROFF 3

enum action { ACT_NONE, ACT_REBOOT, ACT_POWEROFF };

struct daemon {
	const char *name;
	char path[4096];
	pid_t pid;
	bool respawn;
	bool missing; /* "not found" was logged; never spawned again unless started by initctl */
	bool engine;
	int backoff_ms;
	int64_t started_ms;
	int64_t next_start_ms; /* 0: nothing scheduled */
};

struct init {
	bool pid1;
	const char *mode;
	const char *rundir;
	const char *storage;
	const char *config;
	const char *cmdline;
	int sfd;
	int ctl_fd; /* init's end of the initctl socketpair of the running engine, or -1 */
	enum action action;
	struct daemon d[3];
	const char *mounted[8];
	int n_mounted;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Upstream's line format; wall-clock seconds like the engine's lines, so the two interleave. */
__attribute__((format(printf, 2, 3))) static void logi(const char *level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[pantavisor] %lld %s\t -- [init]: %s\n", (long long)time(NULL), level,
		msg);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Only the few keys init needs; the engine reads the whole configuration. A static buffer keeps
 * the returned strings alive for the life of the process. */
static void read_config(struct init *in, bool rundir_set, bool mode_set)
{
	static char rundir[4096], mode[32];
	char line[4352];
	FILE *f = fopen(in->config, "re");
	if (!f) {
		if (errno != ENOENT)
			logi("WARN", "config %s: %s", in->config, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *v;
		if (line[0] == '#' || !eq)
			continue;
		*eq = '\0';
		v = eq + 1;
		v[strcspn(v, "\r\n")] = '\0';
		if (!rundir_set && !strcmp(line, "PV_SYSTEM_RUNDIR") && *v) {
			snprintf(rundir, sizeof(rundir), "%s", v);
			in->rundir = rundir;
		} else if (!mode_set && !strcmp(line, "PV_SYSTEM_INIT_MODE") && *v) {
			snprintf(mode, sizeof(mode), "%s", v);
			in->mode = mode;
		}
	}
	fclose(f);
}

static void mount_one(struct init *in, const char *src, const char *dst, const char *type,
		      unsigned long flags, const char *data)
{
	mkdir_p(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0) {
		if (errno != EBUSY)
			logi("WARN", "mount %s on %s: %s", type, dst, strerror(errno));
		return;
	}
	if (in->n_mounted < (int)(sizeof(in->mounted) / sizeof(in->mounted[0])))
		in->mounted[in->n_mounted++] = dst;
}

static void mount_basics(struct init *in)
{
	mount_one(in, "proc", "/proc", "proc", MS_NODEV | MS_NOSUID | MS_NOEXEC, NULL);
	mount_one(in, "sysfs", "/sys", "sysfs", MS_NODEV | MS_NOSUID | MS_NOEXEC, NULL);
	mount_one(in, "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "size=10240k,mode=0755");
	mount_one(in, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620");
	mount_one(in, "tmpfs", "/run", "tmpfs", MS_NODEV | MS_NOSUID, "mode=0755");
}

static void unmount_basics(struct init *in)
{
	sync();
	while (in->n_mounted > 0) {
		const char *m = in->mounted[--in->n_mounted];
		if (umount2(m, 0) < 0 && umount2(m, MNT_DETACH) < 0)
			logi("WARN", "umount %s: %s", m, strerror(errno));
	}
}

static struct daemon *daemon_by_pid(struct init *in, pid_t pid)
{
	for (int i = 0; i < 3; i++)
		if (in->d[i].pid == pid)
			return &in->d[i];
	return NULL;
}

static struct daemon *daemon_by_name(struct init *in, const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(in->d[i].name, name))
			return &in->d[i];
	return NULL;
}

static void spawn(struct init *in, struct daemon *d)
{
	int sv[2] = {-1, -1};
	char *argv[16];
	int n = 0;
	sigset_t all;

	d->next_start_ms = 0;
	if (access(d->path, X_OK) < 0) {
		if (!d->missing)
			logi("WARN", "%s not found (%s): not started, not respawned", d->name,
			     d->path);
		d->missing = true;
		d->respawn = false;
		return;
	}
	d->missing = false;
	if (d->engine) {
		if (in->ctl_fd >= 0)
			close(in->ctl_fd);
		in->ctl_fd = -1;
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			logi("ERROR", "initctl socketpair: %s", strerror(errno));
			sv[0] = sv[1] = -1;
		}
	}
	argv[n++] = (char *)d->name;
	argv[n++] = "--mode";
	argv[n++] = (char *)in->mode;
	argv[n++] = "--rundir";
	argv[n++] = (char *)in->rundir;
	if (in->storage) {
		argv[n++] = "--storage";
		argv[n++] = (char *)in->storage;
	}
	argv[n++] = "--config";
	argv[n++] = (char *)in->config;
	if (in->cmdline) {
		argv[n++] = "--cmdline";
		argv[n++] = (char *)in->cmdline;
	}
	argv[n] = NULL;

	pid_t self = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		logi("ERROR", "fork %s: %s", d->name, strerror(errno));
		if (sv[0] >= 0) {
			close(sv[0]);
			close(sv[1]);
		}
		d->next_start_ms = now_ms() + d->backoff_ms;
		return;
	}
	if (pid == 0) {
		/* own process group: a terminal's Ctrl-C (sent to the foreground group) reaches
		 * init alone, which then stops the children in order; without this the engine,
		 * pv-ctrl, pv-xconnect and every container process got SIGINT at once and raced
		 * init's ordered shutdown (containers recovering while the engine stopped). */
		setpgid(0, 0);
		/* init killed (appengine: relaunched by pv-appengine) = a reboot: a daemon left
		 * running would serve next to the new init's one on the same socket and storage */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != self)
			_exit(1);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (sv[1] >= 0) {
			/* dup2 clears CLOEXEC on the copy; when it is already fd 3, clear it by
			 * hand */
			if (sv[1] == PV_INITCTL_FD)
				fcntl(sv[1], F_SETFD, 0);
			else if (dup2(sv[1], PV_INITCTL_FD) < 0)
				_exit(126);
		}
		execv(d->path, argv);
		fprintf(stderr, "exec %s: %s\n", d->path, strerror(errno));
		_exit(127);
	}
	if (sv[1] >= 0) {
		close(sv[1]);
		in->ctl_fd = sv[0];
	}
	d->pid = pid;
	d->started_ms = now_ms();
	logi("INFO", "started %s pid %d", d->name, (int)pid);
}

/* Exponential backoff from 100 ms to 5 s; a daemon that ran 30 s counts as healthy again. */
static void schedule_respawn(struct daemon *d)
{
	int64_t t = now_ms();
	if (t - d->started_ms >= STABLE_RUN_MS)
		d->backoff_ms = BACKOFF_MIN_MS;
	d->next_start_ms = t + d->backoff_ms;
	logi("INFO", "respawning %s in %d ms", d->name, d->backoff_ms);
	d->backoff_ms = d->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d->backoff_ms * 2;
}

static void describe_exit(const struct daemon *d, int st)
{
	if (WIFEXITED(st))
		logi("INFO", "%s (pid %d) exited with status %d", d->name, (int)d->pid,
		     WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		logi("WARN", "%s (pid %d) killed by signal %d", d->name, (int)d->pid, WTERMSIG(st));
}

/* Reap every zombie; returns how many daemons exited. Orphans re-parented to PID 1 are reaped
 * here too and otherwise ignored. */
static int reap(struct init *in, bool supervising)
{
	int st, n = 0;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct daemon *d = daemon_by_pid(in, pid);
		if (!d)
			continue;
		n++;
		describe_exit(d, st);
		d->pid = 0;
		if (d->engine && in->ctl_fd >= 0) {
			close(in->ctl_fd);
			in->ctl_fd = -1;
		}
		if (!supervising)
			continue;
		if (d->engine && WIFEXITED(st) && WEXITSTATUS(st) == PV_ENGINE_EXIT_REBOOT) {
			in->action = ACT_REBOOT;
		} else if (d->engine && WIFEXITED(st) &&
			   WEXITSTATUS(st) == PV_ENGINE_EXIT_POWEROFF) {
			in->action = ACT_POWEROFF;
		} else if (d->respawn) {
			schedule_respawn(d);
		}
	}
	return n;
}

static void initctl_handle(struct init *in)
{
	struct pv_initctl_req req;
	struct pv_initctl_reply rep;
	ssize_t r = recv(in->ctl_fd, &req, sizeof(req), MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		close(in->ctl_fd); /* the engine closed its end: wait for its exit */
		in->ctl_fd = -1;
		return;
	}
	if (r < 0)
		return;
	memset(&rep, 0, sizeof(rep));
	if (r != (ssize_t)sizeof(req)) {
		rep.status = -EINVAL;
		goto reply;
	}
	req.name[sizeof(req.name) - 1] = '\0';
	struct daemon *d = NULL;
	if (req.op == PV_INITCTL_DAEMON_START || req.op == PV_INITCTL_DAEMON_STOP) {
		d = daemon_by_name(in, req.name);
		if (!d) {
			rep.status = -ENOENT;
			goto reply;
		}
		if (d->engine) { /* the engine can't stop itself this way; it asks for REBOOT */
			rep.status = -EPERM;
			goto reply;
		}
	}
	switch (req.op) {
	case PV_INITCTL_REBOOT:
		logi("INFO", "reboot requested by the engine");
		in->action = ACT_REBOOT;
		break;
	case PV_INITCTL_POWEROFF:
		logi("INFO", "poweroff requested by the engine");
		in->action = ACT_POWEROFF;
		break;
	case PV_INITCTL_DAEMON_START:
		d->respawn = true;
		d->missing = false;
		d->backoff_ms = BACKOFF_MIN_MS;
		if (!d->pid)
			spawn(in, d);
		if (d->missing)
			rep.status = -ENOENT;
		break;
	case PV_INITCTL_DAEMON_STOP:
		d->respawn = false;
		d->next_start_ms = 0;
		if (d->pid)
			kill(d->pid, SIGTERM);
		logi("INFO", "stopping %s on request", d->name);
		break;
	case PV_INITCTL_DAEMON_LIST:
		for (int i = 0; i < 3 && i < PV_INITCTL_MAX_DAEMONS; i++) {
			snprintf(rep.daemons[i].name, sizeof(rep.daemons[i].name), "%s",
				 in->d[i].name);
			rep.daemons[i].pid = in->d[i].pid;
			rep.daemons[i].respawn = in->d[i].respawn;
			rep.n_daemons++;
		}
		break;
	default:
		rep.status = -EOPNOTSUPP;
	}
reply:
	if (in->ctl_fd >= 0 && send(in->ctl_fd, &rep, sizeof(rep), MSG_NOSIGNAL) < 0)
		logi("WARN", "initctl reply: %s", strerror(errno));
}

static void handle_signals(struct init *in)
{
	struct signalfd_siginfo si;
	while (read(in->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(in, true);
			break;
		case SIGTERM: /* upstream appengine: SIGTERM reboots so the wrapper relaunches */
			logi("INFO", "SIGTERM: reboot");
			in->action = ACT_REBOOT;
			break;
		case SIGINT:
			logi("INFO", "SIGINT: poweroff");
			in->action = ACT_POWEROFF;
			break;
		case SIGHUP:
			/* appengine: the terminal that ran us is gone; dying by the default action
			 * would leave the containers running with nobody to stop them. As PID 1 a
			 * hang-up means nothing. */
			if (!strcmp(in->mode, "appengine")) {
				logi("INFO", "SIGHUP: poweroff");
				in->action = ACT_POWEROFF;
			}
			break;
		default:
			break;
		}
	}
}

/* Signal one daemon and wait for its exit, reaping everything meanwhile; SIGKILL after grace. */
static void stop_daemon(struct init *in, struct daemon *d, int grace_ms)
{
	struct signalfd_siginfo si;
	d->respawn = false;
	d->next_start_ms = 0;
	if (!d->pid)
		return;
	logi("INFO", "stopping %s (pid %d)", d->name, (int)d->pid);
	kill(d->pid, SIGTERM);
	int64_t deadline = now_ms() + grace_ms;
	bool killed = false;
	while (d->pid) {
		int64_t left = deadline - now_ms();
		if (left <= 0 && !killed) {
			logi("WARN", "%s did not stop in %d ms: SIGKILL", d->name, grace_ms);
			kill(d->pid, SIGKILL);
			killed = true;
		}
		struct pollfd p = {.fd = in->sfd, .events = POLLIN};
		if (poll(&p, 1, killed ? 1000 : (int)(left < 1000 ? left : 1000)) > 0)
			while (read(in->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				;
		reap(in, false);
	}
}

static int shutdown_all(struct init *in)
{
	const char *what = in->action == ACT_POWEROFF ? "poweroff" : "reboot";
	logi("INFO", "shutting down for %s", what);
	if (in->ctl_fd >= 0) {
		close(in->ctl_fd);
		in->ctl_fd = -1;
	}
	stop_daemon(in, &in->d[0], ENGINE_GRACE_MS);
	stop_daemon(in, &in->d[2], DAEMON_GRACE_MS);
	stop_daemon(in, &in->d[1], DAEMON_GRACE_MS);
	unmount_basics(in);
	if (in->pid1) {
		sync();
		reboot(in->action == ACT_POWEROFF ? RB_POWER_OFF : RB_AUTOBOOT);
		logi("ERROR", "reboot: %s", strerror(errno));
		for (;;)
			pause();
	}
	logi("INFO", "%s: exit", what);
	return in->action == ACT_POWEROFF ? APPENGINE_POWEROFF : 0;
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: pantavisor [--mode embedded|appengine] [--rundir DIR] [--storage DIR]\n"
	    "                  [--config FILE] [--cmdline STRING] [pv_appengine|pv_embedded]\n");
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
	struct init in = {.mode = "embedded",
			  .rundir = PV_DEFAULT_RUNDIR,
			  .config = "/etc/pantavisor.config",
			  .sfd = -1,
			  .ctl_fd = -1};
	bool rundir_set = false, mode_set = false;
	const char *libexec = getenv("PV_LIBEXEC_DIR");
	sigset_t set;
	int o;

	in.pid1 = getpid() == 1;
	signal(SIGPIPE, SIG_IGN);
	if (in.pid1)
		mount_basics(&in);
	else /* orphans of our children come to us as they would to PID 1, so we reap them alike */
		prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	while ((o = getopt_long(argc, argv, "m:r:s:c:k:h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			in.mode = optarg;
			mode_set = true;
			break;
		case 'r':
			in.rundir = optarg;
			rundir_set = true;
			break;
		case 's':
			in.storage = optarg;
			break;
		case 'c':
			in.config = optarg;
			break;
		case 'k':
			in.cmdline = optarg;
			break;
		case 'h':
			usage();
			return 0;
		default:
			if (!in.pid1) {
				usage();
				return 2;
			}
		}
	}
	read_config(&in, rundir_set, mode_set);
	/* argv words win over the config, as upstream; the kernel hands unknown words to PID 1 */
	for (int i = optind; i < argc; i++) {
		if (!strcmp(argv[i], "pv_appengine"))
			in.mode = "appengine";
		else if (!strcmp(argv[i], "pv_embedded"))
			in.mode = "embedded";
	}
	if (strcmp(in.mode, "embedded") && strcmp(in.mode, "appengine")) {
		logi("ERROR", "unknown mode '%s' (embedded or appengine)", in.mode);
		return 2;
	}
	if (mkdir_p(in.rundir, 0755) < 0)
		logi("WARN", "run dir %s: %s", in.rundir, strerror(errno));

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	in.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (in.sfd < 0) {
		logi("ERROR", "signalfd: %s", strerror(errno));
		return 1;
	}

	static const char *const names[3] = {"pv-engine", "pv-ctrl", "pv-xconnect"};
	for (int i = 0; i < 3; i++) {
		struct daemon *d = &in.d[i];
		d->name = names[i];
		d->engine = i == 0;
		d->respawn = true;
		d->backoff_ms = BACKOFF_MIN_MS;
		snprintf(d->path, sizeof(d->path), "%s/%s", libexec ? libexec : PV_LIBEXEC_DIR,
			 d->name);
	}
	logi("INFO", "pantavisor init, mode %s, run dir %s%s", in.mode, in.rundir,
	     in.pid1 ? ", PID 1" : "");
	for (int i = 0; i < 3; i++)
		spawn(&in, &in.d[i]);

	while (in.action == ACT_NONE) {
		struct pollfd p[2] = {{.fd = in.sfd, .events = POLLIN},
				      {.fd = in.ctl_fd, .events = POLLIN}};
		int64_t next = -1, t = now_ms();
		for (int i = 0; i < 3; i++) {
			int64_t ns = in.d[i].next_start_ms;
			if (ns && (next < 0 || ns < next))
				next = ns;
		}
		int timeout = next < 0 ? -1 : (next <= t ? 0 : (int)(next - t));
		if (poll(p, in.ctl_fd >= 0 ? 2 : 1, timeout) < 0 && errno != EINTR) {
			logi("ERROR", "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			handle_signals(&in);
		if (in.ctl_fd >= 0 && p[1].revents)
			initctl_handle(&in);
		t = now_ms();
		for (int i = 0; i < 3 && in.action == ACT_NONE; i++)
			if (in.d[i].next_start_ms && in.d[i].next_start_ms <= t && !in.d[i].pid)
				spawn(&in, &in.d[i]);
	}
	if (in.action == ACT_NONE)
		in.action = ACT_REBOOT;
	return shutdown_all(&in);
}
