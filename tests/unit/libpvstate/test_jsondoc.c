/* test_jsondoc.c: pvstate/jsondoc.h: members in text order with their values' exact bytes
 * (spacing, number spelling, escapes inside values), sorted emit, take/remove/add_string, and
 * bad input refused with the document named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pvstate/jsondoc.h"

static const char FRAG[] = "{ \"b/run.json\" : {\"x\": [1, 2.50, \"}\"]} ,\n"
			   "  \"a\\u00e9\":\"e3b0\" , \"#spec\": \"s@1\" }";

static void test_parse_keeps_bytes_and_order(void **state)
{
	struct pv_jsondoc d = {0};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_jsondoc_parse(FRAG, strlen(FRAG), "frag", &d, &err), 0);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.m[0].key, "b/run.json");
	assert_string_equal(d.m[0].raw, "{\"x\": [1, 2.50, \"}\"]}");
	assert_string_equal(d.m[1].key, "a\xc3\xa9"); /* decoded */
	assert_string_equal(d.m[1].raw, "\"e3b0\"");
	assert_string_equal(d.m[2].key, "#spec");
	char *s = pv_jsondoc_emit(&d);
	assert_string_equal(s, "{\"#spec\":\"s@1\",\"a\xc3\xa9\":\"e3b0\","
			       "\"b/run.json\":{\"x\": [1, 2.50, \"}\"]}}");
	free(s);
	pv_jsondoc_free(&d);
	assert_int_equal(d.n, 0);
}

static bool starts_b(const char *key, const void *arg)
{
	(void)arg;
	return key[0] == 'b';
}

static void test_edit(void **state)
{
	struct pv_jsondoc d = {0}, other = {0};
	assert_int_equal(pv_jsondoc_parse(FRAG, strlen(FRAG), "frag", &d, NULL), 0);
	pv_jsondoc_remove_if(&d, starts_b, NULL);
	assert_int_equal(d.n, 2);
	assert_int_equal(pv_jsondoc_parse("{\"c\":null}", 10, "other", &other, NULL), 0);
	assert_int_equal(pv_jsondoc_take(&d, &other.m[0]), 0);
	assert_null(other.m[0].key);
	assert_int_equal(pv_jsondoc_add_string(&d, "dir", "/a \"q\"\n"), 0);
	char *s = pv_jsondoc_emit(&d);
	assert_string_equal(s, "{\"#spec\":\"s@1\",\"a\xc3\xa9\":\"e3b0\",\"c\":null,"
			       "\"dir\":\"/a \\\"q\\\"\\n\"}");
	free(s);
	pv_jsondoc_free(&d);
	pv_jsondoc_free(&other);
	struct pv_jsondoc e = {0};
	s = pv_jsondoc_emit(&e);
	assert_string_equal(s, "{}");
	free(s);
}

static void test_bad_input_names_the_document(void **state)
{
	static const char *bad[] = {"[1]", "{\"a\":}", "{\"a\":1", "", "{\"a\" 1}", "nope"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct pv_jsondoc d = {0};
		struct pv_error err = PV_ERROR_INIT;
		assert_true(pv_jsondoc_parse(bad[i], strlen(bad[i]), "x/json", &d, &err) < 0);
		assert_non_null(strstr(pv_error_msg(&err), "x/json: "));
		assert_int_equal(d.n, 0);
		pv_error_clear(&err);
		pv_jsondoc_free(&d);
	}
	/* hostile nesting: the scanner's depth limit, not the stack */
	size_t n = 100000;
	char *deep = malloc(2 * n + 8);
	strcpy(deep, "{\"a\":");
	memset(deep + 5, '[', n);
	memset(deep + 5 + n, ']', n);
	strcpy(deep + 5 + 2 * n, "}");
	struct pv_jsondoc d = {0};
	struct pv_error err = PV_ERROR_INIT;
	assert_true(pv_jsondoc_parse(deep, strlen(deep), "deep", &d, &err) < 0);
	assert_non_null(strstr(pv_error_msg(&err), "deep: "));
	pv_error_clear(&err);
	free(deep);
	/* a NUL inside is refused, not cut short */
	struct pv_jsondoc z = {0};
	assert_true(pv_jsondoc_parse("{\"a\":1}\0x", 9, "nul", &z, NULL) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_keeps_bytes_and_order),
	    cmocka_unit_test(test_edit),
	    cmocka_unit_test(test_bad_input_names_the_document),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
