/* ops_info.c: identity and information ops: whois (pid -> container, roles), graph and
 * link-status, buildinfo, config/config2, daemons-list and daemon-action (through initctl),
 * drivers-list and driver-action (bsp/drivers.json aliases, modprobe). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "initctl.h"
#include "pvstate/cgroup.h"
#include "pvstate/ctrl.h"
#include "pvstate/fileio.h"
#include "pvstate/status.h"

#include "gitdesc.h" /* PV_BUILD_GITDESC, generated at build time */

#ifndef PV_BUILD_VERSION
#define PV_BUILD_VERSION "unknown"
#define PV_BUILD_TYPE	 "unknown"
#define PV_BUILD_OPTIONS ""
#endif

char *pv_op_reply_json(const struct pv_msg *m, char *body)
{
	char *r = body ? pv_msg_reply(m->id, 200, body) : NULL;
	if (!r)
		r = pv_msg_reply_error(m->id, 500, "engine: could not build the reply");
	free(body);
	return r;
}

char *pv_op_reply_errors(const struct pv_msg *m, int status, const struct pv_error *err)
{
	size_t len = 1;
	for (size_t i = 0; i < err->count; i++)
		len += strlen(err->msgs[i]) + 2;
	char *s = malloc(len), *p = s;
	if (!s)
		return pv_msg_reply_error(m->id, status, pv_error_msg(err));
	*p = '\0';
	for (size_t i = 0; i < err->count; i++)
		p += sprintf(p, "%s%s", i ? "; " : "", err->msgs[i]);
	char *r = pv_msg_reply_error(m->id, status, s);
	free(s);
	return r;
}

/* The LXC payload cgroup path of a process (pvstate/cgroup.h). 0 or -errno (-ENOENT: none). */
static int payload_cgroup(int pid, char *out, size_t len)
{
	char path[64], text[8192];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	ssize_t n = read(f, text, sizeof(text) - 1);
	close(f);
	if (n <= 0)
		return -ENOENT;
	text[n] = '\0';
	return pv_cgroup_payload(text, out, len, NULL, 0);
}

/* The container whose init shares the caller's payload cgroup. Compared by path, not by the
 * name in it: liblxc names a payload after its container but appends "-1", "-2"... when another
 * container of that name (another lxcpath on the host) holds the cgroup already, so the name in
 * the path may be another container's. */
static struct pv_ctr *by_cgroup(struct pv_engine *e, int pid)
{
	char mine[4096], theirs[4096];
	if (payload_cgroup(pid, mine, sizeof(mine)) < 0)
		return NULL;
	for (size_t i = 0; i < e->n_ctrs; i++)
		if (e->ctrs[i].pid > 0 &&
		    payload_cgroup(e->ctrs[i].pid, theirs, sizeof(theirs)) == 0 &&
		    !strcmp(mine, theirs))
			return &e->ctrs[i];
	return NULL;
}

static int pidns_ino(int pid, ino_t *ino)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	if (stat(path, &st) < 0)
		return -errno;
	*ino = st.st_ino;
	return 0;
}

/* Fallback when cgroups do not tell: same pid namespace as a running container's init. */
static struct pv_ctr *by_pidns(struct pv_engine *e, int pid)
{
	ino_t mine = 0, host = 0, theirs = 0;
	if (pidns_ino(pid, &mine) < 0 || (pidns_ino(getpid(), &host) == 0 && host == mine))
		return NULL;
	for (size_t i = 0; i < e->n_ctrs; i++)
		if (e->ctrs[i].pid > 0 && pidns_ino(e->ctrs[i].pid, &theirs) == 0 && theirs == mine)
			return &e->ctrs[i];
	return NULL;
}

char *pv_op_whois(struct pv_engine *e, const struct pv_msg *m)
{
	int64_t pid = 0;
	if (pv_msg_arg_int(m, "pid", &pid) < 0 || pid <= 0 || pid > 4194304)
		return pv_msg_reply_error(m->id, 400, "whois: args.pid must be a positive pid");
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (access(path, F_OK) < 0)
		return pv_msg_reply_error(m->id, 404, "whois: no process with that pid");
	struct pv_ctr *c = by_cgroup(e, (int)pid);
	if (!c)
		c = by_pidns(e, (int)pid);
	const char *roles[2];
	size_t n = 0;
	if (c && (c->spec->roles & PV_ROLE_MGMT))
		roles[n++] = "mgmt";
	if (c && (c->spec->roles & PV_ROLE_NOBODY))
		roles[n++] = "nobody";
	return pv_op_reply_json(m, pv_msg_whois_body(c ? c->spec->name : NULL, roles, n));
}

char *pv_op_graph(struct pv_engine *e, const struct pv_msg *m)
{
	return pv_op_reply_json(m, pv_graph_with_status(e));
}

char *pv_op_link_status(struct pv_engine *e, const struct pv_msg *m)
{
	struct pv_error err = PV_ERROR_INIT;
	char *r;
	if (pv_graph_set_status(e, m, &err) < 0)
		r = pv_op_reply_errors(m, 400, &err);
	else
		r = pv_msg_reply(m->id, 200, NULL);
	pv_error_clear(&err);
	return r;
}

char *pv_op_buildinfo(struct pv_engine *e, const struct pv_msg *m)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "pantavisor-c %s\ngit: %s\nbuild type: %s\noptions: %s\nmode: %s\n",
		 PV_BUILD_VERSION, PV_BUILD_GITDESC, PV_BUILD_TYPE, PV_BUILD_OPTIONS,
		 e->appengine ? "appengine" : "embedded");
	return pv_msg_reply_text(m->id, 200, text, "text/plain");
}

char *pv_op_config(struct pv_engine *e, const struct pv_msg *m)
{
	return pv_op_reply_json(m, pv_config_emit(e->cfg));
}

char *pv_op_config2(struct pv_engine *e, const struct pv_msg *m)
{
	return pv_op_reply_json(m, pv_config_emit2(e->cfg));
}

char *pv_op_daemons_list(struct pv_engine *e, const struct pv_msg *m)
{
	struct pv_initctl_reply rep;
	struct pv_status_daemon d[PV_INITCTL_MAX_DAEMONS];
	size_t n = 0;
	memset(&rep, 0, sizeof(rep));
	/* run by hand (no init): no daemon is managed, so the honest answer is an empty list */
	if (pv_initctl_present(e->initctl_fd)) {
		int r = pv_initctl_request_reply(e->initctl_fd, PV_INITCTL_DAEMON_LIST, NULL, &rep);
		if (r < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "daemons: init did not answer: %s",
				 strerror(-r));
			return pv_msg_reply_error(m->id, 500, msg);
		}
		for (uint32_t i = 0; i < rep.n_daemons && i < PV_INITCTL_MAX_DAEMONS; i++) {
			rep.daemons[i].name[PV_INITCTL_NAME_MAX - 1] = '\0';
			d[n].name = rep.daemons[i].name;
			d[n].pid = rep.daemons[i].pid;
			d[n].respawn = rep.daemons[i].respawn != 0;
			n++;
		}
	}
	return pv_op_reply_json(m, pv_status_emit_daemons(d, n));
}

char *pv_op_daemon_action(struct pv_engine *e, const struct pv_msg *m)
{
	const char *name = NULL, *action = NULL;
	char msg[192];
	if (pv_msg_arg_str(m, "name", &name) < 0 || pv_msg_arg_str(m, "action", &action) < 0)
		return pv_msg_reply_error(m->id, 400,
					  "daemon-action: args.name and args.action needed");
	if (strlen(name) >= PV_INITCTL_NAME_MAX) {
		snprintf(msg, sizeof(msg), "daemon %.64s: name too long", name);
		return pv_msg_reply_error(m->id, 400, msg);
	}
	bool start = !strcmp(action, "start"), stop = !strcmp(action, "stop"),
	     restart = !strcmp(action, "restart");
	if (!start && !stop && !restart) {
		snprintf(msg, sizeof(msg),
			 "daemon %s: action \"%.32s\" is not start, stop or restart", name, action);
		return pv_msg_reply_error(m->id, 400, msg);
	}
	if (!pv_initctl_present(e->initctl_fd)) {
		snprintf(msg, sizeof(msg), "daemon %s: not managed (engine runs without init)",
			 name);
		return pv_msg_reply_error(m->id, 404, msg);
	}
	int r = 0;
	if (stop || restart)
		r = pv_initctl_request(e->initctl_fd, PV_INITCTL_DAEMON_STOP, name);
	if (r == 0 && (start || restart))
		r = pv_initctl_request(e->initctl_fd, PV_INITCTL_DAEMON_START, name);
	if (r == -ENOENT) {
		snprintf(msg, sizeof(msg), "daemon %s: unknown", name);
		return pv_msg_reply_error(m->id, 404, msg);
	}
	if (r == -EPERM) { /* init refuses to stop the engine itself: that is a reboot */
		snprintf(msg, sizeof(msg), "daemon %s: %s refused by init", name, action);
		return pv_msg_reply_error(m->id, 403, msg);
	}
	if (r < 0) {
		snprintf(msg, sizeof(msg), "daemon %s: %s: %s", name, action, strerror(-r));
		return pv_msg_reply_error(m->id, 500, msg);
	}
	return pv_msg_reply(m->id, 200, NULL);
}

/* ---- drivers: a container's driver aliases (run.json "drivers"), resolved through the running
 * state's bsp/drivers.json (spec §2.5) and loaded with modprobe, as upstream ---- */

static const char *drivers_json(const struct pv_engine *e, size_t *len)
{
	for (size_t i = 0; e->have_state && i < e->state.n_entries; i++)
		if (!strcmp(e->state.entries[i].key, "bsp/drivers.json") &&
		    e->state.entries[i].raw) {
			*len = e->state.entries[i].raw_len;
			return e->state.entries[i].raw;
		}
	*len = 0;
	return NULL;
}

/* Is the module of "<module> [args]" in /proc/modules (names use '_' where files use '-')? */
static bool module_loaded(const char *proc_modules, const char *spec)
{
	char name[128];
	size_t n = strcspn(spec, " \t");
	if (!proc_modules || n == 0 || n >= sizeof(name))
		return false;
	for (size_t i = 0; i < n; i++)
		name[i] = spec[i] == '-' ? '_' : spec[i];
	name[n] = '\0';
	for (const char *p = proc_modules; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, n) && p[n] == ' ')
			return true;
	return false;
}

static const char *alias_status(const struct pv_engine *e, const char *proc_modules,
				const char *alias)
{
	size_t len;
	const char *dj = drivers_json(e, &len);
	char **mods = NULL;
	size_t n = 0;
	if (!dj || pv_ctrl_json_driver_modules(dj, len, alias,
					       pv_config_get(e->cfg, "PV_BOOTLOADER_FITCONFIG"),
					       &mods, &n) < 0)
		return "UNKNOWN";
	bool all = n > 0;
	for (size_t i = 0; i < n; i++)
		all = all && module_loaded(proc_modules, mods[i]);
	pv_ctrl_json_strv_free(mods, n);
	return all ? "LOADED" : "UNLOADED";
}

/* The containers a request is about: the named one, or every one (host callers). */
static bool ctr_selected(const struct pv_ctr *c, const char *name)
{
	return !name || !name[0] || !strcmp(c->spec->name, name);
}

char *pv_op_drivers_list(struct pv_engine *e, const struct pv_msg *m)
{
	const char *ctr = NULL;
	pv_msg_arg_str(m, "container", &ctr);
	char *mods = NULL;
	pv_file_read_all("/proc/modules", 4 * 1024 * 1024, &mods, NULL, NULL);
	size_t cap = 0, n = 0;
	for (size_t i = 0; i < e->n_ctrs; i++)
		if (ctr_selected(&e->ctrs[i], ctr))
			cap += e->ctrs[i].spec->n_drivers_required +
			       e->ctrs[i].spec->n_drivers_optional +
			       e->ctrs[i].spec->n_drivers_manual;
	struct pv_ctrl_driver *d = calloc(cap ? cap : 1, sizeof(*d));
	if (!d) {
		free(mods);
		return pv_msg_reply_error(m->id, 500, "drivers-list: out of memory");
	}
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_container *s = e->ctrs[i].spec;
		if (!ctr_selected(&e->ctrs[i], ctr))
			continue;
		const struct {
			char **names;
			size_t n;
			const char *type;
		} lists[] = {{s->drivers_required, s->n_drivers_required, "REQUIRED"},
			     {s->drivers_optional, s->n_drivers_optional, "OPTIONAL"},
			     {s->drivers_manual, s->n_drivers_manual, "MANUAL"}};
		for (size_t l = 0; l < 3; l++)
			for (size_t j = 0; j < lists[l].n; j++) {
				d[n].name = lists[l].names[j];
				d[n].type = lists[l].type;
				d[n].status = alias_status(e, mods, lists[l].names[j]);
				n++;
			}
	}
	char *body = pv_ctrl_json_drivers(d, n);
	free(d);
	free(mods);
	return pv_op_reply_json(m, body);
}

/* modprobe [-r] <module> [args...]: 0, or the exit status / -errno. Runs on the loop: module
 * loads are short, and the caller (pv-ctrl) waits for the answer anyway. */
static int modprobe(const char *spec, bool unload)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", spec);
	char *argv[32];
	int argc = 0;
	const char *tool = access("/sbin/modprobe", X_OK) == 0 ? "/sbin/modprobe" : "modprobe";
	argv[argc++] = (char *)tool;
	if (unload)
		argv[argc++] = "-r";
	char *save = NULL;
	/* unload takes only the module name; load passes the module's arguments as well */
	for (char *t = strtok_r(buf, " \t", &save); t && argc < 31;
	     t = strtok_r(NULL, " \t", &save)) {
		argv[argc++] = t;
		if (unload)
			break;
	}
	argv[argc] = NULL;
	pid_t p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

char *pv_op_driver_action(struct pv_engine *e, const struct pv_msg *m)
{
	const char *ctr = NULL, *name = NULL, *action = NULL;
	pv_msg_arg_str(m, "container", &ctr);
	pv_msg_arg_str(m, "name", &name);
	if (pv_msg_arg_str(m, "action", &action) < 0 || !action ||
	    (strcmp(action, "load") && strcmp(action, "unload")))
		return pv_msg_reply_error(m->id, 400,
					  "driver-action: args.action must be load or "
					  "unload");
	bool unload = !strcmp(action, "unload");
	size_t len;
	const char *dj = drivers_json(e, &len);
	const char *fit = pv_config_get(e->cfg, "PV_BOOTLOADER_FITCONFIG");
	char errs[1024] = "";
	size_t matched = 0, failed = 0;
	/* only manual drivers are the API's to load or unload (upstream DRIVER_MANUAL) */
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_container *s = e->ctrs[i].spec;
		if (!ctr_selected(&e->ctrs[i], ctr))
			continue;
		for (size_t j = 0; j < s->n_drivers_manual; j++) {
			const char *alias = s->drivers_manual[j];
			if (name && name[0] && strcmp(alias, name))
				continue;
			matched++;
			char **mods = NULL;
			size_t n = 0;
			if (!dj ||
			    pv_ctrl_json_driver_modules(dj, len, alias, fit, &mods, &n) < 0) {
				failed++;
				snprintf(errs + strlen(errs), sizeof(errs) - strlen(errs),
					 "%sdriver %s: not defined in bsp/drivers.json",
					 errs[0] ? "; " : "", alias);
				continue;
			}
			for (size_t k = 0; k < n; k++) {
				int r = modprobe(mods[k], unload);
				if (r == 0)
					continue;
				failed++;
				snprintf(errs + strlen(errs), sizeof(errs) - strlen(errs),
					 "%sdriver %s: modprobe %s%s: %s %d", errs[0] ? "; " : "",
					 alias, unload ? "-r " : "", mods[k],
					 r < 0 ? "error" : "exit", r < 0 ? -r : r);
			}
			pv_ctrl_json_strv_free(mods, n);
		}
	}
	if (name && name[0] && !matched) {
		char msg[400];
		snprintf(msg, sizeof(msg), "driver %.100s: not a manual driver of %.100s", name,
			 ctr && ctr[0] ? ctr : "any container");
		return pv_msg_reply_error(m->id, 404, msg);
	}
	if (failed)
		return pv_msg_reply_error(m->id, 400, errs);
	return pv_msg_reply(m->id, 200, NULL);
}
