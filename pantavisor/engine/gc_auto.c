/* gc_auto.c: storage usage and the threshold garbage collector (spec §3.3).
 *
 * statfs() of the storage gives total, free, reserved (PV_STORAGE_GC_RESERVED % of total) and
 * real_free (free less reserved); GET /device-meta answers them live as the key "storage" and
 * <rundir>/device-meta/storage mirrors them when they change (a volatile value: written to the run
 * dir, never to flash). With PV_STORAGE_GC_THRESHOLD = N > 0 the GC runs when real_free falls
 * under N % of total, checked every few seconds, but not while an update is in flight nor for
 * PV_STORAGE_GC_THRESHOLD_DEFERTIME s after an object was put through pv-ctrl: the objects of
 * an update being uploaded are linked by no trail yet and would be collected. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "engine.h"
#include "pvstate/fileio.h"
#include "pvstate/status.h"

#define CHECK_MS     5000  /* how often the threshold is looked at */
#define IDLE_GC_MS   60000 /* after a GC that freed nothing, the next waits this long */
#define META_CHANGED (1 << 20)

int pv_storage_usage(const struct pv_engine *e, struct pv_status_storage *u)
{
	struct statvfs st;
	if (statvfs(e->storage, &st) < 0)
		return -errno;
	uint64_t bs = st.f_frsize ? st.f_frsize : st.f_bsize;
	long pct = e->cfg ? pv_config_get_int(e->cfg, "PV_STORAGE_GC_RESERVED", 5) : 5;
	if (pct < 0 || pct > 100)
		pct = 5;
	u->total = (uint64_t)st.f_blocks * bs;
	u->free = (uint64_t)st.f_bfree * bs;
	u->reserved = u->total * (uint64_t)pct / 100;
	u->real_free = u->free > u->reserved ? u->free - u->reserved : 0;
	return 0;
}

char *pv_storage_usage_json(const struct pv_engine *e)
{
	struct pv_status_storage u;
	if (pv_storage_usage(e, &u) < 0)
		return NULL;
	return pv_status_emit_storage(&u);
}

void pv_gc_auto_object_put(struct pv_engine *e)
{
	long defer = pv_config_get_seconds(e->cfg, "PV_STORAGE_GC_THRESHOLD_DEFERTIME", 600);
	if (defer < 0)
		defer = 0;
	if (e->gc_defer_until_ms <= pv_now_ms() &&
	    pv_config_get_int(e->cfg, "PV_STORAGE_GC_THRESHOLD", 0) > 0)
		pv_log(PV_LOG_INFO, "gc", "object put: threshold GC deferred for %ld s", defer);
	e->gc_defer_until_ms = pv_now_ms() + (uint64_t)defer * 1000;
	e->gc_idle_until_ms = 0; /* something new that may be garbage once the deferral ends */
}

/* The device-meta mirror, rewritten only when a value moved by 1 MiB or more. */
static void publish(struct pv_engine *e, const struct pv_status_storage *u)
{
	const struct pv_status_storage *o = &e->storage_published;
	uint64_t d =
	    u->real_free > o->real_free ? u->real_free - o->real_free : o->real_free - u->real_free;
	if (e->storage_meta_done && u->total == o->total && d < META_CHANGED)
		return;
	char *json = pv_status_emit_storage(u);
	if (!json)
		return;
	char path[4200];
	snprintf(path, sizeof(path), "%s/device-meta/storage", e->rundir);
	if (pv_file_write_atomic(path, json, strlen(json), 0644, NULL) == 0) {
		e->storage_published = *u;
		e->storage_meta_done = true;
	}
	free(json);
}

void pv_gc_auto_tick(struct pv_engine *e)
{
	uint64_t now = pv_now_ms();
	if (now < e->gc_next_check_ms)
		return;
	e->gc_next_check_ms = now + CHECK_MS;
	struct pv_status_storage u;
	if (pv_storage_usage(e, &u) < 0 || !u.total)
		return;
	publish(e, &u);
	long threshold = pv_config_get_int(e->cfg, "PV_STORAGE_GC_THRESHOLD", 0);
	if (threshold <= 0 || e->update || e->update_rev[0] || e->shutting_down)
		return;
	unsigned pct = (unsigned)(u.real_free * 100 / u.total);
	if (pct >= (unsigned long)threshold || now < e->gc_defer_until_ms ||
	    now < e->gc_idle_until_ms)
		return;
	pv_log(PV_LOG_INFO, "gc", "real free space %u%% is under the %ld%% threshold: collecting",
	       pct, threshold);
	int64_t freed = pv_gc_run(e);
	if (freed >= 0)
		pv_log(PV_LOG_INFO, "gc", "threshold GC reclaimed %lld bytes", (long long)freed);
	if (freed <= 0)
		e->gc_idle_until_ms = now + IDLE_GC_MS;
	e->storage_meta_done = false; /* publish what the GC changed at once */
	e->gc_next_check_ms = 0;
}
