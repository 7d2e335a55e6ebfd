/* state.c: pv_state_parse: the top level of a revision state: limits, duplicate keys, `#spec`,
 * key classification (object vs json) and ownership, parse order (spec 2.2), lookups, free. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

void pv_state_opts_default(struct pv_state_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->default_timeout = 120; /* PV_UPDATER_GOALS_TIMEOUT */
}

void pv_state_free(struct pv_state *s)
{
	if (!s)
		return;
	free(s->text);
	free(s->spec);
	for (size_t i = 0; i < s->n_entries; i++)
		free(s->entries[i].key);
	free(s->entries);
	for (size_t i = 0; i < s->n_containers; i++)
		pv_st_container_free(&s->containers[i]);
	free(s->containers);
	for (size_t i = 0; i < s->n_groups; i++)
		pv_st_group_free(&s->groups[i]);
	free(s->groups);
	pv_st_bsp_free(&s->bsp);
	memset(s, 0, sizeof(*s));
}

const struct pv_container *pv_state_find_container(const struct pv_state *s, const char *name)
{
	for (size_t i = 0; s && name && i < s->n_containers; i++)
		if (s->containers[i].name && !strcmp(s->containers[i].name, name))
			return &s->containers[i];
	return NULL;
}

const struct pv_group *pv_state_find_group(const struct pv_state *s, const char *name)
{
	for (size_t i = 0; s && name && i < s->n_groups; i++)
		if (s->groups[i].name && !strcmp(s->groups[i].name, name))
			return &s->groups[i];
	return NULL;
}

const struct pv_entry *pv_state_find_entry(const struct pv_state *s, const char *key)
{
	for (size_t i = 0; s && key && i < s->n_entries; i++)
		if (!strcmp(s->entries[i].key, key))
			return &s->entries[i];
	return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp((*(const struct pv_entry *const *)a)->key,
		      (*(const struct pv_entry *const *)b)->key);
}

static int build_entry_index(struct pv_sctx *c)
{
	const struct pv_state *s = c->s;
	c->ekeys = calloc(s->n_entries ? s->n_entries : 1, sizeof(*c->ekeys));
	if (!c->ekeys)
		return pv_st_fail(c, "state", NULL, "out of memory");
	for (size_t i = 0; i < s->n_entries; i++)
		c->ekeys[i] = &s->entries[i];
	c->n_ekeys = s->n_entries;
	qsort(c->ekeys, c->n_ekeys, sizeof(*c->ekeys), cmp_entry);
	return 0;
}

/* First position whose key is >= key. */
static size_t entry_lower(const struct pv_sctx *c, const char *key)
{
	size_t lo = 0, hi = c->n_ekeys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(c->ekeys[mid]->key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct pv_entry *pv_st_entry(const struct pv_sctx *c, const char *key)
{
	size_t i = entry_lower(c, key);
	return (i < c->n_ekeys && !strcmp(c->ekeys[i]->key, key)) ? c->ekeys[i] : NULL;
}

bool pv_st_entry_prefix(const struct pv_sctx *c, const char *prefix)
{
	size_t i = entry_lower(c, prefix);
	return i < c->n_ekeys && !strncmp(c->ekeys[i]->key, prefix, strlen(prefix));
}

static int cmp_cidx(const void *a, const void *b, void *arg)
{
	const struct pv_container *cts = arg;
	return strcmp(cts[*(const size_t *)a].name, cts[*(const size_t *)b].name);
}

static int build_container_index(struct pv_sctx *c)
{
	const struct pv_state *s = c->s;
	c->cidx = calloc(s->n_containers ? s->n_containers : 1, sizeof(size_t));
	if (!c->cidx)
		return pv_st_fail(c, "state", NULL, "out of memory");
	for (size_t i = 0; i < s->n_containers; i++)
		c->cidx[i] = i;
	c->n_cidx = s->n_containers;
	qsort_r(c->cidx, c->n_cidx, sizeof(size_t), cmp_cidx, s->containers);
	return 0;
}

int pv_st_container_index(const struct pv_sctx *c, const char *name, size_t len)
{
	size_t lo = 0, hi = c->n_cidx;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *n = c->s->containers[c->cidx[mid]].name;
		int r = strncmp(n, name, len);
		if (r == 0 && n[len])
			r = 1;
		if (r == 0)
			return (int)c->cidx[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* cJSON keeps duplicate members; the state is a file tree, so a duplicate is an error. */
static void check_duplicates(struct pv_sctx *c, const cJSON *root, size_t n)
{
	const char **names = calloc(n ? n : 1, sizeof(char *));
	if (!names) {
		pv_st_fail(c, "state", NULL, "out of memory");
		return;
	}
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, root) names[i++] = it->string;
	qsort(names, i, sizeof(char *), cmp_str);
	for (size_t j = 1; j < i; j++)
		if (!strcmp(names[j], names[j - 1]) && (j < 2 || strcmp(names[j], names[j - 2])))
			pv_st_fail(c, names[j], NULL, "duplicate key");
	free(names);
}

static bool ends_with(const char *s, const char *suf)
{
	size_t l = strlen(s), m = strlen(suf);
	return l >= m && !strcmp(s + l - m, suf);
}

/* "<x>/<file>" with x one path component: returns x's length, else 0. */
static size_t container_dir(const char *key, const char *file)
{
	const char *sl = strchr(key, '/');
	if (!sl || sl == key || strcmp(sl + 1, file))
		return 0;
	return (size_t)(sl - key);
}

static bool ignored_key(const char *k)
{
	return ends_with(k, "/src.json") || ends_with(k, "/build.json") || !strcmp(k, "src.json") ||
	       !strncmp(k, "_sigs/", 6);
}

/* Builds s->entries: classification and value checks (ownership is set later). */
static int classify(struct pv_sctx *c, const cJSON *root, const struct pv_span *sp, size_t n)
{
	struct pv_state *s = c->s;
	s->entries = calloc(n ? n : 1, sizeof(*s->entries));
	if (!s->entries)
		return pv_st_fail(c, "state", NULL, "out of memory");
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, root)
	{
		const struct pv_span *span = &sp[i++];
		const char *k = it->string;
		if (!strcmp(k, "#spec"))
			continue;
		if (!k[0]) {
			pv_st_fail(c, "state", NULL, "empty key");
			continue;
		}
		bool is_json = ends_with(k, ".json");
		bool is_str = cJSON_IsString(it);
		bool sha = is_str && pv_is_sha256_hex(it->valuestring, strlen(it->valuestring));
		if (is_str && !sha) {
			pv_st_fail(c, k, NULL,
				   "\"%.80s\" is not a sha256 (64 lowercase hex characters)%s",
				   it->valuestring, is_json ? " nor inline JSON" : "");
			continue;
		}
		if (!is_str && !is_json && !ignored_key(k)) {
			pv_st_fail(c, k, NULL,
				   "%s is not a sha256 string (only .json keys hold inline JSON)",
				   pv_st_type(it));
			continue;
		}
		struct pv_entry *e = &s->entries[s->n_entries];
		e->key = strdup(k);
		if (!e->key)
			return pv_st_fail(c, k, NULL, "out of memory");
		e->owner = -1;
		if (sha) {
			e->kind = PV_ENTRY_OBJECT;
			memcpy(e->sha, it->valuestring, 64);
			e->sha[64] = '\0';
		} else {
			e->kind = PV_ENTRY_JSON;
			e->raw = s->text + span->val_off;
			e->raw_len = span->val_len;
		}
		s->n_entries++;
	}
	return 0;
}

/* First path component, or the <c> of _config/<c>/..., names the owning container. */
static void set_owners(struct pv_sctx *c)
{
	struct pv_state *s = c->s;
	for (size_t i = 0; i < s->n_entries; i++) {
		const char *k = s->entries[i].key;
		if (!strncmp(k, "_config/", 8))
			k += 8;
		const char *sl = strchr(k, '/');
		if (sl)
			s->entries[i].owner = pv_st_container_index(c, k, (size_t)(sl - k));
	}
}

static void parse_containers(struct pv_sctx *c, const cJSON *root)
{
	struct pv_state *s = c->s;
	size_t n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, root) if (container_dir(it->string, "run.json") &&
					 strncmp(it->string, "bsp/", 4)) n++;
	s->containers = calloc(n ? n : 1, sizeof(*s->containers));
	bool *from_rl = calloc(n ? n : 1, sizeof(bool));
	c->run_member = calloc(n ? n : 1, sizeof(size_t));
	if (!s->containers || !from_rl || !c->run_member) {
		free(from_rl);
		pv_st_fail(c, "state", NULL, "out of memory");
		return;
	}
	size_t member = 0;
	cJSON_ArrayForEach(it, root)
	{
		const char *k = it->string;
		size_t dl = container_dir(k, "run.json");
		member++;
		if (!dl || !strncmp(k, "bsp/", 4))
			continue;
		char dir[PV_NAME_MAX + 1];
		if (dl > PV_NAME_MAX) {
			pv_st_fail(c, k, NULL, "container name longer than %d characters",
				   PV_NAME_MAX);
			continue;
		}
		memcpy(dir, k, dl);
		dir[dl] = '\0';
		if (dir[0] == '_' || dir[0] == '.') {
			pv_st_fail(c, k, NULL, "\"%s\" is not a valid container directory", dir);
			continue;
		}
		if (cJSON_IsString(it)) {
			pv_st_fail(c, k, NULL, "must be inline JSON, not an object");
			continue;
		}
		struct pv_container *ct = &s->containers[s->n_containers];
		c->run_member[s->n_containers] = member - 1;
		if (pv_st_container(c, k, dir, it, ct, &from_rl[s->n_containers]) < 0 &&
		    !ct->name) {
			pv_st_container_free(ct);
			continue;
		}
		s->n_containers++;
	}
	if (build_container_index(c) < 0) {
		free(from_rl);
		return;
	}
	set_owners(c);
	pv_st_assign_groups(c, from_rl);
	free(from_rl);
	for (size_t i = 0; i < s->n_containers; i++)
		pv_st_container_refs(c, &s->containers[i]);
}

/* services.json: only for a container whose run.json came before (sorted keys). */
static void parse_services(struct pv_sctx *c, const cJSON *root)
{
	struct pv_state *s = c->s;
	const cJSON *it;
	size_t member = 0;
	cJSON_ArrayForEach(it, root)
	{
		const char *k = it->string;
		size_t dl = container_dir(k, "services.json");
		member++;
		if (!dl)
			continue;
		char dir[PV_NAME_MAX + 1];
		if (dl > PV_NAME_MAX) {
			pv_st_fail(c, k, NULL, "services.json without run.json");
			continue;
		}
		memcpy(dir, k, dl);
		dir[dl] = '\0';
		int ci = c->cidx ? pv_st_container_index(c, dir, dl) : -1;
		if (ci < 0) {
			pv_st_fail(c, k, NULL,
				   "services.json without run.json (no key %s/run.json)", dir);
			continue;
		}
		struct pv_container *ct = &s->containers[ci];
		bool seen = c->run_member[ci] < member - 1;
		if (!seen) {
			pv_st_fail(c, k, NULL,
				   "comes before %s/run.json (state keys must be sorted)", dir);
			continue;
		}
		if (cJSON_IsString(it)) {
			pv_st_fail(c, k, NULL, "must be inline JSON, not an object");
			continue;
		}
		if (ct->has_services_json)
			continue; /* duplicate key, already reported */
		pv_st_services(c, k, it, ct);
	}
}

static int parse_root(struct pv_sctx *c, const cJSON *root, const struct pv_span *sp, size_t n)
{
	struct pv_state *s = c->s;
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(root, "#spec");
	if (!spec)
		return pv_st_fail(c, "#spec", NULL, "missing (want \"%s\")", PV_SPEC_SYSTEM1);
	if (!cJSON_IsString(spec))
		return pv_st_fail(c, "#spec", NULL, "must be a string, not %s", pv_st_type(spec));
	if (!strcmp(spec->valuestring, PV_SPEC_MULTI1))
		return pv_st_fail(c, "#spec", NULL, "\"%s\" (legacy) is not supported; use \"%s\"",
				  PV_SPEC_MULTI1, PV_SPEC_SYSTEM1);
	if (strcmp(spec->valuestring, PV_SPEC_SYSTEM1))
		return pv_st_fail(c, "#spec", NULL, "\"%.64s\" is not \"%s\"", spec->valuestring,
				  PV_SPEC_SYSTEM1);
	s->spec = strdup(spec->valuestring);
	if (!s->spec)
		return pv_st_fail(c, "#spec", NULL, "out of memory");
	check_duplicates(c, root, n);
	if (classify(c, root, sp, n) < 0 || build_entry_index(c) < 0)
		return -EINVAL;
	/* spec 2.2 order: device.json, then groups.json or defaults, then the BSP, then the
	 * containers (run.json) and their services.json */
	pv_st_groups(c, root);
	const cJSON *bsp = cJSON_GetObjectItemCaseSensitive(root, "bsp/run.json");
	if (bsp)
		pv_st_bsp(c, bsp);
	else if (!c->o->appengine)
		pv_st_fail(c, "bsp/run.json", NULL,
			   "missing (required on a device; use appengine mode to skip)");
	parse_containers(c, root);
	parse_services(c, root);
	pv_st_services_check(c);
	pv_st_drivers(c, root);
	return c->nerr ? -EINVAL : 0;
}

int pv_state_parse(const char *text, size_t len, const struct pv_state_opts *opts,
		   struct pv_state *out, struct pv_error *err)
{
	struct pv_state_opts defopts;
	if (!opts) {
		pv_state_opts_default(&defopts);
		opts = &defopts;
	}
	size_t from = err ? err->count : 0;
	int rc;
	memset(out, 0, sizeof(*out));
	if (!text && len) {
		rc = pv_error_set(err, -EINVAL, "state: no text");
		goto out;
	}
	if (len > PV_STATE_MAX_BYTES) {
		rc = pv_error_set(err, -E2BIG, "state: larger than the limit of %u bytes",
				  PV_STATE_MAX_BYTES);
		goto out;
	}
	struct pv_span *sp = NULL;
	size_t n = 0;
	rc = pv_state_scan(text ? text : "", len, &sp, &n, err);
	if (rc < 0)
		goto out;
	out->text = malloc(len + 1);
	if (!out->text) {
		free(sp);
		rc = pv_error_set(err, -ENOMEM, "state: out of memory");
		goto out;
	}
	memcpy(out->text, text, len);
	out->text[len] = '\0';
	out->text_len = len;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(out->text, len, &end, 0);
	if (!root) {
		free(sp);
		size_t at = end ? (size_t)(end - out->text) : 0;
		rc = pv_error_set(err, -EINVAL, "state: invalid JSON at byte %zu", at);
		goto out;
	}
	if ((size_t)cJSON_GetArraySize(root) != n) {
		/* the scanner and cJSON disagree: treat as malformed rather than guess */
		rc = pv_error_set(err, -EINVAL, "state: invalid JSON (member count mismatch)");
	} else {
		struct pv_sctx c = {.o = opts, .s = out, .err = err, .nerr = 0};
		rc = parse_root(&c, root, sp, n);
		free(c.ekeys);
		free(c.cidx);
		free(c.run_member);
		if (rc < 0 && err && err->code == -ENOMEM)
			rc = -ENOMEM;
	}
	cJSON_Delete(root);
	free(sp);
out:
	if (rc < 0) {
		pv_state_free(out);
		if (err && opts->source)
			pv_error_prefix(err, from, opts->source);
	}
	return rc;
}
