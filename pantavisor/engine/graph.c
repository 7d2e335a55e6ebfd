/* graph.c: the xconnect graph of the running revision, rebuilt with libpvstate whenever a
 * container pid changes and pushed to subscribers (generation++) only when it differs. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "pvstate/graph.h"
#include "pvstate/status.h"

static char *build_links(struct pv_engine *e)
{
	struct pv_graph g;
	struct pv_error err = PV_ERROR_INIT;
	char *json = NULL;

	if (!e->have_state)
		return strdup("[]");
	struct pv_pid *pids = calloc(e->n_ctrs ? e->n_ctrs : 1, sizeof(*pids));
	if (!pids)
		return NULL;
	for (size_t i = 0; i < e->n_ctrs; i++) {
		pids[i].name = e->ctrs[i].spec->name;
		pids[i].pid = e->ctrs[i].pid;
	}
	memset(&g, 0, sizeof(g));
	if (pv_graph_build(&e->state, pids, e->n_ctrs, &g, &err) == 0) {
		json = pv_graph_emit(&g, false);
		pv_graph_free(&g);
	} else {
		pv_log_error(PV_LOG_ERROR, "graph", &err);
	}
	pv_error_clear(&err);
	free(pids);
	return json;
}

void pv_graph_update(struct pv_engine *e)
{
	char *links = build_links(e);
	if (!links)
		return;
	if (e->graph_links && !strcmp(links, e->graph_links)) {
		free(links);
		return;
	}
	free(e->graph_links);
	e->graph_links = links;
	e->graph_generation++;
	char *ev = pv_status_graph_event(e->graph_generation, links);
	if (ev) {
		pv_ipc_push(e, ev);
		free(ev);
	}
}

int pv_graph_current(struct pv_engine *e, char **event)
{
	if (!e->graph_links)
		pv_graph_update(e);
	*event = pv_status_graph_event(e->graph_generation, e->graph_links ? e->graph_links : "[]");
	return *event ? 0 : -1;
}
