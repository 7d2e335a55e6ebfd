/* revision.c: loads one revision (state text from storage, libpvstate validation, object
 * verification) into the engine, all or nothing, and swaps the running revision in memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "pvstate/fileio.h"

int pv_revision_parse(struct pv_engine *e, const char *rev, struct pv_state *st,
		      struct pv_error *err)
{
	char *text = NULL, src[256];
	size_t len = 0;
	struct pv_state_opts opts;
	size_t from = err ? err->count : 0;
	int r;

	memset(st, 0, sizeof(*st));
	r = pv_storage_read_state(e->storage, rev, &text, &len, err);
	if (r < 0)
		return r;
	pv_state_opts_default(&opts);
	opts.appengine = e->appengine;
	opts.legacy_roles = pv_config_get_bool(e->cfg, "PV_CONTROL_LEGACY_ROLES", false);
	opts.default_timeout = pv_config_get_seconds(e->cfg, "PV_UPDATER_GOALS_TIMEOUT", 120);
	snprintf(src, sizeof(src), "trails/%s/.pvr/json", rev);
	opts.source = src;
	r = pv_state_parse(text, len, &opts, st, err);
	free(text);
	if (r < 0 && err)
		pv_error_prefix(err, from, src);
	return r;
}

int pv_revision_verify(struct pv_engine *e, const char *rev, const struct pv_state *st,
		       struct pv_error *err)
{
	size_t from = err ? err->count : 0;
	bool checksum = pv_config_get_bool(e->cfg, "PV_SECUREBOOT_CHECKSUM", true);
	int r = pv_storage_verify(e->storage, rev, st, checksum, err);
	if (r < 0 && err) {
		char p[200];
		snprintf(p, sizeof(p), "revision %s", rev);
		pv_error_prefix(err, from, p);
	}
	return r;
}

static void ctr_init(struct pv_engine *e, struct pv_ctr *c, const struct pv_container *spec)
{
	c->e = e;
	c->spec = spec;
	c->status = PV_CS_INSTALLED;
	c->pidfd = -1;
	c->helper_fd = -1;
	uv_timer_init(e->loop, &c->timer);
	c->timer.data = c;
}

int pv_revision_load(struct pv_engine *e, const char *rev, struct pv_error *err)
{
	struct pv_state st;
	int r;

	e->load_bad_format = false;
	r = pv_revision_parse(e, rev, &st, err);
	if (r < 0) {
		e->load_bad_format = true;
		return r;
	}
	r = pv_revision_verify(e, rev, &st, err);
	if (r < 0) {
		pv_state_free(&st);
		return r;
	}
	struct pv_ctr *ctrs = calloc(st.n_containers ? st.n_containers : 1, sizeof(*ctrs));
	if (!ctrs) {
		pv_state_free(&st);
		return pv_error_set(err, -ENOMEM, "revision %s: out of memory", rev);
	}
	e->state = st;
	e->have_state = true;
	e->ctrs = ctrs;
	e->n_ctrs = st.n_containers;
	for (size_t i = 0; i < e->n_ctrs; i++)
		ctr_init(e, &ctrs[i], &e->state.containers[i]);
	snprintf(e->rev, sizeof(e->rev), "%s", rev);
	return 0;
}

/* The old records' timers are embedded in their array: it is freed once libuv has closed them. */
struct graveyard {
	struct pv_ctr *ctrs;
	size_t pending;
};

static void grave_close_cb(uv_handle_t *h)
{
	struct graveyard *g = h->data;
	if (--g->pending == 0) {
		free(g->ctrs);
		free(g);
	}
}

static bool in_list(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

int pv_revision_swap(struct pv_engine *e, const char *rev, struct pv_state *st,
		     const char *const *keep, size_t n_keep)
{
	struct pv_ctr *ctrs = calloc(st->n_containers ? st->n_containers : 1, sizeof(*ctrs));
	struct graveyard *g = calloc(1, sizeof(*g));
	if (!ctrs || !g) {
		free(ctrs);
		free(g);
		return -ENOMEM;
	}
	struct pv_ctr *old = e->ctrs;
	size_t n_old = e->n_ctrs;
	struct pv_state old_state = e->state;
	bool had_state = e->have_state;

	e->state = *st;
	memset(st, 0, sizeof(*st));
	e->have_state = true;
	e->ctrs = ctrs;
	e->n_ctrs = e->state.n_containers;
	snprintf(e->rev, sizeof(e->rev), "%s", rev);
	for (size_t i = 0; i < e->n_ctrs; i++)
		ctr_init(e, &ctrs[i], &e->state.containers[i]);

	/* Containers kept by the update move to the new records as they are: same pid (a new
	 * pidfd watch on it), same mounts, same status; nothing of theirs is stopped. */
	for (size_t i = 0; i < n_old; i++) {
		struct pv_ctr *o = &old[i];
		pv_watch_stop(o);
		uv_timer_stop(&o->timer);
		struct pv_ctr *n = NULL;
		for (size_t j = 0; j < e->n_ctrs; j++)
			if (!strcmp(ctrs[j].spec->name, o->spec->name))
				n = &ctrs[j];
		if (n && in_list(o->spec->name, keep, n_keep)) {
			n->mounts = o->mounts;
			n->n_mounts = o->n_mounts;
			o->mounts = NULL;
			o->n_mounts = 0;
			n->retries = o->retries;
			n->start_ms = o->start_ms;
			n->first_start_ms = o->first_start_ms;
			n->user_stopped = o->user_stopped;
			n->recovery_failed = o->recovery_failed;
			n->adopted = o->adopted;
			n->stop_requested = o->stop_requested;
			n->api_stop = o->api_stop;
			n->api_restart = o->api_restart;
			if (o->pid > 0) {
				n->pid = o->pid;
				n->status = o->status;
				/* at its goal since then: stable_timeout keeps counting from there
				 * (set_status only stamps a change, and this is none) */
				n->goal_ms = o->goal_ms;
				/* an API stop in its grace: the new record kills it in time */
				if (n->status == PV_CS_STOPPING)
					pv_container_arm_stop_grace(n);
				if (pv_watch_start(n) < 0) {
					/* it died meanwhile: start it again, unless the API was
					 * stopping it */
					n->pid = 0;
					pv_volumes_umount(n);
					n->status = n->api_stop ? PV_CS_STOPPED : PV_CS_INSTALLED;
					n->user_stopped = n->api_stop;
					n->api_stop = n->api_restart = false;
					pv_stopmark_note(n);
				}
			} else if (o->status == PV_CS_STOPPED &&
				   (o->user_stopped || o->recovery_failed)) {
				n->status = PV_CS_STOPPED;
			} else if (o->status == PV_CS_RECOVERING) {
				/* waiting to retry, or in its backoff_policy wait: started now, a
				 * crash-looping container would fail an update that did not touch
				 * it */
				n->status = PV_CS_RECOVERING;
				pv_recovery_resume(n);
			}
		} else {
			if (o->n_mounts)
				pv_volumes_umount(o);
			pv_stopmark_forget(o); /* its name, if it comes back, starts afresh */
		}
		free(o->mounts);
		o->mounts = NULL;
	}
	if (had_state)
		pv_state_free(&old_state);
	if (n_old == 0) {
		free(old);
		free(g);
	} else {
		g->ctrs = old;
		g->pending = n_old;
		for (size_t i = 0; i < n_old; i++) {
			old[i].timer.data = g;
			uv_close((uv_handle_t *)&old[i].timer, grave_close_cb);
		}
	}
	return 0;
}
