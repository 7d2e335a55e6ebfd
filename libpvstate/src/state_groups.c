/* state_groups.c: the start groups of a state (device.json groups, else groups.json, else the
 * shipped defaults = runlevel mode) and the rule that puts every container into one of them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

void pv_st_group_free(struct pv_group *g)
{
	free(g->name);
	free(g->description);
	memset(g, 0, sizeof(*g));
}

/* The shipped /etc/pantavisor/defaults/groups.json (spec 2.7). */
static int default_groups(struct pv_sctx *c)
{
	static const struct {
		const char *name;
		enum pv_status_goal goal;
		enum pv_restart_policy pol;
	} d[] = {
	    {"data", PV_GOAL_MOUNTED, PV_RESTART_SYSTEM},
	    {"root", PV_GOAL_STARTED, PV_RESTART_SYSTEM},
	    {"platform", PV_GOAL_STARTED, PV_RESTART_SYSTEM},
	    {"app", PV_GOAL_STARTED, PV_RESTART_CONTAINER},
	};
	struct pv_state *s = c->s;
	s->groups = calloc(4, sizeof(*s->groups));
	if (!s->groups)
		return pv_st_fail(c, "groups", NULL, "out of memory");
	for (size_t i = 0; i < 4; i++) {
		struct pv_group *g = &s->groups[i];
		g->name = strdup(d[i].name);
		if (!g->name)
			return pv_st_fail(c, "groups", NULL, "out of memory");
		g->status_goal = d[i].goal;
		g->restart_policy = d[i].pol;
		g->timeout = 30;
		s->n_groups++;
	}
	struct pv_auto_recovery *ar = &s->groups[3].auto_recovery;
	ar->set = true;
	ar->policy = PV_RECOVERY_ON_FAILURE;
	ar->max_retries = 5;
	ar->retry_delay = 5;
	ar->backoff_factor = 2.0;
	ar->stable_timeout = 30;
	ar->backoff = PV_BACKOFF_REBOOT;
	snprintf(ar->backoff_str, sizeof(ar->backoff_str), "reboot");
	s->default_groups = true;
	return 0;
}

static int parse_group(struct pv_sctx *c, const char *key, size_t idx, const cJSON *o,
		       struct pv_group *g)
{
	char f[64];
	snprintf(f, sizeof(f), "groups[%zu]", idx);
	if (!cJSON_IsObject(o))
		return pv_st_fail(c, key, f, "must be an object, not %s", pv_st_type(o));
	int rc = 0;
	g->status_goal = PV_GOAL_STARTED;
	g->restart_policy = PV_RESTART_CONTAINER;
	g->timeout = c->o->default_timeout;
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "name");
	char ff[96];
	snprintf(ff, sizeof(ff), "%s.name", f);
	if (!n)
		rc = pv_st_fail(c, key, ff, "missing");
	else if (pv_st_str(c, key, ff, n, &g->name) < 0)
		rc = -EINVAL;
	else if (!g->name[0] || strlen(g->name) > PV_NAME_MAX)
		rc = pv_st_fail(c, key, ff, "must be 1 to %d characters", PV_NAME_MAX);
	if (g->name && rc == 0)
		snprintf(f, sizeof(f), "groups[%.40s]", g->name);
	snprintf(ff, sizeof(ff), "%s.description", f);
	rc |= pv_st_str(c, key, ff, cJSON_GetObjectItemCaseSensitive(o, "description"),
			&g->description);
	int v = (int)g->status_goal;
	snprintf(ff, sizeof(ff), "%s.status_goal", f);
	rc |= pv_st_enum(c, key, ff, cJSON_GetObjectItemCaseSensitive(o, "status_goal"),
			 pv_goal_names, &v);
	g->status_goal = (enum pv_status_goal)v;
	v = (int)g->restart_policy;
	snprintf(ff, sizeof(ff), "%s.restart_policy", f);
	rc |= pv_st_enum(c, key, ff, cJSON_GetObjectItemCaseSensitive(o, "restart_policy"),
			 pv_restart_names, &v);
	g->restart_policy = (enum pv_restart_policy)v;
	snprintf(ff, sizeof(ff), "%s.timeout", f);
	int t = g->timeout;
	const cJSON *to = cJSON_GetObjectItemCaseSensitive(o, "timeout");
	char *end = NULL;
	if (cJSON_IsString(to)) {
		/* upstream reads the value as text and strtol()s it: "30" is fine */
		long secs = strtol(to->valuestring, &end, 10);
		if (end == to->valuestring || *end || secs > 2147483647L || secs < -2147483647L)
			rc = pv_st_fail(c, key, ff, "\"%.32s\" is not a number of seconds",
					to->valuestring);
		else if (secs < 0)
			rc = pv_st_fail(c, key, ff, "%ld is negative", secs);
		else
			g->timeout = (int)secs;
	} else if (pv_st_int(c, key, ff, to, &t) < 0)
		rc = -EINVAL;
	else if (t < 0)
		rc = pv_st_fail(c, key, ff, "%d is negative", t);
	else
		g->timeout = t;
	snprintf(ff, sizeof(ff), "%s.auto_recovery", f);
	rc |= pv_st_auto_recovery(c, key, ff, cJSON_GetObjectItemCaseSensitive(o, "auto_recovery"),
				  &g->auto_recovery);
	return rc ? -EINVAL : 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int parse_groups(struct pv_sctx *c, const char *key, const cJSON *arr)
{
	struct pv_state *s = c->s;
	if (!cJSON_IsArray(arr))
		return pv_st_fail(c, key, "groups", "must be an array, not %s", pv_st_type(arr));
	size_t n = (size_t)cJSON_GetArraySize(arr);
	if (!n) /* upstream fails an empty groups array too */
		return pv_st_fail(c, key, "groups", "is empty");
	s->groups = calloc(n, sizeof(*s->groups));
	if (!s->groups)
		return pv_st_fail(c, key, "groups", "out of memory");
	int rc = 0;
	const cJSON *o;
	size_t i = 0;
	cJSON_ArrayForEach(o, arr)
	{
		struct pv_group *g = &s->groups[s->n_groups];
		if (parse_group(c, key, i++, o, g) < 0) {
			pv_st_group_free(g);
			rc = -EINVAL;
			continue;
		}
		s->n_groups++;
	}
	/* duplicates via a sorted copy: a hostile device.json may hold millions of groups */
	const char **names = calloc(s->n_groups ? s->n_groups : 1, sizeof(char *));
	if (!names)
		return pv_st_fail(c, key, "groups", "out of memory");
	for (size_t j = 0; j < s->n_groups; j++)
		names[j] = s->groups[j].name;
	qsort(names, s->n_groups, sizeof(char *), cmp_name);
	for (size_t j = 1; j < s->n_groups; j++)
		if (!strcmp(names[j], names[j - 1]) && (j < 2 || strcmp(names[j], names[j - 2])))
			rc = pv_st_fail(c, key, "groups", "duplicate group name \"%s\"", names[j]);
	free(names);
	return rc;
}

int pv_st_groups(struct pv_sctx *c, const cJSON *root)
{
	const cJSON *dev = cJSON_GetObjectItemCaseSensitive(root, "device.json");
	if (dev) {
		if (!cJSON_IsObject(dev))
			return pv_st_fail(c, "device.json", NULL, "must be a JSON object, not %s",
					  pv_st_type(dev));
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(dev, "groups");
		if (!g)
			return pv_st_fail(c, "device.json", "groups", "missing");
		return parse_groups(c, "device.json", g);
	}
	const cJSON *gj = cJSON_GetObjectItemCaseSensitive(root, "groups.json");
	if (gj) {
		/* upstream writes a bare array; accept {"groups":[...]} as well */
		if (cJSON_IsObject(gj)) {
			const cJSON *g = cJSON_GetObjectItemCaseSensitive(gj, "groups");
			if (!g)
				return pv_st_fail(c, "groups.json", "groups", "missing");
			return parse_groups(c, "groups.json", g);
		}
		if (!cJSON_IsArray(gj))
			return pv_st_fail(c, "groups.json", NULL, "must be a JSON array, not %s",
					  pv_st_type(gj));
		return parse_groups(c, "groups.json", gj);
	}
	return default_groups(c);
}

/* Group lookup by name over a sorted index built once per parse. */
struct group_index {
	const struct pv_group **g;
	size_t n;
	const struct pv_group *base;
};

static int cmp_group(const void *a, const void *b)
{
	return strcmp((*(const struct pv_group *const *)a)->name,
		      (*(const struct pv_group *const *)b)->name);
}

static int find_group(const struct group_index *gi, const char *name)
{
	size_t lo = 0, hi = gi->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(gi->g[mid]->name, name);
		if (r == 0) {
			/* the first of equal names, as a linear search would find */
			while (mid > 0 && !strcmp(gi->g[mid - 1]->name, name))
				mid--;
			return (int)(gi->g[mid] - gi->base);
		}
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

void pv_st_assign_groups(struct pv_sctx *c, const bool *from_runlevel)
{
	struct pv_state *s = c->s;
	struct group_index gx = {calloc(s->n_groups ? s->n_groups : 1, sizeof(void *)), 0,
				 s->groups};
	if (!gx.g) {
		pv_st_fail(c, "groups", NULL, "out of memory");
		return;
	}
	for (size_t i = 0; i < s->n_groups; i++)
		if (s->groups[i].name)
			gx.g[gx.n++] = &s->groups[i];
	/* stable order among equal names is not needed: find_group walks back to the first */
	qsort(gx.g, gx.n, sizeof(void *), cmp_group);
	bool root_used = false;
	int root = find_group(&gx, "root");
	for (size_t i = 0; i < s->n_containers; i++) {
		struct pv_container *ct = &s->containers[i];
		ct->group_index = -1;
		if (!ct->group)
			continue;
		char key[PV_NAME_MAX + 16];
		snprintf(key, sizeof(key), "%s/run.json", ct->name);
		int gi = find_group(&gx, ct->group);
		if (gi < 0) {
			pv_st_fail(c, key, from_runlevel[i] ? "runlevel" : "group",
				   "\"%s\" is not a group of this state", ct->group);
			continue;
		}
		ct->group_index = gi;
		if (gi == root && root >= 0)
			root_used = true;
	}
	for (size_t i = 0; i < s->n_containers; i++) {
		struct pv_container *ct = &s->containers[i];
		char key[PV_NAME_MAX + 16];
		snprintf(key, sizeof(key), "%s/run.json", ct->name);
		if (ct->group && ct->group_index < 0)
			continue; /* already reported */
		if (!ct->group) {
			int gi;
			if (s->default_groups) {
				/* runlevel mode: the first group-less container is the root one */
				gi = (!root_used && root >= 0) ? root : find_group(&gx, "platform");
				root_used = true;
			} else {
				gi = s->n_groups ? (int)s->n_groups - 1 : -1;
			}
			if (gi < 0) {
				pv_st_fail(c, key, "group",
					   "missing, and the state defines no group to default to");
				continue;
			}
			ct->group = strdup(s->groups[gi].name);
			if (!ct->group) {
				pv_st_fail(c, key, "group", "out of memory");
				continue;
			}
			ct->group_index = gi;
		}
		const struct pv_group *g = &s->groups[ct->group_index];
		if (!ct->status_goal_set)
			ct->status_goal = g->status_goal;
		if (!ct->restart_policy_set)
			ct->restart_policy = g->restart_policy;
		if (!ct->auto_recovery.set)
			ct->auto_recovery = g->auto_recovery; /* inherited whole (spec 5.5) */
	}
	free(gx.g);
}
