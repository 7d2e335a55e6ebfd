/* pvstate/graph.h: the xconnect graph: build it from a state plus running pids, emit/parse it
 * with upstream's field names, and diff two graphs keyed by (consumer, name, target). */
#ifndef PVSTATE_GRAPH_H
#define PVSTATE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pvstate/error.h"
#include "pvstate/state.h"

enum pv_link_state { PV_LINK_UNKNOWN = 0, PV_LINK_PENDING, PV_LINK_UP, PV_LINK_ERROR };

struct pv_link {
	char *type; /* the provider export's type */
	char *name;
	char *consumer;
	int consumer_pid; /* 0 when not running */
	char *provider;
	int provider_pid;
	char *role;	 /* default "any" */
	char *interface; /* default = type */
	char *target;	 /* may be NULL (emitted as null) */
	char *socket;
	char *mode; /* "direct" | "mediated" | NULL (our extension, emitted only if set) */
	/* The injected socket's owner and permission bits (our extension, emitted only if set):
	 * owner "UID" or "UID:GID" as seen inside the consumer, socket_mode octal "0660".
	 * NULL: the consumer's root and 0660. Validated when a graph is parsed. */
	char *owner;
	char *socket_mode;
	/* wayland: interface names whose globals the consumer never sees, comma-separated (our
	 * extension; in JSON an array of names, emitted only if set). NULL: none hidden. */
	char *hide_globals;
	/* "pass" (from the export, our extension, emitted only if set): SCM_CREDENTIALS of each
	 * message cross a mediated unix link; NULL: receivers see pv-xconnect's */
	char *credentials;
	/* live status, filled by pv-xconnect; emitted only when state != PV_LINK_UNKNOWN */
	enum pv_link_state state;
	char *error;
};

struct pv_graph {
	uint64_t generation;
	struct pv_link *links;
	size_t n_links;
};

struct pv_pid {
	const char *name;
	int pid;
};

/* One link per (consumer requirement x provider export with the same name), required and
 * optional alike, in state order. pids may be NULL; a container not listed gets pid 0. */
int pv_graph_build(const struct pv_state *s, const struct pv_pid *pids, size_t n_pids,
		   struct pv_graph *out, struct pv_error *err);
/* Build options. hosted_bus_socket non-NULL = the hosted D-Bus is enabled
 * (PV_XCONNECT_DBUS_SYSTEMBUS_ENABLED): each requirement named "system-bus" that no container
 * exports gets one builtin link {provider "_pv_", provider_pid 0, type "dbus", socket =
 * hosted_bus_socket} (spec §9). */
struct pv_graph_opts {
	const char *hosted_bus_socket;
};
#define PV_GRAPH_PROVIDER_HOSTED "_pv_"
int pv_graph_build_opts(const struct pv_state *s, const struct pv_pid *pids, size_t n_pids,
			const struct pv_graph_opts *opts, struct pv_graph *out,
			struct pv_error *err);
void pv_graph_free(struct pv_graph *g);

/* JSON array of links (upstream field names). with_status adds "state"/"error". Caller frees. */
char *pv_graph_emit(const struct pv_graph *g, bool with_status);
/* Parses an array of links (as emitted, or as upstream serves it). */
int pv_graph_parse(const char *json, size_t len, struct pv_graph *out, struct pv_error *err);

/* A link's `owner`: "UID" or "UID:GID", decimal, each below 2^32-1. */
bool pv_graph_owner_valid(const char *s);
/* A link's `socket_mode`: octal permission bits, at most 0777. */
bool pv_graph_socket_mode_valid(const char *s);

const char *pv_link_state_str(enum pv_link_state s); /* "up", "pending", "error", "unknown" */
/* Same (consumer, name, target) key. */
bool pv_link_same_key(const struct pv_link *a, const struct pv_link *b);
/* Same key and every other field equal (status fields ignored). */
bool pv_link_equal(const struct pv_link *a, const struct pv_link *b);

/* Differences new vs old. Pointers point into the two graphs (not owned). */
struct pv_graph_diff {
	const struct pv_link **added; /* in new only */
	size_t n_added;
	const struct pv_link **removed; /* in old only */
	size_t n_removed;
	const struct pv_link **changed_old; /* same key, other fields differ */
	const struct pv_link **changed_new;
	size_t n_changed;
};

int pv_graph_diff(const struct pv_graph *old_g, const struct pv_graph *new_g,
		  struct pv_graph_diff *out);
void pv_graph_diff_free(struct pv_graph_diff *d);
/* Deep copy of one link (for a daemon that keeps links past the graph's life). */
int pv_link_copy(struct pv_link *dst, const struct pv_link *src);
void pv_link_free(struct pv_link *l);

#endif
