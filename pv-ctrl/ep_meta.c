/* pv-ctrl/ep_meta.c: GET /user-meta, /device-meta and PUT/DELETE of one key; the value is the
 * raw request body (upstream stores it as given). */
#include "ep_util.h"

#include "route.h"

static const char *kind_of(const struct pv_ctrl_req *r)
{
	switch (r->route->id) {
	case PV_R_DEVICE_META_LIST:
	case PV_R_DEVICE_META_PUT:
	case PV_R_DEVICE_META_DELETE:
		return "device";
	}
	return "user";
}

void pv_ep_meta_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	const char *kv[] = {"kind", kind_of(r), NULL};
	pv_ep_relay(r, "meta-list", kv, out);
}

void pv_ep_meta_put(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	const char *kv[] = {"kind", kind_of(r), "key", r->caps[0], "value", r->body ? r->body : "",
			    NULL};
	pv_ep_relay(r, "meta-put", kv, out);
}

void pv_ep_meta_delete(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	const char *kv[] = {"kind", kind_of(r), "key", r->caps[0], NULL};
	pv_ep_relay(r, "meta-delete", kv, out);
}
