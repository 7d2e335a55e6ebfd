/* pv-ctrl/ep_util.h: helpers shared by the endpoint files: relay an op with string args and
 * read one string field of the request body. */
#ifndef PV_CTRL_EP_UTIL_H
#define PV_CTRL_EP_UTIL_H

#include <stdlib.h>

#include "ctrl.h"

/* Relays op with args built from NULL-terminated key/value pairs (kv may be NULL: no args).
 * A GET's relay is deferred (out untouched, r->defer_op set): it must be the handler's last act. */
static inline void pv_ep_relay(struct pv_ctrl_req *r, const char *op, const char *const *kv,
			       struct pv_ctrl_reply *out)
{
	char *args = NULL;
	if (kv && !(args = pv_ctrl_args_kv(kv))) {
		pv_ctrl_reply_error(out, 500, "out of memory building %s", op);
		return;
	}
	if (r->method == PV_M_GET) {
		/* reads are answered asynchronously: main.c sends it and parks the connection */
		r->defer_op = op;
		r->defer_args = args;
		return;
	}
	pv_ctrl_engine_write(r->ctrl->engine, op, args, out);
	free(args);
}

/* Reads field from the JSON body; on a bad body fills a 400 and returns false. */
static inline int pv_ep_field(struct pv_ctrl_req *r, const char *field, int required, char *buf,
			      size_t len, struct pv_ctrl_reply *out)
{
	char msg[256];
	if (pv_ctrl_body_field(r->body, r->body_len, field, required, buf, len, msg, sizeof(msg)) <
	    0) {
		pv_ctrl_reply_error(out, 400, "%s", msg);
		return 0;
	}
	return 1;
}

#endif
