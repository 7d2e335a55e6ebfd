/* graph_int.h: libpvstate-private bridges between the graph and the protocol (not installed):
 * proto.c builds and reads graph events with the same link (de)serialisation as graph.c. */
#ifndef PVSTATE_GRAPH_INT_H
#define PVSTATE_GRAPH_INT_H

#include <cjson/cJSON.h>

#include "pvstate/graph.h"

cJSON *pv_graph_to_cjson(const struct pv_link *links, size_t n, bool with_status);
int pv_graph_from_cjson(const cJSON *a, struct pv_graph *out, struct pv_error *err);

#endif
