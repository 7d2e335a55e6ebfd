/* pv-ctrl/ep_info.c: GET /buildinfo (plain text), /config and /config2; the engine holds the
 * running configuration (with levels), pv-ctrl only relays it. */
#include "ep_util.h"

void pv_ep_buildinfo(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "buildinfo", NULL, out);
}

void pv_ep_config(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "config", NULL, out);
}

void pv_ep_config2(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "config2", NULL, out);
}
