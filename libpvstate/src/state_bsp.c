/* state_bsp.c: bsp/run.json (spec 2.4): which kernel/initrd/fit/rpiab images, firmware, modules
 * and addons the BSP boots, each naming a key under bsp/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

#define GET(o, k) cJSON_GetObjectItemCaseSensitive((o), (k))
#define BSP	  "bsp/run.json"

void pv_st_bsp_free(struct pv_bsp *b)
{
	free(b->linux_);
	free(b->initrd);
	free(b->fdt);
	free(b->fit);
	free(b->rpiab);
	free(b->firmware);
	free(b->modules);
	pv_st_strv_free(b->addons, b->n_addons);
	memset(b, 0, sizeof(*b));
}

static void check_file(struct pv_sctx *c, const char *field, const char *file)
{
	if (!file)
		return;
	char *k = NULL;
	if (asprintf(&k, "bsp/%s", file) < 0)
		return;
	if (!pv_st_entry(c, k))
		pv_st_fail(c, BSP, field, "\"%.64s\" names no key \"%.200s\" of the state", file,
			   k);
	free(k);
}

int pv_st_bsp(struct pv_sctx *c, const cJSON *v)
{
	struct pv_bsp *b = &c->s->bsp;
	if (!cJSON_IsObject(v))
		return pv_st_fail(c, BSP, NULL, "must be a JSON object, not %s", pv_st_type(v));
	b->present = true;
	int rc = 0;
	rc |= pv_st_str(c, BSP, "linux", GET(v, "linux"), &b->linux_);
	rc |= pv_st_str(c, BSP, "initrd", GET(v, "initrd"), &b->initrd);
	rc |= pv_st_str(c, BSP, "fdt", GET(v, "fdt"), &b->fdt);
	rc |= pv_st_str(c, BSP, "fit", GET(v, "fit"), &b->fit);
	rc |= pv_st_str(c, BSP, "rpiab", GET(v, "rpiab"), &b->rpiab);
	rc |= pv_st_str(c, BSP, "firmware", GET(v, "firmware"), &b->firmware);
	rc |= pv_st_str(c, BSP, "modules", GET(v, "modules"), &b->modules);
	rc |= pv_st_strarr(c, BSP, "addons", GET(v, "addons"), &b->addons, &b->n_addons);
	if (rc)
		return -EINVAL;
	if (!b->fit && !b->rpiab && !(b->linux_ && b->initrd))
		return pv_st_fail(c, BSP, NULL, "needs fit, rpiab, or both linux and initrd");
	check_file(c, "linux", b->linux_);
	check_file(c, "initrd", b->initrd);
	check_file(c, "fdt", b->fdt);
	check_file(c, "fit", b->fit);
	check_file(c, "rpiab", b->rpiab);
	check_file(c, "firmware", b->firmware);
	check_file(c, "modules", b->modules);
	for (size_t i = 0; i < b->n_addons; i++) {
		char f[32];
		snprintf(f, sizeof(f), "addons[%zu]", i);
		check_file(c, f, b->addons[i]);
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* bsp/drivers.json (spec 2.5): {"#spec", "<section>": {"<alias>": ["<module> [args]", ...]}}.
 * A container's required driver must be an alias of some section (upstream fails the revision
 * when it loads an unknown one); without drivers.json nothing can be checked. */
void pv_st_drivers(struct pv_sctx *c, const cJSON *root)
{
	const char *key = "bsp/drivers.json";
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, key);
	if (!d)
		return;
	if (!cJSON_IsObject(d)) {
		pv_st_fail(c, key, NULL, "must be a JSON object, not %s", pv_st_type(d));
		return;
	}
	size_t n = 0;
	const cJSON *sec, *al;
	cJSON_ArrayForEach(sec, d) if (cJSON_IsObject(sec)) n += (size_t)cJSON_GetArraySize(sec);
	const char **names = calloc(n ? n : 1, sizeof(char *));
	if (!names) {
		pv_st_fail(c, key, NULL, "out of memory");
		return;
	}
	n = 0;
	cJSON_ArrayForEach(sec, d)
	{
		if (!strcmp(sec->string, "#spec"))
			continue;
		char f[160];
		snprintf(f, sizeof(f), "%.80s", sec->string);
		if (!cJSON_IsObject(sec)) {
			pv_st_fail(c, key, f, "must be an object of aliases, not %s",
				   pv_st_type(sec));
			continue;
		}
		cJSON_ArrayForEach(al, sec)
		{
			snprintf(f, sizeof(f), "%.60s.%.60s", sec->string, al->string);
			bool ok = cJSON_IsArray(al);
			const cJSON *m;
			cJSON_ArrayForEach(m, al) ok = ok && cJSON_IsString(m);
			if (!ok) {
				pv_st_fail(c, key, f, "must be an array of module strings");
				continue;
			}
			names[n++] = al->string;
		}
	}
	qsort(names, n, sizeof(char *), cmp_name);
	for (size_t i = 0; i < c->s->n_containers; i++) {
		const struct pv_container *ct = &c->s->containers[i];
		for (size_t j = 0; j < ct->n_drivers_required; j++) {
			const char *a = ct->drivers_required[j];
			if (bsearch(&a, names, n, sizeof(char *), cmp_name))
				continue;
			char k[PV_NAME_MAX + 16], f[48];
			snprintf(k, sizeof(k), "%s/run.json", ct->name);
			snprintf(f, sizeof(f), "drivers.required[%zu]", j);
			pv_st_fail(c, k, f, "alias \"%.64s\" is not defined in bsp/drivers.json",
				   a);
		}
	}
	free(names);
}
