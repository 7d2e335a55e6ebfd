/* state_int.h: private helpers shared by the state*.c files of libpvstate (not installed).
 * One parse context, message helpers that prefix "<key>: <field>: ", typed field readers. */
#ifndef PVSTATE_STATE_INT_H
#define PVSTATE_STATE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "pvstate/state.h"

/* Byte span of one top-level member of the state object, found by the scanner. */
struct pv_span {
	size_t val_off, val_len;
};

/* Checks size, NUL bytes and nesting depth of the whole text (string-aware, before cJSON
 * sees it) and records the value span of each top-level member in order. */
int pv_state_scan(const char *t, size_t len, struct pv_span **spans, size_t *n,
		  struct pv_error *err);

struct pv_sctx {
	const struct pv_state_opts *o;
	struct pv_state *s;
	struct pv_error *err;
	int nerr; /* problems recorded by this parse */
	/* sorted views so lookups stay O(log n) on hostile states with millions of keys */
	const struct pv_entry **ekeys; /* entries by key */
	size_t n_ekeys;
	size_t *cidx; /* container indices by name */
	size_t n_cidx;
	size_t *run_member; /* per container: member index of its run.json in the text */
};

/* Lookups through the sorted views (valid once built by state.c). */
const struct pv_entry *pv_st_entry(const struct pv_sctx *c, const char *key);
/* True when some entry key starts with `prefix`. */
bool pv_st_entry_prefix(const struct pv_sctx *c, const char *prefix);
/* Index of the container named name[0..len), or -1. */
int pv_st_container_index(const struct pv_sctx *c, const char *name, size_t len);

/* Records "<key>: <field>: <problem>" (field may be NULL). Always returns -EINVAL. */
int pv_st_fail(struct pv_sctx *c, const char *key, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Readers: item NULL => absent (returns 0, leaves *out). Wrong type => message, -EINVAL. */
int pv_st_str(struct pv_sctx *c, const char *key, const char *field, const cJSON *item, char **out);
int pv_st_int(struct pv_sctx *c, const char *key, const char *field, const cJSON *item, int *out);
int pv_st_bool(struct pv_sctx *c, const char *key, const char *field, const cJSON *item, bool *out);
int pv_st_strarr(struct pv_sctx *c, const char *key, const char *field, const cJSON *item,
		 char ***out, size_t *n);
/* Maps a string to its index in names[] (NULL-terminated); message lists the choices. */
int pv_st_enum(struct pv_sctx *c, const char *key, const char *field, const cJSON *item,
	       const char *const *names, int *out);
void pv_st_strv_free(char **v, size_t n);
/* Describes a cJSON value's type for messages ("a number", "an array" ...). */
const char *pv_st_type(const cJSON *item);

extern const char *const pv_goal_names[];
extern const char *const pv_restart_names[];
extern const char *const pv_persist_names[];
extern const char *const pv_recovery_names[];
extern const char *const pv_service_type_names[];
extern const char *const pv_mode_names[];

/* auto_recovery object (run.json or group). */
int pv_st_auto_recovery(struct pv_sctx *c, const char *key, const char *field, const cJSON *item,
			struct pv_auto_recovery *ar);

/* Groups from device.json / groups.json / defaults; fills s->groups. */
int pv_st_groups(struct pv_sctx *c, const cJSON *root);
void pv_st_group_free(struct pv_group *g);
/* Puts every container in a group and resolves goal/policy/recovery from it. */
void pv_st_assign_groups(struct pv_sctx *c, const bool *from_runlevel);

/* One <c>/run.json into *ct (dir is the directory name). */
/* ct->group gets the explicit group (or the runlevel's, then *from_runlevel is set). */
int pv_st_container(struct pv_sctx *c, const char *key, const char *dir, const cJSON *obj,
		    struct pv_container *ct, bool *from_runlevel);
void pv_st_container_free(struct pv_container *ct);
/* Checks config/root-volume/volumes name keys of the state; run after groups resolved. */
void pv_st_container_refs(struct pv_sctx *c, const struct pv_container *ct);

/* <c>/services.json into ct->exports. */
int pv_st_services(struct pv_sctx *c, const char *key, const cJSON *val, struct pv_container *ct);
/* Every required service is exported by some container. */
void pv_st_services_check(struct pv_sctx *c);

/* bsp/run.json. */
int pv_st_bsp(struct pv_sctx *c, const cJSON *val);
void pv_st_bsp_free(struct pv_bsp *b);
/* bsp/drivers.json shape, and every container's required driver alias is defined there. */
void pv_st_drivers(struct pv_sctx *c, const cJSON *root);

#endif
