/* jsondoc.c: JSON objects as key + exact value text (see pvstate/jsondoc.h). The value spans come
 * from the state scanner (string-aware, bounded); cJSON checks the grammar and decodes the keys,
 * its children being the members in text order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/jsondoc.h"
#include "state_int.h"

int pv_jsondoc_parse(const char *text, size_t len, const char *what, struct pv_jsondoc *d,
		     struct pv_error *err)
{
	struct pv_span *spans = NULL;
	size_t n = 0, from = err ? err->count : 0;
	int r = pv_state_scan(text, len, &spans, &n, err);
	if (r < 0) {
		pv_error_prefix(err, from, what); /* "<what>: state: nesting deeper ..." */
		return r;
	}
	cJSON *root = cJSON_ParseWithLength(text, len);
	if (!root || !cJSON_IsObject(root) || (size_t)cJSON_GetArraySize(root) != n) {
		cJSON_Delete(root);
		free(spans);
		return pv_error_set(err, -EINVAL, "%s: not a JSON object", what);
	}
	struct pv_jsondoc_member *m = realloc(d->m, (d->n + n + 1) * sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto out;
	}
	d->m = m;
	size_t i = 0;
	for (const cJSON *c = root->child; c; c = c->next, i++) {
		char *k = strdup(c->string),
		     *v = strndup(text + spans[i].val_off, spans[i].val_len);
		if (!k || !v) {
			free(k);
			free(v);
			r = -ENOMEM;
			goto out;
		}
		d->m[d->n].key = k;
		d->m[d->n++].raw = v;
	}
out:
	cJSON_Delete(root);
	free(spans);
	return r;
}

int pv_jsondoc_take(struct pv_jsondoc *d, struct pv_jsondoc_member *m)
{
	struct pv_jsondoc_member *nm = realloc(d->m, (d->n + 1) * sizeof(*nm));
	if (!nm)
		return -ENOMEM;
	d->m = nm;
	d->m[d->n++] = *m;
	m->key = m->raw = NULL;
	return 0;
}

int pv_jsondoc_add_string(struct pv_jsondoc *d, const char *key, const char *value)
{
	cJSON *v = cJSON_CreateString(value);
	struct pv_jsondoc_member m = {.key = strdup(key),
				      .raw = v ? cJSON_PrintUnformatted(v) : NULL};
	cJSON_Delete(v);
	if (!m.key || !m.raw || pv_jsondoc_take(d, &m) < 0) {
		free(m.key);
		free(m.raw);
		return -ENOMEM;
	}
	return 0;
}

void pv_jsondoc_remove_if(struct pv_jsondoc *d, bool (*pred)(const char *key, const void *arg),
			  const void *arg)
{
	size_t w = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (pred(d->m[i].key, arg)) {
			free(d->m[i].key);
			free(d->m[i].raw);
		} else {
			d->m[w++] = d->m[i];
		}
	}
	d->n = w;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct pv_jsondoc_member *)a)->key,
		      ((const struct pv_jsondoc_member *)b)->key);
}

char *pv_jsondoc_emit(struct pv_jsondoc *d)
{
	if (d->n > 1) /* an empty doc has no array: qsort must not see NULL */
		qsort(d->m, d->n, sizeof(*d->m), cmp_member);
	size_t cap = 3, len = 0;
	for (size_t i = 0; i < d->n; i++)
		cap += strlen(d->m[i].key) * 6 + 3 + strlen(d->m[i].raw) + 1;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	out[len++] = '{';
	for (size_t i = 0; i < d->n; i++) {
		cJSON *k = cJSON_CreateString(d->m[i].key);
		char *ks = k ? cJSON_PrintUnformatted(k) : NULL;
		cJSON_Delete(k);
		if (!ks) {
			free(out);
			return NULL;
		}
		size_t kl = strlen(ks), vl = strlen(d->m[i].raw);
		if (i)
			out[len++] = ',';
		memcpy(out + len, ks, kl);
		len += kl;
		out[len++] = ':';
		memcpy(out + len, d->m[i].raw, vl);
		len += vl;
		free(ks);
	}
	out[len++] = '}';
	out[len] = '\0';
	return out;
}

void pv_jsondoc_free(struct pv_jsondoc *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->m[i].key);
		free(d->m[i].raw);
	}
	free(d->m);
	d->m = NULL;
	d->n = 0;
}
