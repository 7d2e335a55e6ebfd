/* recovery.c: what happens when a container's init exits: auto_recovery (always / on-failure,
 * max_retries, retry_delay * backoff_factor^(n-1), reset_window, backoff_policy) or failure
 * (during an update: the update fails and rolls back). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "pvstate/fileio.h"

static void retry_cb(uv_timer_t *t)
{
	struct pv_ctr *c = t->data;
	if (c->status != PV_CS_RECOVERING || c->e->shutting_down)
		return;
	pv_log(PV_LOG_INFO, "recovery", "%s: retry %d", c->spec->name, c->retries);
	pv_container_set_status(c, PV_CS_INSTALLED);
	pv_engine_wake(c->e);
}

/* backoff_policy after max_retries: a duration waits and then starts over with a fresh count. */
static void backoff_cb(uv_timer_t *t)
{
	struct pv_ctr *c = t->data;
	if (c->e->shutting_down || !c->recovery_failed)
		return;
	pv_log(PV_LOG_INFO, "recovery", "%s: backoff of %d s over; retries start again",
	       c->spec->name, c->spec->auto_recovery.backoff_wait);
	c->recovery_failed = false;
	c->retries = 0;
	pv_container_set_status(c, PV_CS_INSTALLED);
	pv_stopmark_note(c);
	pv_engine_wake(c->e);
}

void pv_recovery_backoff_start(struct pv_ctr *c)
{
	uv_timer_start(&c->timer, backoff_cb, (uint64_t)c->spec->auto_recovery.backoff_wait * 1000,
		       0);
}

/* The wait before retry n (1-based): retry_delay * backoff_factor^(n-1) seconds. */
static double retry_delay_s(const struct pv_auto_recovery *ar, int n)
{
	double delay = ar->retry_delay;
	if (ar->backoff_factor > 1.0 && n > 1)
		delay *= pow(ar->backoff_factor, n - 1);
	return delay;
}

void pv_recovery_resume(struct pv_ctr *c)
{
	if (c->recovery_failed) {
		pv_recovery_backoff_start(c);
		return;
	}
	double delay = retry_delay_s(&c->spec->auto_recovery, c->retries);
	uv_timer_start(&c->timer, retry_cb, (uint64_t)(delay * 1000), 0);
}

void pv_recovery_on_exit(struct pv_ctr *c)
{
	struct pv_engine *e = c->e;
	const struct pv_auto_recovery *ar = &c->spec->auto_recovery;
	const char *name = c->spec->name;
	bool was_starting = c->status <= PV_CS_STARTING; /* a failed start, not an exit */

	pv_volumes_umount(c);
	/* the staged _config copy is made fresh at each start (upstream removes it on stop too) */
	char conf[4096];
	snprintf(conf, sizeof(conf), "%s/%s", e->confdir, name);
	pv_remove_tree(conf);
	pv_container_set_status(c, PV_CS_STOPPED);
	if (e->shutting_down)
		return;
	if (c->stop_requested) {
		/* an API stop leaves it stopped (user_stopped); a restart starts it again afresh */
		if (c->api_restart) {
			c->api_restart = false;
			c->retries = 0;
			c->user_stopped = c->recovery_failed = false;
			pv_container_set_status(c, PV_CS_INSTALLED);
			pv_engine_wake(e);
		} else if (c->api_stop) {
			c->api_stop = false;
			c->user_stopped = true;
			pv_stopmark_note(c);
		}
		return;
	}

	uint64_t ran_ms = pv_now_ms() - c->start_ms;
	if (ar->reset_window > 0 && ran_ms > (uint64_t)ar->reset_window * 1000 && c->retries) {
		pv_log(PV_LOG_INFO, "recovery", "%s: ran %llu s > reset_window %d s, retries reset",
		       name, (unsigned long long)(ran_ms / 1000), ar->reset_window);
		c->retries = 0;
	}
	/* Only always / on-failure are acted on; unless-stopped crashes count as failures. */
	bool recover = ar->policy == PV_RECOVERY_ALWAYS || ar->policy == PV_RECOVERY_ON_FAILURE;
	if (recover && (ar->max_retries == 0 || c->retries < ar->max_retries)) {
		c->retries++;
		double delay = retry_delay_s(ar, c->retries);
		pv_log(PV_LOG_WARN, "recovery", "%s: exited; auto_recovery retry %d/%d in %.1f s",
		       name, c->retries, ar->max_retries, delay);
		pv_container_set_status(c, PV_CS_RECOVERING);
		uv_timer_start(&c->timer, retry_cb, (uint64_t)(delay * 1000), 0);
		return;
	}
	/* during an update's INPROGRESS/TESTING a container with no recovery left fails the
	 * update (ERROR, rollback) whatever its backoff or restart policy says (spec core 4.6) */
	char failure[300];
	snprintf(failure, sizeof(failure), "container %s %s%s (%s/%s/%s/lxc/)", name,
		 was_starting ? "failed to start" : "exited without being asked to stop",
		 recover ? " and auto_recovery retries are exhausted" : "", e->logdir, e->rev,
		 name);
	if (pv_update_container_failed(c, failure))
		return;
	if (recover) {
		pv_log(PV_LOG_ERROR, "recovery",
		       "%s: exited; max_retries %d exhausted (backoff %s)", name, ar->max_retries,
		       ar->backoff_str[0] ? ar->backoff_str : "reboot");
		if (ar->backoff == PV_BACKOFF_NEVER) {
			c->recovery_failed = true;
			pv_stopmark_note(c);
			return;
		}
		if (ar->backoff == PV_BACKOFF_WAIT) {
			/* shown as RECOVERING (it will be started again), as upstream */
			c->recovery_failed = true;
			pv_container_set_status(c, PV_CS_RECOVERING);
			pv_recovery_backoff_start(c);
			pv_stopmark_note(c);
			return;
		}
	}
	if (c->spec->restart_policy == PV_RESTART_SYSTEM) {
		char why[256];
		snprintf(why, sizeof(why),
			 "container %s (restart_policy system) exited without recovery", name);
		pv_engine_fail(e, why);
		return;
	}
	/* restart_policy container: the rest of the system keeps running; it can be restarted
	 * through the API. */
	c->recovery_failed = true;
	pv_stopmark_note(c);
	pv_log(PV_LOG_ERROR, "recovery", "%s: exited without recovery; left STOPPED", name);
}
