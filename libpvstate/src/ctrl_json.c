/* libpvstate/src/ctrl_json.c: the control API's small JSON pieces (pvstate/ctrl.h): body fields
 * pv-ctrl reads, bodies pvcontrol builds, the whois reply, object lists and step progress. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pvstate/ctrl.h"

static cJSON *parse_exact(const char *body, size_t len, struct pv_error *err)
{
	if (!body || len == 0) {
		pv_error_set(err, -EINVAL, "request body is empty, a JSON value is expected");
		return NULL;
	}
	const char *end = NULL;
	cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!o) {
		pv_error_set(err, -EINVAL, "request body is not valid JSON (near byte %zu)",
			     end ? (size_t)(end - body) : (size_t)0);
		return NULL;
	}
	/* trailing garbage after the value is as bad as a broken value */
	for (; end && end < body + len; end++)
		if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t' && *end != '\0') {
			pv_error_set(err, -EINVAL, "request body has data after the JSON value");
			cJSON_Delete(o);
			return NULL;
		}
	return o;
}

static cJSON *parse_obj(const char *body, size_t len, struct pv_error *err)
{
	cJSON *o = parse_exact(body, len, err);
	if (o && !cJSON_IsObject(o)) {
		pv_error_set(err, -EINVAL, "request body must be a JSON object");
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int pv_ctrl_json_check_object(const char *body, size_t len, struct pv_error *err)
{
	cJSON *o = parse_obj(body, len, err);
	if (!o)
		return -EINVAL;
	cJSON_Delete(o);
	return 0;
}

int pv_ctrl_json_field(const char *body, size_t len, const char *field, bool required, char *out,
		       size_t out_len, struct pv_error *err)
{
	if (out_len)
		out[0] = '\0';
	cJSON *o = parse_obj(body, len, err);
	if (!o)
		return -EINVAL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
	int r = 0;
	if (!v || cJSON_IsNull(v)) {
		if (required)
			r = pv_error_set(err, -EINVAL, "request body: \"%s\" is missing", field);
	} else if (!cJSON_IsString(v)) {
		r = pv_error_set(err, -EINVAL, "request body: \"%s\" must be a string", field);
	} else if (strlen(v->valuestring) >= out_len) {
		r = pv_error_set(err, -EINVAL,
				 "request body: \"%s\" is too long (%zu bytes, at most "
				 "%zu)",
				 field, strlen(v->valuestring), out_len ? out_len - 1 : 0);
	} else {
		memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
	}
	cJSON_Delete(o);
	return r;
}

int pv_ctrl_json_whois(const char *body, char *container, size_t len, bool *mgmt)
{
	*mgmt = false;
	if (len)
		container[0] = '\0';
	if (!body)
		return -EINVAL;
	cJSON *o = cJSON_Parse(body);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return -EINVAL;
	}
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "container");
	if (cJSON_IsString(c) && len)
		snprintf(container, len, "%s", c->valuestring);
	const cJSON *roles = cJSON_GetObjectItemCaseSensitive(o, "roles"), *it;
	cJSON_ArrayForEach(it, roles)
	{
		if (cJSON_IsString(it) && !strcmp(it->valuestring, "mgmt"))
			*mgmt = true;
	}
	cJSON_Delete(o);
	return 0;
}

/* {"k1":"v1",...} from pairs; NULL on ENOMEM. */
static char *obj_str(const char *const *kv, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; o && i < n; i++)
		if (!cJSON_AddStringToObject(o, kv[2 * i], kv[2 * i + 1] ? kv[2 * i + 1] : "")) {
			cJSON_Delete(o);
			return NULL;
		}
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

char *pv_ctrl_json_command(const char *op, const char *payload)
{
	const char *kv[] = {"op", op, "payload", payload};
	return obj_str(kv, 2);
}

char *pv_ctrl_json_action(const char *action)
{
	const char *kv[] = {"action", action};
	return obj_str(kv, 1);
}

char *pv_ctrl_json_signal(const char *type, const char *payload)
{
	const char *kv[] = {"type", type, "payload", payload};
	return obj_str(kv, 2);
}

void pv_ctrl_json_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int pv_ctrl_json_objects(const char *body, size_t len, char ***shas, size_t *n,
			 struct pv_error *err)
{
	*shas = NULL;
	*n = 0;
	cJSON *a = parse_exact(body, len, err);
	if (!a)
		return -EINVAL;
	if (!cJSON_IsArray(a)) {
		cJSON_Delete(a);
		return pv_error_set(err, -EINVAL, "object list: not a JSON array");
	}
	int cnt = cJSON_GetArraySize(a);
	char **v = calloc(cnt > 0 ? (size_t)cnt : 1, sizeof(*v));
	if (!v) {
		cJSON_Delete(a);
		return pv_error_set(err, -ENOMEM, "object list: out of memory");
	}
	size_t k = 0;
	const cJSON *it;
	int r = 0;
	cJSON_ArrayForEach(it, a)
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "sha256");
		if (!cJSON_IsString(s)) {
			r = pv_error_set(err, -EINVAL, "object list: entry %zu has no \"sha256\"",
					 k);
			break;
		}
		if (!(v[k] = strdup(s->valuestring))) {
			r = pv_error_set(err, -ENOMEM, "object list: out of memory");
			break;
		}
		k++;
	}
	cJSON_Delete(a);
	if (r < 0) {
		pv_ctrl_json_strv_free(v, k);
		return r;
	}
	*shas = v;
	*n = k;
	return 0;
}

int pv_ctrl_json_progress(const char *body, size_t len, struct pv_ctrl_progress *p,
			  struct pv_error *err)
{
	memset(p, 0, sizeof(*p));
	cJSON *o = parse_exact(body, len, err);
	if (!o)
		return -EINVAL;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "status-msg");
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "progress");
	int r = 0;
	if (!cJSON_IsObject(o))
		r = pv_error_set(err, -EINVAL, "progress: not a JSON object");
	else if (!cJSON_IsString(st))
		r = pv_error_set(err, -EINVAL, "progress: \"status\" missing or not a string");
	else {
		snprintf(p->status, sizeof(p->status), "%s", st->valuestring);
		if (cJSON_IsString(msg))
			snprintf(p->msg, sizeof(p->msg), "%s", msg->valuestring);
		if (cJSON_IsNumber(pr))
			p->progress = pr->valueint;
	}
	cJSON_Delete(o);
	return r;
}

bool pv_ctrl_progress_final(const char *status, bool *ok)
{
	*ok = !strcmp(status, "DONE") || !strcmp(status, "UPDATED");
	return *ok || !strcmp(status, "ERROR") || !strcmp(status, "WONTGO");
}

static int section_modules(const cJSON *sec, const char *alias, char ***modules, size_t *n)
{
	const cJSON *a = cJSON_IsObject(sec) ? cJSON_GetObjectItemCaseSensitive(sec, alias) : NULL;
	if (!cJSON_IsArray(a))
		return -ENOENT;
	int cnt = cJSON_GetArraySize(a);
	char **v = calloc(cnt > 0 ? (size_t)cnt : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, a)
	{
		if (!cJSON_IsString(it))
			continue;
		if (!(v[k] = strdup(it->valuestring))) {
			pv_ctrl_json_strv_free(v, k);
			return -ENOMEM;
		}
		k++;
	}
	*modules = v;
	*n = k;
	return 0;
}

int pv_ctrl_json_driver_modules(const char *drivers_json, size_t len, const char *alias,
				const char *fitconfig, char ***modules, size_t *n)
{
	*modules = NULL;
	*n = 0;
	cJSON *o = drivers_json ? cJSON_ParseWithLength(drivers_json, len) : NULL;
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return -EINVAL;
	}
	int r = -ENOENT;
	if (fitconfig && fitconfig[0]) {
		char sec[256];
		snprintf(sec, sizeof(sec), "fitconfig:%s", fitconfig);
		r = section_modules(cJSON_GetObjectItemCaseSensitive(o, sec), alias, modules, n);
	}
	if (r == -ENOENT)
		r = section_modules(cJSON_GetObjectItemCaseSensitive(o, "all"), alias, modules, n);
	cJSON_Delete(o);
	return r;
}

char *pv_ctrl_json_drivers(const struct pv_ctrl_driver *d, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++) {
		cJSON *it = cJSON_CreateObject();
		if (!it || !cJSON_AddStringToObject(it, "name", d[i].name) ||
		    !cJSON_AddStringToObject(it, "type", d[i].type) ||
		    !cJSON_AddStringToObject(it, "status", d[i].status) ||
		    !cJSON_AddItemToArray(a, it)) {
			cJSON_Delete(it);
			cJSON_Delete(a);
			return NULL;
		}
	}
	char *s = a ? cJSON_PrintUnformatted(a) : NULL;
	cJSON_Delete(a);
	return s;
}
