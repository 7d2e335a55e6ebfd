/* test_progress.c: progress JSON for updates (pvstate/status.h): emitted with the reason in "logs",
 * read back (status, status-msg), and json values compared by value for the hot/reboot decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "pvstate/status.h"

static void test_emit_with_logs_round_trip(void **state)
{
	char st[32], msg[128];
	char *s = pv_status_emit_progress_logs("ERROR", "A container could not be started", 100,
					       "container web exited");
	assert_non_null(s);
	cJSON *o = cJSON_Parse(s);
	assert_string_equal(cJSON_GetObjectItem(o, "logs")->valuestring, "container web exited");
	assert_int_equal(cJSON_GetObjectItem(o, "progress")->valueint, 100);
	cJSON_Delete(o);
	assert_int_equal(pv_status_parse_progress(s, strlen(s), st, sizeof(st), msg, sizeof(msg)),
			 0);
	assert_string_equal(st, "ERROR");
	assert_string_equal(msg, "A container could not be started");
	free(s);
	/* no logs: no member (the exact shape of the other statuses) */
	s = pv_status_emit_progress_logs("TESTING", "Awaiting to see if update is stable", 75,
					 NULL);
	assert_string_equal(s, "{\"status\":\"TESTING\",\"status-msg\":\"Awaiting to see if update "
			       "is stable\",\"progress\":75}");
	free(s);
}

static void test_parse_rejects_non_progress(void **state)
{
	char st[32] = "x", msg[32] = "y";
	const char *bad[] = {"", "[]", "{\"status\":3}", "{\"status\":\"NEW\"", "null"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pv_status_parse_progress(bad[i], strlen(bad[i]), st, sizeof(st),
							  msg, sizeof(msg)),
				 -EINVAL);
		assert_string_equal(st, "");
		assert_string_equal(msg, "");
	}
	/* status without a message: fine, message empty; outputs may be NULL */
	const char *ok = "{\"status\":\"NEW\"}";
	assert_int_equal(pv_status_parse_progress(ok, strlen(ok), st, sizeof(st), msg, sizeof(msg)),
			 0);
	assert_string_equal(st, "NEW");
	assert_string_equal(msg, "");
	assert_int_equal(pv_status_parse_progress(ok, strlen(ok), NULL, 0, NULL, 0), 0);
	/* a long status is cut to the buffer, never overflows it */
	char small[4];
	assert_int_equal(pv_status_parse_progress(ok, strlen(ok), small, sizeof(small), NULL, 0),
			 0);
	assert_string_equal(small, "NEW");
}

static void test_json_same_by_value(void **state)
{
	const char *a = "{\"a\":1,\"b\":[1,2]}";
	const char *b = "{ \"b\" : [1, 2],\n  \"a\" : 1 }";
	const char *c = "{\"a\":1,\"b\":[2,1]}";
	const char *d = "{\"a\":1,\"b\":[1,2],\"c\":null}";
	assert_true(pv_status_json_same(a, strlen(a), a, strlen(a)));
	assert_true(pv_status_json_same(a, strlen(a), b, strlen(b)));
	assert_false(pv_status_json_same(a, strlen(a), c, strlen(c)));
	assert_false(pv_status_json_same(a, strlen(a), d, strlen(d)));
	assert_false(pv_status_json_same(d, strlen(d), a, strlen(a)));
	/* keys differ only in case: different (upstream keys are case-sensitive) */
	const char *e = "{\"A\":1,\"b\":[1,2]}";
	assert_false(pv_status_json_same(a, strlen(a), e, strlen(e)));
	/* unparsable text is never "the same" as something else */
	assert_false(pv_status_json_same("{", 1, "{ ", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_emit_with_logs_round_trip),
	    cmocka_unit_test(test_parse_rejects_non_progress),
	    cmocka_unit_test(test_json_same_by_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
