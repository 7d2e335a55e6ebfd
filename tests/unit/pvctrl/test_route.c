/* tests/unit/pvctrl/test_route.c: pv-ctrl's route table and path/name rules (404/405/400 and
 * the captured names), compiled in from pv-ctrl/route.c (no MHD, no engine needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../../pv-ctrl/route.c"

static int look(int method, const char *path, const struct pv_ctrl_route **r,
		char caps[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN], int *allowed, char *msg)
{
	return pv_route_lookup(method, path, r, caps, allowed, msg, 512);
}

static void test_match_and_caps(void **state)
{
	const struct pv_ctrl_route *r;
	char caps[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN], msg[512];
	int allowed;
	assert_int_equal(look(PV_M_GET, "/containers", &r, caps, &allowed, msg), 0);
	assert_int_equal(r->id, PV_R_CONTAINERS_LIST);
	assert_int_equal(look(PV_M_GET, "/containers/", &r, caps, &allowed, msg), 0);
	assert_int_equal(look(PV_M_PUT, "/containers/web-1", &r, caps, &allowed, msg), 0);
	assert_int_equal(r->id, PV_R_CONTAINERS_ACTION);
	assert_string_equal(caps[0], "web-1");
	assert_int_equal(
	    look(PV_M_PUT, "/steps/locals/my.rev_1/commitmsg", &r, caps, &allowed, msg), 0);
	assert_int_equal(r->id, PV_R_STEPS_LOCAL_COMMITMSG);
	assert_string_equal(caps[0], "my.rev_1");
	assert_int_equal(look(PV_M_GET, "/steps/12/progress", &r, caps, &allowed, msg), 0);
	assert_int_equal(r->id, PV_R_STEPS_PROGRESS);
	assert_string_equal(caps[0], "12");
	const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char p[128];
	snprintf(p, sizeof(p), "/objects/%s", sha);
	assert_int_equal(look(PV_M_PUT, p, &r, caps, &allowed, msg), 0);
	assert_true(r->stream);
	assert_int_equal(look(PV_M_POST, "/signal", &r, caps, &allowed, msg), 0);
	assert_int_equal(r->role, PV_CTRL_ROLE_ANY);
	assert_int_equal(r->body_max, 4096);
	assert_int_equal(look(PV_M_PUT, "/steps/3/commitmsg", &r, caps, &allowed, msg), 0);
	assert_int_equal(r->body_max, 256);
}

static void test_404_405(void **state)
{
	const struct pv_ctrl_route *r;
	char caps[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN], msg[512];
	int allowed;
	assert_int_equal(look(PV_M_GET, "/nope", &r, caps, &allowed, msg), 404);
	assert_int_equal(look(PV_M_GET, "/containersX", &r, caps, &allowed, msg), 404);
	assert_int_equal(look(PV_M_DELETE, "/containers", &r, caps, &allowed, msg), 405);
	assert_int_equal(allowed, PV_M_GET);
	assert_int_equal(look(PV_M_POST, "/user-meta/k", &r, caps, &allowed, msg), 405);
	assert_int_equal(allowed, PV_M_PUT | PV_M_DELETE);
	assert_int_equal(look(0, "/groups", &r, caps, &allowed, msg), 405);
}

static void test_400_names(void **state)
{
	const struct pv_ctrl_route *r;
	char caps[PV_ROUTE_MAX_CAPS][PV_ROUTE_CAP_LEN], msg[512];
	int allowed;
	static const char *const bad[] = {
	    "/objects/../etc/passwd",
	    "/steps/locals/../0",
	    "/objects/ABC",
	    "/objects/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	    "/steps/locals/a/b",
	    "/steps/locals/..x",
	    "/steps/1x",
	    "/user-meta/.hidden",
	    "/containers//x",
	    "/./containers",
	    "relative",
	    "/steps/locals/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = look(PV_M_GET, bad[i], &r, caps, &allowed, msg);
		if (st != 400)
			fail_msg("%s: %d, expected 400", bad[i], st);
		assert_non_null(strstr(msg, "path") ? msg : NULL);
	}
	/* 64 chars is the longest local name */
	assert_int_equal(look(PV_M_GET,
			      "/steps/locals/"
			      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			      &r, caps, &allowed, msg),
			 0);
}

static void test_validators(void **state)
{
	assert_true(
	    pv_route_valid_sha("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"));
	assert_false(pv_route_valid_sha("fff"));
	assert_true(pv_route_valid_rev("0"));
	assert_false(pv_route_valid_rev(""));
	assert_false(pv_route_valid_rev("-1"));
	assert_true(pv_route_valid_local("dev-build.2"));
	assert_false(pv_route_valid_local("a/b"));
	assert_false(pv_route_valid_local(".."));
	assert_false(pv_route_valid_local(""));
	assert_int_equal(pv_route_method("HEAD"), PV_M_GET);
	assert_int_equal(pv_route_method("PATCH"), 0);
}

static void test_every_route_unique(void **state)
{
	for (size_t i = 0; i < pv_ctrl_n_routes; i++) {
		assert_int_equal(pv_ctrl_routes[i].id, (int)i);
		for (size_t j = i + 1; j < pv_ctrl_n_routes; j++)
			if (pv_ctrl_routes[i].method == pv_ctrl_routes[j].method &&
			    !strcmp(pv_ctrl_routes[i].pattern, pv_ctrl_routes[j].pattern))
				fail_msg("duplicate route %s", pv_ctrl_routes[i].pattern);
	}
	assert_int_equal(pv_ctrl_n_routes, PV_R_COUNT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_and_caps),     cmocka_unit_test(test_404_405),
	    cmocka_unit_test(test_400_names),	       cmocka_unit_test(test_validators),
	    cmocka_unit_test(test_every_route_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
