/* pv-ctrl/route.c: the route table of the pv-ctrl API and path matching/validation.
 * Kept free of MHD and libpvstate so tests/unit/pvctrl compiles it in directly. */
#include "route.h"

#include <stdio.h>
#include <string.h>

#define KB 1024u
#define MB (1024u * 1024u)

/* Rules are data: one row per method+path. Body limits follow spec §8.1 (commands and signal
 * 4096 B, commitmsg 256 B); a state JSON may be large but is buffered, so it gets 8 MiB. */
const struct pv_ctrl_route pv_ctrl_routes[] = {
    {PV_R_CONTAINERS_LIST, PV_M_GET, "/containers", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_CONTAINERS_ACTION,
     PV_M_PUT,
     "/containers/{}",
     {PV_CAP_NAME},
     PV_CTRL_ROLE_MGMT,
     4 * KB,
     false},
    {PV_R_GROUPS_LIST, PV_M_GET, "/groups", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_SIGNAL, PV_M_POST, "/signal", {0}, PV_CTRL_ROLE_ANY, 4 * KB, false},
    {PV_R_COMMANDS, PV_M_POST, "/commands", {0}, PV_CTRL_ROLE_MGMT, 4 * KB, false},
    {PV_R_OBJECTS_LIST, PV_M_GET, "/objects", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_OBJECTS_GET, PV_M_GET, "/objects/{}", {PV_CAP_SHA}, PV_CTRL_ROLE_MGMT, 0, false},
    /* streamed to disk: the limit only bounds what one object may be */
    {PV_R_OBJECTS_PUT, PV_M_PUT, "/objects/{}", {PV_CAP_SHA}, PV_CTRL_ROLE_MGMT, (size_t)-1, true},
    {PV_R_STEPS_LIST, PV_M_GET, "/steps", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_STEPS_GET, PV_M_GET, "/steps/{}", {PV_CAP_REV}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_STEPS_LOCAL_GET,
     PV_M_GET,
     "/steps/locals/{}",
     {PV_CAP_LOCAL},
     PV_CTRL_ROLE_MGMT,
     0,
     false},
    {PV_R_STEPS_LOCAL_PUT,
     PV_M_PUT,
     "/steps/locals/{}",
     {PV_CAP_LOCAL},
     PV_CTRL_ROLE_MGMT,
     8 * MB,
     false},
    {PV_R_STEPS_PROGRESS,
     PV_M_GET,
     "/steps/{}/progress",
     {PV_CAP_REV},
     PV_CTRL_ROLE_MGMT,
     0,
     false},
    {PV_R_STEPS_LOCAL_PROGRESS,
     PV_M_GET,
     "/steps/locals/{}/progress",
     {PV_CAP_LOCAL},
     PV_CTRL_ROLE_MGMT,
     0,
     false},
    {PV_R_STEPS_COMMITMSG,
     PV_M_PUT,
     "/steps/{}/commitmsg",
     {PV_CAP_REV},
     PV_CTRL_ROLE_MGMT,
     256,
     false},
    {PV_R_STEPS_LOCAL_COMMITMSG,
     PV_M_PUT,
     "/steps/locals/{}/commitmsg",
     {PV_CAP_LOCAL},
     PV_CTRL_ROLE_MGMT,
     256,
     false},
    /* any caller: a non-mgmt container gets its own view (ep_meta.c) */
    {PV_R_USER_META_LIST, PV_M_GET, "/user-meta", {0}, PV_CTRL_ROLE_ANY, 0, false},
    {PV_R_USER_META_PUT,
     PV_M_PUT,
     "/user-meta/{}",
     {PV_CAP_NAME},
     PV_CTRL_ROLE_MGMT,
     64 * KB,
     false},
    {PV_R_USER_META_DELETE,
     PV_M_DELETE,
     "/user-meta/{}",
     {PV_CAP_NAME},
     PV_CTRL_ROLE_MGMT,
     0,
     false},
    {PV_R_DEVICE_META_LIST, PV_M_GET, "/device-meta", {0}, PV_CTRL_ROLE_ANY, 0, false},
    {PV_R_DEVICE_META_PUT,
     PV_M_PUT,
     "/device-meta/{}",
     {PV_CAP_NAME},
     PV_CTRL_ROLE_MGMT,
     64 * KB,
     false},
    {PV_R_DEVICE_META_DELETE,
     PV_M_DELETE,
     "/device-meta/{}",
     {PV_CAP_NAME},
     PV_CTRL_ROLE_MGMT,
     0,
     false},
    {PV_R_BUILDINFO, PV_M_GET, "/buildinfo", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_CONFIG, PV_M_GET, "/config", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_CONFIG2, PV_M_GET, "/config2", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_DAEMONS_LIST, PV_M_GET, "/daemons", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_DAEMONS_ACTION, PV_M_PUT, "/daemons/{}", {PV_CAP_NAME}, PV_CTRL_ROLE_MGMT, 4 * KB, false},
    {PV_R_GRAPH, PV_M_GET, "/xconnect-graph", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    {PV_R_STORAGE_GC, PV_M_POST, "/storage/gc", {0}, PV_CTRL_ROLE_MGMT, 4 * KB, false},
    {PV_R_DRIVERS_LIST, PV_M_GET, "/drivers", {0}, PV_CTRL_ROLE_MGMT, 0, false},
    /* upstream sends no body; a small one is tolerated and ignored */
    {PV_R_DRIVERS_LOAD, PV_M_PUT, "/drivers/load", {0}, PV_CTRL_ROLE_MGMT, 4 * KB, false},
    {PV_R_DRIVERS_UNLOAD, PV_M_PUT, "/drivers/unload", {0}, PV_CTRL_ROLE_MGMT, 4 * KB, false},
    {PV_R_DRIVER_LOAD,
     PV_M_PUT,
     "/drivers/{}/load",
     {PV_CAP_NAME},
     PV_CTRL_ROLE_MGMT,
     4 * KB,
     false},
    {PV_R_DRIVER_UNLOAD,
     PV_M_PUT,
     "/drivers/{}/unload",
     {PV_CAP_NAME},
     PV_CTRL_ROLE_MGMT,
     4 * KB,
     false},
};
const size_t pv_ctrl_n_routes = sizeof(pv_ctrl_routes) / sizeof(pv_ctrl_routes[0]);

int pv_route_method(const char *s)
{
	if (!strcmp(s, "GET") || !strcmp(s, "HEAD"))
		return PV_M_GET;
	if (!strcmp(s, "PUT"))
		return PV_M_PUT;
	if (!strcmp(s, "POST"))
		return PV_M_POST;
	if (!strcmp(s, "DELETE"))
		return PV_M_DELETE;
	return 0;
}

const char *pv_route_method_str(int m)
{
	switch (m) {
	case PV_M_GET:
		return "GET";
	case PV_M_PUT:
		return "PUT";
	case PV_M_POST:
		return "POST";
	case PV_M_DELETE:
		return "DELETE";
	}
	return "?";
}

bool pv_route_valid_sha(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

bool pv_route_valid_rev(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (s[n] < '0' || s[n] > '9')
			return false;
	return n > 0 && n <= 20;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '@' || c == ':' || c == '+';
}

bool pv_route_valid_name(const char *s)
{
	size_t n = 0;
	if (!s[0] || s[0] == '.')
		return false;
	for (; s[n]; n++)
		if (!name_char(s[n]))
			return false;
	return n <= 128;
}

/* locals/<name>: the whole step name has exactly one '/', so <name> has none; ≤ 64 chars and
 * never "..": it becomes a directory under storage/trails. */
bool pv_route_valid_local(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64 || strstr(s, ".."))
		return false;
	return pv_route_valid_name(s);
}

static bool cap_ok(enum pv_route_cap c, const char *s)
{
	switch (c) {
	case PV_CAP_SHA:
		return pv_route_valid_sha(s);
	case PV_CAP_REV:
		return pv_route_valid_rev(s);
	case PV_CAP_LOCAL:
		return pv_route_valid_local(s);
	case PV_CAP_NAME:
		return pv_route_valid_name(s);
	case PV_CAP_NONE:
		break;
	}
	return true;
}

static const char *cap_rule(enum pv_route_cap c)
{
	switch (c) {
	case PV_CAP_SHA:
		return "an object name must be 64 lowercase hex characters";
	case PV_CAP_REV:
		return "a revision must be digits or locals/<name>";
	case PV_CAP_LOCAL:
		return "a local step name must be 1-64 characters of [A-Za-z0-9._-], no '/' or "
		       "'..'";
	case PV_CAP_NAME:
		return "a name must be [A-Za-z0-9._-@:+], not starting with '.'";
	case PV_CAP_NONE:
		break;
	}
	return "";
}

/* Matches path against one pattern; 1 on match (caps filled), 0 otherwise. */
static int match(const char *pattern, const char *path, char caps[][PV_ROUTE_CAP_LEN], int *ncaps)
{
	const char *p = pattern, *s = path;
	*ncaps = 0;
	while (*p && *s) {
		if (p[0] == '{' && p[1] == '}') {
			const char *end = strchr(s, '/');
			size_t n = end ? (size_t)(end - s) : strlen(s);
			if (n == 0 || n >= PV_ROUTE_CAP_LEN || *ncaps >= PV_ROUTE_MAX_CAPS)
				return 0;
			memcpy(caps[*ncaps], s, n);
			caps[*ncaps][n] = '\0';
			(*ncaps)++;
			s += n;
			p += 2;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	return !*p && !*s;
}

int pv_route_lookup(int method, const char *path, const struct pv_ctrl_route **out,
		    char caps[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN], int *allowed, char *msg,
		    size_t msg_len)
{
	*out = NULL;
	*allowed = 0;
	msg[0] = '\0';
	if (path[0] != '/') {
		snprintf(msg, msg_len, "path must start with '/'");
		return 400;
	}
	/* traversal and empty segments are refused before any pattern is tried: a name reaches
	 * storage paths, and "a/../b" must never be taken for "b" */
	size_t len = strlen(path);
	for (const char *seg = path + 1;;) {
		const char *end = strchr(seg, '/');
		size_t n = end ? (size_t)(end - seg) : strlen(seg);
		if ((n == 2 && !strncmp(seg, "..", 2)) || (n == 1 && seg[0] == '.')) {
			snprintf(msg, msg_len, "path %s: '.' and '..' segments are not allowed",
				 path);
			return 400;
		}
		if (n == 0 && end) {
			snprintf(msg, msg_len, "path %s: empty segment", path);
			return 400;
		}
		if (!end)
			break;
		seg = end + 1;
	}
	if (len > 1 && path[len - 1] == '/')
		len--; /* "/containers/" is "/containers" */
	char p[1024];
	if (len >= sizeof(p))
		return 404;
	memcpy(p, path, len);
	p[len] = '\0';

	const struct pv_ctrl_route *bad = NULL;
	int bad_cap = 0;
	for (size_t i = 0; i < pv_ctrl_n_routes; i++) {
		const struct pv_ctrl_route *r = &pv_ctrl_routes[i];
		char c[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN];
		int nc = 0;
		if (!match(r->pattern, p, c, &nc))
			continue;
		/* "/steps/locals" must not be read as revision "locals" */
		bool ok = true;
		for (int k = 0; k < nc; k++)
			if (!cap_ok(r->cap[k], c[k])) {
				ok = false;
				if (!bad) {
					bad = r;
					bad_cap = k;
				}
			}
		if (!ok)
			continue;
		*allowed |= r->method;
		if (r->method == method && !*out) {
			*out = r;
			memcpy(caps, c, sizeof(c));
		}
	}
	if (*out)
		return 0;
	if (*allowed)
		return 405;
	if (bad) {
		snprintf(msg, msg_len, "path %s: %s", path, cap_rule(bad->cap[bad_cap]));
		return 400;
	}
	if (!strncmp(p, "/steps/locals/", 14)) {
		/* "locals/a/b": more than one '/' in a step name */
		snprintf(msg, msg_len, "path %s: %s", path, cap_rule(PV_CAP_LOCAL));
		return 400;
	}
	return 404;
}
