/* pv-ctrl/ep_drivers.c: GET /drivers and PUT /drivers/[<alias>/]load|unload (spec §8.1): the
 * caller container's driver aliases; the host acts on every container's. The engine resolves
 * aliases through bsp/drivers.json and runs modprobe. */

#include "ep_util.h"

#include "route.h"

void pv_ep_drivers_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	/* upstream lists the drivers of the calling container; the host is every container */
	const char *kv[] = {"container", r->caller.container, NULL};
	pv_ep_relay(r, "drivers-list", r->caller.host ? NULL : kv, out);
}

void pv_ep_drivers_action(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	int id = r->route->id;
	const char *action =
	    id == PV_R_DRIVERS_UNLOAD || id == PV_R_DRIVER_UNLOAD ? "unload" : "load";
	bool named = id == PV_R_DRIVER_LOAD || id == PV_R_DRIVER_UNLOAD; /* alias in caps[0] */
	const char *kv[8];
	size_t n = 0;
	kv[n++] = "action";
	kv[n++] = action;
	if (named) {
		kv[n++] = "name";
		kv[n++] = r->caps[0];
	}
	if (!r->caller.host) {
		kv[n++] = "container";
		kv[n++] = r->caller.container;
	}
	kv[n] = NULL;
	pv_ep_relay(r, "driver-action", kv, out);
}
