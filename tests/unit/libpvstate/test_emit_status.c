/* test_emit_status.c: the containers-list / groups-list JSON (pvstate/status.h): upstream's field
 * names, roles as an array, auto_recovery only when configured, current_retries carried. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "pvstate/state.h"
#include "pvstate/status.h"

static void test_containers_shape(void **state)
{
	struct pv_status_container c[2];
	memset(c, 0, sizeof(c));
	c[0].name = "nginx";
	c[0].group = "app";
	c[0].status = "STARTED";
	c[0].status_goal = "READY";
	c[0].restart_policy = "container";
	c[0].roles = PV_ROLE_MGMT;
	c[0].pid = 42;
	c[0].auto_recovery.set = true;
	c[0].auto_recovery.policy = "always";
	c[0].auto_recovery.max_retries = 3;
	c[0].auto_recovery.current_retries = 2;
	c[0].auto_recovery.backoff_policy = "30s";
	c[1].name = "data";
	c[1].status = "MOUNTED";
	c[1].user_stopped = true;

	char *s = pv_status_emit_containers(c, 2);
	assert_non_null(s);
	cJSON *a = cJSON_Parse(s);
	assert_true(cJSON_IsArray(a));
	assert_int_equal(cJSON_GetArraySize(a), 2);
	cJSON *o = cJSON_GetArrayItem(a, 0);
	assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "nginx");
	assert_string_equal(cJSON_GetObjectItem(o, "group")->valuestring, "app");
	assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "STARTED");
	assert_string_equal(cJSON_GetObjectItem(o, "status_goal")->valuestring, "READY");
	assert_string_equal(cJSON_GetObjectItem(o, "restart_policy")->valuestring, "container");
	cJSON *roles = cJSON_GetObjectItem(o, "roles");
	assert_int_equal(cJSON_GetArraySize(roles), 1);
	assert_string_equal(cJSON_GetArrayItem(roles, 0)->valuestring, "mgmt");
	cJSON *ar = cJSON_GetObjectItem(o, "auto_recovery");
	assert_non_null(ar);
	assert_string_equal(cJSON_GetObjectItem(ar, "policy")->valuestring, "always");
	assert_int_equal(cJSON_GetObjectItem(ar, "max_retries")->valueint, 3);
	assert_int_equal(cJSON_GetObjectItem(ar, "current_retries")->valueint, 2);
	assert_string_equal(cJSON_GetObjectItem(ar, "backoff_policy")->valuestring, "30s");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "user_stopped")));
	assert_int_equal(cJSON_GetObjectItem(o, "pid")->valueint, 42);

	o = cJSON_GetArrayItem(a, 1);
	assert_null(cJSON_GetObjectItem(o, "auto_recovery")); /* only when configured */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "roles")), 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "user_stopped")));
	assert_string_equal(cJSON_GetObjectItem(o, "group")->valuestring, ""); /* NULL-safe */
	cJSON_Delete(a);
	free(s);
}

static void test_groups_shape(void **state)
{
	struct pv_status_group g = {.name = "platform",
				    .status_goal = "STARTED",
				    .restart_policy = "system",
				    .status = "BLOCKED",
				    .timeout = 30};
	g.auto_recovery.set = true;
	g.auto_recovery.policy = "on-failure";
	g.auto_recovery.max_retries = 5;
	char *s = pv_status_emit_groups(&g, 1);
	assert_non_null(s);
	cJSON *a = cJSON_Parse(s);
	cJSON *o = cJSON_GetArrayItem(a, 0);
	assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "platform");
	assert_string_equal(cJSON_GetObjectItem(o, "status")->valuestring, "BLOCKED");
	assert_int_equal(cJSON_GetObjectItem(o, "timeout")->valueint, 30);
	cJSON *ar = cJSON_GetObjectItem(o, "auto_recovery");
	assert_int_equal(cJSON_GetObjectItem(ar, "max_retries")->valueint, 5);
	/* a group has no running instance: no per-container counters */
	assert_null(cJSON_GetObjectItem(ar, "current_retries"));
	assert_null(cJSON_GetObjectItem(ar, "is_stable"));
	cJSON_Delete(a);
	free(s);
}

static void test_empty_lists(void **state)
{
	char *s = pv_status_emit_containers(NULL, 0);
	assert_string_equal(s, "[]");
	free(s);
	s = pv_status_emit_groups(NULL, 0);
	assert_string_equal(s, "[]");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_containers_shape),
	    cmocka_unit_test(test_groups_shape),
	    cmocka_unit_test(test_empty_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
