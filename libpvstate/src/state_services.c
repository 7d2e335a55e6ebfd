/* state_services.c: <c>/services.json exports (spec 2.9) and the state-wide rule that every
 * required service of a run.json is exported by some container (spec 9). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

#define GET(o, k) cJSON_GetObjectItemCaseSensitive((o), (k))

int pv_st_services(struct pv_sctx *c, const char *key, const cJSON *val, struct pv_container *ct)
{
	const cJSON *arr = val;
	/* current format {"#spec":..., "services":[...]}; the old one is a bare array */
	if (cJSON_IsObject(val)) {
		arr = GET(val, "services");
		if (!arr)
			return pv_st_fail(c, key, "services", "missing");
	}
	if (!cJSON_IsArray(arr))
		return pv_st_fail(c, key, "services", "must be an array, not %s", pv_st_type(arr));
	size_t n = (size_t)cJSON_GetArraySize(arr);
	ct->exports = calloc(n ? n : 1, sizeof(*ct->exports));
	if (!ct->exports)
		return pv_st_fail(c, key, "services", "out of memory");
	ct->has_services_json = true;
	int rc = 0;
	size_t i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, arr)
	{
		char f[64], ff[96];
		snprintf(f, sizeof(f), "services[%zu]", i++);
		if (!cJSON_IsObject(e)) {
			rc = pv_st_fail(c, key, f, "must be an object, not %s", pv_st_type(e));
			continue;
		}
		int t = 0;
		if (GET(e, "owns")) {
			/* a hosted D-Bus name declaration, not an export others can require */
			snprintf(ff, sizeof(ff), "%s.type", f);
			const cJSON *ty = GET(e, "type");
			if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "dbus"))
				rc =
				    pv_st_fail(c, key, ff, "an \"owns\" entry must have type dbus");
			continue;
		}
		struct pv_service_export *x = &ct->exports[ct->n_exports++];
		snprintf(ff, sizeof(ff), "%s.name", f);
		const cJSON *nm = GET(e, "name");
		if (!nm)
			rc = pv_st_fail(c, key, ff, "missing");
		else if (pv_st_str(c, key, ff, nm, &x->name) < 0)
			rc = -EINVAL;
		else if (!x->name[0])
			rc = pv_st_fail(c, key, ff, "is empty");
		snprintf(ff, sizeof(ff), "%s.type", f);
		const cJSON *ty = GET(e, "type");
		if (!ty)
			rc = pv_st_fail(c, key, ff, "missing");
		else if (pv_st_enum(c, key, ff, ty, pv_service_type_names, &t) < 0)
			rc = -EINVAL;
		else
			rc |= pv_st_str(c, key, ff, ty, &x->type);
		snprintf(ff, sizeof(ff), "%s.socket", f);
		rc |= pv_st_str(c, key, ff, GET(e, "socket"), &x->socket);
		snprintf(ff, sizeof(ff), "%s.mode", f);
		if (pv_st_enum(c, key, ff, GET(e, "mode"), pv_mode_names, &t) < 0)
			rc = -EINVAL;
		else
			rc |= pv_st_str(c, key, ff, GET(e, "mode"), &x->mode);
		static const char *const creds[] = {"pass", NULL};
		snprintf(ff, sizeof(ff), "%s.credentials", f);
		if (pv_st_enum(c, key, ff, GET(e, "credentials"), creds, &t) < 0)
			rc = -EINVAL;
		else
			rc |= pv_st_str(c, key, ff, GET(e, "credentials"), &x->credentials);
	}
	return rc ? -EINVAL : 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool exported(const char *const *names, size_t n, const char *name)
{
	return bsearch(&name, names, n, sizeof(char *), cmp_name) != NULL;
}

void pv_st_services_check(struct pv_sctx *c)
{
	const struct pv_state *s = c->s;
	size_t n = 0;
	for (size_t i = 0; i < s->n_containers; i++)
		n += s->containers[i].n_exports;
	const char **names = calloc(n ? n : 1, sizeof(char *));
	if (!names) {
		pv_st_fail(c, "services.json", NULL, "out of memory");
		return;
	}
	n = 0;
	for (size_t i = 0; i < s->n_containers; i++)
		for (size_t j = 0; j < s->containers[i].n_exports; j++)
			if (s->containers[i].exports[j].name)
				names[n++] = s->containers[i].exports[j].name;
	qsort(names, n, sizeof(char *), cmp_name);
	for (size_t i = 0; i < s->n_containers; i++) {
		const struct pv_container *ct = &s->containers[i];
		char key[PV_NAME_MAX + 16];
		snprintf(key, sizeof(key), "%s/run.json", ct->name);
		size_t ri = 0;
		for (size_t j = 0; j < ct->n_requires; j++) {
			const struct pv_service_req *r = &ct->requires[j];
			if (r->optional || !r->name)
				continue;
			char f[64];
			snprintf(f, sizeof(f), "services.required[%zu]", ri++);
			if (c->o->hosted_system_bus && !strcmp(r->name, "system-bus"))
				continue;
			if (!exported(names, n, r->name))
				pv_st_fail(
				    c, key, f,
				    "service \"%s\" required by container %s is not exported "
				    "by any container",
				    r->name, ct->name);
		}
	}
	if (c->o->hosted_system_bus && exported(names, n, "system-bus"))
		pv_st_fail(c, "services.json", NULL,
			   "a container exports \"system-bus\", which shadows the hosted D-Bus");
	free(names);
}
