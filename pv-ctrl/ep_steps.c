/* pv-ctrl/ep_steps.c: /steps: list, one revision's state, PUT of locals/<name>, progress and
 * commitmsg. Names were checked by the router; the engine validates the state itself (422). */
#include <stdio.h>
#include <string.h>

#include "ep_util.h"

#include "route.h"

/* "/steps/7" → "7", "/steps/locals/x" → "locals/x" */
static void rev_of(const struct pv_ctrl_req *r, char *rev, size_t len)
{
	switch (r->route->id) {
	case PV_R_STEPS_LOCAL_GET:
	case PV_R_STEPS_LOCAL_PUT:
	case PV_R_STEPS_LOCAL_PROGRESS:
	case PV_R_STEPS_LOCAL_COMMITMSG:
		snprintf(rev, len, "locals/%s", r->caps[0]);
		return;
	}
	snprintf(rev, len, "%s", r->caps[0]);
}

void pv_ep_steps_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "steps-list", NULL, out);
}

void pv_ep_steps_get(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char rev[PV_ROUTE_CAP_LEN + 8];
	rev_of(r, rev, sizeof(rev));
	const char *kv[] = {"rev", rev, NULL};
	pv_ep_relay(r, "step-get", kv, out);
}

void pv_ep_steps_put(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char rev[PV_ROUTE_CAP_LEN + 8], msg[256];
	rev_of(r, rev, sizeof(rev));
	/* malformed JSON is the caller's fault (400); a well-formed but invalid state is the
	 * engine's 422 after its validation */
	if (pv_ctrl_body_check_json(r->body, r->body_len, msg, sizeof(msg)) < 0) {
		pv_ctrl_reply_error(out, 400, "step %s: %s", rev, msg);
		return;
	}
	const char *kv[] = {"rev", rev, "state", r->body, NULL};
	pv_ep_relay(r, "step-put", kv, out);
}

void pv_ep_steps_progress(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char rev[PV_ROUTE_CAP_LEN + 8];
	rev_of(r, rev, sizeof(rev));
	const char *kv[] = {"rev", rev, NULL};
	pv_ep_relay(r, "step-progress", kv, out);
}

void pv_ep_steps_commitmsg(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char rev[PV_ROUTE_CAP_LEN + 8], msg[257];
	rev_of(r, rev, sizeof(rev));
	size_t n = r->body_len < sizeof(msg) - 1 ? r->body_len : sizeof(msg) - 1;
	memcpy(msg, r->body ? r->body : "", n);
	msg[n] = '\0';
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	if (!n || strlen(msg) != n) {
		pv_ctrl_reply_error(out, 400, "step %s: commit message is empty or not text", rev);
		return;
	}
	const char *kv[] = {"rev", rev, "msg", msg, NULL};
	pv_ep_relay(r, "step-commitmsg", kv, out);
}
