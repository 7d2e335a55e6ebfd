/* test_config.c: config levels in every order, defaults, file syntax (comments, '=' in values,
 * CRLF, bad lines with file:line), aliases, cmdline/env, bool/duration parsing, JSON views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pvstate/config.h"
#include "pvstate/fileio.h"

static void test_defaults(void **st)
{
	(void)st;
	struct pv_config *c = pv_config_new();
	assert_non_null(c);
	static const char *const want[][2] = {
	    {"PV_SYSTEM_INIT_MODE", "embedded"},
	    {"PV_SYSTEM_RUNDIR", "/run/pantavisor/pv"},
	    {"PV_STORAGE_MNTPOINT", "/storage"},
	    {"PV_BOOTLOADER_TYPE", "uboot"},
	    {"PV_LOG_DIR", "/storage/logs/"},
	    {"PV_LOG_LEVEL", "0"},
	    {"PV_LOG_DIR_MAXSIZE", "0"},
	    {"PV_LXC_LOG_LEVEL", "2"},
	    {"PV_UPDATER_COMMIT_DELAY", "25"},
	    {"PV_UPDATER_GOALS_TIMEOUT", "120"},
	    {"PV_REVISION_RETRIES", "10"},
	    {"PV_STORAGE_GC_RESERVED", "5"},
	    {"PV_STORAGE_GC_KEEP_FACTORY", "1"},
	    {"PV_CONTROL_REMOTE", "1"},
	    {"PV_SECUREBOOT_CHECKSUM", "1"},
	    {"PV_XCONNECT_DBUS_SYSTEMBUS_ENABLED", "1"},
	    {"PV_WDT_MODE", "shutdown"},
	    {"PV_ENGINE_SOCKET", ""},
	    {"PV_LXC_PATH", "/run/pantavisor/lxc"},
	    {"PV_CONTROL_LEGACY_ROLES", "0"},
	    {"PV_DISK_VOLDIR", "/volumes"},
	    {"PV_SYSTEM_CONFDIR", "/run/pantavisor/configs"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *v = pv_config_get(c, want[i][0]);
		if (!v || strcmp(v, want[i][1]))
			fail_msg("%s = %s, want %s", want[i][0], v ? v : "(null)", want[i][1]);
		assert_int_equal(pv_config_get_level(c, want[i][0]), PV_CFG_DEFAULT);
	}
	assert_null(pv_config_get(c, "PV_STORAGE_DEVICE")); /* known, no default */
	assert_null(pv_config_get(c, "PV_NOT_A_KEY"));
	assert_int_equal(pv_config_get_int(c, "PV_UPDATER_COMMIT_DELAY", -1), 25);
	assert_true(pv_config_get_bool(c, "PV_CONTROL_REMOTE", false));
	assert_int_equal(pv_config_get_int(c, "PV_NOT_A_KEY", 77), 77);
	/* case-insensitive keys */
	assert_string_equal(pv_config_get(c, "pv_log_dir"), "/storage/logs/");
	pv_config_free(c);
}

/* For every pair of levels, in both orders of setting: the higher level's value stays. The key
 * is not a known one, so every level may set it. */
static void test_precedence_every_order(void **st)
{
	(void)st;
	for (int a = 0; a < PV_CFG_N_LEVELS; a++) {
		for (int b = 0; b < PV_CFG_N_LEVELS; b++) {
			if (a == b)
				continue;
			struct pv_config *c = pv_config_new();
			char va[16], vb[16];
			snprintf(va, sizeof(va), "L%d", a);
			snprintf(vb, sizeof(vb), "L%d", b);
			int ra = pv_config_set(c, "PV_TEST_ANY", va, a);
			int rb = pv_config_set(c, "PV_TEST_ANY", vb, b);
			int hi = a > b ? a : b;
			assert_string_equal(pv_config_get(c, "PV_TEST_ANY"), hi == a ? va : vb);
			assert_int_equal(pv_config_get_level(c, "PV_TEST_ANY"), hi);
			assert_int_equal(ra, 0);
			assert_int_equal(rb,
					 b > a ? 0 : 1); /* 1: ignored, a higher level holds it */
			pv_config_free(c);
		}
	}
	/* a known key, through the levels it allows: pv.conf < policy < oem < env < user-meta */
	struct pv_config *k = pv_config_new();
	assert_int_equal(pv_config_set(k, "PV_LOG_LEVEL", "1", PV_CFG_USER_META), 0);
	assert_int_equal(pv_config_set(k, "PV_LOG_LEVEL", "2", PV_CFG_ENV), 1);
	assert_int_equal(pv_config_set(k, "PV_LOG_LEVEL", "3", PV_CFG_OEM), 1);
	assert_int_equal(pv_config_set(k, "PV_LOG_LEVEL", "4", PV_CFG_POLICY), 1);
	assert_int_equal(pv_config_set(k, "PV_LOG_LEVEL", "5", PV_CFG_PV_CONF), 1);
	assert_string_equal(pv_config_get(k, "PV_LOG_LEVEL"), "1");
	pv_config_free(k);

	/* same level: the later value wins */
	struct pv_config *c = pv_config_new();
	assert_int_equal(pv_config_set(c, "PV_X", "1", PV_CFG_ENV), 0);
	assert_int_equal(pv_config_set(c, "pv_x", "2", PV_CFG_ENV), 0);
	assert_string_equal(pv_config_get(c, "PV_X"), "2");
	assert_int_equal(pv_config_set(c, "", "2", PV_CFG_ENV), -EINVAL);
	assert_int_equal(pv_config_set(c, "A B", "2", PV_CFG_ENV), -EINVAL);
	assert_int_equal(pv_config_set(c, "PV_X", "2", PV_CFG_N_LEVELS), -EINVAL);
	pv_config_free(c);
}

/* upstream's per-key level table: a disallowed level is refused and changes nothing */
static void test_level_masks(void **st)
{
	(void)st;
	struct pv_config *c = pv_config_new();
	assert_int_equal(pv_config_set(c, "PV_LOG_LEVEL", "4", PV_CFG_PH_CONF), -EPERM);
	assert_int_equal(pv_config_set(c, "PV_LOG_LEVEL", "4", PV_CFG_COMMAND), -EPERM);
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "0");
	assert_int_equal(pv_config_get_level(c, "PV_LOG_LEVEL"), PV_CFG_DEFAULT);
	assert_int_equal(pv_config_set(c, "PH_CREDS_HOST", "h", PV_CFG_PV_CONF), -EPERM);
	assert_int_equal(pv_config_set(c, "PH_CREDS_HOST", "h", PV_CFG_PH_CONF), 0);
	assert_int_equal(pv_config_set(c, "PH_CREDS_HOST", "meta", PV_CFG_USER_META), -EPERM);
	assert_string_equal(pv_config_get(c, "PH_CREDS_HOST"), "h");
	assert_int_equal(pv_config_set(c, "PV_SYSTEM_INIT_MODE", "appengine", PV_CFG_OEM), -EPERM);
	assert_int_equal(pv_config_set(c, "system.init.mode", "appengine", PV_CFG_USER_META),
			 -EPERM); /* through its alias too */
	assert_int_equal(pv_config_set(c, "PV_REMOUNT_POLICY", "x", PV_CFG_PV_CONF), -EPERM);
	assert_int_equal(pv_config_set(c, "PV_REMOUNT_POLICY", "x", PV_CFG_ENV), 0);
	assert_int_equal(pv_config_set(c, "PV_DEBUG_SSH", "0", PV_CFG_COMMAND), 0);
	/* the program's own arguments and defaults are always allowed */
	assert_int_equal(pv_config_set(c, "PV_SYSTEM_RUNDIR", "/r", PV_CFG_ARGS), 0);
	/* both command lines count as upstream's "env,bootargs" column; ph- is the higher */
	assert_int_equal(pv_config_load_cmdline(c, "ph_log.level=5 pv_log.level=3"), 0);
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "5");
	assert_int_equal(pv_config_get_level(c, "PV_LOG_LEVEL"), PV_CFG_PH_CMDLINE);
	pv_config_free(c);
}

static char tmpdir[64];

static int group_setup(void **st)
{
	(void)st;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/pv-test-config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

/* Runs even when a test failed: nothing is left in /tmp. */
static int group_teardown(void **st)
{
	(void)st;
	return pv_remove_tree(tmpdir);
}

static const char *write_tmp(const char *name, const char *text)
{
	static char p[128];
	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	assert_int_equal(pv_file_write_atomic(p, text, strlen(text), 0644, NULL), 0);
	return p;
}

static void test_file_syntax(void **st)
{
	(void)st;
	const char *p = write_tmp("pv.config", "# a comment\n"
					       "\n"
					       "   # indented comment\n"
					       "PV_STORAGE_DEVICE=LABEL=root\r\n"
					       "  PV_LOG_LEVEL = 4  \r\n"
					       "this line is bad\n"
					       "log.dir=/var/log/pv/\n"
					       "=novalue\n"
					       "PV_CUSTOM_THING=a=b=c\n"
					       "PV_EMPTY=\n"
					       "PV_LOG_LEVEL=5");
	struct pv_config *c = pv_config_new();
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_config_load_file(c, p, PV_CFG_PV_CONF, &err), 0);
	assert_string_equal(pv_config_get(c, "PV_STORAGE_DEVICE"), "LABEL=root");
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "5"); /* last line, no newline */
	assert_int_equal(pv_config_get_level(c, "PV_LOG_LEVEL"), PV_CFG_PV_CONF);
	assert_string_equal(pv_config_get(c, "PV_LOG_DIR"), "/var/log/pv/"); /* alias */
	assert_string_equal(pv_config_get(c, "PV_CUSTOM_THING"), "a=b=c");   /* unknown kept */
	assert_string_equal(pv_config_get(c, "PV_EMPTY"), "");
	/* both bad lines reported with file:line */
	assert_int_equal(err.count, 2);
	char want[4200]; /* PATH_MAX-sized path + message: keeps -O2 format-truncation quiet */
	snprintf(want, sizeof(want), "%s:6:", p);
	assert_non_null(strstr(err.msgs[0], want));
	snprintf(want, sizeof(want), "%s:8:", p);
	assert_non_null(strstr(err.msgs[1], want));
	pv_error_clear(&err);

	/* a key the level may not set is reported with file:line and skipped */
	const char *ph = write_tmp("ph.config", "PH_CREDS_HOST=hub\nPV_LOG_LEVEL=6\n");
	assert_int_equal(pv_config_load_file(c, ph, PV_CFG_PH_CONF, &err), 0);
	assert_string_equal(pv_config_get(c, "PH_CREDS_HOST"), "hub");
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "5");
	assert_int_equal(err.count, 1);
	snprintf(want, sizeof(want), "%s:2: PV_LOG_LEVEL cannot be set from ph.conf", ph);
	if (!strstr(err.msgs[0], want))
		fail_msg("got \"%s\", want \"%s\"", err.msgs[0], want);
	pv_error_clear(&err);

	/* a file at a lower level does not override */
	const char *low = write_tmp("low.config", "PV_LOG_LEVEL=1\nPV_BOOTLOADER_TYPE=grub\n");
	assert_int_equal(pv_config_load_file(c, low, PV_CFG_ARGS, &err), 0);
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "5");
	assert_string_equal(pv_config_get(c, "PV_BOOTLOADER_TYPE"), "grub");

	/* missing file: -ENOENT, no message */
	assert_int_equal(pv_config_load_file(c, "/nonexistent/pv.config", PV_CFG_PV_CONF, &err),
			 -ENOENT);
	assert_int_equal(err.count, 0);
	pv_config_free(c);
}

static void test_aliases_cmdline_env(void **st)
{
	(void)st;
	struct pv_config *c = pv_config_new();
	static const char *const pairs[][2] = {
	    {"system.init.mode", "PV_SYSTEM_INIT_MODE"},
	    {"storage.device", "PV_STORAGE_DEVICE"},
	    {"log.level", "PV_LOG_LEVEL"},
	    {"updater.commit.delay", "PV_UPDATER_COMMIT_DELAY"},
	    {"updater.goals.timeout", "PV_UPDATER_GOALS_TIMEOUT"},
	    {"log.maxsize", "PV_LOG_DIR_MAXSIZE"},
	    {"creds.host", "PH_CREDS_HOST"},
	    {"Storage.GC.Reserved", "PV_STORAGE_GC_RESERVED"},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		assert_int_equal(pv_config_set(c, pairs[i][0], "v", PV_CFG_POLICY), 0);
		assert_string_equal(pv_config_get(c, pairs[i][1]), "v");
		assert_string_equal(pv_config_get(c, pairs[i][0]), "v"); /* read by alias too */
	}
	pv_config_free(c);

	c = pv_config_new();
	assert_int_equal(pv_config_load_cmdline(c, "console=ttyS0 pv_storage.device=LABEL=root "
						   "pv_log.level=3 pv_PV_WDT_MODE=disabled "
						   "pv_revision_retries=4 ph_creds.host=hub.local "
						   "ph_updater_interval=60 rootwait pv_ pv_=x"),
			 0);
	assert_string_equal(pv_config_get(c, "PV_STORAGE_DEVICE"), "LABEL=root");
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "3");
	assert_int_equal(pv_config_get_level(c, "PV_LOG_LEVEL"), PV_CFG_PV_CMDLINE);
	assert_string_equal(pv_config_get(c, "PV_WDT_MODE"), "disabled");
	assert_string_equal(pv_config_get(c, "PV_REVISION_RETRIES"), "4");
	assert_string_equal(pv_config_get(c, "PH_CREDS_HOST"), "hub.local");
	assert_int_equal(pv_config_get_level(c, "PH_CREDS_HOST"), PV_CFG_PH_CMDLINE);
	assert_string_equal(pv_config_get(c, "PH_UPDATER_INTERVAL"), "60");
	assert_null(pv_config_get(c, "CONSOLE"));

	char *envp[] = {"PATH=/bin",  "PV_LOG_LEVEL=6", "PH_CREDS_HOST=env.host",
			"pv_lower=1", "PV_NEW_KEY=a=b", NULL};
	assert_int_equal(pv_config_load_env(c, envp), 0);
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "6"); /* env > cmdline */
	assert_int_equal(pv_config_get_level(c, "PV_LOG_LEVEL"), PV_CFG_ENV);
	assert_string_equal(pv_config_get(c, "PH_CREDS_HOST"), "env.host");
	assert_string_equal(pv_config_get(c, "PV_NEW_KEY"), "a=b");
	assert_null(pv_config_get(c, "PATH"));
	assert_null(pv_config_get(c, "PV_LOWER"));
	/* cmdline after env cannot undo it */
	assert_int_equal(pv_config_load_cmdline(c, "pv_log.level=1"), 0);
	assert_string_equal(pv_config_get(c, "PV_LOG_LEVEL"), "6");
	pv_config_free(c);
}

static void test_bool_duration(void **st)
{
	(void)st;
	bool b;
	const char *t[] = {"1", "true", "yes", "on", "TRUE", "On"};
	const char *f[] = {"0", "false", "no", "off", "No"};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		b = false;
		assert_int_equal(pv_parse_bool(t[i], &b), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		b = true;
		assert_int_equal(pv_parse_bool(f[i], &b), 0);
		assert_false(b);
	}
	assert_int_equal(pv_parse_bool("2", &b), -EINVAL);
	assert_int_equal(pv_parse_bool("", &b), -EINVAL);
	assert_int_equal(pv_parse_bool("yess", &b), -EINVAL);

	static const struct {
		const char *s;
		int v;
	} d[] = {{"30", 30}, {"30s", 30}, {"10min", 600}, {"1h", 3600}, {"1d", 86400}, {"0", 0}};
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		int v = -1;
		assert_int_equal(pv_parse_seconds(d[i].s, &v), 0);
		assert_int_equal(v, d[i].v);
	}
	int v;
	assert_int_equal(pv_parse_seconds("10m", &v), -EINVAL);
	assert_int_equal(pv_parse_seconds("-5", &v), -EINVAL);
	assert_int_equal(pv_parse_seconds("h", &v), -EINVAL);
	assert_int_equal(pv_parse_seconds("5 s", &v), -EINVAL);
	assert_int_equal(pv_parse_seconds("99999999d", &v), -ERANGE);

	struct pv_config *c = pv_config_new();
	pv_config_set(c, "PV_UPDATER_GOALS_TIMEOUT", "2min", PV_CFG_ENV);
	assert_int_equal(pv_config_get_seconds(c, "PV_UPDATER_GOALS_TIMEOUT", 1), 120);
	pv_config_set(c, "PV_UPDATER_COMMIT_DELAY", "soon", PV_CFG_ENV);
	assert_int_equal(pv_config_get_seconds(c, "PV_UPDATER_COMMIT_DELAY", 9), 9);
	assert_int_equal(pv_config_get_int(c, "PV_UPDATER_COMMIT_DELAY", 8), 8);
	pv_config_set(c, "PV_CONTROL_REMOTE", "off", PV_CFG_ENV);
	assert_false(pv_config_get_bool(c, "PV_CONTROL_REMOTE", true));
	pv_config_set(c, "PV_DEBUG_SHELL", "maybe", PV_CFG_ENV);
	assert_true(pv_config_get_bool(c, "PV_DEBUG_SHELL", true));
	pv_config_free(c);
}

static void test_emit(void **st)
{
	(void)st;
	struct pv_config *c = pv_config_new();
	pv_config_set(c, "PV_LOG_LEVEL", "4", PV_CFG_PV_CONF);
	pv_config_set(c, "PV_ZZZ", "q\"uote", PV_CFG_USER_META);
	char *j = pv_config_emit(c);
	assert_non_null(strstr(j, "\"PV_LOG_LEVEL\":\"4\""));
	assert_non_null(strstr(j, "\"PV_ZZZ\":\"q\\\"uote\""));
	assert_non_null(strstr(j, "\"PV_BOOTLOADER_TYPE\":\"uboot\""));
	assert_null(strstr(j, "PV_STORAGE_DEVICE")); /* never set, no default */
	/* sorted keys */
	assert_true(strstr(j, "PV_BOOTLOADER_TYPE") < strstr(j, "PV_LOG_LEVEL"));
	free(j);
	j = pv_config_emit2(c);
	assert_non_null(
	    strstr(j, "{\"key\":\"PV_LOG_LEVEL\",\"value\":\"4\",\"modified\":\"pv.conf\"}"));
	assert_non_null(strstr(j, "{\"key\":\"PV_LXC_LOG_LEVEL\",\"value\":\"2\",\"modified\":"
				  "\"default\"}"));
	assert_non_null(strstr(j, "\"modified\":\"user-meta\""));
	assert_int_equal(j[0], '[');
	free(j);

	/* iteration is sorted and complete */
	size_t pos = 0, n = 0;
	const char *k, *prev = "";
	const char *val;
	enum pv_config_level lvl;
	while (pv_config_iter(c, &pos, &k, &val, &lvl)) {
		assert_true(strcmp(prev, k) < 0);
		prev = k;
		n++;
	}
	assert_true(n > 20);
	for (int l = 0; l < PV_CFG_N_LEVELS; l++)
		assert_string_not_equal(pv_config_level_str(l), "unknown");
	pv_config_free(c);
}

static void test_engine_socket_and_layers(void **state)
{
	(void)state;
	struct pv_config *c = pv_config_new();
	assert_non_null(c);
	char *s = pv_config_engine_socket(c, "/run/pantavisor/pv");
	assert_string_equal(s, "/run/pantavisor/engine.sock");
	free(s);
	s = pv_config_engine_socket(c, "/pv");
	assert_string_equal(s, "/engine.sock");
	free(s);
	s = pv_config_engine_socket(c, NULL); /* falls back to PV_SYSTEM_RUNDIR's default */
	assert_string_equal(s, "/run/pantavisor/engine.sock");
	free(s);
	/* a missing file is no error; cmdline and env still load, env above cmdline */
	char *const envp[] = {"PV_ENGINE_SOCKET=/tmp/e.sock", NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_config_load_layers(c, "/nonexistent/pv.config",
					       "pv_engine_socket=/tmp/k.sock", envp, &err),
			 0);
	assert_int_equal(err.count, 0);
	s = pv_config_engine_socket(c, "/run/pantavisor/pv");
	assert_string_equal(s, "/tmp/e.sock");
	free(s);
	pv_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_engine_socket_and_layers),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_precedence_every_order),
	    cmocka_unit_test(test_file_syntax),
	    cmocka_unit_test(test_aliases_cmdline_env),
	    cmocka_unit_test(test_bool_duration),
	    cmocka_unit_test(test_emit),
	    cmocka_unit_test(test_level_masks),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
