/* pv-ctrl/ep_groups.c: GET /groups, relayed to the engine's groups-list.
 * The JSON shape is built by the engine (libpvstate status emitter), never here. */
#include "ep_util.h"

void pv_ep_groups_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "groups-list", NULL, out);
}
