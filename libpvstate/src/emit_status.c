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
