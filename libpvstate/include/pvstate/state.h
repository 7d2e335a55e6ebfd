/* pvstate/state.h: a revision state (`#spec` pantavisor-service-system@1) parsed into C structs.
 * The only place that knows the state's JSON shape: run.json, services.json, device.json,
 * groups.json, bsp/run.json. Everything else works on these structs. */
#ifndef PVSTATE_STATE_H
#define PVSTATE_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "pvstate/error.h"

#define PV_SPEC_SYSTEM1 "pantavisor-service-system@1"
#define PV_SPEC_MULTI1	"pantavisor-multi-platform@1"

/* Hard limits that keep hostile input bounded. */
#define PV_STATE_MAX_BYTES  (64u * 1024 * 1024) /* a whole state JSON */
#define PV_STATE_MAX_DEPTH  64			/* JSON nesting */
#define PV_STATE_MAX_VALUES (1000u * 1000)	/* JSON values (bounds cJSON's tree memory) */
#define PV_STATE_MAX_STRING 4096		/* any single string field we keep */
#define PV_NAME_MAX	    64			/* container / group / service names */

enum pv_status_goal { PV_GOAL_MOUNTED = 0, PV_GOAL_STARTED, PV_GOAL_READY };
enum pv_restart_policy { PV_RESTART_SYSTEM = 0, PV_RESTART_CONTAINER };
enum pv_persistence { PV_PERSIST_PERMANENT = 0, PV_PERSIST_REVISION, PV_PERSIST_BOOT };
enum pv_recovery_policy {
	PV_RECOVERY_NO = 0,
	PV_RECOVERY_ALWAYS,
	PV_RECOVERY_ON_FAILURE,
	PV_RECOVERY_UNLESS_STOPPED,
};
enum pv_backoff_policy { PV_BACKOFF_REBOOT = 0, PV_BACKOFF_NEVER, PV_BACKOFF_WAIT };

/* Role bits of run.json `roles`. */
#define PV_ROLE_MGMT   (1u << 0)
#define PV_ROLE_NOBODY (1u << 1)

const char *pv_status_goal_str(enum pv_status_goal g);	     /* "MOUNTED" ... */
const char *pv_restart_policy_str(enum pv_restart_policy p); /* "system" / "container" */
const char *pv_persistence_str(enum pv_persistence p);
const char *pv_recovery_policy_str(enum pv_recovery_policy p); /* "no", "always", ... */

struct pv_auto_recovery {
	bool set; /* the object was present */
	enum pv_recovery_policy policy;
	int max_retries;       /* 0 = unlimited */
	int retry_delay;       /* s */
	double backoff_factor; /* >1 multiplies the delay per retry */
	int reset_window;      /* s; 0 = never reset */
	int stable_timeout;    /* s; 0 = none */
	enum pv_backoff_policy backoff;
	int backoff_wait;     /* s, for PV_BACKOFF_WAIT */
	char backoff_str[32]; /* as written ("reboot", "never", "30s") for the API */
};

struct pv_group {
	char *name;
	char *description;
	enum pv_status_goal status_goal;
	enum pv_restart_policy restart_policy;
	int timeout; /* s */
	struct pv_auto_recovery auto_recovery;
};

/* A requirement from run.json services.required/optional. NULL = absent in the file. */
struct pv_service_req {
	char *name;
	char *type;
	char *role;
	char *interface;
	char *target;
	char *mode; /* "direct" | "mediated" | NULL */
	/* the injected socket's owner inside the consumer ("UID" or "UID:GID") and its octal
	 * mode ("0660"); NULL = the consumer's root and 0660 (pv-xconnect's defaults) */
	char *owner;
	char *socket_mode;
	char *hide_globals; /* wayland: "name,name" of globals hidden from the consumer, or NULL */
	bool optional;
};

/* An export from <c>/services.json. */
struct pv_service_export {
	char *name;
	char *type;
	char *socket;
	char *mode; /* "direct" | "mediated" | NULL */
	/* "pass": per-message SCM_CREDENTIALS cross a mediated unix link (ours; costs every
	 * message a credentials record); NULL: the receiver sees pv-xconnect's */
	char *credentials;
};

struct pv_storage_vol {
	char *name;
	enum pv_persistence persistence;
	char *disk; /* NULL = default disk */
};

struct pv_logger {
	char *file;   /* path in the container, or NULL */
	bool lxc;     /* "lxc" logger */
	bool console; /* "console" logger */
	char *name;
	long maxsize; /* bytes, 0 = default */
	bool truncate;
};

struct pv_network {
	char *mode; /* "pool" | "host" | NULL */
	char *pool;
	char *hostname;
	char *ip;
	char *mac;
};

struct pv_container {
	char *name;
	char *type;   /* "lxc" */
	char *config; /* path relative to <name>/, e.g. "lxc.container.conf"; NULL for data-only */
	char *root_volume; /* "[handler:]file" */
	char **volumes;
	size_t n_volumes;
	struct pv_storage_vol *storage;
	size_t n_storage;
	char *group;	 /* resolved group name (after defaults / runlevel / last-group rule) */
	int group_index; /* index into pv_state.groups */
	enum pv_status_goal status_goal;	  /* resolved: own value or the group's */
	enum pv_restart_policy restart_policy;	  /* resolved */
	bool status_goal_set, restart_policy_set; /* written in run.json */
	unsigned roles;				  /* PV_ROLE_* */
	bool roles_set;				  /* the `roles` key was present */
	char **drivers_required, **drivers_optional, **drivers_manual;
	size_t n_drivers_required, n_drivers_optional, n_drivers_manual;
	struct pv_service_req *requires; /* required first, then optional */
	size_t n_requires;
	struct pv_service_export *exports; /* from services.json */
	size_t n_exports;
	bool has_services_json;
	struct pv_network network;
	struct pv_logger *logs;
	size_t n_logs;
	char **export_paths; /* run.json `exports` */
	size_t n_export_paths;
	int dev_log; /* -1 unset, 0/1 */
	bool automodfw;
	struct pv_auto_recovery auto_recovery; /* own, or inherited from the group */
};

/* One key of the state: an object (sha256) or an inline JSON file. */
enum pv_entry_kind { PV_ENTRY_OBJECT = 0, PV_ENTRY_JSON };

struct pv_entry {
	char *key;
	enum pv_entry_kind kind;
	char sha[65];	 /* objects */
	const char *raw; /* json: points into pv_state.text, byte-identical value text */
	size_t raw_len;
	int owner; /* index of the owning container, -1 = BSP/system */
};

struct pv_bsp {
	bool present;
	char *linux_, *initrd, *fdt, *fit, *rpiab, *firmware, *modules;
	char **addons;
	size_t n_addons;
};

struct pv_state {
	char *text; /* the whole state JSON text as given (entries' raw point into it) */
	size_t text_len;
	char *spec;
	struct pv_entry *entries; /* in key order of the text */
	size_t n_entries;
	struct pv_container *containers; /* in key order (alphabetical for pvr states) */
	size_t n_containers;
	struct pv_group *groups; /* start order */
	size_t n_groups;
	bool default_groups; /* neither device.json nor groups.json: runlevel mode */
	struct pv_bsp bsp;
};

/* Options that change validation. */
struct pv_state_opts {
	bool appengine;		/* bsp/run.json not required */
	bool legacy_roles;	/* PV_CONTROL_LEGACY_ROLES: absent roles => mgmt */
	int default_timeout;	/* group timeout when none given (PV_UPDATER_GOALS_TIMEOUT) */
	const char *source;	/* file name for messages, e.g. "trails/3/.pvr/json" or "-" */
	bool hosted_system_bus; /* PV_XCONNECT_DBUS_SYSTEMBUS_ENABLED: "system-bus" is provided */
};

void pv_state_opts_default(struct pv_state_opts *o);

/* Parses and validates `text` (len bytes, need not be NUL-terminated). On success fills *out
 * and returns 0. On failure returns -EINVAL (or -ENOMEM, -E2BIG) with **every** problem in err,
 * each naming the key and field, e.g.
 *   nginx/run.json: status_goal: "FOO" is not one of MOUNTED, STARTED, READY
 * *out is left empty on failure. */
int pv_state_parse(const char *text, size_t len, const struct pv_state_opts *opts,
		   struct pv_state *out, struct pv_error *err);
void pv_state_free(struct pv_state *s);

const struct pv_container *pv_state_find_container(const struct pv_state *s, const char *name);
const struct pv_group *pv_state_find_group(const struct pv_state *s, const char *name);
const struct pv_entry *pv_state_find_entry(const struct pv_state *s, const char *key);

/* True when `s` is 64 lowercase hex characters. */
bool pv_is_sha256_hex(const char *s, size_t len);

#endif
