/* graph.c: the xconnect graph (spec §9): built from a parsed state and the running pids,
 * emitted/parsed with upstream's member names, and diffed by (consumer, name, target). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "graph_int.h"
#include "pvstate/graph.h"

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

void pv_link_free(struct pv_link *l)
{
	if (!l)
		return;
	free(l->type);
	free(l->name);
	free(l->consumer);
	free(l->provider);
	free(l->role);
	free(l->interface);
	free(l->target);
	free(l->socket);
	free(l->mode);
	free(l->owner);
	free(l->socket_mode);
	free(l->hide_globals);
	free(l->credentials);
	free(l->error);
	memset(l, 0, sizeof(*l));
}

int pv_link_copy(struct pv_link *dst, const struct pv_link *src)
{
	bool oom = false;
	memset(dst, 0, sizeof(*dst));
	dst->type = dup_or_null(src->type, &oom);
	dst->name = dup_or_null(src->name, &oom);
	dst->consumer = dup_or_null(src->consumer, &oom);
	dst->consumer_pid = src->consumer_pid;
	dst->provider = dup_or_null(src->provider, &oom);
	dst->provider_pid = src->provider_pid;
	dst->role = dup_or_null(src->role, &oom);
	dst->interface = dup_or_null(src->interface, &oom);
	dst->target = dup_or_null(src->target, &oom);
	dst->socket = dup_or_null(src->socket, &oom);
	dst->mode = dup_or_null(src->mode, &oom);
	dst->owner = dup_or_null(src->owner, &oom);
	dst->socket_mode = dup_or_null(src->socket_mode, &oom);
	dst->hide_globals = dup_or_null(src->hide_globals, &oom);
	dst->credentials = dup_or_null(src->credentials, &oom);
	dst->state = src->state;
	dst->error = dup_or_null(src->error, &oom);
	if (oom) {
		pv_link_free(dst);
		return -ENOMEM;
	}
	return 0;
}

void pv_graph_free(struct pv_graph *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n_links; i++)
		pv_link_free(&g->links[i]);
	free(g->links);
	memset(g, 0, sizeof(*g));
}

const char *pv_link_state_str(enum pv_link_state s)
{
	switch (s) {
	case PV_LINK_UP:
		return "up";
	case PV_LINK_PENDING:
		return "pending";
	case PV_LINK_ERROR:
		return "error";
	default:
		return "unknown";
	}
}

static int link_state_from_str(const char *s, enum pv_link_state *out)
{
	static const enum pv_link_state all[] = {PV_LINK_UNKNOWN, PV_LINK_PENDING, PV_LINK_UP,
						 PV_LINK_ERROR};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(s, pv_link_state_str(all[i]))) {
			*out = all[i];
			return 0;
		}
	return -EINVAL;
}

bool pv_link_same_key(const struct pv_link *a, const struct pv_link *b)
{
	return str_eq(a->consumer, b->consumer) && str_eq(a->name, b->name) &&
	       str_eq(a->target, b->target);
}

bool pv_link_equal(const struct pv_link *a, const struct pv_link *b)
{
	return pv_link_same_key(a, b) && str_eq(a->type, b->type) &&
	       a->consumer_pid == b->consumer_pid && str_eq(a->provider, b->provider) &&
	       a->provider_pid == b->provider_pid && str_eq(a->role, b->role) &&
	       str_eq(a->interface, b->interface) && str_eq(a->socket, b->socket) &&
	       str_eq(a->mode, b->mode) && str_eq(a->owner, b->owner) &&
	       str_eq(a->socket_mode, b->socket_mode) && str_eq(a->hide_globals, b->hide_globals) &&
	       str_eq(a->credentials, b->credentials);
}

/* ---- build ---- */

static int pid_of(const struct pv_pid *pids, size_t n, const char *name)
{
	for (size_t i = 0; pids && i < n; i++)
		if (pids[i].name && !strcmp(pids[i].name, name))
			return pids[i].pid;
	return 0;
}

static int graph_push(struct pv_graph *g, size_t *cap)
{
	if (g->n_links < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 8;
	struct pv_link *nl = realloc(g->links, nc * sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	g->links = nl;
	*cap = nc;
	return 0;
}

static int add_link(struct pv_graph *g, size_t *cap, const struct pv_service_req *req,
		    const char *consumer, int consumer_pid, const char *provider, int provider_pid,
		    const struct pv_service_export *ex)
{
	if (graph_push(g, cap) < 0)
		return -ENOMEM;
	struct pv_link l = {0};
	bool oom = false;
	const char *type = ex->type ? ex->type : "";
	l.type = dup_or_null(type, &oom);
	l.name = dup_or_null(req->name, &oom);
	l.consumer = dup_or_null(consumer, &oom);
	l.consumer_pid = consumer_pid;
	l.provider = dup_or_null(provider, &oom);
	l.provider_pid = provider_pid;
	l.role = dup_or_null(req->role ? req->role : "any", &oom);
	l.interface = dup_or_null(req->interface ? req->interface : type, &oom);
	l.target = dup_or_null(req->target, &oom);
	l.socket = dup_or_null(ex->socket, &oom);
	l.mode = dup_or_null(req->mode ? req->mode : ex->mode, &oom);
	l.credentials = dup_or_null(ex->credentials, &oom);
	l.owner = dup_or_null(req->owner, &oom);
	l.socket_mode = dup_or_null(req->socket_mode, &oom);
	l.hide_globals = dup_or_null(req->hide_globals, &oom);
	if (oom) {
		pv_link_free(&l);
		return -ENOMEM;
	}
	g->links[g->n_links++] = l;
	return 0;
}

int pv_graph_build(const struct pv_state *s, const struct pv_pid *pids, size_t n_pids,
		   struct pv_graph *out, struct pv_error *err)
{
	return pv_graph_build_opts(s, pids, n_pids, NULL, out, err);
}

int pv_graph_build_opts(const struct pv_state *s, const struct pv_pid *pids, size_t n_pids,
			const struct pv_graph_opts *opts, struct pv_graph *out,
			struct pv_error *err)
{
	size_t cap = 0;
	memset(out, 0, sizeof(*out));
	if (!s)
		return pv_error_set(err, -EINVAL, "graph: no state");
	/* Order: consumer (state order) > requirement (required, then optional, as the parser
	 * stores them) > provider (state order). Same state => byte-identical emit. */
	for (size_t c = 0; c < s->n_containers; c++) {
		const struct pv_container *cons = &s->containers[c];
		for (size_t r = 0; r < cons->n_requires; r++) {
			const struct pv_service_req *req = &cons->requires[r];
			if (!req->name)
				continue;
			int cpid = pid_of(pids, n_pids, cons->name);
			size_t before = out->n_links;
			for (size_t p = 0; p < s->n_containers; p++) {
				const struct pv_container *prov = &s->containers[p];
				for (size_t e = 0; e < prov->n_exports; e++) {
					const struct pv_service_export *ex = &prov->exports[e];
					if (!ex->name || strcmp(ex->name, req->name))
						continue;
					if (add_link(out, &cap, req, cons->name, cpid, prov->name,
						     pid_of(pids, n_pids, prov->name), ex))
						goto oom;
				}
			}
			/* The hosted bus only answers when no container provides the name (the
			 * validator rejects states that shadow it anyway). */
			const struct pv_service_export bus = {
			    .type = (char *)"dbus",
			    .socket = (char *)(opts ? opts->hosted_bus_socket : NULL)};
			if (out->n_links == before && opts && opts->hosted_bus_socket &&
			    !strcmp(req->name, "system-bus") &&
			    add_link(out, &cap, req, cons->name, cpid, PV_GRAPH_PROVIDER_HOSTED, 0,
				     &bus))
				goto oom;
		}
	}
	return 0;
oom:
	pv_graph_free(out);
	return pv_error_set(err, -ENOMEM, "graph: out of memory");
}

/* ---- emit ---- */

static bool add_str_or_null(cJSON *o, const char *k, const char *v)
{
	return v ? cJSON_AddStringToObject(o, k, v) != NULL : cJSON_AddNullToObject(o, k) != NULL;
}

/* "a,b" -> member k: ["a","b"] */
static bool add_names(cJSON *o, const char *k, const char *joined)
{
	cJSON *a = cJSON_AddArrayToObject(o, k);
	for (const char *p = joined; a && *p;) {
		size_t n = strcspn(p, ",");
		char name[129];
		snprintf(name, sizeof(name), "%.*s", (int)(n < 128 ? n : 128), p);
		cJSON *s = cJSON_CreateString(name);
		if (!s)
			return false;
		cJSON_AddItemToArray(a, s);
		p += n + (p[n] == ',');
	}
	return a != NULL;
}

int pv_graph_hide_globals_from_json(const cJSON *v, char **out, const char **bad)
{
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
	if (n < 1 || n > 64) {
		*bad = "must be an array of 1 to 64 interface names";
		return -EINVAL;
	}
	char *s = calloc((size_t)n, 130);
	if (!s)
		return -ENOMEM;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		const char *name = cJSON_IsString(e) ? e->valuestring : NULL;
		size_t len = name ? strlen(name) : 0;
		if (!len || len > 128 ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789_") != len) {
			free(s);
			*bad = "an interface name is empty, too long or not [A-Za-z0-9_]";
			return -EINVAL;
		}
		if (*s)
			strcat(s, ",");
		strcat(s, name);
	}
	*out = s;
	return 0;
}

static cJSON *link_to_json(const struct pv_link *l, bool with_status)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	bool ok =
	    add_str_or_null(o, "consumer", l->consumer) &&
	    cJSON_AddNumberToObject(o, "consumer_pid", l->consumer_pid) &&
	    add_str_or_null(o, "provider", l->provider) &&
	    cJSON_AddNumberToObject(o, "provider_pid", l->provider_pid) &&
	    add_str_or_null(o, "name", l->name) && add_str_or_null(o, "type", l->type) &&
	    add_str_or_null(o, "role", l->role) && add_str_or_null(o, "interface", l->interface) &&
	    add_str_or_null(o, "target", l->target) && add_str_or_null(o, "socket", l->socket);
	if (ok && l->mode)
		ok = cJSON_AddStringToObject(o, "mode", l->mode) != NULL;
	if (ok && l->owner)
		ok = cJSON_AddStringToObject(o, "owner", l->owner) != NULL;
	if (ok && l->socket_mode)
		ok = cJSON_AddStringToObject(o, "socket_mode", l->socket_mode) != NULL;
	if (ok && l->credentials)
		ok = cJSON_AddStringToObject(o, "credentials", l->credentials) != NULL;
	if (ok && l->hide_globals)
		ok = add_names(o, "hide_globals", l->hide_globals);
	/* A status nobody reported yet is left out rather than guessed. */
	if (ok && with_status && l->state != PV_LINK_UNKNOWN) {
		ok = cJSON_AddStringToObject(o, "state", pv_link_state_str(l->state)) != NULL;
		if (ok && l->error)
			ok = cJSON_AddStringToObject(o, "error", l->error) != NULL;
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* The links as a cJSON array (proto.c builds graph events from it). */
cJSON *pv_graph_to_cjson(const struct pv_link *links, size_t n, bool with_status)
{
	cJSON *a = cJSON_CreateArray();
	if (!a)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = link_to_json(&links[i], with_status);
		if (!o || !cJSON_AddItemToArray(a, o)) {
			cJSON_Delete(o);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

char *pv_graph_emit(const struct pv_graph *g, bool with_status)
{
	cJSON *a = pv_graph_to_cjson(g ? g->links : NULL, g ? g->n_links : 0, with_status);
	if (!a)
		return NULL;
	char *s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	return s;
}

/* ---- parse ---- */

/* Reads member k of o into *dst. Missing or null -> def (copied); wrong type -> message. */
static int get_str(const cJSON *o, size_t idx, const char *k, bool required, const char *def,
		   char **dst, struct pv_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v || cJSON_IsNull(v)) {
		if (required)
			return pv_error_set(err, -EINVAL, "graph: links[%zu].%s: missing", idx, k);
		if (def && !(*dst = strdup(def)))
			return pv_error_set(err, -ENOMEM, "graph: out of memory");
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring)
		return pv_error_set(err, -EINVAL, "graph: links[%zu].%s: not a string", idx, k);
	if (!(*dst = strdup(v->valuestring)))
		return pv_error_set(err, -ENOMEM, "graph: out of memory");
	return 0;
}

/* "UID" or "UID:GID", decimal, each below 2^32-1 (-1 is "no change" to chown). */
bool pv_graph_owner_valid(const char *s)
{
	for (int part = 0; part < 2; part++) {
		unsigned long long v = 0;
		const char *p = s;
		while (*p >= '0' && *p <= '9' && p - s < 11)
			v = v * 10 + (unsigned long long)(*p++ - '0');
		if (p == s || v >= 0xffffffffULL)
			return false;
		if (!*p)
			return true;
		if (*p != ':' || part)
			return false;
		s = p + 1;
	}
	return false;
}

/* Octal permission bits, at most 0777 (no setuid/setgid/sticky on a socket). */
bool pv_graph_socket_mode_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 4)
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return false;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	return v <= 0777;
}

static int get_pid(const cJSON *o, size_t idx, const char *k, int *dst, struct pv_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	*dst = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	/* Range first: casting an out-of-range double to int is undefined. */
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX) ||
	    v->valuedouble != (double)(int)v->valuedouble)
		return pv_error_set(err, -EINVAL, "graph: links[%zu].%s: not an integer", idx, k);
	*dst = (int)v->valuedouble;
	return 0;
}

/* Parses one links array (proto.c reuses it for graph events). */
int pv_graph_from_cjson(const cJSON *a, struct pv_graph *out, struct pv_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsArray(a))
		return pv_error_set(err, -EINVAL, "graph: not a JSON array of links");
	size_t n = (size_t)cJSON_GetArraySize(a);
	out->links = calloc(n ? n : 1, sizeof(*out->links));
	if (!out->links)
		return pv_error_set(err, -ENOMEM, "graph: out of memory");
	size_t i = 0;
	const cJSON *o;
	int r = 0;
	cJSON_ArrayForEach(o, a)
	{
		struct pv_link *l = &out->links[i];
		out->n_links = i + 1; /* so a failure frees what this link got */
		if (!cJSON_IsObject(o)) {
			r = pv_error_set(err, -EINVAL, "graph: links[%zu]: not an object", i);
			break;
		}
		if ((r = get_str(o, i, "consumer", true, NULL, &l->consumer, err)) ||
		    (r = get_str(o, i, "name", true, NULL, &l->name, err)) ||
		    (r = get_str(o, i, "provider", true, NULL, &l->provider, err)) ||
		    (r = get_str(o, i, "type", true, NULL, &l->type, err)) ||
		    (r = get_pid(o, i, "consumer_pid", &l->consumer_pid, err)) ||
		    (r = get_pid(o, i, "provider_pid", &l->provider_pid, err)) ||
		    (r = get_str(o, i, "role", false, "any", &l->role, err)) ||
		    (r = get_str(o, i, "interface", false, l->type, &l->interface, err)) ||
		    (r = get_str(o, i, "target", false, NULL, &l->target, err)) ||
		    (r = get_str(o, i, "socket", false, NULL, &l->socket, err)) ||
		    (r = get_str(o, i, "mode", false, NULL, &l->mode, err)) ||
		    (r = get_str(o, i, "owner", false, NULL, &l->owner, err)) ||
		    (r = get_str(o, i, "socket_mode", false, NULL, &l->socket_mode, err)) ||
		    (r = get_str(o, i, "credentials", false, NULL, &l->credentials, err)) ||
		    (r = get_str(o, i, "error", false, NULL, &l->error, err)))
			break;
		const char *why = NULL;
		r = pv_graph_hide_globals_from_json(
		    cJSON_GetObjectItemCaseSensitive(o, "hide_globals"), &l->hide_globals, &why);
		if (r == -ENOMEM) {
			r = pv_error_set(err, -ENOMEM, "graph: out of memory");
			break;
		}
		if (r < 0) {
			r = pv_error_set(err, -EINVAL, "graph: links[%zu].hide_globals: %s", i,
					 why);
			break;
		}
		if (l->credentials && strcmp(l->credentials, "pass")) {
			r = pv_error_set(err, -EINVAL,
					 "graph: links[%zu].credentials: \"%s\" is not \"pass\"", i,
					 l->credentials);
			break;
		}
		if (l->owner && !pv_graph_owner_valid(l->owner)) {
			r = pv_error_set(err, -EINVAL,
					 "graph: links[%zu].owner: \"%s\" is not UID or UID:GID", i,
					 l->owner);
			break;
		}
		if (l->socket_mode && !pv_graph_socket_mode_valid(l->socket_mode)) {
			r = pv_error_set(err, -EINVAL,
					 "graph: links[%zu].socket_mode: \"%s\" is not octal "
					 "permission bits (e.g. \"0660\")",
					 i, l->socket_mode);
			break;
		}
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "state");
		if (st && !cJSON_IsNull(st)) {
			if (!cJSON_IsString(st) ||
			    link_state_from_str(st->valuestring, &l->state)) {
				r = pv_error_set(err, -EINVAL,
						 "graph: links[%zu].state: not one of up, pending, "
						 "error, unknown",
						 i);
				break;
			}
		}
		i++;
	}
	if (r) {
		pv_graph_free(out);
		return r;
	}
	out->n_links = i;
	return 0;
}

int pv_graph_parse(const char *json, size_t len, struct pv_graph *out, struct pv_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!json)
		return pv_error_set(err, -EINVAL, "graph: no input");
	cJSON *a = cJSON_ParseWithLength(json, len);
	if (!a)
		return pv_error_set(err, -EINVAL, "graph: not valid JSON");
	int r = pv_graph_from_cjson(a, out, err);
	cJSON_Delete(a);
	return r;
}

/* ---- diff ---- */

void pv_graph_diff_free(struct pv_graph_diff *d)
{
	if (!d)
		return;
	free(d->added);
	free(d->removed);
	free(d->changed_old);
	free(d->changed_new);
	memset(d, 0, sizeof(*d));
}

static const struct pv_link *find_key(const struct pv_graph *g, const struct pv_link *k)
{
	for (size_t i = 0; g && i < g->n_links; i++)
		if (pv_link_same_key(&g->links[i], k))
			return &g->links[i];
	return NULL;
}

int pv_graph_diff(const struct pv_graph *old_g, const struct pv_graph *new_g,
		  struct pv_graph_diff *out)
{
	size_t n_old = old_g ? old_g->n_links : 0, n_new = new_g ? new_g->n_links : 0;
	memset(out, 0, sizeof(*out));
	out->added = calloc(n_new + 1, sizeof(*out->added));
	out->removed = calloc(n_old + 1, sizeof(*out->removed));
	out->changed_old = calloc(n_new + 1, sizeof(*out->changed_old));
	out->changed_new = calloc(n_new + 1, sizeof(*out->changed_new));
	if (!out->added || !out->removed || !out->changed_old || !out->changed_new) {
		pv_graph_diff_free(out);
		return -ENOMEM;
	}
	/* Results follow the order of the graphs themselves, so the diff is deterministic. A key
	 * is matched to its first occurrence; duplicate keys in one graph are not expected. */
	for (size_t i = 0; i < n_new; i++) {
		const struct pv_link *nl = &new_g->links[i];
		const struct pv_link *ol = find_key(old_g, nl);
		if (!ol) {
			out->added[out->n_added++] = nl;
		} else if (!pv_link_equal(ol, nl)) {
			out->changed_old[out->n_changed] = ol;
			out->changed_new[out->n_changed++] = nl;
		}
	}
	for (size_t i = 0; i < n_old; i++)
		if (!find_key(new_g, &old_g->links[i]))
			out->removed[out->n_removed++] = &old_g->links[i];
	return 0;
}
