/* pvstate/ctrl.h: the JSON of the control API that pv-ctrl and pvcontrol handle themselves:
 * request bodies read ({"action"}, {"type"}, {"op","payload"}) and built, the whois reply, and the
 * replies pvcontrol reads (object list, step progress). pv-ctrl/ holds no JSON code of its own. */
#ifndef PVSTATE_CTRL_H
#define PVSTATE_CTRL_H

#include <stdbool.h>
#include <stddef.h>

#include "pvstate/error.h"

/* 0 when body[0..len) is exactly one JSON object (whitespace around it allowed), else -EINVAL
 * and a message saying why (empty, not JSON near byte N, trailing data, not an object). */
int pv_ctrl_json_check_object(const char *body, size_t len, struct pv_error *err);

/* Reads the string member `field` of the body object into out. A missing (or null) member is
 * -EINVAL only when required (out is then ""); a non-string or one that does not fit is -EINVAL. */
int pv_ctrl_json_field(const char *body, size_t len, const char *field, bool required, char *out,
		       size_t out_len, struct pv_error *err);

/* The engine's whois reply {"container":"<name>"|null,"roles":[..]}: container ("" for the host)
 * and whether "mgmt" is among the roles. -EINVAL when body is not such an object. */
int pv_ctrl_json_whois(const char *body, char *container, size_t len, bool *mgmt);

/* Request bodies pvcontrol sends (malloc'd, NULL on ENOMEM). */
char *pv_ctrl_json_command(const char *op, const char *payload);  /* POST /commands */
char *pv_ctrl_json_action(const char *action);			  /* PUT /containers|daemons/<n> */
char *pv_ctrl_json_signal(const char *type, const char *payload); /* POST /signal */

/* GET /objects reply [{"sha256":"..",..},..] → malloc'd array of malloc'd shas. */
int pv_ctrl_json_objects(const char *body, size_t len, char ***shas, size_t *n,
			 struct pv_error *err);
void pv_ctrl_json_strv_free(char **v, size_t n);

/* GET /steps/<rev>/progress: {"status","status-msg","progress"}. */
struct pv_ctrl_progress {
	char status[32];
	char msg[512];
	int progress;
};
int pv_ctrl_json_progress(const char *body, size_t len, struct pv_ctrl_progress *p,
			  struct pv_error *err);
/* true when status ends an update (DONE, UPDATED: *ok = true; ERROR, WONTGO: *ok = false). */
bool pv_ctrl_progress_final(const char *status, bool *ok);

/* ---- drivers (GET /drivers, PUT /drivers/[<alias>/]load|unload) ---- */
/* The modules ("<module> [args]") of `alias` in a bsp/drivers.json value (spec §2.5): section
 * "fitconfig:<fitconfig>" wins over "all" when fitconfig is given. -ENOENT: alias defined in
 * neither; -EINVAL: not a drivers.json object. *modules is malloc'd (free with strv_free). */
int pv_ctrl_json_driver_modules(const char *drivers_json, size_t len, const char *alias,
				const char *fitconfig, char ***modules, size_t *n);

/* One line of GET /drivers: upstream's {"name","type","status"} (REQUIRED|OPTIONAL|MANUAL,
 * LOADED|UNLOADED|UNKNOWN). */
struct pv_ctrl_driver {
	const char *name, *type, *status;
};
char *pv_ctrl_json_drivers(const struct pv_ctrl_driver *d, size_t n);

#endif
