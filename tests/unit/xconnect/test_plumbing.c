/* test_plumbing.c: pv-xconnect's namespace plumbing against real mount namespaces (root only):
 * device node injection + cgroup v1 grant, symlink refusal, idempotent re-listen, removal of
 * only what was injected, provider paths resolved inside the provider's root. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* The unit under test is compiled in directly: plumbing has no public library. */
#include "../../../pv-xconnect/plumbing.c"

void pvx_log(enum pvx_log_level lvl, const char *fmt, ...)
{
	(void)lvl;
	(void)fmt;
}

struct nsproc {
	pid_t pid;
	char dir[128];
};

/* A child in its own mount namespace with a private tmpfs over dir (chrooted there when
 * chroot_in is set); setup runs inside before it signals readiness. */
static void ns_start(struct nsproc *p, const char *name, bool chroot_in,
		     void (*setup)(const char *dir))
{
	snprintf(p->dir, sizeof(p->dir), "/tmp/pvx-unit-%d-%s", (int)getpid(), name);
	mkdir(p->dir, 0755);
	int sync[2];
	assert_int_equal(pipe(sync), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		close(sync[0]);
		/* dies with the test even when an assertion jumps past ns_stop */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("pvx-unit", p->dir, "tmpfs", 0, NULL) < 0)
			_exit(1);
		if (setup)
			setup(p->dir);
		if (chroot_in && (chroot(p->dir) < 0 || chdir("/") < 0))
			_exit(1);
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(sync[1]);
	char c;
	assert_int_equal(read(sync[0], &c, 1), 1);
	close(sync[0]);
}

static void ns_stop(struct nsproc *p)
{
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	rmdir(p->dir);
}

static int in_ns_stat(pid_t pid, const char *path, struct stat *st)
{
	char p[512];
	snprintf(p, sizeof(p), "/proc/%d/root%s", (int)pid, path);
	return lstat(p, st);
}

static void provider_setup(const char *dir)
{
	char p[256];
	umask(0);
	snprintf(p, sizeof(p), "%s/card0", dir);
	mknod(p, S_IFCHR | 0660, makedev(1, 3));
	snprintf(p, sizeof(p), "%s/secret", dir);
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	if (fd >= 0) {
		if (write(fd, "inside", 6) != 6)
			_exit(1);
		close(fd);
	}
	snprintf(p, sizeof(p), "%s/evil", dir);
	if (symlink("/secret", p) < 0)
		_exit(1);
}

static int setup_root(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("needs root (mount namespaces)\n");
		return -1;
	}
	return 0;
}

static char cg[256]; /* the test's devices cgroup, removed by teardown_cg even on failure */

static int teardown_cg(void **state)
{
	(void)state;
	if (cg[0])
		rmdir(cg); /* its processes were SIGKILLed: empty by now or shortly */
	for (int i = 0; cg[0] && i < 100 && rmdir(cg) < 0 && errno == EBUSY; i++)
		usleep(10000);
	return 0;
}

static void test_mknod_and_cgroup_grant(void **state)
{
	(void)state;
	struct nsproc prov, cons;
	ns_start(&prov, "prov", true, provider_setup);
	ns_start(&cons, "cons", false, NULL);

	/* a v1 devices cgroup that denies everything, with the consumer in it */
	char f[300];
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/devices/pvx-unit-%d", (int)getpid());
	bool have_cg = mkdir(cg, 0755) == 0;
	if (have_cg) {
		FILE *w;
		snprintf(f, sizeof(f), "%s/devices.deny", cg);
		assert_non_null(w = fopen(f, "w"));
		fputs("a", w);
		fclose(w);
		snprintf(f, sizeof(f), "%s/cgroup.procs", cg);
		assert_non_null(w = fopen(f, "w"));
		fprintf(w, "%d", (int)cons.pid);
		fclose(w);
	}

	char target[256];
	snprintf(target, sizeof(target), "%s/dev/dri/card0", cons.dir);
	struct pvx_injected inj = {0};
	struct pv_error err = PV_ERROR_INIT;
	int rc = pvx_plumb_mknod(prov.pid, "/card0", cons.pid, target, &inj, &err);
	if (rc)
		print_message("mknod: %s\n", pv_error_msg(&err));
	assert_int_equal(rc, 0);
	struct stat st;
	assert_int_equal(in_ns_stat(cons.pid, target, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(major(st.st_rdev), 1);
	assert_int_equal(minor(st.st_rdev), 3);
	assert_int_equal(st.st_mode & 07777, 0660);
	/* not visible outside the consumer's namespace */
	assert_int_not_equal(lstat(target, &st), 0);

	if (have_cg) {
		char line[128];
		bool found = false;
		snprintf(f, sizeof(f), "%s/devices.list", cg);
		FILE *r = fopen(f, "r");
		assert_non_null(r);
		while (fgets(line, sizeof(line), r))
			found = found || !strncmp(line, "c 1:3 rwm", 9);
		fclose(r);
		assert_true(found);
	}

	/* idempotent: the same node again is fine */
	struct pvx_injected inj2 = {0};
	assert_int_equal(pvx_plumb_mknod(prov.pid, "/card0", cons.pid, target, &inj2, &err), 0);
	pvx_injected_clear(&inj2);

	pvx_plumb_remove(&inj);
	assert_int_not_equal(in_ns_stat(cons.pid, target, &st), 0);
	pv_error_clear(&err);
	ns_stop(&cons);
	ns_stop(&prov);
}

static void test_provider_resolved_in_its_root(void **state)
{
	(void)state;
	struct nsproc prov;
	ns_start(&prov, "prov2", true, provider_setup);
	int fd;
	struct pv_error err = PV_ERROR_INIT;
	/* /evil -> /secret: absolute, but it must mean the provider's /secret */
	assert_int_equal(pvx_plumb_open_in_root(prov.pid, "/evil", &fd, &err), 0);
	char p[64], buf[16] = {0};
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	int rfd = open(p, O_RDONLY);
	assert_true(rfd >= 0);
	assert_int_equal(read(rfd, buf, sizeof(buf) - 1), 6);
	assert_string_equal(buf, "inside");
	close(rfd);
	close(fd);
	/* and `..` cannot climb out of it either */
	assert_int_equal(pvx_plumb_open_in_root(prov.pid, "/../../etc/hostname", &fd, &err),
			 -ENOENT);
	pv_error_clear(&err);
	ns_stop(&prov);
}

static void test_listen_refuses_symlink_and_rebinds(void **state)
{
	(void)state;
	struct nsproc cons;
	ns_start(&cons, "cons3", false, NULL);
	char p[512], target[256];
	/* the consumer replaced its run dir with a symlink to / */
	snprintf(p, sizeof(p), "/proc/%d/root%s/run", (int)cons.pid, cons.dir);
	assert_int_equal(symlink("/", p), 0);
	snprintf(target, sizeof(target), "%s/run/pvx-unit-evil-%d.sock", cons.dir, (int)getpid());
	struct pvx_injected inj = {0};
	struct pv_error err = PV_ERROR_INIT;
	int fd = -1;
	int rc = pvx_plumb_listen(cons.pid, target, NULL, &fd, &inj, &err);
	assert_int_equal(rc, -ELOOP);
	assert_non_null(strstr(pv_error_msg(&err), "symlink"));
	snprintf(p, sizeof(p), "/pvx-unit-evil-%d.sock", (int)getpid());
	struct stat st;
	assert_int_not_equal(lstat(p, &st), 0);
	pv_error_clear(&err);

	/* a real dir: listen, listen again over the stale socket (no EADDRINUSE) */
	snprintf(target, sizeof(target), "%s/svc/a/b.sock", cons.dir);
	assert_int_equal(pvx_plumb_listen(cons.pid, target, NULL, &fd, &inj, &err), 0);
	int fd2 = -1;
	struct pvx_injected inj2 = {0};
	assert_int_equal(pvx_plumb_listen(cons.pid, target, NULL, &fd2, &inj2, &err), 0);
	assert_int_equal(in_ns_stat(cons.pid, target, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	/* the first identity is stale now: removing it must leave the new socket alone */
	pvx_plumb_remove(&inj);
	assert_int_equal(in_ns_stat(cons.pid, target, &st), 0);
	pvx_plumb_remove(&inj2);
	assert_int_not_equal(in_ns_stat(cons.pid, target, &st), 0);
	close(fd);
	close(fd2);
	/* a non-socket at the target is never replaced */
	snprintf(p, sizeof(p), "/proc/%d/root%s/svc/a/file", (int)cons.pid, cons.dir);
	FILE *w = fopen(p, "w");
	assert_non_null(w);
	fputs("data", w);
	fclose(w);
	snprintf(target, sizeof(target), "%s/svc/a/file", cons.dir);
	assert_int_equal(pvx_plumb_listen(cons.pid, target, NULL, &fd, &inj, &err), -EEXIST);
	pv_error_clear(&err);
	ns_stop(&cons);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_mknod_and_cgroup_grant, teardown_cg),
	    cmocka_unit_test(test_provider_resolved_in_its_root),
	    cmocka_unit_test(test_listen_refuses_symlink_and_rebinds),
	};
	return cmocka_run_group_tests(tests, setup_root, NULL);
}
