/* tests/unit/libpvstate/test_cgroup.c: the LXC payload cgroup in /proc/<pid>/cgroup text: path
 * cut after the payload (sub-cgroups belong to it), liblxc's clash suffix kept, monitors and
 * empty names skipped, too long said so. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pvstate/cgroup.h"

static void test_paths_and_names(void **state)
{
	char p[256], n[64];
	assert_int_equal(
	    pv_cgroup_payload("0::/lxc.payload.web/init.scope\n", p, sizeof(p), n, sizeof(n)), 0);
	assert_string_equal(p, "/lxc.payload.web");
	assert_string_equal(n, "web");
	/* a name liblxc suffixed because another "web" held the cgroup: the path tells them apart
	 */
	assert_int_equal(pv_cgroup_payload("0::/lxc.payload.web-1\n", p, sizeof(p), n, sizeof(n)),
			 0);
	assert_string_equal(p, "/lxc.payload.web-1");
	assert_string_equal(n, "web-1");
	/* v1: the first line that names a payload; nested under another manager's cgroup */
	assert_int_equal(
	    pv_cgroup_payload("12:pids:/\n4:memory:/docker/ab/lxc.payload.db/x\n0::/\n", p,
			      sizeof(p), NULL, 0),
	    0);
	assert_string_equal(p, "/docker/ab/lxc.payload.db");
	assert_int_equal(pv_cgroup_payload("3:cpu:/lxc/old-one", p, sizeof(p), n, sizeof(n)), 0);
	assert_string_equal(p, "/lxc/old-one");
	assert_string_equal(n, "old-one");
	/* an empty name is none: the next occurrence counts */
	assert_int_equal(
	    pv_cgroup_payload("0::/lxc.payload./lxc.payload.b\n", p, sizeof(p), n, sizeof(n)), 0);
	assert_string_equal(n, "b");
}

static void test_none_and_too_long(void **state)
{
	char p[16] = "x", n[8] = "x";
	assert_int_equal(pv_cgroup_payload("0::/lxc.monitor.web\n", p, sizeof(p), n, sizeof(n)),
			 -ENOENT);
	assert_string_equal(p, "");
	assert_string_equal(n, "");
	assert_int_equal(pv_cgroup_payload("0::/user.slice/s.scope\n", p, sizeof(p), n, sizeof(n)),
			 -ENOENT);
	assert_int_equal(pv_cgroup_payload("", p, sizeof(p), n, sizeof(n)), -ENOENT);
	assert_int_equal(pv_cgroup_payload("no colons /lxc.payload.a", p, sizeof(p), n, sizeof(n)),
			 -ENOENT);
	assert_int_equal(pv_cgroup_payload("0::/lxc.payload.a-long-container-name\n", p, sizeof(p),
					   n, sizeof(n)),
			 -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paths_and_names),
	    cmocka_unit_test(test_none_and_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
