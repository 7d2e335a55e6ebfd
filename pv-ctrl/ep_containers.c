/* pv-ctrl/ep_containers.c: GET /containers and PUT /containers/<name> (start/stop/restart).
 * The engine owns the policy (403 for restart_policy system, 404 unknown); we check the body. */
#include <string.h>

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
	if (strcmp(action, "start") && strcmp(action, "stop") && strcmp(action, "restart")) {
		pv_ctrl_reply_error(out, 400,
				    "container %s: action \"%s\" is not start, stop or "
				    "restart",
				    r->caps[0], action);
		return;
	}
	const char *kv[] = {"name", r->caps[0], "action", action, NULL};
	pv_ep_relay(r, "container-action", kv, out);
}
