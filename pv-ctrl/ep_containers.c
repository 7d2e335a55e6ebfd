/* pv-ctrl/ep_containers.c: GET /containers and PUT /containers/<name> (start/stop/restart).
 * The engine owns the checks, in upstream's order: 404 unknown, 403 restart_policy system, 400
 * an action that is not start, stop or restart; we check the body is JSON with an "action". */

#include "ep_util.h"

void pv_ep_containers_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "containers-list", NULL, out);
}

void pv_ep_containers_action(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char action[32];
	if (!pv_ep_field(r, "action", 1, action, sizeof(action), out))
		return;
	/* the action's value is the engine's to judge, after the name (404) and the policy (403),
	 * in upstream's order */
	const char *kv[] = {"name", r->caps[0], "action", action, NULL};
	pv_ep_relay(r, "container-action", kv, out);
}
