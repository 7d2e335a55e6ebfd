/* ops_commands.c: the `command` op (POST /commands): reboot / power off through init, RUN_GC,
 * the update commands (update.c); one command at a time, none while an update runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "initctl.h"

static const char *const not_yet[] = {"UPDATE_METADATA", "ENABLE_SSH",	 "DISABLE_SSH",
				      "GO_REMOTE",	 "DEFER_REBOOT", "UNCLAIM",
				      "TRY_ONCE",	 "LOCAL_APPLY",	 "XCONNECT_GRAPH"};

struct power_req {
	uv_timer_t t;
	struct pv_engine *e;
	unsigned op;
};

static void power_close_cb(uv_handle_t *h)
{
	free(h->data);
}

/* Runs on the next loop turn, after the 200 went out: init may stop us at once. */
static void power_cb(uv_timer_t *t)
{
	struct power_req *p = t->data;
	struct pv_engine *e = p->e;
	const char *what = p->op == PV_INITCTL_REBOOT ? "reboot" : "power off";
	int r = pv_initctl_present(e->initctl_fd) ? pv_initctl_request(e->initctl_fd, p->op, NULL)
						  : -ENOTCONN;
	if (r < 0) {
		/* no init (run by hand) or it refused: exit with the status init would act on */
		pv_log(PV_LOG_INFO, "commands", "%s: initctl: %s; ordered stop and exit", what,
		       strerror(-r));
		pv_engine_shutdown(e, p->op == PV_INITCTL_REBOOT ? PV_ENGINE_EXIT_REBOOT
								 : PV_ENGINE_EXIT_POWEROFF);
	} else {
		pv_log(PV_LOG_INFO, "commands", "%s requested from init", what);
	}
	uv_close((uv_handle_t *)&p->t, power_close_cb);
}

char *pv_op_command(struct pv_engine *e, const struct pv_msg *m)
{
	const char *op = NULL;
	char msg[160];
	if (pv_msg_arg_str(m, "op", &op) < 0 || !op)
		return pv_msg_reply_error(m->id, 400, "command: args.op needed");
	if (!strcmp(op, "LOCAL_RUN") || !strcmp(op, "LOCAL_RUN_COMMIT") ||
	    !strcmp(op, "MAKE_FACTORY")) {
		const char *payload = NULL;
		pv_msg_arg_str(m, "payload", &payload);
		return pv_update_command(e, m, op, payload);
	}
	/* reboot / power off would cut an update short (spec core 8.2) */
	if (pv_update_active(e) &&
	    (!strcmp(op, "REBOOT_DEVICE") || !strcmp(op, "POWEROFF_DEVICE"))) {
		snprintf(msg, sizeof(msg), "%s: update in progress", op);
		return pv_msg_reply_error(m->id, 503, msg);
	}
	if (e->cmd_busy || e->shutting_down)
		return pv_msg_reply_error(m->id, 503, "command: another command is running");
	if (!strcmp(op, "RUN_GC")) {
		int64_t r = pv_gc_run(e);
		if (r < 0) {
			snprintf(msg, sizeof(msg), "RUN_GC: %s", strerror((int)-r));
			return pv_msg_reply_error(m->id, 500, msg);
		}
		return pv_msg_reply(m->id, 200, NULL);
	}
	if (!strcmp(op, "REBOOT_DEVICE") || !strcmp(op, "POWEROFF_DEVICE")) {
		struct power_req *p = calloc(1, sizeof(*p));
		if (!p)
			return pv_msg_reply_error(m->id, 500, "command: out of memory");
		p->e = e;
		p->op = op[0] == 'R' ? PV_INITCTL_REBOOT : PV_INITCTL_POWEROFF;
		uv_timer_init(e->loop, &p->t);
		p->t.data = p;
		uv_timer_start(&p->t, power_cb, 0, 0);
		e->cmd_busy = true; /* the device is going down: nothing else runs */
		return pv_msg_reply(m->id, 200, NULL);
	}
	for (size_t i = 0; i < sizeof(not_yet) / sizeof(not_yet[0]); i++) {
		if (!strcmp(op, not_yet[i])) {
			snprintf(msg, sizeof(msg), "command %s: not implemented yet", op);
			return pv_msg_reply_error(m->id, 501, msg);
		}
	}
	snprintf(msg, sizeof(msg), "command \"%.64s\" is not a known command", op);
	return pv_msg_reply_error(m->id, 400, msg);
}
