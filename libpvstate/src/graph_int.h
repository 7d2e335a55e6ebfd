/* graph_int.h: libpvstate-private bridges (not installed): proto.c builds and reads graph
 * events with the same link (de)serialisation as graph.c, and the run.json parser reads a
 * requirement's hide_globals with the same rule as the graph parser. */
#ifndef PVSTATE_GRAPH_INT_H
#define PVSTATE_GRAPH_INT_H

#include <cjson/cJSON.h>

#include "pvstate/graph.h"

cJSON *pv_graph_to_cjson(const struct pv_link *links, size_t n, bool with_status);
int pv_graph_from_cjson(const cJSON *a, struct pv_graph *out, struct pv_error *err);
/* A hide_globals value from JSON: an array of interface names ([A-Za-z0-9_], 1-128 chars), 1 to
 * 64 of them, joined with ','. *out NULL for absent/null. 0, -EINVAL (*bad: why) or -ENOMEM. */
int pv_graph_hide_globals_from_json(const cJSON *v, char **out, const char **bad);

#endif
