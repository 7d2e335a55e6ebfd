/* fuzz_proto.c: the framing decoder fed the input in input-chosen chunks, then pv_msg_parse on
 * every payload (and on the raw input), plus the typed accessors and the graph/link readers. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/proto.h"

static void parse_one(const char *p, size_t n)
{
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	if (pv_msg_parse(p, n, &m, &err) == 0) {
		const char *s;
		int64_t i;
		bool b;
		char *j = NULL;
		pv_msg_arg_str(&m, "name", &s);
		pv_msg_arg_int(&m, "pid", &i);
		pv_msg_arg_bool(&m, "x", &b);
		if (pv_msg_arg_json(&m, "payload", &j) == 0)
			free(j);
		struct pv_graph g;
		if (m.kind == PV_MSG_EVENT && pv_msg_parse_graph_event(&m, &g, &err) == 0) {
			char *ev = pv_msg_graph_event(g.generation, &g);
			if (!ev)
				abort();
			free(ev);
			pv_graph_free(&g);
		}
		if (m.kind == PV_MSG_REQUEST && !strcmp(m.op, "link-status")) {
			/* pv_msg_parse validated the shape: reading it must succeed */
			if (pv_msg_parse_link_status(&m, &g, &err) != 0)
				abort();
			pv_graph_free(&g);
		}
	} else if (err.count == 0) {
		abort();
	}
	pv_error_clear(&err);
	pv_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_one((const char *)data, size);
	if (size < 1)
		return 0;
	/* First byte: chunk size for feeding the decoder; the rest is the stream. */
	size_t chunk = (size_t)(data[0] % 17) + 1;
	struct pv_proto_decoder d;
	pv_proto_decoder_init(&d, 4096);
	for (size_t off = 1; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (pv_proto_decoder_feed(&d, data + off, n) < 0)
			break;
		char *p;
		size_t pl;
		int r;
		while ((r = pv_proto_decoder_next(&d, &p, &pl)) == 1) {
			if (pl == 0 || pl > 4096 || p[pl] != '\0')
				abort();
			parse_one(p, pl);
			free(p);
		}
		if (r < 0)
			break;
	}
	if (d.len > 4096 + 4 + 17)
		abort(); /* the decoder never buffers past one maximal message */
	pv_proto_decoder_free(&d);
	return 0;
}
