/* pvstate/status.h: JSON for the engine's runtime status lists (pv-ctrl GET /containers and
 * GET /groups shapes, spec pvctrl-xconnect §A), built from C structs the engine fills. */
#ifndef PVSTATE_STATUS_H
#define PVSTATE_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pv_status_recovery {
	bool set;	    /* emit the "auto_recovery" object */
	const char *policy; /* "no", "always", ... */
	int max_retries;
	int current_retries; /* containers only */
	int stable_timeout;
	bool is_stable;		    /* containers only */
	const char *backoff_policy; /* "reboot", "never", "30s" */
	int retry_delay;
	double backoff_factor;
	int reset_window;
};

struct pv_status_container {
	const char *name;
	const char *group;
	const char *status;	 /* "STARTED", ... */
	const char *status_goal; /* "MOUNTED" | "STARTED" | "READY" */
	const char *restart_policy;
	unsigned roles; /* PV_ROLE_* bits: emitted as ["mgmt"], ["nobody"], [] */
	struct pv_status_recovery auto_recovery;
	bool user_stopped;
	int pid; /* our extension: init pid, 0 when not running */
};

struct pv_status_group {
	const char *name;
	const char *status_goal;
	const char *restart_policy;
	const char *status;
	int timeout;
	struct pv_status_recovery auto_recovery;
};

/* JSON arrays in upstream's shape. Caller frees; NULL on ENOMEM. */
char *pv_status_emit_containers(const struct pv_status_container *c, size_t n);
char *pv_status_emit_groups(const struct pv_status_group *g, size_t n);

/* ---- bodies of the engine's other private-protocol ops (docs/protocol.md) ---- */

/* GET /objects: [{"sha256":"<hex>","size":"<bytes as decimal string>"}] (upstream's shape). */
struct pv_status_object {
	const char *sha256;
	uint64_t size;
};
char *pv_status_emit_objects(const struct pv_status_object *o, size_t n);

/* GET /steps: [{"name","date","commitmsg","progress"}]. progress is the stored progress JSON
 * text (NULL or invalid JSON => {}); date is ISO 8601 UTC. */
struct pv_status_step {
	const char *name;
	const char *date;
	const char *commitmsg; /* NULL => "" */
	const char *progress;
};
char *pv_status_emit_steps(const struct pv_status_step *s, size_t n);

/* Progress JSON of spec §4.2 without downloads/logs: {"status","status-msg","progress"}. */
char *pv_status_emit_progress(const char *status, const char *msg, int progress);
/* The same with "logs" (why an update failed, for the user; NULL or "" = no member). */
char *pv_status_emit_progress_logs(const char *status, const char *msg, int progress,
				   const char *logs);
/* Reads "status" and "status-msg" of a stored progress JSON (len bytes). 0, or -EINVAL when it
 * is not an object with a string "status" (status/msg are then ""). Either out may be NULL. */
int pv_status_parse_progress(const char *text, size_t len, char *status, size_t sn, char *msg,
			     size_t mn);
/* true when two JSON texts hold the same value (key order and whitespace aside): two revisions'
 * json files that differ only in formatting do not make an update restart their container. */
bool pv_status_json_same(const char *a, size_t alen, const char *b, size_t blen);
/* true when text (len bytes) is one JSON object (a stored progress file worth serving). */
bool pv_status_is_json_object(const char *text, size_t len);

/* GET /user-meta, /device-meta: {"key":"value",...} (values as strings). */
char *pv_status_emit_meta(const char *const *keys, const char *const *values, size_t n);

/* GET /daemons: [{"name","pid","respawn"}]. */
struct pv_status_daemon {
	const char *name;
	int pid;
	bool respawn;
};
char *pv_status_emit_daemons(const struct pv_status_daemon *d, size_t n);

/* POST /storage/gc: {"reclaimed": bytes}. */
char *pv_status_emit_gc(uint64_t reclaimed);

/* device-meta "storage": {"total","free","reserved","real_free"} in bytes (upstream's names). */
struct pv_status_storage {
	uint64_t total, free, reserved, real_free;
};
char *pv_status_emit_storage(const struct pv_status_storage *u);

#endif
