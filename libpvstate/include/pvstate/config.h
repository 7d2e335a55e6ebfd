/* pvstate/config.h: `KEY=value` configuration with upstream's levels (spec §7): a value set at a
 * higher level is never overwritten from a lower one. Keys are case-insensitive; legacy dotted
 * aliases (log.level, storage.device, ...) map to their PV_* key. */
#ifndef PVSTATE_CONFIG_H
#define PVSTATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "pvstate/error.h"

enum pv_config_level {
	PV_CFG_DEFAULT = 0,
	PV_CFG_ARGS,
	PV_CFG_PV_CONF, /* /etc/pantavisor.config */
	PV_CFG_PH_CONF, /* pantahub.config */
	PV_CFG_PH_CLIENT,
	PV_CFG_POLICY,
	PV_CFG_OEM,
	PV_CFG_PV_CMDLINE,
	PV_CFG_PH_CMDLINE,
	PV_CFG_ENV,
	PV_CFG_USER_META,
	PV_CFG_COMMAND,
	PV_CFG_N_LEVELS
};

const char *pv_config_level_str(enum pv_config_level l); /* "default", "pv.conf", "env", ... */

struct pv_config; /* opaque */

/* New config holding every known key at its default value. NULL on ENOMEM. */
struct pv_config *pv_config_new(void);
void pv_config_free(struct pv_config *c);

/* Sets key at level. Returns 0 when set, 1 (not an error) when ignored because the current value
 * came from a higher level, -EPERM when the key may not be set at that level (upstream's per-key
 * level table; default and args are always allowed), -EINVAL for a malformed key. Unknown keys
 * are kept (they may be read by other modules) and allowed at every level. */
int pv_config_set(struct pv_config *c, const char *key, const char *value,
		  enum pv_config_level level);
/* Loads a KEY=value file (# comments, blank lines, everything after the first '='). A missing
 * file is -ENOENT with no message; a bad line, or a key not allowed at this level, is reported
 * with file:line and skipped (the call still returns 0). */
int pv_config_load_file(struct pv_config *c, const char *path, enum pv_config_level level,
			struct pv_error *err);
/* Kernel-style command line: `pv_<key>=v` words (prefix stripped, legacy alias resolved) at
 * PV_CFG_PV_CMDLINE, `ph_<key>=v` at PV_CFG_PH_CMDLINE; other words ignored. */
int pv_config_load_cmdline(struct pv_config *c, const char *cmdline);
/* PV_* and PH_* variables of envp at PV_CFG_ENV. */
int pv_config_load_env(struct pv_config *c, char *const *envp);

/* The layers every daemon loads, lowest first: `file` (pv.conf level; may be NULL; a missing
 * file is not an error), the kernel-style `cmdline` (may be NULL), then envp. Problems in the
 * file are recorded in err (file:line); returns 0 or the file's -errno (never -ENOENT). */
int pv_config_load_layers(struct pv_config *c, const char *file, const char *cmdline,
			  char *const *envp, struct pv_error *err);
/* The engine's private socket: PV_ENGINE_SOCKET when set, else "<dirname rundir>/engine.sock"
 * (rundir NULL: PV_SYSTEM_RUNDIR). It sits beside the run dir, not in it, because the run dir is
 * bound into containers. Caller frees; NULL on ENOMEM. */
char *pv_config_engine_socket(const struct pv_config *c, const char *rundir);

/* Value or NULL when never set and no default. */
const char *pv_config_get(const struct pv_config *c, const char *key);
int pv_config_get_int(const struct pv_config *c, const char *key, int fallback);
bool pv_config_get_bool(const struct pv_config *c, const char *key, bool fallback);
/* Durations: plain seconds or 30s / 10min / 1h / 1d. */
int pv_config_get_seconds(const struct pv_config *c, const char *key, int fallback);
enum pv_config_level pv_config_get_level(const struct pv_config *c, const char *key);

/* Iterates keys in a stable (sorted) order; returns false past the end. */
bool pv_config_iter(const struct pv_config *c, size_t *pos, const char **key, const char **value,
		    enum pv_config_level *level);

/* JSON for GET /config ({"KEY":"value",...}) and GET /config2 ([{"key","value","modified"}]). */
char *pv_config_emit(const struct pv_config *c);
char *pv_config_emit2(const struct pv_config *c);

/* Parsing helpers shared by config users. */
int pv_parse_bool(const char *s, bool *out);   /* 1/0/true/false/yes/no/on/off */
int pv_parse_seconds(const char *s, int *out); /* 30, 30s, 10min, 1h, 1d */

#endif
