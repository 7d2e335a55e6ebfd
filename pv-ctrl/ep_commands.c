/* pv-ctrl/ep_commands.c: POST /commands {"op","payload"} (≤ 4096 B, spec §8.2). Unknown ops are
 * refused here; "one at a time" (503 + Retry-After) is the engine's to decide. */
#include <string.h>

#include "ep_util.h"

static const char *const known_ops[] = {
    "UPDATE_METADATA", "REBOOT_DEVICE", "POWEROFF_DEVICE", "LOCAL_RUN",	  "LOCAL_RUN_COMMIT",
    "MAKE_FACTORY",    "RUN_GC",	"ENABLE_SSH",	   "DISABLE_SSH", "GO_REMOTE",
    "DEFER_REBOOT",    "UNCLAIM",	"TRY_ONCE",	   "LOCAL_APPLY", "XCONNECT_GRAPH",
};

void pv_ep_commands(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char op[64], payload[4096];
	if (!pv_ep_field(r, "op", 1, op, sizeof(op), out) ||
	    !pv_ep_field(r, "payload", 0, payload, sizeof(payload), out))
		return;
	bool known = false;
	for (size_t i = 0; i < sizeof(known_ops) / sizeof(known_ops[0]); i++)
		if (!strcmp(op, known_ops[i]))
			known = true;
	if (!known) {
		pv_ctrl_reply_error(out, 400, "command \"%s\" is not a known command", op);
		return;
	}
	const char *kv[] = {"op", op, "payload", payload, NULL};
	pv_ep_relay(r, "command", kv, out);
}
