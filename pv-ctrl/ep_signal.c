/* pv-ctrl/ep_signal.c: POST /signal {"type":"ready"|"alive","payload":..} from any caller; the
 * container named in the request is the caller's own (from its cgroup), never taken from the body.
 */
#include <string.h>

#include "ep_util.h"

void pv_ep_signal(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char type[32], payload[4096];
	if (!pv_ep_field(r, "type", 1, type, sizeof(type), out) ||
	    !pv_ep_field(r, "payload", 0, payload, sizeof(payload), out))
		return;
	if (strcmp(type, "ready") && strcmp(type, "alive")) {
		pv_ctrl_reply_error(out, 400, "signal type \"%s\" is not ready or alive", type);
		return;
	}
	/* the host has no container: the engine answers that no container is named */
	const char *kv[] = {"container", r->caller.host ? "" : r->caller.container,
			    "type",	 type,
			    "payload",	 payload,
			    NULL};
	pv_ep_relay(r, "signal", kv, out);
}
