/* tests/unit/pvctrl/test_cgroup.c: caller identity from /proc/<pid>/cgroup text: the lxc payload
 * cgroup names the container (v1, v2, old layouts), the monitor and the host do not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* caller.c needs ctrl.h's engine calls only in pv_ctrl_caller_allowed; stub what it links. */
#include "../../../pv-ctrl/caller.c"

void pv_ctrl_engine_relay(struct pv_ctrl_engine *e, const char *op, const char *args_json,
			  struct pv_ctrl_reply *out)
{
	out->status = 503;
}
char *pv_ctrl_args_pid(int pid)
{
	return NULL;
}
int pv_ctrl_whois_parse(const char *body, char *container, size_t len, bool *mgmt)
{
	return -1;
}
void pv_ctrl_reply_clear(struct pv_ctrl_reply *r)
{
}

static void test_names(void **state)
{
	char n[128];
	assert_int_equal(pv_ctrl_cgroup_container("0::/lxc.payload.web/init.scope\n", n, sizeof(n)),
			 1);
	assert_string_equal(n, "web");
	assert_int_equal(
	    pv_ctrl_cgroup_container("12:pids:/\n4:memory:/lxc.payload.db\n0::/\n", n, sizeof(n)),
	    1);
	assert_string_equal(n, "db");
	assert_int_equal(pv_ctrl_cgroup_container("3:cpu:/lxc/old-one\n", n, sizeof(n)), 1);
	assert_string_equal(n, "old-one");
	assert_int_equal(pv_ctrl_cgroup_container("0::/lxc.monitor.web\n", n, sizeof(n)), 0);
	assert_int_equal(pv_ctrl_cgroup_container("0::/user.slice/session-1.scope\n", n, sizeof(n)),
			 0);
	assert_int_equal(
	    pv_ctrl_cgroup_container("4:memory:/process_api/881e\n0::/\n", n, sizeof(n)), 0);
	assert_int_equal(pv_ctrl_cgroup_container("", n, sizeof(n)), 0);
	assert_int_equal(pv_ctrl_cgroup_container("garbage without colons", n, sizeof(n)), 0);
	/* in a container whose name does not fit: in a container all the same, unnamed (so it
	 * is never taken for the host) */
	char small[4];
	assert_int_equal(pv_ctrl_cgroup_container("0::/lxc.payload.longer\n", small, sizeof(small)),
			 1);
	assert_string_equal(small, "");
}

static void test_roles(void **state)
{
	struct pv_ctrl ctrl = {0};
	struct pv_ctrl_caller host = {.host = true}, ctr = {.container = "web"};
	assert_true(pv_ctrl_caller_allowed(&ctrl, &host, PV_CTRL_ROLE_MGMT));
	assert_true(pv_ctrl_caller_allowed(&ctrl, &ctr, PV_CTRL_ROLE_ANY));
	/* roles unknown (engine silent): fail closed */
	assert_false(pv_ctrl_caller_allowed(&ctrl, &ctr, PV_CTRL_ROLE_MGMT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_names),
					   cmocka_unit_test(test_roles)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
