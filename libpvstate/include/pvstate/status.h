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

#endif
