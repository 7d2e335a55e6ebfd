/* graph.c: the xconnect graph of the running revision, rebuilt with libpvstate whenever a
 * container pid changes and pushed to subscribers (generation++) only when it differs. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "pvstate/graph.h"
#include "pvstate/proto.h"

/* Builds the graph of the running revision with the current pids. */
static int build(struct pv_engine *e, struct pv_graph *g)
{
	struct pv_error err = PV_ERROR_INIT;
	memset(g, 0, sizeof(*g));
	if (!e->have_state)
		return 0;
	struct pv_pid *pids = calloc(e->n_ctrs ? e->n_ctrs : 1, sizeof(*pids));
	if (!pids)
		return -1;
	for (size_t i = 0; i < e->n_ctrs; i++) {
		pids[i].name = e->ctrs[i].spec->name;
		pids[i].pid = e->ctrs[i].pid;
	}
	int r = pv_graph_build(&e->state, pids, e->n_ctrs, g, &err);
	if (r < 0)
		pv_log_error(PV_LOG_ERROR, "graph", &err);
	pv_error_clear(&err);
	free(pids);
	return r;
}

void pv_graph_update(struct pv_engine *e)
{
	struct pv_graph g;
	if (build(e, &g) < 0)
		return;
	char *links = pv_graph_emit(&g, false);
	if (!links || (e->graph_links && !strcmp(links, e->graph_links))) {
		free(links);
		pv_graph_free(&g);
		return;
	}
	free(e->graph_links);
	e->graph_links = links;
	e->graph_generation++;
	g.generation = e->graph_generation;
	char *ev = pv_msg_graph_event(e->graph_generation, &g);
	if (ev) {
		pv_ipc_push(e, ev);
		free(ev);
	}
	pv_graph_free(&g);
}

int pv_graph_current(struct pv_engine *e, char **event)
{
	struct pv_graph g;
	if (!e->graph_links)
		pv_graph_update(e);
	if (build(e, &g) < 0)
		return -1;
	g.generation = e->graph_generation;
	*event = pv_msg_graph_event(e->graph_generation, &g);
	pv_graph_free(&g);
	return *event ? 0 : -1;
}

/* The `graph` op: the current links with pv-xconnect's last reported state merged in by key. */
char *pv_graph_with_status(struct pv_engine *e)
{
	struct pv_graph g;
	if (build(e, &g) < 0)
		return NULL;
	for (size_t i = 0; i < g.n_links; i++) {
		if (e->link_status_lost) {
			g.links[i].state = PV_LINK_PENDING;
			free(g.links[i].error);
			g.links[i].error = strdup("pv-xconnect is not connected to the engine");
			continue;
		}
		for (size_t j = 0; j < e->link_status.n_links; j++) {
			const struct pv_link *st = &e->link_status.links[j];
			if (!pv_link_same_key(&g.links[i], st))
				continue;
			g.links[i].state = st->state;
			free(g.links[i].error);
			g.links[i].error = st->error ? strdup(st->error) : NULL;
			break;
		}
	}
	char *s = pv_graph_emit(&g, true);
	pv_graph_free(&g);
	return s;
}

int pv_graph_set_status(struct pv_engine *e, const struct pv_msg *m, struct pv_error *err)
{
	struct pv_graph g;
	memset(&g, 0, sizeof(g));
	int r = pv_msg_parse_link_status(m, &g, err);
	if (r < 0) {
		pv_graph_free(&g);
		return r;
	}
	pv_graph_free(&e->link_status);
	e->link_status = g;
	e->link_status_lost = false;
	return 0;
}

void pv_graph_status_lost(struct pv_engine *e)
{
	pv_graph_free(&e->link_status);
	e->link_status_lost = true;
}
