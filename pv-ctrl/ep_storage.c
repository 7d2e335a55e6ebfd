/* pv-ctrl/ep_storage.c: POST /storage/gc → {"reclaimed": <bytes>} from the engine's collector.
 * Storage layout knowledge stays in the engine; pv-ctrl only relays. */
#include "ep_util.h"

void pv_ep_storage_gc(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "gc", NULL, out);
}
