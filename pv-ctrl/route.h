/* pv-ctrl/route.h: the route table (method + path pattern → endpoint, role, body limit) and the
 * path/name validation rules. Pure C with no library dependency, so unit tests compile it in. */
#ifndef PV_CTRL_ROUTE_H
#define PV_CTRL_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define PV_ROUTE_MAX_CAPS 2
#define PV_ROUTE_CAP_LEN  256

enum { PV_M_GET = 1, PV_M_PUT = 2, PV_M_POST = 4, PV_M_DELETE = 8 };

enum pv_route_role {
	PV_CTRL_ROLE_ANY = 0, /* any caller, e.g. POST /signal */
	PV_CTRL_ROLE_MGMT,    /* the host or a container with role mgmt */
};

/* What a captured path segment must look like. */
enum pv_route_cap {
	PV_CAP_NONE = 0,
	PV_CAP_NAME,  /* container/daemon/meta key: [A-Za-z0-9._-@:+], no leading dot */
	PV_CAP_SHA,   /* 64 lowercase hex */
	PV_CAP_REV,   /* digits (a committed revision) */
	PV_CAP_LOCAL, /* a locals/<name> step name part */
};

enum pv_route_id {
	PV_R_CONTAINERS_LIST = 0,
	PV_R_CONTAINERS_ACTION,
	PV_R_GROUPS_LIST,
	PV_R_SIGNAL,
	PV_R_COMMANDS,
	PV_R_OBJECTS_LIST,
	PV_R_OBJECTS_GET,
	PV_R_OBJECTS_PUT,
	PV_R_STEPS_LIST,
	PV_R_STEPS_GET,
	PV_R_STEPS_LOCAL_GET,
	PV_R_STEPS_LOCAL_PUT,
	PV_R_STEPS_PROGRESS,
	PV_R_STEPS_LOCAL_PROGRESS,
	PV_R_STEPS_COMMITMSG,
	PV_R_STEPS_LOCAL_COMMITMSG,
	PV_R_USER_META_LIST,
	PV_R_USER_META_PUT,
	PV_R_USER_META_DELETE,
	PV_R_DEVICE_META_LIST,
	PV_R_DEVICE_META_PUT,
	PV_R_DEVICE_META_DELETE,
	PV_R_BUILDINFO,
	PV_R_CONFIG,
	PV_R_CONFIG2,
	PV_R_DAEMONS_LIST,
	PV_R_DAEMONS_ACTION,
	PV_R_GRAPH,
	PV_R_STORAGE_GC,
	PV_R_DRIVERS_LIST,
	PV_R_DRIVERS_LOAD,   /* /drivers/load: every manual driver */
	PV_R_DRIVERS_UNLOAD, /* /drivers/unload */
	PV_R_DRIVER_LOAD,    /* /drivers/<alias>/load */
	PV_R_DRIVER_UNLOAD,  /* /drivers/<alias>/unload */
	PV_R_COUNT
};

struct pv_ctrl_route {
	int id;
	int method;	     /* one PV_M_* */
	const char *pattern; /* "/containers/{}": {} is one segment */
	enum pv_route_cap cap[PV_ROUTE_MAX_CAPS];
	enum pv_route_role role;
	size_t body_max; /* 0: no body accepted */
	bool stream;	 /* body streamed by the handler (object upload) */
};

extern const struct pv_ctrl_route pv_ctrl_routes[];
extern const size_t pv_ctrl_n_routes;

/* Result of a lookup: 0 and *out when method+path match; 404 when no pattern matches the path;
 * 405 when a pattern matches but not with this method (*allowed gets the methods that would);
 * 400 when the path is malformed or a captured segment breaks its rule (msg says why). */
int pv_route_lookup(int method, const char *path, const struct pv_ctrl_route **out,
		    char caps[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN], int *allowed, char *msg,
		    size_t msg_len);

int pv_route_method(const char *s); /* "GET" → PV_M_GET, 0 when unknown */
const char *pv_route_method_str(int m);

bool pv_route_valid_sha(const char *s);
bool pv_route_valid_rev(const char *s);
bool pv_route_valid_local(const char *s); /* the <name> of locals/<name> */
bool pv_route_valid_name(const char *s);

#endif
