/* reconcile.c: the set of live links keyed by (consumer, name, target): applies each pushed
 * graph (add, re-establish on change, tear down what left), retries failures with backoff and
 * reports every link's state through the status callback. The core never looks at a type. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/plugin.h"

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   10000

struct pvx_reconciler {
	uv_loop_t *loop;
	struct pvx_link **links;
	size_t n, cap;
	pvx_status_cb cb;
	void *opaque;
	uv_timer_t report; /* coalesces status reports to one per loop turn */
	bool dirty;
};

static void report_cb(uv_timer_t *t)
{
	struct pvx_reconciler *r = t->data;
	r->dirty = false;
	if (r->cb)
		r->cb(r->opaque, (const struct pvx_link *const *)r->links, r->n);
}

static void mark_dirty(struct pvx_reconciler *r)
{
	if (r->dirty)
		return;
	r->dirty = true;
	uv_timer_start(&r->report, report_cb, 0, 0);
}

const char *pvx_link_target(const struct pvx_link *l, char *buf, size_t len)
{
	if (l->spec.target && *l->spec.target)
		return l->spec.target;
	/* upstream's default when a requirement names no target */
	snprintf(buf, len, "/tmp/pvx_%s_%s.sock", l->spec.consumer ? l->spec.consumer : "",
		 l->spec.name ? l->spec.name : "");
	return buf;
}

bool pvx_link_direct(const struct pvx_link *l)
{
	return l->spec.mode && !strcmp(l->spec.mode, "direct");
}

static void set_state(struct pvx_link *l, enum pv_link_state st, const char *error)
{
	bool same = l->state == st &&
		    ((!error && !l->error) || (error && l->error && !strcmp(error, l->error)));
	if (same)
		return;
	l->state = st;
	free(l->error);
	l->error = error ? strdup(error) : NULL;
	mark_dirty(l->owner);
}

static void teardown(struct pvx_link *l)
{
	uv_timer_stop(&l->retry);
	if (l->established && l->plugin) {
		l->plugin->link_remove(l);
		l->established = false;
	}
}

static void retry_cb(uv_timer_t *t);

static void establish(struct pvx_link *l)
{
	const struct pv_link *s = &l->spec;
	if (!l->plugin) {
		char msg[160];
		snprintf(msg, sizeof(msg), "no plugin for type `%s` in this build",
			 s->type ? s->type : "");
		set_state(l, PV_LINK_ERROR, msg);
		return; /* a rebuild, not a retry, fixes this */
	}
	if (s->consumer_pid <= 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "consumer `%s` not running", s->consumer);
		set_state(l, PV_LINK_PENDING, msg);
		return; /* the engine pushes a new graph when it starts */
	}
	struct pv_error err = PV_ERROR_INIT;
	int rc = l->plugin->link_add(l, &err);
	if (rc == 0) {
		l->established = true;
		l->attempts = 0;
		set_state(l, PV_LINK_UP, NULL);
		pvx_log(PVX_INFO, "link %s/%s -> %s: up", s->consumer, s->name, s->provider);
		pv_error_clear(&err);
		return;
	}
	bool pending = rc == -ENOENT || rc == -ECONNREFUSED || rc == -ESRCH;
	const char *msg = err.count ? pv_error_msg(&err) : strerror(-rc);
	if (rc == -EINPROGRESS) {
		/* The plugin waits for the missing side itself (drm: inotify on the provider's
		 * /dev/dri) and reports up or failure; link_remove undoes the wait. No timer. */
		l->established = true;
		l->attempts = 0;
		pvx_log(PVX_INFO, "link %s/%s: %s (waiting for it)", s->consumer, s->name, msg);
		set_state(l, PV_LINK_PENDING, msg);
		pv_error_clear(&err);
		return;
	}
	uint64_t delay = RETRY_FIRST_MS;
	for (unsigned i = 0; i < l->attempts && delay < RETRY_MAX_MS; i++)
		delay *= 2;
	if (delay > RETRY_MAX_MS)
		delay = RETRY_MAX_MS;
	l->attempts++;
	if (l->attempts == 1 || l->state != (pending ? PV_LINK_PENDING : PV_LINK_ERROR))
		pvx_log(pending ? PVX_INFO : PVX_WARN, "link %s/%s: %s (retry in %llu ms)",
			s->consumer, s->name, msg, (unsigned long long)delay);
	set_state(l, pending ? PV_LINK_PENDING : PV_LINK_ERROR, msg);
	pv_error_clear(&err);
	uv_timer_start(&l->retry, retry_cb, delay, 0);
}

static void retry_cb(uv_timer_t *t)
{
	struct pvx_link *l = t->data;
	if (!l->established && !l->closing)
		establish(l);
}

void pvx_link_report(struct pvx_link *l, enum pv_link_state state, const char *error)
{
	if (state == PV_LINK_UP) {
		/* also how a link that was waiting (-EINPROGRESS from link_add) completes */
		l->attempts = 0;
		set_state(l, state, NULL);
		pvx_log(PVX_INFO, "link %s/%s -> %s: up", l->spec.consumer, l->spec.name,
			l->spec.provider);
		return;
	}
	teardown(l);
	set_state(l, state, error);
	l->attempts = 0;
	uv_timer_start(&l->retry, retry_cb, RETRY_FIRST_MS, 0);
}

static void link_freed(uv_handle_t *h)
{
	struct pvx_link *l = h->data;
	pv_link_free(&l->spec);
	free(l->error);
	free(l);
}

static void destroy(struct pvx_link *l)
{
	teardown(l);
	l->closing = true;
	uv_close((uv_handle_t *)&l->retry, link_freed);
}

static struct pvx_link *link_new(struct pvx_reconciler *r, const struct pv_link *src)
{
	struct pvx_link *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	if (pv_link_copy(&l->spec, src) < 0) {
		free(l);
		return NULL;
	}
	l->owner = r;
	l->loop = r->loop;
	l->plugin = pvx_plugin_find(l->spec.type);
	l->state = PV_LINK_UNKNOWN;
	uv_timer_init(r->loop, &l->retry);
	l->retry.data = l;
	return l;
}

struct pvx_reconciler *pvx_reconciler_new(uv_loop_t *loop, pvx_status_cb cb, void *opaque)
{
	struct pvx_reconciler *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->loop = loop;
	r->cb = cb;
	r->opaque = opaque;
	uv_timer_init(loop, &r->report);
	r->report.data = r;
	return r;
}

size_t pvx_reconciler_count(const struct pvx_reconciler *r)
{
	return r->n;
}

void pvx_reconciler_apply(struct pvx_reconciler *r, struct pv_graph *g)
{
	struct pvx_link **next = calloc(g->n_links ? g->n_links : 1, sizeof(*next));
	bool *kept = calloc(r->n ? r->n : 1, sizeof(*kept));
	if (!next || !kept) {
		pvx_log(PVX_ERROR, "graph %llu: out of memory, keeping the links as they are",
			(unsigned long long)g->generation);
		free(next);
		free(kept);
		pv_graph_free(g);
		return;
	}
	size_t n_next = 0;
	for (size_t i = 0; i < g->n_links; i++) {
		const struct pv_link *nl = &g->links[i];
		struct pvx_link *old = NULL;
		size_t oi = 0;
		for (size_t j = 0; j < r->n; j++)
			if (!kept[j] && pv_link_same_key(&r->links[j]->spec, nl)) {
				old = r->links[j];
				oi = j;
				break;
			}
		/* A duplicate key inside one graph: the first one wins. */
		bool dup = false;
		for (size_t j = 0; j < n_next && !dup; j++)
			dup = pv_link_same_key(&next[j]->spec, nl);
		if (dup)
			continue;
		if (old && pv_link_equal(&old->spec, nl)) {
			kept[oi] = true;
			next[n_next++] = old;
			continue;
		}
		struct pvx_link *l = link_new(r, nl);
		if (!l) {
			pvx_log(PVX_ERROR, "link %s/%s: out of memory", nl->consumer, nl->name);
			continue;
		}
		if (old) {
			/* Same key, something changed (a pid after a restart, the socket, the
			 * mode): rebuild from scratch rather than patch a half-valid link. */
			pvx_log(PVX_INFO,
				"link %s/%s: changed (pids %d/%d -> %d/%d): re-establishing",
				nl->consumer, nl->name, old->spec.consumer_pid,
				old->spec.provider_pid, nl->consumer_pid, nl->provider_pid);
			kept[oi] = true;
			destroy(old);
		}
		next[n_next++] = l;
		establish(l);
	}
	for (size_t j = 0; j < r->n; j++)
		if (!kept[j]) {
			struct pvx_link *l = r->links[j];
			pvx_log(PVX_INFO, "link %s/%s: left the graph: tearing down",
				l->spec.consumer, l->spec.name);
			destroy(l);
		}
	free(kept);
	free(r->links);
	r->links = next;
	r->n = n_next;
	r->cap = g->n_links;
	pvx_log(PVX_DEBUG, "graph %llu applied: %zu links", (unsigned long long)g->generation,
		r->n);
	pv_graph_free(g);
	free(g);
	mark_dirty(r);
}

static void reconciler_freed(uv_handle_t *h)
{
	free(h->data);
}

void pvx_reconciler_free(struct pvx_reconciler *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		destroy(r->links[i]);
	free(r->links);
	r->cb = NULL;
	uv_close((uv_handle_t *)&r->report, reconciler_freed);
}

const struct pvx_plugin *pvx_plugin_find(const char *type)
{
	for (size_t i = 0; type && pvx_plugins[i]; i++)
		if (!strcmp(pvx_plugins[i]->type, type))
			return pvx_plugins[i];
	return NULL;
}
