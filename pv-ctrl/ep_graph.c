/* pv-ctrl/ep_graph.c: GET /xconnect-graph: the engine's current link array with upstream's
 * field names (built by libpvstate on the engine side). */
#include "ep_util.h"

void pv_ep_graph(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "graph", NULL, out);
}
