/* group.c: the scheduler: containers start group by group; a group blocks the next while one of
 * its members has not reached its status goal and its timeout (counted from start) has not run. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

enum goal_result { GOAL_NONE = 0, GOAL_ACHIEVED, GOAL_UNACHIEVED, GOAL_TIMEDOUT };

static enum pv_cstatus goal_status(enum pv_status_goal g)
{
	switch (g) {
	case PV_GOAL_MOUNTED:
		return PV_CS_MOUNTED;
	case PV_GOAL_READY:
		return PV_CS_READY;
	default:
		return PV_CS_STARTED;
	}
}

static int group_timeout(const struct pv_engine *e, const struct pv_ctr *c)
{
	int gi = c->spec->group_index;
	if (gi >= 0 && (size_t)gi < e->state.n_groups && e->state.groups[gi].timeout > 0)
		return e->state.groups[gi].timeout;
	return pv_config_get_seconds(e->cfg, "PV_UPDATER_GOALS_TIMEOUT", 120);
}

/* Its group timeout has run since t0 (0: not started, never). */
static bool timed_out(const struct pv_engine *e, const struct pv_ctr *c, uint64_t t0)
{
	return t0 && pv_now_ms() - t0 > (uint64_t)group_timeout(e, c) * 1000;
}

/* spec §5.1 per-container goal check. */
static enum goal_result goal_check(const struct pv_engine *e, const struct pv_ctr *c)
{
	enum pv_cstatus goal = goal_status(c->spec->status_goal);
	if (c->status == goal)
		return GOAL_ACHIEVED;
	if (c->status < PV_CS_STARTING)
		return GOAL_UNACHIEVED;
	if (c->status >= goal)
		return GOAL_NONE;
	return timed_out(e, c, c->start_ms) ? GOAL_TIMEDOUT : GOAL_UNACHIEVED;
}

/* Stopped and meant to stay so (an API stop, or a failure that used up its recovery before):
 * nothing an update can test, so it neither holds an update's goals nor its commit. Inside an
 * update a failure fails the update instead (recovery.c), so recovery_failed predates it. */
bool pv_container_left_stopped(const struct pv_ctr *c)
{
	if (c->status == PV_CS_STOPPED)
		return c->user_stopped || c->recovery_failed;
	return c->status == PV_CS_RECOVERING && c->recovery_failed; /* a backoff_policy wait */
}

uint64_t pv_container_unstable_ms(const struct pv_ctr *c)
{
	int st = c->spec->auto_recovery.stable_timeout;
	if (st <= 0 || pv_container_left_stopped(c))
		return 0;
	if (!c->goal_ms)
		return UINT64_MAX;
	uint64_t ran = pv_now_ms() - c->goal_ms, need = (uint64_t)st * 1000;
	return ran >= need ? 0 : need - ran;
}

enum pv_cstatus pv_group_status(const struct pv_engine *e, int g)
{
	enum pv_cstatus low = PV_CS_READY;
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_ctr *c = &e->ctrs[i];
		if (c->spec->group_index != g)
			continue;
		if (goal_check(e, c) == GOAL_ACHIEVED)
			continue;
		if (c->status < low)
			low = c->status;
	}
	return low;
}

int pv_group_goals(const struct pv_engine *e, uint64_t since_ms, const char **who)
{
	int res = 1;
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_ctr *c = &e->ctrs[i];
		enum goal_result g = goal_check(e, c);
		if (g == GOAL_ACHIEVED)
			continue;
		if (g == GOAL_TIMEDOUT) {
			if (who)
				*who = c->spec->name;
			return -1;
		}
		if (pv_container_left_stopped(c))
			continue;
		if (c->status == PV_CS_RECOVERING) {
			/* a crash loop with retries left would otherwise hold the update forever:
			 * each restart counts the goal timeout again from that start */
			uint64_t t0 = c->first_start_ms > since_ms ? c->first_start_ms : since_ms;
			if (timed_out(e, c, t0)) {
				if (who)
					*who = c->spec->name;
				return -1;
			}
		}
		/* past the goal and not stopped (READY with goal STARTED) counts as reached */
		if (g == GOAL_NONE && c->status <= PV_CS_READY)
			continue;
		res = 0;
	}
	return res;
}

/* Blocked while any container of an earlier group has not reached its goal (and not timed out). */
static bool blocked(const struct pv_engine *e, const struct pv_ctr *c)
{
	for (size_t i = 0; i < e->n_ctrs; i++) {
		const struct pv_ctr *o = &e->ctrs[i];
		if (o->spec->group_index >= c->spec->group_index)
			continue;
		if (goal_check(e, o) == GOAL_UNACHIEVED)
			return true;
	}
	return false;
}

static void start_one(struct pv_engine *e, struct pv_ctr *c)
{
	struct pv_error err = PV_ERROR_INIT;
	int r;

	c->user_stopped = false;
	if (c->n_mounts == 0) {
		r = pv_volumes_mount(c, &err);
		if (r < 0)
			goto fail;
	}
	pv_container_set_status(c, PV_CS_MOUNTED);
	if (c->spec->status_goal == PV_GOAL_MOUNTED || !c->spec->config)
		return;
	r = pv_container_start(c, &err);
	if (r < 0)
		goto fail;
	pv_error_clear(&err);
	return;
fail:
	pv_log_error(PV_LOG_ERROR, "container", &err);
	pv_error_clear(&err);
	/* a start that fails is handled like an exit: recovery or failure per policy */
	c->start_ms = pv_now_ms();
	c->pid = 0;
	pv_recovery_on_exit(c);
}

/* Start helpers in flight at once: enough to start in parallel, few enough that liblxc's work
 * does not starve the engine (and everything else) on a small device. */
#define PV_START_PARALLEL 4

static size_t helpers(const struct pv_engine *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->n_ctrs; i++)
		n += e->ctrs[i].helper_pid > 0;
	return n;
}

void pv_group_run(struct pv_engine *e)
{
	if (e->shutting_down || e->failing || !e->have_state)
		return;
	size_t busy = helpers(e);
	for (size_t i = 0; i < e->n_ctrs && !e->failing; i++) {
		struct pv_ctr *c = &e->ctrs[i];
		if (c->status != PV_CS_INSTALLED && c->status != PV_CS_BLOCKED)
			continue;
		if (blocked(e, c)) {
			pv_container_set_status(c, PV_CS_BLOCKED);
			continue;
		}
		if (busy >= PV_START_PARALLEL)
			return; /* a helper's end wakes the scheduler again */
		start_one(e, c);
		busy += c->helper_pid > 0;
	}
}
