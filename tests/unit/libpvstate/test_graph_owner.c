/* test_graph_owner.c: the graph's optional socket owner/mode fields of a link: parsed, validated
 * (with a message naming the link and field), emitted only when set, copied and compared. */
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
	"[{\"consumer\":\"c\",\"name\":\"s\",\"provider\":\"p\",\"type\":\"unix\",\"target\":\"/"  \
	"t\""

static int parse(const char *extra, struct pv_graph *g, struct pv_error *err)
{
	char json[512];
	snprintf(json, sizeof(json), "%s%s}]", LINK_HEAD, extra);
	return pv_graph_parse(json, strlen(json), g, err);
}

static void test_owner_and_mode_round_trip(void **state)
{
	(void)state;
	struct pv_graph g = {0}, back = {0};
	assert_int_equal(parse(",\"owner\":\"1000:100\",\"socket_mode\":\"0600\"", &g, NULL), 0);
	assert_string_equal(g.links[0].owner, "1000:100");
	assert_string_equal(g.links[0].socket_mode, "0600");
	char *j = pv_graph_emit(&g, false);
	assert_non_null(strstr(j, "\"owner\":\"1000:100\""));
	assert_non_null(strstr(j, "\"socket_mode\":\"0600\""));
	assert_int_equal(pv_graph_parse(j, strlen(j), &back, NULL), 0);
	assert_true(pv_link_equal(&g.links[0], &back.links[0]));
	/* a changed mode is a changed link (pv-xconnect re-injects it) */
	struct pv_link copy;
	assert_int_equal(pv_link_copy(&copy, &g.links[0]), 0);
	assert_true(pv_link_equal(&copy, &g.links[0]));
	free(copy.socket_mode);
	copy.socket_mode = strdup("0666");
	assert_false(pv_link_equal(&copy, &g.links[0]));
	pv_link_free(&copy);
	free(j);
	pv_graph_free(&g);
	pv_graph_free(&back);
}

static void test_unset_is_not_emitted(void **state)
{
	(void)state;
	struct pv_graph g = {0};
	assert_int_equal(parse(",\"owner\":\"7\"", &g, NULL), 0);
	assert_string_equal(g.links[0].owner, "7");
	assert_null(g.links[0].socket_mode);
	char *j = pv_graph_emit(&g, false);
	assert_null(strstr(j, "socket_mode"));
	free(j);
	pv_graph_free(&g);
	assert_int_equal(parse("", &g, NULL), 0);
	assert_null(g.links[0].owner);
	j = pv_graph_emit(&g, false);
	assert_null(strstr(j, "owner"));
	free(j);
	pv_graph_free(&g);
}

static void expect_bad(const char *extra, const char *needle)
{
	struct pv_graph g = {0};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(parse(extra, &g, &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), needle));
	pv_error_clear(&err);
}

static void test_bad_values_refused(void **state)
{
	(void)state;
	expect_bad(",\"owner\":\"root\"", "links[0].owner: \"root\" is not UID or UID:GID");
	expect_bad(",\"owner\":\"1:2:3\"", "links[0].owner");
	expect_bad(",\"owner\":\"1:\"", "links[0].owner");
	expect_bad(",\"owner\":\":5\"", "links[0].owner");
	expect_bad(",\"owner\":\"4294967295\"", "links[0].owner"); /* chown's "no change" */
	expect_bad(",\"owner\":\"99999999999\"", "links[0].owner");
	expect_bad(",\"owner\":5", "links[0].owner: not a string");
	expect_bad(",\"socket_mode\":\"0668\"", "links[0].socket_mode: \"0668\" is not octal");
	expect_bad(",\"socket_mode\":\"4755\"", "links[0].socket_mode");
	expect_bad(",\"socket_mode\":\"\"", "links[0].socket_mode");
	expect_bad(",\"socket_mode\":\"07777\"", "links[0].socket_mode");
	/* the largest valid values pass */
	struct pv_graph g = {0};
	assert_int_equal(parse(",\"owner\":\"4294967294:0\",\"socket_mode\":\"777\"", &g, NULL), 0);
	pv_graph_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_owner_and_mode_round_trip),
	    cmocka_unit_test(test_unset_is_not_emitted),
	    cmocka_unit_test(test_bad_values_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
