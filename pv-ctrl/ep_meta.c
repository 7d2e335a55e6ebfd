/* pv-ctrl/ep_meta.c: GET /user-meta, /device-meta and PUT/DELETE of one key; the value is the
 * raw request body (upstream stores it as given). The host and mgmt containers list every key
 * (as upstream); any other container lists its own view: the keys "<name>.<k>" as "<k>", what
 * upstream shows it in /pantavisor/user-meta (user-meta.<name>/). */
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
	if (pv_ctrl_caller_allowed(r->ctrl, &r->caller, PV_CTRL_ROLE_MGMT)) {
		const char *kv[] = {"kind", kind_of(r), NULL};
		pv_ep_relay(r, "meta-list", kv, out);
		return;
	}
	if (!r->caller.container[0]) {
		/* a non-root host user: no container, so no view either */
		pv_ctrl_reply_error(out, 403, "GET %s needs role mgmt or a container caller",
				    r->route->pattern);
		return;
	}
	const char *kv[] = {"kind", kind_of(r), "container", r->caller.container, NULL};
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
