/* test_emit_ops.c: bodies of the engine's other ops (pvstate/status.h): objects with the size as
 * a string, steps with embedded progress ({} when absent or broken), meta maps, daemons, gc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pvstate/status.h"

static void test_objects(void **state)
{
	struct pv_status_object o[2] = {{"aa", 0}, {"bb", 10000000000ULL}};
	char *s = pv_status_emit_objects(o, 2);
	assert_non_null(s);
	assert_string_equal(s, "[{\"sha256\":\"aa\",\"size\":\"0\"},"
			       "{\"sha256\":\"bb\",\"size\":\"10000000000\"}]");
	free(s);
	s = pv_status_emit_objects(NULL, 0);
	assert_string_equal(s, "[]");
	free(s);
}

static void test_steps_progress_embedded(void **state)
{
	struct pv_status_step st[3] = {
	    {"0", "2026-01-01T00:00:00Z", "first", "{\"status\":\"DONE\",\"progress\":100}"},
	    {"locals/x", "d", NULL, NULL},
	    {"7", "d", "m", "not json"},
	};
	char *s = pv_status_emit_steps(st, 3);
	assert_non_null(s);
	assert_string_equal(
	    s, "[{\"name\":\"0\",\"date\":\"2026-01-01T00:00:00Z\",\"commitmsg\":\"first\","
	       "\"progress\":{\"status\":\"DONE\",\"progress\":100}},"
	       "{\"name\":\"locals/x\",\"date\":\"d\",\"commitmsg\":\"\",\"progress\":{}},"
	       "{\"name\":\"7\",\"date\":\"d\",\"commitmsg\":\"m\",\"progress\":{}}]");
	free(s);
}

static void test_progress_and_json_check(void **state)
{
	char *s = pv_status_emit_progress("NEW", "Update ready to be run", 0);
	assert_string_equal(
	    s, "{\"status\":\"NEW\",\"status-msg\":\"Update ready to be run\",\"progress\":0}");
	assert_true(pv_status_is_json_object(s, strlen(s)));
	free(s);
	assert_false(pv_status_is_json_object("[1]", 3));
	assert_false(pv_status_is_json_object("{\"a\":", 5));
	assert_false(pv_status_is_json_object("", 0));
}

static void test_meta_daemons_gc(void **state)
{
	const char *k[] = {"a", "b\"q"}, *v[] = {"1", "x\ny"};
	char *s = pv_status_emit_meta(k, v, 2);
	assert_string_equal(s, "{\"a\":\"1\",\"b\\\"q\":\"x\\ny\"}");
	free(s);
	s = pv_status_emit_meta(NULL, NULL, 0);
	assert_string_equal(s, "{}");
	free(s);
	struct pv_status_daemon d[1] = {{"pv-ctrl", 12, true}};
	s = pv_status_emit_daemons(d, 1);
	assert_string_equal(s, "[{\"name\":\"pv-ctrl\",\"pid\":12,\"respawn\":true}]");
	free(s);
	s = pv_status_emit_gc(4096);
	assert_string_equal(s, "{\"reclaimed\":4096}");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_objects),
	    cmocka_unit_test(test_steps_progress_embedded),
	    cmocka_unit_test(test_progress_and_json_check),
	    cmocka_unit_test(test_meta_daemons_gc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
