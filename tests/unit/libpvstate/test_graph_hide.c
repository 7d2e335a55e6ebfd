/* test_graph_hide.c: a wayland link's hide_globals: an array of interface names in JSON, one
 * joined string in memory; round trip, part of a link's identity (a change re-links), emitted
 * only when set, bad values refused naming the link and the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/graph.h"

#define LINK_HEAD                                                                                  \
	"[{\"consumer\":\"c\",\"name\":\"w\",\"provider\":\"p\",\"type\":\"wayland\","             \
	"\"target\":\"/t\""

static int parse(const char *extra, struct pv_graph *g, struct pv_error *err)
{
	char json[1024];
	snprintf(json, sizeof(json), "%s%s}]", LINK_HEAD, extra);
	return pv_graph_parse(json, strlen(json), g, err);
}

static void test_round_trip_and_identity(void **state)
{
	(void)state;
	struct pv_graph g = {0}, back = {0};
	assert_int_equal(
	    parse(",\"hide_globals\":[\"wl_output\",\"zwlr_screencopy_manager_v1\"]", &g, NULL), 0);
	assert_string_equal(g.links[0].hide_globals, "wl_output,zwlr_screencopy_manager_v1");
	char *j = pv_graph_emit(&g, false);
	assert_non_null(
	    strstr(j, "\"hide_globals\":[\"wl_output\",\"zwlr_screencopy_manager_v1\"]"));
	assert_int_equal(pv_graph_parse(j, strlen(j), &back, NULL), 0);
	assert_true(pv_link_equal(&g.links[0], &back.links[0]));
	struct pv_link copy;
	assert_int_equal(pv_link_copy(&copy, &g.links[0]), 0);
	free(copy.hide_globals);
	copy.hide_globals = strdup("wl_output");
	assert_false(pv_link_equal(&copy, &g.links[0]));
	pv_link_free(&copy);
	free(j);
	pv_graph_free(&g);
	pv_graph_free(&back);
	/* unset: not emitted */
	assert_int_equal(parse("", &g, NULL), 0);
	assert_null(g.links[0].hide_globals);
	j = pv_graph_emit(&g, false);
	assert_null(strstr(j, "hide_globals"));
	free(j);
	pv_graph_free(&g);
}

static void test_bad_values_named(void **state)
{
	(void)state;
	static const char *bad[] = {
	    ",\"hide_globals\":\"wl_output\"", ",\"hide_globals\":[]",
	    ",\"hide_globals\":[\"\"]",	       ",\"hide_globals\":[\"wl output\"]",
	    ",\"hide_globals\":[\"a,b\"]",     ",\"hide_globals\":[7]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct pv_graph g = {0};
		struct pv_error err = PV_ERROR_INIT;
		assert_int_equal(parse(bad[i], &g, &err), -EINVAL);
		assert_non_null(strstr(pv_error_msg(&err), "links[0].hide_globals: "));
		pv_error_clear(&err);
		pv_graph_free(&g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_and_identity),
	    cmocka_unit_test(test_bad_values_named),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
