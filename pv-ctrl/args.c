/* pv-ctrl/args.c: the small JSON pieces pv-ctrl must read itself: fields of the HTTP request
 * bodies ({"action"}, {"type"}, {"op","payload"}) and the whois reply; op args via libpvstate. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pvstate/proto.h"

#include "ctrl.h"

/* Op args are built by libpvstate (pv_msg_args_str); our handlers pass at most 3 pairs. */
char *pv_ctrl_args_kv(const char *const *kv)
{
	size_t n = 0;
	while (kv[2 * n] && kv[2 * n + 1])
		n++;
	switch (n) {
	case 1:
		return pv_msg_args_str(1, kv[0], kv[1]);
	case 2:
		return pv_msg_args_str(2, kv[0], kv[1], kv[2], kv[3]);
	case 3:
		return pv_msg_args_str(3, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5]);
	}
	return NULL;
}

char *pv_ctrl_args_pid(int pid)
{
	/* pv_msg_args_str builds strings only and whois wants an integer; a decimal int needs
	 * no escaping */
	char *s = NULL;
	return asprintf(&s, "{\"pid\":%d}", pid) < 0 ? NULL : s;
}

static cJSON *parse_obj(const char *body, size_t len, char *msg, size_t msg_len)
{
	if (!body || len == 0) {
		snprintf(msg, msg_len, "request body is empty, a JSON object is expected");
		return NULL;
	}
	const char *end = NULL;
	cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!o) {
		snprintf(msg, msg_len, "request body is not valid JSON (near byte %zu)",
			 end ? (size_t)(end - body) : (size_t)0);
		return NULL;
	}
	/* trailing garbage after the value is as bad as a broken value */
	for (; end && end < body + len; end++)
		if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t' && *end != '\0') {
			snprintf(msg, msg_len, "request body has data after the JSON value");
			cJSON_Delete(o);
			return NULL;
		}
	if (!cJSON_IsObject(o)) {
		snprintf(msg, msg_len, "request body must be a JSON object");
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int pv_ctrl_body_check_json(const char *body, size_t len, char *msg, size_t msg_len)
{
	cJSON *o = parse_obj(body, len, msg, msg_len);
	if (!o)
		return -EINVAL;
	cJSON_Delete(o);
	return 0;
}

int pv_ctrl_body_field(const char *body, size_t len, const char *field, bool required, char *out,
		       size_t out_len, char *msg, size_t msg_len)
{
	out[0] = '\0';
	cJSON *o = parse_obj(body, len, msg, msg_len);
	if (!o)
		return -EINVAL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
	int r = 0;
	if (!v || cJSON_IsNull(v)) {
		if (required) {
			snprintf(msg, msg_len, "request body: \"%s\" is missing", field);
			r = -EINVAL;
		}
	} else if (!cJSON_IsString(v)) {
		snprintf(msg, msg_len, "request body: \"%s\" must be a string", field);
		r = -EINVAL;
	} else if (strlen(v->valuestring) >= out_len) {
		snprintf(msg, msg_len, "request body: \"%s\" is too long", field);
		r = -EINVAL;
	} else {
		strcpy(out, v->valuestring);
	}
	cJSON_Delete(o);
	return r;
}

int pv_ctrl_whois_parse(const char *body, char *container, size_t len, bool *mgmt)
{
	*mgmt = false;
	container[0] = '\0';
	if (!body)
		return -EINVAL;
	cJSON *o = cJSON_Parse(body);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return -EINVAL;
	}
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "container");
	if (cJSON_IsString(c))
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
