/* test_state.c: pv_state_parse over every fixture in tests/fixtures/states (valid parse, invalid
 * fail with their .expect message), raw spans, limits, groups and roles defaulting, robustness. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pvstate/state.h"

#define STATES PV_FIXTURES "/states"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	/* exactly n bytes, no terminator: the parser must not read past len */
	char *b = malloc(n ? (size_t)n : 1);
	if (b && n && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

static int parse_file(const char *path, bool appengine, struct pv_state *s, struct pv_error *e)
{
	size_t len = 0;
	char *t = slurp(path, &len);
	assert_non_null(t);
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	o.appengine = appengine;
	int rc = pv_state_parse(t, len, &o, s, e);
	free(t);
	return rc;
}

static bool has_msg(const struct pv_error *e, const char *sub)
{
	for (size_t i = 0; i < e->count; i++)
		if (strstr(e->msgs[i], sub))
			return true;
	return false;
}

static void load(const char *name, bool appengine, struct pv_state *s)
{
	char p[512];
	snprintf(p, sizeof(p), STATES "/valid/%s.json", name);
	struct pv_error e = PV_ERROR_INIT;
	int rc = parse_file(p, appengine, s, &e);
	if (rc)
		fprintf(stderr, "%s: %s\n", name, pv_error_msg(&e));
	assert_int_equal(rc, 0);
	assert_int_equal(e.count, 0);
	pv_error_clear(&e);
}

static void test_valid_fixtures(void **st)
{
	(void)st;
	DIR *d = opendir(STATES "/valid");
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".json"))
			continue;
		char p[512];
		snprintf(p, sizeof(p), STATES "/valid/%s", de->d_name);
		struct pv_state s;
		struct pv_error e = PV_ERROR_INIT;
		int rc = parse_file(p, !strncmp(de->d_name, "appengine-", 10), &s, &e);
		if (rc)
			fprintf(stderr, "%s: %s\n", de->d_name, pv_error_msg(&e));
		assert_int_equal(rc, 0);
		pv_state_free(&s);
		pv_error_clear(&e);
		n++;
	}
	closedir(d);
	assert_true(n >= 10);
}

static void test_invalid_fixtures(void **st)
{
	(void)st;
	DIR *d = opendir(STATES "/invalid");
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".json"))
			continue;
		char p[512], x[512];
		snprintf(p, sizeof(p), STATES "/invalid/%s", de->d_name);
		snprintf(x, sizeof(x), STATES "/invalid/%.*s.expect", (int)(l - 5), de->d_name);
		size_t xl = 0;
		char *want = slurp(x, &xl);
		assert_non_null(want);
		while (xl && (want[xl - 1] == '\n'))
			xl--;
		char *w = strndup(want, xl);
		free(want);
		struct pv_state s;
		memset(&s, 0xa5, sizeof(s));
		struct pv_error e = PV_ERROR_INIT;
		int rc = parse_file(p, false, &s, &e);
		if (rc == 0 || !has_msg(&e, w)) {
			fprintf(stderr, "%s: want \"%s\", rc %d, got:\n", de->d_name, w, rc);
			for (size_t i = 0; i < e.count; i++)
				fprintf(stderr, "  %s\n", e.msgs[i]);
		}
		assert_true(rc < 0);
		assert_true(has_msg(&e, w));
		/* failure leaves *out empty */
		assert_null(s.text);
		assert_int_equal(s.n_containers, 0);
		free(w);
		pv_error_clear(&e);
		n++;
	}
	closedir(d);
	assert_true(n >= 50);
}

static void test_raw_spans(void **st)
{
	(void)st;
	struct pv_state s;
	load("appengine-odd-whitespace", true, &s);
	const struct pv_entry *a = pv_state_find_entry(&s, "appengine.json");
	assert_non_null(a);
	assert_int_equal(a->kind, PV_ENTRY_JSON);
	const char *want = "[ 1 ,\n2 , {\"a\\\"}\":\"\\u00e9\\n\"} ]";
	assert_int_equal(a->raw_len, strlen(want));
	assert_memory_equal(a->raw, want, strlen(want));
	const struct pv_entry *b = pv_state_find_entry(&s, "x/y.json");
	assert_non_null(b);
	const char *wb = "{\"k\":\"\xc3\xbcn\xc3\xaf\xc2\xa9\xc3\xb8\x64\xc3\xa9 \\\\\"}";
	assert_int_equal(b->raw_len, strlen(wb));
	assert_memory_equal(b->raw, wb, strlen(wb));
	/* raw points into the kept text */
	assert_true(a->raw >= s.text && a->raw + a->raw_len <= s.text + s.text_len);
	assert_null(pv_state_find_entry(&s, "#spec"));
	pv_state_free(&s);

	/* every json entry of a pvr-style state is byte-identical to its span */
	load("all-fields", false, &s);
	const struct pv_entry *r = pv_state_find_entry(&s, "client/run.json");
	assert_non_null(r);
	assert_int_equal(r->raw[0], '{');
	assert_int_equal(r->raw[r->raw_len - 1], '}');
	const struct pv_entry *o = pv_state_find_entry(&s, "README.md");
	assert_int_equal(o->kind, PV_ENTRY_OBJECT);
	assert_int_equal(strlen(o->sha), 64);
	pv_state_free(&s);
}

static int parse_str(const char *t, struct pv_state_opts *o, struct pv_state *s, struct pv_error *e)
{
	return pv_state_parse(t, strlen(t), o, s, e);
}

static void test_duplicates_and_all_errors(void **st)
{
	(void)st;
	struct pv_state s;
	struct pv_error e = PV_ERROR_INIT;
	const char *t = "{\"#spec\":\"pantavisor-service-system@1\",\"a.json\":{},\"a.json\":[],"
			"\"b\":\"x\",\"c\":1,\"a.json\":{}}";
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	o.appengine = true;
	o.source = "state.json";
	assert_int_equal(parse_str(t, &o, &s, &e), -EINVAL);
	/* one message for the triple key, and the other two problems too */
	assert_true(has_msg(&e, "state.json: a.json: duplicate key"));
	assert_true(has_msg(&e, "state.json: b: \"x\" is not a sha256"));
	assert_true(has_msg(&e, "state.json: c: a number is not a sha256"));
	assert_int_equal(e.count, 3);
	pv_error_clear(&e);

	char p[512];
	snprintf(p, sizeof(p), STATES "/invalid/many-errors.json");
	assert_true(parse_file(p, false, &s, &e) < 0);
	assert_int_equal(e.count, 3);
	pv_error_clear(&e);
}

static void test_limits(void **st)
{
	(void)st;
	struct pv_state s;
	struct pv_error e = PV_ERROR_INIT;
	/* a 100 MB string value: refused by size before any allocation proportional to it */
	size_t big = 100u * 1024 * 1024;
	char *t = malloc(big);
	assert_non_null(t);
	const char *head = "{\"#spec\":\"pantavisor-service-system@1\",\"a.json\":\"";
	memcpy(t, head, strlen(head));
	memset(t + strlen(head), 'a', big - strlen(head) - 2);
	memcpy(t + big - 2, "\"}", 2);
	assert_int_equal(pv_state_parse(t, big, NULL, &s, &e), -E2BIG);
	assert_true(has_msg(&e, "larger than the limit"));
	pv_error_clear(&e);

	/* a long string under the limit: a clean error (not a sha), no crash */
	size_t mid = 8u * 1024 * 1024;
	memcpy(t + mid - 2, "\"}", 2);
	assert_int_equal(pv_state_parse(t, mid, NULL, &s, &e), -EINVAL);
	assert_true(has_msg(&e, "a.json: \"aaaa"));
	pv_error_clear(&e);

	/* 10 000-deep nesting, both brackets, closed and unclosed */
	size_t depth = 10000, n = 0;
	n += (size_t)sprintf(t, "{\"#spec\":\"pantavisor-service-system@1\",\"a.json\":");
	for (size_t i = 0; i < depth; i++)
		t[n++] = (i & 1) ? '{' : '[';
	assert_int_equal(pv_state_parse(t, n, NULL, &s, &e), -EINVAL);
	assert_true(has_msg(&e, "nesting deeper than 64"));
	pv_error_clear(&e);
	for (size_t i = 0; i < 63; i++)
		t[n - depth + i] = '[';
	n = n - depth + 62;
	for (size_t i = 0; i < 62; i++)
		t[n++] = ']';
	t[n++] = '}';
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	o.appengine = true;
	/* depth 63 (+ the outer object) is within the limit */
	assert_int_equal(pv_state_parse(t, n, &o, &s, &e), 0);
	pv_state_free(&s);

	/* a small text with a huge number of values: refused before cJSON builds its tree */
	n = (size_t)sprintf(t, "{\"#spec\":\"pantavisor-service-system@1\",\"a.json\":[");
	for (size_t i = 0; i < PV_STATE_MAX_VALUES + 10; i++) {
		t[n++] = '0';
		t[n++] = ',';
	}
	memcpy(t + n, "0]}", 3);
	n += 3;
	assert_int_equal(pv_state_parse(t, n, NULL, &s, &e), -E2BIG);
	assert_true(has_msg(&e, "more than 1000000 JSON values"));
	pv_error_clear(&e);

	/* a 1 MB key with a bad value: the message names it, bounded */
	n = (size_t)sprintf(t, "{\"#spec\":\"pantavisor-service-system@1\",\"");
	memset(t + n, 'k', 1u << 20);
	n += 1u << 20;
	memcpy(t + n, "\":1}", 4);
	n += 4;
	assert_int_equal(pv_state_parse(t, n, NULL, &s, &e), -EINVAL);
	assert_true(has_msg(&e, "kkkk"));
	for (size_t i = 0; i < e.count; i++)
		assert_true(strlen(e.msgs[i]) < 1024);
	pv_error_clear(&e);

	/* NUL bytes, empty input, NULL text */
	assert_int_equal(pv_state_parse("{\"#spec\"\0}", 10, NULL, &s, &e), -EINVAL);
	assert_true(has_msg(&e, "NUL byte"));
	pv_error_clear(&e);
	assert_int_equal(pv_state_parse("", 0, NULL, &s, &e), -EINVAL);
	pv_error_clear(&e);
	assert_int_equal(pv_state_parse(NULL, 0, NULL, &s, &e), -EINVAL);
	pv_error_clear(&e);
	/* no error list at all: still a clean failure */
	assert_int_equal(pv_state_parse("{\"#spec\":1}", 11, NULL, &s, NULL), -EINVAL);
	assert_null(s.text);
	free(t);
}

static void test_groups_defaulting(void **st)
{
	(void)st;
	struct pv_state s;
	load("runlevel-defaults", false, &s);
	assert_true(s.default_groups);
	assert_int_equal(s.n_groups, 4);
	assert_string_equal(pv_state_find_container(&s, "alpha")->group, "root");
	assert_string_equal(pv_state_find_container(&s, "beta")->group, "platform");
	assert_string_equal(pv_state_find_container(&s, "gamma")->group, "platform");
	const struct pv_group *app = pv_state_find_group(&s, "app");
	assert_int_equal(app->restart_policy, PV_RESTART_CONTAINER);
	assert_int_equal(app->auto_recovery.policy, PV_RECOVERY_ON_FAILURE);
	assert_int_equal(app->auto_recovery.max_retries, 5);
	assert_int_equal(pv_state_find_group(&s, "data")->status_goal, PV_GOAL_MOUNTED);
	assert_int_equal(pv_state_find_container(&s, "alpha")->restart_policy, PV_RESTART_SYSTEM);
	pv_state_free(&s);

	/* groups.json: explicit group kept, group-less goes to the last group and inherits */
	load("groups-json", false, &s);
	assert_false(s.default_groups);
	assert_int_equal(s.n_groups, 2);
	const struct pv_container *x = pv_state_find_container(&s, "x");
	assert_string_equal(x->group, "last");
	assert_int_equal(x->group_index, 1);
	assert_int_equal(x->status_goal, PV_GOAL_READY);
	assert_false(x->status_goal_set);
	assert_int_equal(pv_state_find_group(&s, "last")->timeout, 5);
	assert_int_equal(pv_state_find_group(&s, "first")->timeout, 120);
	assert_string_equal(pv_state_find_container(&s, "y")->group, "first");
	assert_int_equal(pv_state_find_container(&s, "y")->status_goal, PV_GOAL_STARTED);
	pv_state_free(&s);

	/* runlevel maps to the group of the same name; a data container needs no config */
	load("runlevel-field", false, &s);
	assert_string_equal(pv_state_find_container(&s, "old")->group, "platform");
	pv_state_free(&s);
	load("data-only-mounted", false, &s);
	const struct pv_container *d = pv_state_find_container(&s, "data1");
	assert_null(d->config);
	assert_int_equal(d->status_goal, PV_GOAL_MOUNTED);
	pv_state_free(&s);

	/* a container's own goal wins over its group's */
	load("all-fields", false, &s);
	const struct pv_container *c = pv_state_find_container(&s, "client");
	assert_int_equal(c->status_goal, PV_GOAL_READY);
	assert_true(c->status_goal_set);
	assert_int_equal(c->restart_policy, PV_RESTART_SYSTEM);
	pv_state_free(&s);
}

static void roles_state(char *buf, size_t sz, const char *extra)
{
	static const char head[] =
	    "{\"#spec\":\"pantavisor-service-system@1\","
	    "\"a/lxc.container.conf\":\"" /* sha */
	    "0000000000000000000000000000000000000000000000000000000000000000\","
	    "\"a/r\":\"0000000000000000000000000000000000000000000000000000000000000000\","
	    "\"a/run.json\":{\"name\":\"a\",\"type\":\"lxc\",\"config\":"
	    "\"lxc.container.conf\",\"root-volume\":\"r\"";
	snprintf(buf, sz, "%s%s}}", head, extra);
}

static void test_roles(void **st)
{
	(void)st;
	char buf[1024];
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	o.appengine = true;
	struct pv_state s;
	struct pv_error e = PV_ERROR_INIT;
	roles_state(buf, sizeof(buf), "");
	assert_int_equal(parse_str(buf, &o, &s, &e), 0);
	assert_int_equal(s.containers[0].roles, 0); /* our default: no roles = unprivileged */
	assert_false(s.containers[0].roles_set);
	pv_state_free(&s);
	o.legacy_roles = true;
	assert_int_equal(parse_str(buf, &o, &s, &e), 0);
	assert_int_equal(s.containers[0].roles, PV_ROLE_MGMT);
	pv_state_free(&s);
	roles_state(buf, sizeof(buf), ",\"roles\":[]");
	assert_int_equal(parse_str(buf, &o, &s, &e), 0);
	assert_int_equal(s.containers[0].roles, 0); /* present key clears mgmt even if legacy */
	assert_true(s.containers[0].roles_set);
	pv_state_free(&s);
	roles_state(buf, sizeof(buf), ",\"roles\":[\"mgmt\",\"nobody\"]");
	assert_int_equal(parse_str(buf, &o, &s, &e), 0);
	assert_int_equal(s.containers[0].roles, PV_ROLE_MGMT | PV_ROLE_NOBODY);
	pv_state_free(&s);
	assert_int_equal(e.count, 0);
}

static void test_fields_and_ownership(void **st)
{
	(void)st;
	struct pv_state s;
	load("all-fields", false, &s);
	const struct pv_container *c = pv_state_find_container(&s, "client");
	assert_non_null(c);
	int ci = (int)(c - s.containers);
	assert_int_equal(pv_state_find_entry(&s, "_config/client/etc/hosts")->owner, ci);
	assert_int_equal(pv_state_find_entry(&s, "_config/client/etc/app.json")->kind,
			 PV_ENTRY_JSON);
	assert_int_equal(pv_state_find_entry(&s, "client/run.json")->owner, ci);
	assert_int_equal(pv_state_find_entry(&s, "bsp/kernel.img")->owner, -1);
	assert_int_equal(pv_state_find_entry(&s, "README.md")->owner, -1);
	assert_string_equal(c->network.mode, "pool");
	assert_string_equal(c->network.pool, "internal");
	assert_int_equal(c->n_logs, 2);
	assert_int_equal(c->logs[0].maxsize, 1048576);
	assert_true(c->logs[0].truncate);
	assert_true(c->logs[1].lxc);
	assert_int_equal(c->dev_log, 0);
	assert_false(c->automodfw);
	assert_int_equal(c->n_drivers_required, 1);
	assert_string_equal(c->drivers_manual[0], "bt");
	assert_int_equal(c->n_export_paths, 1);
	assert_int_equal(c->n_storage, 1);
	assert_int_equal(c->storage[0].persistence, PV_PERSIST_BOOT);
	assert_int_equal(c->n_requires, 1);
	assert_string_equal(c->requires[0].target, "/run/x.sock");
	const struct pv_container *sv = pv_state_find_container(&s, "server");
	assert_true(sv->has_services_json);
	assert_int_equal(sv->n_exports, 1);
	assert_string_equal(sv->exports[0].socket, "/run/raw.sock");
	assert_int_equal(sv->dev_log, -1);
	assert_true(sv->automodfw);
	assert_true(s.bsp.present);
	assert_string_equal(s.bsp.linux_, "kernel.img");
	pv_state_free(&s);

	load("auto-recovery", false, &s);
	c = pv_state_find_container(&s, "client");
	assert_true(c->auto_recovery.set);
	assert_int_equal(c->auto_recovery.policy, PV_RECOVERY_ALWAYS);
	assert_int_equal(c->auto_recovery.backoff, PV_BACKOFF_WAIT);
	assert_int_equal(c->auto_recovery.backoff_wait, 600);
	assert_string_equal(c->auto_recovery.backoff_str, "10min");
	assert_true(c->auto_recovery.backoff_factor > 1.4 && c->auto_recovery.backoff_factor < 1.6);
	pv_state_free(&s);

	load("optional-service-missing", false, &s);
	c = pv_state_find_container(&s, "client");
	assert_int_equal(c->n_requires, 2);
	assert_true(c->requires[1].optional);
	assert_string_equal(c->requires[1].mode, "mediated");
	pv_state_free(&s);

	assert_true(pv_is_sha256_hex(
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 64));
	assert_false(pv_is_sha256_hex(
	    "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", 64));
	assert_string_equal(pv_status_goal_str(PV_GOAL_READY), "READY");
	assert_string_equal(pv_recovery_policy_str(PV_RECOVERY_UNLESS_STOPPED), "unless-stopped");
}

static void test_system_bus(void **st)
{
	(void)st;
	char p[512];
	snprintf(p, sizeof(p), PV_FIXTURES "/../../examples/sample-state.json");
	struct pv_state s;
	struct pv_error e = PV_ERROR_INIT;
	/* the example stack exports system-bus itself: fine without the hosted bus... */
	assert_int_equal(parse_file(p, true, &s, &e), 0);
	assert_int_equal(s.n_containers, 12);
	/* app's auto_recovery is inherited whole by containers that set none */
	const struct pv_container *uc = pv_state_find_container(&s, "pv-example-unix-client");
	assert_non_null(uc);
	assert_true(uc->auto_recovery.set);
	assert_int_equal(uc->auto_recovery.policy, PV_RECOVERY_ON_FAILURE);
	assert_int_equal(uc->auto_recovery.max_retries, 5);
	assert_int_equal(uc->auto_recovery.stable_timeout, 30);
	assert_int_equal(uc->roles, 0);
	assert_true(uc->roles_set);
	pv_state_free(&s);
	/* ...but shadows it when the hosted bus is on */
	size_t len = 0;
	char *t = slurp(p, &len);
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	o.appengine = true;
	o.hosted_system_bus = true;
	assert_int_equal(pv_state_parse(t, len, &o, &s, &e), -EINVAL);
	assert_true(has_msg(&e, "shadows the hosted D-Bus"));
	pv_error_clear(&e);
	free(t);
}

/* Every prefix of a valid state and a byte-flipped copy: never a crash or a leak. */
static void test_truncations(void **st)
{
	(void)st;
	size_t len = 0;
	char *t = slurp(STATES "/valid/all-fields.json", &len);
	assert_non_null(t);
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	size_t ok = 0;
	for (size_t i = 0; i < len; i++) {
		struct pv_state s;
		struct pv_error e = PV_ERROR_INIT;
		char *cut = malloc(i ? i : 1);
		memcpy(cut, t, i);
		int rc = pv_state_parse(cut, i, &o, &s, &e);
		if (rc == 0) {
			ok++;
			pv_state_free(&s);
		} else {
			assert_true(e.count > 0);
		}
		pv_error_clear(&e);
		free(cut);
	}
	/* only the cut that drops just the final newline parses */
	assert_int_equal(ok, 1);
	for (size_t i = 0; i < len; i += 7) {
		struct pv_state s;
		struct pv_error e = PV_ERROR_INIT;
		char saved = t[i];
		t[i] = (char)(saved ^ 0x21);
		if (pv_state_parse(t, len, &o, &s, &e) == 0)
			pv_state_free(&s);
		t[i] = saved;
		pv_error_clear(&e);
	}
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_fixtures), cmocka_unit_test(test_invalid_fixtures),
	    cmocka_unit_test(test_raw_spans),	   cmocka_unit_test(test_duplicates_and_all_errors),
	    cmocka_unit_test(test_limits),	   cmocka_unit_test(test_groups_defaulting),
	    cmocka_unit_test(test_roles),	   cmocka_unit_test(test_fields_and_ownership),
	    cmocka_unit_test(test_system_bus),	   cmocka_unit_test(test_truncations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
