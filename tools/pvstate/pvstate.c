/* pvstate.c: the `pvstate` command: check, show and graph a revision state JSON file, so a
 * person can validate a state (every error, one per line) before deploying it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/error.h"
#include "pvstate/graph.h"
#include "pvstate/state.h"

/* The graph builder lives in graph.c, written alongside this tool; weak references keep
 * check/show linkable (and `graph` reporting a clear error) in a tree that lacks it. */
#pragma weak pv_graph_build
#pragma weak pv_graph_emit
#pragma weak pv_graph_free

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pvstate check [OPTIONS] STATE.json\n"
	    "       pvstate show  [OPTIONS] [--names] STATE.json\n"
	    "       pvstate graph [OPTIONS] [--pids NAME=PID,...] STATE.json\n"
	    "STATE.json may be - for standard input.\n"
	    "options:\n"
	    "  --appengine      bsp/run.json is not required\n"
	    "  --legacy-roles   a run.json without \"roles\" is mgmt (PV_CONTROL_LEGACY_ROLES=1)\n"
	    "  --system-bus     the hosted D-Bus \"system-bus\" service is available\n"
	    "  --names          (show) print only container names, one per line\n"
	    "  --pids LIST      (graph) container init pids, e.g. a=101,b=102\n"
	    "  -h, --help       this text\n"
	    "exit: 0 valid, 1 invalid state or read error, 2 usage error\n");
}

/* Reads all of f, at most PV_STATE_MAX_BYTES + 1 bytes so the parser reports the limit. */
static int read_all(FILE *f, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			/* one byte over the limit is enough for the parser to refuse it */
			if (cap > PV_STATE_MAX_BYTES)
				break;
			cap = cap * 2 > PV_STATE_MAX_BYTES ? PV_STATE_MAX_BYTES + 1 : cap * 2;
			char *nb = realloc(b, cap);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
		}
		errno = 0;
		size_t r = fread(b + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				int e = errno ? errno : EIO;
				free(b);
				return -e;
			}
			break;
		}
	}
	*out = b;
	*len = n;
	return 0;
}

static void roles_str(unsigned r, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s%s%s", (r & PV_ROLE_MGMT) ? "mgmt" : "",
		 (r & PV_ROLE_MGMT) && (r & PV_ROLE_NOBODY) ? "," : "",
		 (r & PV_ROLE_NOBODY) ? "nobody" : "");
	if (!buf[0])
		snprintf(buf, sz, "-");
}

static void show(const struct pv_state *s)
{
	printf("%-30s %-10s %-8s %-9s %-12s %-24s %s\n", "CONTAINER", "GROUP", "GOAL", "RESTART",
	       "ROLES", "EXPORTS", "REQUIRES");
	for (size_t i = 0; i < s->n_containers; i++) {
		const struct pv_container *c = &s->containers[i];
		char roles[32], ex[512] = "", rq[512] = "";
		roles_str(c->roles, roles, sizeof(roles));
		for (size_t j = 0; j < c->n_exports; j++) {
			size_t l = strlen(ex);
			snprintf(ex + l, sizeof(ex) - l, "%s%s:%s", j ? "," : "",
				 c->exports[j].name ? c->exports[j].name : "?",
				 c->exports[j].type ? c->exports[j].type : "?");
		}
		for (size_t j = 0; j < c->n_requires; j++) {
			size_t l = strlen(rq);
			snprintf(rq + l, sizeof(rq) - l, "%s%s%s", j ? "," : "",
				 c->requires[j].name ? c->requires[j].name : "?",
				 c->requires[j].optional ? "?" : "");
		}
		printf("%-30s %-10s %-8s %-9s %-12s %-24s %s\n", c->name, c->group ? c->group : "-",
		       pv_status_goal_str(c->status_goal), pv_restart_policy_str(c->restart_policy),
		       roles, ex[0] ? ex : "-", rq[0] ? rq : "-");
	}
	printf("\n%-10s %-8s %-9s %-7s %s%s\n", "GROUP", "GOAL", "RESTART", "TIMEOUT",
	       "AUTO_RECOVERY", s->default_groups ? "   (defaults: runlevel mode)" : "");
	for (size_t i = 0; i < s->n_groups; i++) {
		const struct pv_group *g = &s->groups[i];
		char ar[96] = "-";
		if (g->auto_recovery.set)
			snprintf(ar, sizeof(ar), "%s max_retries=%d backoff=%s",
				 pv_recovery_policy_str(g->auto_recovery.policy),
				 g->auto_recovery.max_retries, g->auto_recovery.backoff_str);
		printf("%-10s %-8s %-9s %-7d %s\n", g->name, pv_status_goal_str(g->status_goal),
		       pv_restart_policy_str(g->restart_policy), g->timeout, ar);
	}
}

/* "a=1,b=2" -> pids (names point into the duplicated list). */
static int parse_pids(char *list, struct pv_pid **out, size_t *n)
{
	size_t cap = 1;
	for (char *p = list; *p; p++)
		cap += *p == ',';
	struct pv_pid *v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	char *save = NULL;
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		char *end = NULL;
		if (!eq || eq == t) {
			free(v);
			return -EINVAL;
		}
		*eq = '\0';
		long pid = strtol(eq + 1, &end, 10);
		if (!eq[1] || *end || pid < 0 || pid > 4194304) {
			free(v);
			return -EINVAL;
		}
		v[k].name = t;
		v[k].pid = (int)pid;
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

int main(int argc, char **argv)
{
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	const char *cmd = NULL, *file = NULL;
	char *pids_arg = NULL;
	bool names = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--appengine")) {
			o.appengine = true;
		} else if (!strcmp(a, "--legacy-roles")) {
			o.legacy_roles = true;
		} else if (!strcmp(a, "--system-bus")) {
			o.hosted_system_bus = true;
		} else if (!strcmp(a, "--names")) {
			names = true;
		} else if (!strcmp(a, "--pids")) {
			if (++i >= argc) {
				fprintf(stderr, "pvstate: --pids needs a list NAME=PID,...\n");
				return 2;
			}
			pids_arg = argv[i];
		} else if (!strncmp(a, "--pids=", 7)) {
			pids_arg = (char *)a + 7;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "pvstate: unknown option %s\n", a);
			usage(stderr);
			return 2;
		} else if (!cmd) {
			cmd = a;
		} else if (!file) {
			file = a;
		} else {
			fprintf(stderr, "pvstate: unexpected argument %s\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (!cmd || (strcmp(cmd, "check") && strcmp(cmd, "show") && strcmp(cmd, "graph"))) {
		fprintf(stderr, "pvstate: %s\n", cmd ? "unknown command" : "missing command");
		usage(stderr);
		return 2;
	}
	if (!file) {
		fprintf(stderr, "pvstate: %s: missing STATE.json (or - for stdin)\n", cmd);
		usage(stderr);
		return 2;
	}
	if (pids_arg && strcmp(cmd, "graph")) {
		fprintf(stderr, "pvstate: --pids only applies to graph\n");
		return 2;
	}
	struct pv_pid *pids = NULL;
	size_t n_pids = 0;
	char *pids_copy = pids_arg ? strdup(pids_arg) : NULL;
	if (pids_arg && (!pids_copy || parse_pids(pids_copy, &pids, &n_pids) < 0)) {
		fprintf(stderr, "pvstate: --pids: \"%s\" is not a list like a=101,b=102\n",
			pids_arg);
		free(pids_copy);
		return 2;
	}

	bool is_stdin = !strcmp(file, "-");
	o.source = is_stdin ? "-" : file;
	FILE *f = is_stdin ? stdin : fopen(file, "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", file, strerror(errno));
		free(pids);
		free(pids_copy);
		return 1;
	}
	char *buf = NULL;
	size_t len = 0;
	int rc = read_all(f, &buf, &len);
	if (!is_stdin)
		fclose(f);
	if (rc < 0) {
		fprintf(stderr, "%s: read: %s\n", file, strerror(-rc));
		free(pids);
		free(pids_copy);
		return 1;
	}
	struct pv_state s;
	struct pv_error err = PV_ERROR_INIT;
	rc = pv_state_parse(buf, len, &o, &s, &err);
	free(buf);
	int ret = 0;
	if (rc < 0) {
		for (size_t i = 0; i < err.count; i++)
			fprintf(stderr, "%s\n", err.msgs[i]);
		if (err.dropped)
			fprintf(stderr, "%s: ... and %zu more errors\n", o.source, err.dropped);
		if (!err.count)
			fprintf(stderr, "%s: %s\n", o.source, strerror(-rc));
		ret = 1;
	} else if (!strcmp(cmd, "check")) {
		size_t objs = 0;
		for (size_t i = 0; i < s.n_entries; i++)
			objs += s.entries[i].kind == PV_ENTRY_OBJECT;
		printf("%s: valid (%zu containers, %zu objects)\n", o.source, s.n_containers, objs);
	} else if (!strcmp(cmd, "show")) {
		if (names)
			for (size_t i = 0; i < s.n_containers; i++)
				printf("%s\n", s.containers[i].name);
		else
			show(&s);
	} else {
		struct pv_graph g;
		memset(&g, 0, sizeof(g));
		if (!pv_graph_build || !pv_graph_emit || !pv_graph_free) {
			fprintf(stderr, "pvstate: graph: this libpvstate has no graph builder\n");
			ret = 1;
		} else if (pv_graph_build(&s, pids, n_pids, &g, &err) < 0) {
			for (size_t i = 0; i < err.count; i++)
				fprintf(stderr, "%s\n", err.msgs[i]);
			ret = 1;
		} else {
			char *js = pv_graph_emit(&g, false);
			if (!js) {
				fprintf(stderr, "pvstate: graph: out of memory\n");
				ret = 1;
			} else {
				printf("%s\n", js);
				free(js);
			}
			pv_graph_free(&g);
		}
	}
	if (rc == 0)
		pv_state_free(&s);
	pv_error_clear(&err);
	free(pids);
	free(pids_copy);
	return ret;
}
