/* test_ctrl_json.c: the control API's JSON (pvstate/ctrl.h): body fields and their errors, the
 * whois reply, the bodies pvcontrol sends (escaping), object lists and progress. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pvstate/ctrl.h"

#define S(x) x, strlen(x)

static void test_check_object(void **state)
{
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_ctrl_json_check_object(S(" {\"a\":1}\n"), &err), 0);
	assert_int_equal(pv_ctrl_json_check_object(S(""), &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "empty"));
	pv_error_clear(&err);
	assert_int_equal(pv_ctrl_json_check_object(S("{\"a\":"), &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "not valid JSON"));
	pv_error_clear(&err);
	assert_int_equal(pv_ctrl_json_check_object(S("{} x"), &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "after the JSON value"));
	pv_error_clear(&err);
	assert_int_equal(pv_ctrl_json_check_object(S("[1]"), &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "must be a JSON object"));
	pv_error_clear(&err);
}

static void test_field(void **state)
{
	struct pv_error err = PV_ERROR_INIT;
	char out[8];
	assert_int_equal(
	    pv_ctrl_json_field(S("{\"action\":\"stop\"}"), "action", true, out, sizeof(out), &err),
	    0);
	assert_string_equal(out, "stop");
	/* optional and missing or null: empty, no error */
	assert_int_equal(
	    pv_ctrl_json_field(S("{\"payload\":null}"), "payload", false, out, sizeof(out), &err),
	    0);
	assert_string_equal(out, "");
	assert_int_equal(err.count, 0);
	assert_int_equal(pv_ctrl_json_field(S("{}"), "action", true, out, sizeof(out), &err),
			 -EINVAL);
	assert_string_equal(pv_error_msg(&err), "request body: \"action\" is missing");
	pv_error_clear(&err);
	assert_int_equal(
	    pv_ctrl_json_field(S("{\"action\":3}"), "action", true, out, sizeof(out), &err),
	    -EINVAL);
	assert_string_equal(pv_error_msg(&err), "request body: \"action\" must be a string");
	pv_error_clear(&err);
	/* 8 bytes of room: 7 characters fit, 8 do not */
	assert_int_equal(
	    pv_ctrl_json_field(S("{\"k\":\"1234567\"}"), "k", true, out, sizeof(out), &err), 0);
	assert_int_equal(
	    pv_ctrl_json_field(S("{\"k\":\"12345678\"}"), "k", true, out, sizeof(out), &err),
	    -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "too long"));
	pv_error_clear(&err);
}

static void test_whois(void **state)
{
	char c[16];
	bool mgmt = true;
	assert_int_equal(
	    pv_ctrl_json_whois("{\"container\":null,\"roles\":[]}", c, sizeof(c), &mgmt), 0);
	assert_string_equal(c, "");
	assert_false(mgmt);
	assert_int_equal(pv_ctrl_json_whois("{\"container\":\"web\",\"roles\":[\"x\",\"mgmt\"]}", c,
					    sizeof(c), &mgmt),
			 0);
	assert_string_equal(c, "web");
	assert_true(mgmt);
	assert_int_equal(pv_ctrl_json_whois("[]", c, sizeof(c), &mgmt), -EINVAL);
	assert_int_equal(pv_ctrl_json_whois(NULL, c, sizeof(c), &mgmt), -EINVAL);
}

static void test_bodies(void **state)
{
	char *b = pv_ctrl_json_command("LOCAL_RUN", "locals/a\"b\\c\n");
	assert_string_equal(b, "{\"op\":\"LOCAL_RUN\",\"payload\":\"locals/a\\\"b\\\\c\\n\"}");
	/* what pvcontrol sends is what pv-ctrl reads back */
	char out[64];
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_ctrl_json_field(S(b), "payload", true, out, sizeof(out), &err), 0);
	assert_string_equal(out, "locals/a\"b\\c\n");
	free(b);
	b = pv_ctrl_json_action("restart");
	assert_string_equal(b, "{\"action\":\"restart\"}");
	free(b);
	b = pv_ctrl_json_signal("ready", "");
	assert_string_equal(b, "{\"type\":\"ready\",\"payload\":\"\"}");
	free(b);
}

static void test_objects(void **state)
{
	char **v = NULL;
	size_t n = 9;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(
	    pv_ctrl_json_objects(S("[{\"sha256\":\"aa\",\"size\":\"1\"},{\"sha256\":\"bb\"}]"), &v,
				 &n, &err),
	    0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "aa");
	assert_string_equal(v[1], "bb");
	pv_ctrl_json_strv_free(v, n);
	assert_int_equal(pv_ctrl_json_objects(S("[]"), &v, &n, &err), 0);
	assert_int_equal(n, 0);
	pv_ctrl_json_strv_free(v, n);
	assert_int_equal(pv_ctrl_json_objects(S("[{\"size\":\"1\"}]"), &v, &n, &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "entry 0"));
	assert_null(v);
	pv_error_clear(&err);
	assert_int_equal(pv_ctrl_json_objects(S("{}"), &v, &n, &err), -EINVAL);
	pv_error_clear(&err);
}

static void test_progress(void **state)
{
	struct pv_ctrl_progress p;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(
	    pv_ctrl_json_progress(
		S("{\"status\":\"TESTING\",\"status-msg\":\"Awaiting\",\"progress\":90}"), &p,
		&err),
	    0);
	assert_string_equal(p.status, "TESTING");
	assert_string_equal(p.msg, "Awaiting");
	assert_int_equal(p.progress, 90);
	assert_int_equal(pv_ctrl_json_progress(S("{\"progress\":1}"), &p, &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "status"));
	pv_error_clear(&err);
	bool ok = false;
	assert_true(pv_ctrl_progress_final("DONE", &ok) && ok);
	assert_true(pv_ctrl_progress_final("UPDATED", &ok) && ok);
	assert_true(pv_ctrl_progress_final("ERROR", &ok) && !ok);
	assert_true(pv_ctrl_progress_final("WONTGO", &ok) && !ok);
	assert_false(pv_ctrl_progress_final("INPROGRESS", &ok));
	assert_false(pv_ctrl_progress_final("NEW", &ok));
}

static void test_driver_modules(void **state)
{
	const char *dj = "{\"#spec\":\"driver-aliases@1\","
			 "\"all\":{\"wifi\":[\"brcmfmac\",\"cfg80211 ieee80211_regdom=EU\"],"
			 "\"usb\":[\"dwc2\"]},"
			 "\"fitconfig:board-b\":{\"usb\":[\"dwc3\",\"xhci_hcd\"]}}";
	char **m = NULL;
	size_t n = 0;
	assert_int_equal(pv_ctrl_json_driver_modules(S(dj), "wifi", NULL, &m, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(m[0], "brcmfmac");
	assert_string_equal(m[1], "cfg80211 ieee80211_regdom=EU");
	pv_ctrl_json_strv_free(m, n);
	/* the fitconfig section wins; "all" still answers what it lacks */
	assert_int_equal(pv_ctrl_json_driver_modules(S(dj), "usb", "board-b", &m, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(m[0], "dwc3");
	pv_ctrl_json_strv_free(m, n);
	assert_int_equal(pv_ctrl_json_driver_modules(S(dj), "usb", "board-a", &m, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(m[0], "dwc2");
	pv_ctrl_json_strv_free(m, n);
	assert_int_equal(pv_ctrl_json_driver_modules(S(dj), "gpu", NULL, &m, &n), -ENOENT);
	assert_null(m);
	assert_int_equal(pv_ctrl_json_driver_modules(S("[1]"), "gpu", NULL, &m, &n), -EINVAL);
}

static void test_drivers_list(void **state)
{
	struct pv_ctrl_driver d[] = {{"wifi", "MANUAL", "LOADED"}, {"usb", "REQUIRED", "UNKNOWN"}};
	char *s = pv_ctrl_json_drivers(d, 2);
	assert_string_equal(s, "[{\"name\":\"wifi\",\"type\":\"MANUAL\",\"status\":\"LOADED\"},"
			       "{\"name\":\"usb\",\"type\":\"REQUIRED\",\"status\":\"UNKNOWN\"}]");
	free(s);
	s = pv_ctrl_json_drivers(NULL, 0);
	assert_string_equal(s, "[]");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_object),   cmocka_unit_test(test_field),
	    cmocka_unit_test(test_whois),	   cmocka_unit_test(test_bodies),
	    cmocka_unit_test(test_objects),	   cmocka_unit_test(test_progress),
	    cmocka_unit_test(test_driver_modules), cmocka_unit_test(test_drivers_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
