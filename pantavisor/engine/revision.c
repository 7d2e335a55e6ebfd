/* revision.c: loads one revision (state text from storage, libpvstate validation, object
 * verification) into the engine, all or nothing: a revision that fails never half-starts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "pvstate/fileio.h"

int pv_revision_load(struct pv_engine *e, const char *rev, struct pv_error *err)
{
	char *text = NULL, src[256];
	size_t len = 0;
	struct pv_state_opts opts;
	struct pv_state st;
	size_t from = err ? err->count : 0;
	int r;

	r = pv_storage_read_state(e->storage, rev, &text, &len, err);
	if (r < 0)
		return r;
	pv_state_opts_default(&opts);
	opts.appengine = e->appengine;
	opts.legacy_roles = pv_config_get_bool(e->cfg, "PV_CONTROL_LEGACY_ROLES", false);
	opts.default_timeout =
	    pv_config_get_seconds(e->cfg, "PV_UPDATER_GOALS_TIMEOUT", e->appengine ? 10 : 120);
	snprintf(src, sizeof(src), "trails/%s/.pvr/json", rev);
	opts.source = src;
	memset(&st, 0, sizeof(st));
	r = pv_state_parse(text, len, &opts, &st, err);
	free(text);
	if (r < 0) {
		if (err)
			pv_error_prefix(err, from, src);
		return r;
	}
	bool checksum = pv_config_get_bool(e->cfg, "PV_SECUREBOOT_CHECKSUM", true);
	r = pv_storage_verify(e->storage, rev, &st, checksum, err);
	if (r < 0) {
		if (err) {
			char p[200];
			snprintf(p, sizeof(p), "revision %s", rev);
			pv_error_prefix(err, from, p);
		}
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
	for (size_t i = 0; i < e->n_ctrs; i++) {
		ctrs[i].e = e;
		ctrs[i].spec = &e->state.containers[i];
		ctrs[i].status = PV_CS_INSTALLED;
		ctrs[i].pidfd = -1;
	}
	snprintf(e->rev, sizeof(e->rev), "%s", rev);
	return 0;
}
