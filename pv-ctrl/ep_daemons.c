/* pv-ctrl/ep_daemons.c: GET /daemons and PUT /daemons/<name> {"action":"start"|"stop"|"restart"};
 * the engine asks init to act on its managed daemons (pv-xconnect, ...). */
#include <string.h>

#include "ep_util.h"

void pv_ep_daemons_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "daemons-list", NULL, out);
}

void pv_ep_daemons_action(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char action[32];
	if (!pv_ep_field(r, "action", 1, action, sizeof(action), out))
		return;
	if (strcmp(action, "start") && strcmp(action, "stop") && strcmp(action, "restart")) {
		pv_ctrl_reply_error(out, 400,
				    "daemon %s: action \"%s\" is not start, stop or restart",
				    r->caps[0], action);
		return;
	}
	const char *kv[] = {"name", r->caps[0], "action", action, NULL};
	pv_ep_relay(r, "daemon-action", kv, out);
}
