/* fuzz_graph.c: pv_graph_parse on arbitrary bytes; whatever parses must emit, re-parse to the
 * same links (emit is a fixed point) and diff against itself as unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pv_graph g, g2;
	struct pv_error err = PV_ERROR_INIT;
	if (pv_graph_parse((const char *)data, size, &g, &err) != 0) {
		if (err.count == 0)
			abort();
		pv_error_clear(&err);
		return 0;
	}
	char *j = pv_graph_emit(&g, true);
	if (!j)
		abort();
	if (pv_graph_parse(j, strlen(j), &g2, &err) != 0)
		abort();
	char *j2 = pv_graph_emit(&g2, true);
	if (!j2 || strcmp(j, j2))
		abort();
	struct pv_graph_diff d;
	if (pv_graph_diff(&g, &g2, &d) != 0 || d.n_changed || d.n_removed || d.n_added)
		abort();
	pv_graph_diff_free(&d);
	free(j);
	free(j2);
	pv_graph_free(&g);
	pv_graph_free(&g2);
	return 0;
}
