/* state_container.c: one container manifest <c>/run.json (spec 2.8) into struct pv_container,
 * every field type- and enum-checked, plus the check that its volumes name keys of the state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_int.h"
#include "pvstate/graph.h"
#include "state_int.h"

#define GET(o, k) cJSON_GetObjectItemCaseSensitive((o), (k))

static void req_free(struct pv_service_req *r)
{
	free(r->name);
	free(r->type);
	free(r->role);
	free(r->interface);
	free(r->target);
	free(r->mode);
	free(r->owner);
	free(r->socket_mode);
	free(r->hide_globals);
}

void pv_st_container_free(struct pv_container *ct)
{
	free(ct->name);
	free(ct->type);
	free(ct->config);
	free(ct->root_volume);
	pv_st_strv_free(ct->volumes, ct->n_volumes);
	for (size_t i = 0; i < ct->n_storage; i++) {
		free(ct->storage[i].name);
		free(ct->storage[i].disk);
	}
	free(ct->storage);
	free(ct->group);
	pv_st_strv_free(ct->drivers_required, ct->n_drivers_required);
	pv_st_strv_free(ct->drivers_optional, ct->n_drivers_optional);
	pv_st_strv_free(ct->drivers_manual, ct->n_drivers_manual);
	for (size_t i = 0; i < ct->n_requires; i++)
		req_free(&ct->requires[i]);
	free(ct->requires);
	for (size_t i = 0; i < ct->n_exports; i++) {
		free(ct->exports[i].name);
		free(ct->exports[i].type);
		free(ct->exports[i].socket);
		free(ct->exports[i].mode);
		free(ct->exports[i].credentials);
	}
	free(ct->exports);
	free(ct->network.mode);
	free(ct->network.pool);
	free(ct->network.hostname);
	free(ct->network.ip);
	free(ct->network.mac);
	for (size_t i = 0; i < ct->n_logs; i++) {
		free(ct->logs[i].file);
		free(ct->logs[i].name);
	}
	free(ct->logs);
	pv_st_strv_free(ct->export_paths, ct->n_export_paths);
	memset(ct, 0, sizeof(*ct));
}

static int parse_storage(struct pv_sctx *c, const char *key, const cJSON *st,
			 struct pv_container *ct)
{
	if (!st)
		return 0;
	if (!cJSON_IsObject(st))
		return pv_st_fail(c, key, "storage", "must be an object, not %s", pv_st_type(st));
	size_t n = (size_t)cJSON_GetArraySize(st);
	ct->storage = calloc(n ? n : 1, sizeof(*ct->storage));
	if (!ct->storage)
		return pv_st_fail(c, key, "storage", "out of memory");
	int rc = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, st)
	{
		char f[128];
		snprintf(f, sizeof(f), "storage.%.80s", v->string);
		if (!cJSON_IsObject(v)) {
			rc = pv_st_fail(c, key, f, "must be an object, not %s", pv_st_type(v));
			continue;
		}
		struct pv_storage_vol *sv = &ct->storage[ct->n_storage++];
		sv->name = strdup(v->string);
		if (!sv->name)
			return pv_st_fail(c, key, f, "out of memory");
		/* unknown persistence (pvr may write "built-in") means boot, as upstream */
		sv->persistence = PV_PERSIST_BOOT;
		const cJSON *p = GET(v, "persistence");
		char ff[160];
		snprintf(ff, sizeof(ff), "%s.persistence", f);
		if (p && !cJSON_IsString(p)) {
			rc = pv_st_fail(c, key, ff, "must be a string, not %s", pv_st_type(p));
		} else if (p) {
			for (int i = 0; pv_persist_names[i]; i++)
				if (!strcmp(p->valuestring, pv_persist_names[i]))
					sv->persistence = (enum pv_persistence)i;
		}
		snprintf(ff, sizeof(ff), "%s.disk", f);
		rc |= pv_st_str(c, key, ff, GET(v, "disk"), &sv->disk);
	}
	return rc ? -EINVAL : 0;
}

static int parse_roles(struct pv_sctx *c, const char *key, const cJSON *r, struct pv_container *ct)
{
	if (!r) {
		/* our default: no roles key = unprivileged, unless legacy behaviour is asked for */
		ct->roles = c->o->legacy_roles ? PV_ROLE_MGMT : 0;
		return 0;
	}
	ct->roles_set = true;
	/* upstream also takes an object: it only clears mgmt */
	if (cJSON_IsObject(r))
		return 0;
	if (!cJSON_IsArray(r))
		return pv_st_fail(c, key, "roles",
				  "must be an array of \"mgmt\"/\"nobody\", not %s", pv_st_type(r));
	int rc = 0;
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, r)
	{
		char f[64];
		snprintf(f, sizeof(f), "roles[%zu]", i++);
		if (!cJSON_IsString(e))
			rc = pv_st_fail(c, key, f, "must be a string, not %s", pv_st_type(e));
		else if (!strcmp(e->valuestring, "mgmt"))
			ct->roles |= PV_ROLE_MGMT;
		else if (!strcmp(e->valuestring, "nobody"))
			ct->roles |= PV_ROLE_NOBODY;
		else
			rc = pv_st_fail(c, key, f, "\"%.64s\" is not one of mgmt, nobody",
					e->valuestring);
	}
	return rc;
}

static int parse_drivers(struct pv_sctx *c, const char *key, const cJSON *d,
			 struct pv_container *ct)
{
	if (!d)
		return 0;
	if (!cJSON_IsObject(d))
		return pv_st_fail(c, key, "drivers", "must be an object, not %s", pv_st_type(d));
	int rc = 0;
	rc |= pv_st_strarr(c, key, "drivers.required", GET(d, "required"), &ct->drivers_required,
			   &ct->n_drivers_required);
	rc |= pv_st_strarr(c, key, "drivers.optional", GET(d, "optional"), &ct->drivers_optional,
			   &ct->n_drivers_optional);
	rc |= pv_st_strarr(c, key, "drivers.manual", GET(d, "manual"), &ct->drivers_manual,
			   &ct->n_drivers_manual);
	return rc ? -EINVAL : 0;
}

static int parse_reqs(struct pv_sctx *c, const char *key, const cJSON *arr, const char *which,
		      bool optional, struct pv_container *ct)
{
	if (!arr)
		return 0;
	char f[64];
	snprintf(f, sizeof(f), "services.%s", which);
	if (!cJSON_IsArray(arr))
		return pv_st_fail(c, key, f, "must be an array, not %s", pv_st_type(arr));
	int rc = 0;
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		char ef[96], ff[128];
		snprintf(ef, sizeof(ef), "%s[%zu]", f, i++);
		if (cJSON_IsString(e)) {
			/* upstream also takes a bare service name */
			struct pv_service_req *r = &ct->requires[ct->n_requires++];
			r->optional = optional;
			if (pv_st_str(c, key, ef, e, &r->name) < 0)
				rc = -EINVAL;
			else if (!r->name[0])
				rc = pv_st_fail(c, key, ef, "is empty");
			continue;
		}
		if (!cJSON_IsObject(e)) {
			rc = pv_st_fail(c, key, ef, "must be an object or a service name, not %s",
					pv_st_type(e));
			continue;
		}
		struct pv_service_req *r = &ct->requires[ct->n_requires++];
		r->optional = optional;
		const cJSON *n = GET(e, "name");
		snprintf(ff, sizeof(ff), "%s.name", ef);
		if (!n)
			rc = pv_st_fail(c, key, ff, "missing");
		else if (pv_st_str(c, key, ff, n, &r->name) < 0)
			rc = -EINVAL;
		else if (!r->name[0])
			rc = pv_st_fail(c, key, ff, "is empty");
		int t = 0;
		snprintf(ff, sizeof(ff), "%s.type", ef);
		if (pv_st_enum(c, key, ff, GET(e, "type"), pv_service_type_names, &t) < 0)
			rc = -EINVAL;
		else
			rc |= pv_st_str(c, key, ff, GET(e, "type"), &r->type);
		snprintf(ff, sizeof(ff), "%s.role", ef);
		rc |= pv_st_str(c, key, ff, GET(e, "role"), &r->role);
		snprintf(ff, sizeof(ff), "%s.interface", ef);
		rc |= pv_st_str(c, key, ff, GET(e, "interface"), &r->interface);
		const cJSON *tg = GET(e, "target");
		snprintf(ff, sizeof(ff), "%s.target", ef);
		if (!cJSON_IsNull(tg))
			rc |= pv_st_str(c, key, ff, tg, &r->target);
		snprintf(ff, sizeof(ff), "%s.mode", ef);
		if (pv_st_enum(c, key, ff, GET(e, "mode"), pv_mode_names, &t) < 0)
			rc = -EINVAL;
		else
			rc |= pv_st_str(c, key, ff, GET(e, "mode"), &r->mode);
		snprintf(ff, sizeof(ff), "%s.owner", ef);
		if (pv_st_str(c, key, ff, GET(e, "owner"), &r->owner) < 0)
			rc = -EINVAL;
		else if (r->owner && !pv_graph_owner_valid(r->owner))
			rc = pv_st_fail(c, key, ff, "\"%s\" is not UID or UID:GID", r->owner);
		snprintf(ff, sizeof(ff), "%s.socket_mode", ef);
		if (pv_st_str(c, key, ff, GET(e, "socket_mode"), &r->socket_mode) < 0)
			rc = -EINVAL;
		else if (r->socket_mode && !pv_graph_socket_mode_valid(r->socket_mode))
			rc = pv_st_fail(c, key, ff, "\"%s\" is not an octal mode of at most 0777",
					r->socket_mode);
		snprintf(ff, sizeof(ff), "%s.hide_globals", ef);
		const char *why = NULL;
		int hr =
		    pv_graph_hide_globals_from_json(GET(e, "hide_globals"), &r->hide_globals, &why);
		if (hr == -ENOMEM)
			rc = -ENOMEM;
		else if (hr < 0)
			rc = pv_st_fail(c, key, ff, "%s", why);
	}
	return rc ? -EINVAL : 0;
}

static int parse_services(struct pv_sctx *c, const char *key, const cJSON *sv,
			  struct pv_container *ct)
{
	if (!sv)
		return 0;
	if (!cJSON_IsObject(sv))
		return pv_st_fail(c, key, "services", "must be an object, not %s", pv_st_type(sv));
	const cJSON *rq = GET(sv, "required"), *op = GET(sv, "optional");
	size_t n = (size_t)(cJSON_IsArray(rq) ? cJSON_GetArraySize(rq) : 0) +
		   (size_t)(cJSON_IsArray(op) ? cJSON_GetArraySize(op) : 0);
	ct->requires = calloc(n ? n : 1, sizeof(*ct->requires));
	if (!ct->requires)
		return pv_st_fail(c, key, "services", "out of memory");
	int rc = parse_reqs(c, key, rq, "required", false, ct);
	rc |= parse_reqs(c, key, op, "optional", true, ct);
	return rc ? -EINVAL : 0;
}

static int parse_network(struct pv_sctx *c, const char *key, const cJSON *nw,
			 struct pv_container *ct)
{
	if (!nw)
		return 0;
	if (!cJSON_IsObject(nw))
		return pv_st_fail(c, key, "network", "must be an object, not %s", pv_st_type(nw));
	struct pv_network *n = &ct->network;
	int rc = 0, m = 0;
	static const char *const modes[] = {"pool", "host", NULL};
	if (pv_st_enum(c, key, "network.mode", GET(nw, "mode"), modes, &m) < 0)
		rc = -EINVAL;
	else
		rc |= pv_st_str(c, key, "network.mode", GET(nw, "mode"), &n->mode);
	rc |= pv_st_str(c, key, "network.pool", GET(nw, "pool"), &n->pool);
	rc |= pv_st_str(c, key, "network.hostname", GET(nw, "hostname"), &n->hostname);
	rc |= pv_st_str(c, key, "network.ip", GET(nw, "ip"), &n->ip);
	rc |= pv_st_str(c, key, "network.mac", GET(nw, "mac"), &n->mac);
	if (!rc && n->pool && !n->mode) {
		n->mode = strdup("pool"); /* a pool implies pool mode */
		if (!n->mode)
			rc = pv_st_fail(c, key, "network", "out of memory");
	}
	return rc ? -EINVAL : 0;
}

/* "lxc"/"console" loggers are written {"lxc":"enable"}; accept true too. */
static int logger_flag(struct pv_sctx *c, const char *key, const char *f, const cJSON *v, bool *out)
{
	if (!v)
		return 0;
	if (cJSON_IsBool(v)) {
		*out = cJSON_IsTrue(v);
		return 0;
	}
	if (cJSON_IsString(v)) {
		*out = strcmp(v->valuestring, "disable") && strcmp(v->valuestring, "no");
		return 0;
	}
	return pv_st_fail(c, key, f, "must be \"enable\" or a boolean, not %s", pv_st_type(v));
}

static int parse_logs(struct pv_sctx *c, const char *key, const cJSON *lg, struct pv_container *ct)
{
	if (!lg)
		return 0;
	if (!cJSON_IsArray(lg))
		return pv_st_fail(c, key, "logs", "must be an array, not %s", pv_st_type(lg));
	size_t n = (size_t)cJSON_GetArraySize(lg);
	ct->logs = calloc(n ? n : 1, sizeof(*ct->logs));
	if (!ct->logs)
		return pv_st_fail(c, key, "logs", "out of memory");
	int rc = 0;
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, lg)
	{
		char f[64], ff[96];
		snprintf(f, sizeof(f), "logs[%zu]", i++);
		if (!cJSON_IsObject(e)) {
			rc = pv_st_fail(c, key, f, "must be an object, not %s", pv_st_type(e));
			continue;
		}
		struct pv_logger *l = &ct->logs[ct->n_logs++];
		snprintf(ff, sizeof(ff), "%s.file", f);
		rc |= pv_st_str(c, key, ff, GET(e, "file"), &l->file);
		snprintf(ff, sizeof(ff), "%s.name", f);
		rc |= pv_st_str(c, key, ff, GET(e, "name"), &l->name);
		snprintf(ff, sizeof(ff), "%s.lxc", f);
		rc |= logger_flag(c, key, ff, GET(e, "lxc"), &l->lxc);
		snprintf(ff, sizeof(ff), "%s.console", f);
		rc |= logger_flag(c, key, ff, GET(e, "console"), &l->console);
		snprintf(ff, sizeof(ff), "%s.truncate", f);
		const cJSON *tr = GET(e, "truncate");
		if (cJSON_IsString(tr))
			l->truncate = !strcmp(tr->valuestring, "true");
		else
			rc |= pv_st_bool(c, key, ff, tr, &l->truncate);
		snprintf(ff, sizeof(ff), "%s.maxsize", f);
		const cJSON *ms = GET(e, "maxsize");
		if (cJSON_IsString(ms)) {
			char *end = NULL;
			long v = strtol(ms->valuestring, &end, 10);
			/* upstream hands the string to the logger as is; keep plain numbers */
			if (end != ms->valuestring && !*end && v > 0)
				l->maxsize = v;
		} else if (ms) {
			int v = 0;
			if (pv_st_int(c, key, ff, ms, &v) < 0)
				rc = -EINVAL;
			else if (v < 0)
				rc = pv_st_fail(c, key, ff, "%d is negative", v);
			else
				l->maxsize = v;
		}
	}
	return rc ? -EINVAL : 0;
}

int pv_st_container(struct pv_sctx *c, const char *key, const char *dir, const cJSON *o,
		    struct pv_container *ct, bool *from_runlevel)
{
	ct->group_index = -1;
	ct->dev_log = -1;
	ct->automodfw = true;
	*from_runlevel = false;
	if (!cJSON_IsObject(o))
		return pv_st_fail(c, key, NULL, "must be a JSON object, not %s", pv_st_type(o));
	int rc = 0;
	const cJSON *n = GET(o, "name");
	if (!n) {
		rc = pv_st_fail(c, key, "name", "missing");
	} else if (pv_st_str(c, key, "name", n, &ct->name) < 0) {
		rc = -EINVAL;
	} else if (strcmp(ct->name, dir)) {
		rc = pv_st_fail(c, key, "name", "\"%.64s\" does not match the directory \"%s\"",
				ct->name, dir);
	}
	/* the directory is what ownership and volume paths use; keep it as the name */
	free(ct->name);
	ct->name = strdup(dir);
	if (!ct->name)
		return pv_st_fail(c, key, NULL, "out of memory");
	const cJSON *t = GET(o, "type");
	if (!t)
		rc = pv_st_fail(c, key, "type", "missing");
	else if (pv_st_str(c, key, "type", t, &ct->type) < 0)
		rc = -EINVAL;
	else if (strcmp(ct->type, "lxc"))
		rc = pv_st_fail(c, key, "type", "\"%.64s\" is not supported (only lxc)", ct->type);
	rc |= pv_st_str(c, key, "config", GET(o, "config"), &ct->config);
	const cJSON *rv = GET(o, "root-volume");
	if (!rv)
		rc = pv_st_fail(c, key, "root-volume", "missing");
	else
		rc |= pv_st_str(c, key, "root-volume", rv, &ct->root_volume);
	rc |= pv_st_strarr(c, key, "volumes", GET(o, "volumes"), &ct->volumes, &ct->n_volumes);
	rc |= parse_storage(c, key, GET(o, "storage"), ct);
	rc |= pv_st_str(c, key, "group", GET(o, "group"), &ct->group);
	const cJSON *rl = GET(o, "runlevel");
	if (rl && !cJSON_IsString(rl)) {
		rc = pv_st_fail(c, key, "runlevel", "must be a string, not %s", pv_st_type(rl));
	} else if (rl && !ct->group) {
		/* deprecated: the four runlevels map to the group of the same name; others
		 * are ignored (upstream warns) */
		static const char *const lv[] = {"data", "root", "platform", "app"};
		for (int i = 0; i < 4; i++)
			if (!strcmp(rl->valuestring, lv[i])) {
				ct->group = strdup(lv[i]);
				*from_runlevel = true;
			}
	}
	int v = 0;
	const cJSON *sg = GET(o, "status_goal");
	if (pv_st_enum(c, key, "status_goal", sg, pv_goal_names, &v) < 0)
		rc = -EINVAL;
	else if (sg) {
		ct->status_goal = (enum pv_status_goal)v;
		ct->status_goal_set = true;
	}
	const cJSON *rp = GET(o, "restart_policy");
	if (pv_st_enum(c, key, "restart_policy", rp, pv_restart_names, &v) < 0)
		rc = -EINVAL;
	else if (rp) {
		ct->restart_policy = (enum pv_restart_policy)v;
		ct->restart_policy_set = true;
	}
	rc |= parse_roles(c, key, GET(o, "roles"), ct);
	rc |= parse_drivers(c, key, GET(o, "drivers"), ct);
	rc |= parse_services(c, key, GET(o, "services"), ct);
	rc |= parse_network(c, key, GET(o, "network"), ct);
	rc |= parse_logs(c, key, GET(o, "logs"), ct);
	rc |= pv_st_strarr(c, key, "exports", GET(o, "exports"), &ct->export_paths,
			   &ct->n_export_paths);
	const cJSON *dl = GET(o, "dev-log");
	bool b = false;
	if (pv_st_bool(c, key, "dev-log", dl, &b) < 0)
		rc = -EINVAL;
	else if (dl)
		ct->dev_log = b ? 1 : 0;
	const cJSON *am = GET(o, "automodfw");
	if (cJSON_IsString(am)) {
		/* as upstream: only "no" turns it off */
		ct->automodfw = strcmp(am->valuestring, "no") != 0;
	} else if (pv_st_bool(c, key, "automodfw", am, &ct->automodfw) < 0) {
		rc = -EINVAL;
	}
	rc |= pv_st_auto_recovery(c, key, "auto_recovery", GET(o, "auto_recovery"),
				  &ct->auto_recovery);
	return rc ? -EINVAL : 0;
}

/* "[handler:]file" -> does <c>/<file> exist? */
static void check_ref(struct pv_sctx *c, const char *key, const char *field,
		      const struct pv_container *ct, const char *ref)
{
	const char *file = strchr(ref, ':') ? strchr(ref, ':') + 1 : ref;
	if (!*file) {
		pv_st_fail(c, key, field, "\"%.64s\" names no file", ref);
		return;
	}
	char *k = NULL;
	if (asprintf(&k, "%s/%s", ct->name, file) < 0) {
		pv_st_fail(c, key, field, "out of memory");
		return;
	}
	bool found = pv_st_entry(c, k) != NULL;
	if (!found) {
		/* a ".data" volume is a directory: any key below it counts */
		char *pre = NULL;
		if (asprintf(&pre, "%s/", k) >= 0) {
			found = pv_st_entry_prefix(c, pre);
			free(pre);
		}
	}
	if (!found)
		pv_st_fail(c, key, field, "\"%.64s\" names no key \"%.200s\" of the state", ref, k);
	free(k);
}

void pv_st_container_refs(struct pv_sctx *c, const struct pv_container *ct)
{
	char key[PV_NAME_MAX + 16];
	snprintf(key, sizeof(key), "%s/run.json", ct->name);
	if (ct->config)
		check_ref(c, key, "config", ct, ct->config);
	else if (ct->group_index >= 0 && ct->status_goal != PV_GOAL_MOUNTED)
		pv_st_fail(c, key, "config", "missing (required unless status_goal is MOUNTED)");
	if (ct->root_volume)
		check_ref(c, key, "root-volume", ct, ct->root_volume);
	for (size_t i = 0; i < ct->n_volumes; i++) {
		char f[48];
		snprintf(f, sizeof(f), "volumes[%zu]", i);
		check_ref(c, key, f, ct, ct->volumes[i]);
	}
}
