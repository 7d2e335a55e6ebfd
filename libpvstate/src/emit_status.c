/* emit_status.c: JSON of the engine's runtime status (containers / groups lists as pv-ctrl
 * serves them), built with cJSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pvstate/state.h"
#include "pvstate/status.h"

static cJSON *recovery_obj(const struct pv_status_recovery *r, bool container)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "policy", r->policy ? r->policy : "no");
	cJSON_AddNumberToObject(o, "max_retries", r->max_retries);
	if (container)
		cJSON_AddNumberToObject(o, "current_retries", r->current_retries);
	cJSON_AddNumberToObject(o, "retry_delay", r->retry_delay);
	cJSON_AddNumberToObject(o, "backoff_factor", r->backoff_factor);
	cJSON_AddNumberToObject(o, "reset_window", r->reset_window);
	cJSON_AddNumberToObject(o, "stable_timeout", r->stable_timeout);
	if (container)
		cJSON_AddBoolToObject(o, "is_stable", r->is_stable);
	cJSON_AddStringToObject(o, "backoff_policy",
				r->backoff_policy ? r->backoff_policy : "reboot");
	return o;
}

static char *print_free(cJSON *root)
{
	char *s = root ? cJSON_PrintUnformatted(root) : NULL;
	cJSON_Delete(root);
	return s;
}

char *pv_status_emit_containers(const struct pv_status_container *c, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	if (!a)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		if (!o)
			goto fail;
		cJSON_AddItemToArray(a, o);
		cJSON_AddStringToObject(o, "name", c[i].name ? c[i].name : "");
		cJSON_AddStringToObject(o, "group", c[i].group ? c[i].group : "");
		cJSON_AddStringToObject(o, "status", c[i].status ? c[i].status : "");
		cJSON_AddStringToObject(o, "status_goal", c[i].status_goal ? c[i].status_goal : "");
		cJSON_AddStringToObject(o, "restart_policy",
					c[i].restart_policy ? c[i].restart_policy : "");
		cJSON *roles = cJSON_AddArrayToObject(o, "roles");
		if (roles && (c[i].roles & PV_ROLE_MGMT))
			cJSON_AddItemToArray(roles, cJSON_CreateString("mgmt"));
		if (roles && (c[i].roles & PV_ROLE_NOBODY))
			cJSON_AddItemToArray(roles, cJSON_CreateString("nobody"));
		if (c[i].auto_recovery.set)
			cJSON_AddItemToObject(o, "auto_recovery",
					      recovery_obj(&c[i].auto_recovery, true));
		cJSON_AddBoolToObject(o, "user_stopped", c[i].user_stopped);
		cJSON_AddNumberToObject(o, "pid", c[i].pid);
	}
	return print_free(a);
fail:
	cJSON_Delete(a);
	return NULL;
}

char *pv_status_emit_groups(const struct pv_status_group *g, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	if (!a)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		if (!o)
			goto fail;
		cJSON_AddItemToArray(a, o);
		cJSON_AddStringToObject(o, "name", g[i].name ? g[i].name : "");
		cJSON_AddStringToObject(o, "status_goal", g[i].status_goal ? g[i].status_goal : "");
		cJSON_AddStringToObject(o, "restart_policy",
					g[i].restart_policy ? g[i].restart_policy : "");
		cJSON_AddStringToObject(o, "status", g[i].status ? g[i].status : "");
		cJSON_AddNumberToObject(o, "timeout", g[i].timeout);
		if (g[i].auto_recovery.set)
			cJSON_AddItemToObject(o, "auto_recovery",
					      recovery_obj(&g[i].auto_recovery, false));
	}
	return print_free(a);
fail:
	cJSON_Delete(a);
	return NULL;
}

/* A new object appended to array a; on failure a is freed (the emitters then return NULL). */
static cJSON *push_object(cJSON *a)
{
	cJSON *it = cJSON_CreateObject();
	if (!it || !cJSON_AddItemToArray(a, it)) {
		cJSON_Delete(it);
		cJSON_Delete(a);
		return NULL;
	}
	return it;
}

char *pv_status_emit_objects(const struct pv_status_object *o, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++) {
		char size[32];
		cJSON *it = push_object(a);
		if (!it)
			return NULL;
		/* upstream serves the size as a string (it may exceed 2^53 on big disks) */
		snprintf(size, sizeof(size), "%llu", (unsigned long long)o[i].size);
		if (!cJSON_AddStringToObject(it, "sha256", o[i].sha256) ||
		    !cJSON_AddStringToObject(it, "size", size)) {
			cJSON_Delete(a);
			return NULL;
		}
	}
	return print_free(a);
}

/* A stored progress file is served as JSON when it parses as an object, else as {}. */
static cJSON *progress_obj(const char *text)
{
	cJSON *p = text ? cJSON_Parse(text) : NULL;
	if (cJSON_IsObject(p))
		return p;
	cJSON_Delete(p);
	return cJSON_CreateObject();
}

bool pv_status_is_json_object(const char *text, size_t len)
{
	cJSON *p = text ? cJSON_ParseWithLength(text, len) : NULL;
	bool ok = cJSON_IsObject(p);
	cJSON_Delete(p);
	return ok;
}

char *pv_status_emit_steps(const struct pv_status_step *s, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++) {
		cJSON *it = push_object(a);
		if (!it)
			return NULL;
		cJSON *p = progress_obj(s[i].progress);
		if (!cJSON_AddStringToObject(it, "name", s[i].name) ||
		    !cJSON_AddStringToObject(it, "date", s[i].date ? s[i].date : "") ||
		    !cJSON_AddStringToObject(it, "commitmsg",
					     s[i].commitmsg ? s[i].commitmsg : "") ||
		    !p || !cJSON_AddItemToObject(it, "progress", p)) {
			cJSON_Delete(p);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return print_free(a);
}

char *pv_status_emit_progress(const char *status, const char *msg, int progress)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "status", status) ||
	    !cJSON_AddStringToObject(o, "status-msg", msg ? msg : "") ||
	    !cJSON_AddNumberToObject(o, "progress", progress)) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_free(o);
}

char *pv_status_emit_progress_logs(const char *status, const char *msg, int progress,
				   const char *logs)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "status", status) ||
	    !cJSON_AddStringToObject(o, "status-msg", msg ? msg : "") ||
	    !cJSON_AddNumberToObject(o, "progress", progress) ||
	    (logs && *logs && !cJSON_AddStringToObject(o, "logs", logs))) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_free(o);
}

bool pv_status_json_same(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen == blen && !memcmp(a, b, alen))
		return true;
	cJSON *x = cJSON_ParseWithLength(a, alen), *y = cJSON_ParseWithLength(b, blen);
	bool same = x && y && cJSON_Compare(x, y, true);
	cJSON_Delete(x);
	cJSON_Delete(y);
	return same;
}

int pv_status_parse_progress(const char *text, size_t len, char *status, size_t sn, char *msg,
			     size_t mn)
{
	if (status && sn)
		status[0] = '\0';
	if (msg && mn)
		msg[0] = '\0';
	cJSON *o = text ? cJSON_ParseWithLength(text, len) : NULL;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "status-msg");
	int r = -EINVAL;
	if (cJSON_IsObject(o) && cJSON_IsString(st)) {
		if (status && sn)
			snprintf(status, sn, "%s", st->valuestring);
		if (msg && mn && cJSON_IsString(m))
			snprintf(msg, mn, "%s", m->valuestring);
		r = 0;
	}
	cJSON_Delete(o);
	return r;
}

char *pv_status_emit_meta(const char *const *keys, const char *const *values, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; o && i < n; i++) {
		if (!cJSON_AddStringToObject(o, keys[i], values[i] ? values[i] : "")) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return print_free(o);
}

char *pv_status_emit_daemons(const struct pv_status_daemon *d, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++) {
		cJSON *it = push_object(a);
		if (!it)
			return NULL;
		if (!cJSON_AddStringToObject(it, "name", d[i].name) ||
		    !cJSON_AddNumberToObject(it, "pid", d[i].pid) ||
		    !cJSON_AddBoolToObject(it, "respawn", d[i].respawn)) {
			cJSON_Delete(a);
			return NULL;
		}
	}
	return print_free(a);
}

char *pv_status_emit_storage(const struct pv_status_storage *u)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddNumberToObject(o, "total", (double)u->total) ||
	    !cJSON_AddNumberToObject(o, "free", (double)u->free) ||
	    !cJSON_AddNumberToObject(o, "reserved", (double)u->reserved) ||
	    !cJSON_AddNumberToObject(o, "real_free", (double)u->real_free)) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_free(o);
}

char *pv_status_emit_gc(uint64_t reclaimed)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddNumberToObject(o, "reclaimed", (double)reclaimed)) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_free(o);
}
