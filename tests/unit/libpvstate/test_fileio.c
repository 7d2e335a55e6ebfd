/* test_fileio.c: atomic writes (replace, failure keeps the old file, no temp left), reads,
 * mkdir -p, sha256 vectors and streaming, remove_tree's symlink and mount boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pvstate/fileio.h"

static char dir[256];

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/pv-test-fileio.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **st)
{
	(void)st;
	char cmd[300];
	/* umount first in case a mount test failed midway */
	snprintf(cmd, sizeof(cmd), "%s/t/mnt", dir);
	umount2(cmd, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "%s/ro", dir);
	umount2(cmd, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *path(const char *rel)
{
	static char buf[4][512];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, rel);
	return buf[i];
}

static size_t count_entries(const char *d)
{
	DIR *dd = opendir(d);
	size_t n = 0;
	struct dirent *e;
	assert_non_null(dd);
	while ((e = readdir(dd)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(dd);
	return n;
}

static void expect_content(const char *p, const char *want)
{
	char *got = NULL;
	size_t len = 0;
	assert_int_equal(pv_file_read_all(p, 1 << 20, &got, &len, NULL), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal(got, want);
	free(got);
}

static void test_atomic_replaces(void **st)
{
	(void)st;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_file_write_atomic(path("a"), "old", 3, 0640, &err), 0);
	expect_content(path("a"), "old");
	assert_int_equal(pv_file_write_atomic(path("a"), "new content", 11, 0600, &err), 0);
	expect_content(path("a"), "new content");
	struct stat s;
	assert_int_equal(stat(path("a"), &s), 0);
	assert_int_equal(s.st_mode & 0777, 0600);
	assert_int_equal(count_entries(dir), 1); /* no temp left behind */
	assert_int_equal(err.count, 0);
}

static void test_atomic_failure_keeps_old(void **st)
{
	(void)st;
	struct pv_error err = PV_ERROR_INIT;
	/* the target is a directory: refused, directory untouched, no temp */
	assert_int_equal(mkdir(path("d"), 0755), 0);
	assert_int_equal(pv_file_write_atomic(path("d"), "x", 1, 0644, &err), -EISDIR);
	assert_non_null(strstr(pv_error_msg(&err), path("d")));
	pv_error_clear(&err);
	assert_int_equal(count_entries(path("d")), 0);

	/* the parent directory does not exist: error names the path */
	assert_true(pv_file_write_atomic(path("nodir/f"), "x", 1, 0644, &err) < 0);
	assert_non_null(strstr(pv_error_msg(&err), "nodir/f"));
	pv_error_clear(&err);

	/* rename fails (target is a non-empty directory was handled; here: a read-only dir via a
	 * bind mount, which binds even root) */
	assert_int_equal(mkdir(path("ro"), 0755), 0);
	assert_int_equal(pv_file_write_atomic(path("ro/f"), "old", 3, 0644, &err), 0);
	if (mount(path("ro"), path("ro"), NULL, MS_BIND, NULL) == 0) {
		assert_int_equal(
		    mount(NULL, path("ro"), NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL), 0);
		int r = pv_file_write_atomic(path("ro/f"), "new", 3, 0644, &err);
		umount2(path("ro"), MNT_DETACH);
		assert_int_equal(r, -EROFS);
		assert_non_null(strstr(pv_error_msg(&err), "ro/f"));
		pv_error_clear(&err);
		expect_content(path("ro/f"), "old");
		assert_int_equal(count_entries(path("ro")), 1);
	} else {
		/* not root: a mode-0555 directory does the same for a non-root user */
		assert_int_not_equal(geteuid(), 0);
		chmod(path("ro"), 0555);
		assert_true(pv_file_write_atomic(path("ro/f"), "new", 3, 0644, &err) < 0);
		chmod(path("ro"), 0755);
		pv_error_clear(&err);
		expect_content(path("ro/f"), "old");
	}
}

static void test_read_all_limits(void **st)
{
	(void)st;
	struct pv_error err = PV_ERROR_INIT;
	char big[10000];
	memset(big, 'x', sizeof(big));
	assert_int_equal(pv_file_write_atomic(path("big"), big, sizeof(big), 0644, NULL), 0);
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(pv_file_read_all(path("big"), 9999, &out, &len, &err), -EFBIG);
	assert_null(out);
	assert_non_null(strstr(pv_error_msg(&err), "big"));
	pv_error_clear(&err);
	assert_int_equal(pv_file_read_all(path("big"), 10000, &out, &len, &err), 0);
	assert_int_equal(len, 10000);
	assert_int_equal(out[10000], '\0');
	free(out);
	assert_int_equal(pv_file_read_all(path("missing"), 10, &out, &len, &err), -ENOENT);
	pv_error_clear(&err);
	/* empty file */
	assert_int_equal(pv_file_write_atomic(path("empty"), "", 0, 0644, NULL), 0);
	assert_int_equal(pv_file_read_all(path("empty"), 10, &out, &len, NULL), 0);
	assert_int_equal(len, 0);
	assert_string_equal(out, "");
	free(out);
}

static void test_mkdir_p(void **st)
{
	(void)st;
	struct stat s;
	assert_int_equal(pv_mkdir_p(path("x/y/z"), 0755), 0);
	assert_int_equal(stat(path("x/y/z"), &s), 0);
	assert_true(S_ISDIR(s.st_mode));
	assert_int_equal(pv_mkdir_p(path("x/y/z"), 0755), 0); /* exists: fine */
	assert_int_equal(pv_mkdir_p(path("x/y/z/"), 0755), 0);
	assert_int_equal(pv_file_write_atomic(path("x/file"), "f", 1, 0644, NULL), 0);
	assert_int_equal(pv_mkdir_p(path("x/file"), 0755), -ENOTDIR);
	assert_int_equal(pv_mkdir_p(path("x/file/sub"), 0755), -ENOTDIR);
	assert_int_equal(pv_mkdir_p("", 0755), -EINVAL);
}

static void test_sha256_vectors(void **st)
{
	(void)st;
	char hex[65];
	assert_int_equal(pv_sha256_buf("", 0, hex), 0);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(pv_sha256_buf("abc", 3, hex), 0);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *l = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	assert_int_equal(pv_sha256_buf(l, strlen(l), hex), 0);
	assert_string_equal(hex,
			    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

	/* one million 'a': streamed in odd chunks equals the known vector and the one-shot */
	size_t n = 1000000;
	char *a = malloc(n);
	assert_non_null(a);
	memset(a, 'a', n);
	struct pv_sha256_ctx *c = pv_sha256_new();
	assert_non_null(c);
	for (size_t off = 0; off < n;) {
		size_t chunk = (off % 7919) + 1;
		if (chunk > n - off)
			chunk = n - off;
		assert_int_equal(pv_sha256_update(c, a + off, chunk), 0);
		off += chunk;
	}
	char streamed[65], oneshot[65];
	assert_int_equal(pv_sha256_final(c, streamed), 0);
	assert_int_equal(pv_sha256_buf(a, n, oneshot), 0);
	assert_string_equal(streamed, oneshot);
	assert_string_equal(streamed,
			    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

	/* file and fd agree */
	assert_int_equal(pv_file_write_atomic(path("m"), a, n, 0644, NULL), 0);
	char fh[65];
	assert_int_equal(pv_sha256_file(path("m"), fh, NULL), 0);
	assert_string_equal(fh, oneshot);
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_sha256_file(path("nope"), fh, &err), -ENOENT);
	assert_non_null(strstr(pv_error_msg(&err), "nope"));
	pv_error_clear(&err);
	pv_sha256_abort(pv_sha256_new()); /* abort frees without a result */
	free(a);
}

static void test_remove_tree_symlink(void **st)
{
	(void)st;
	/* outside/keep must survive removal of t, which links to outside in several ways */
	assert_int_equal(pv_mkdir_p(path("outside/sub"), 0755), 0);
	assert_int_equal(pv_file_write_atomic(path("outside/keep"), "k", 1, 0644, NULL), 0);
	assert_int_equal(pv_file_write_atomic(path("outside/sub/keep2"), "k", 1, 0644, NULL), 0);
	assert_int_equal(pv_mkdir_p(path("t/a/b"), 0755), 0);
	assert_int_equal(pv_file_write_atomic(path("t/a/b/f"), "x", 1, 0644, NULL), 0);
	assert_int_equal(symlink(path("outside"), path("t/link-dir")), 0);
	assert_int_equal(symlink(path("outside/keep"), path("t/a/link-file")), 0);
	assert_int_equal(symlink("../../outside", path("t/a/rel")), 0);
	assert_int_equal(pv_remove_tree(path("t")), 0);
	struct stat s;
	assert_int_equal(lstat(path("t"), &s), -1);
	assert_int_equal(stat(path("outside/keep"), &s), 0);
	assert_int_equal(stat(path("outside/sub/keep2"), &s), 0);

	/* a symlink given as the root is removed itself, its target kept */
	assert_int_equal(symlink(path("outside"), path("rootlink")), 0);
	assert_int_equal(pv_remove_tree(path("rootlink")), 0);
	assert_int_equal(lstat(path("rootlink"), &s), -1);
	assert_int_equal(stat(path("outside/sub/keep2"), &s), 0);
	/* a missing path is already removed */
	assert_int_equal(pv_remove_tree(path("never")), 0);
}

static void test_remove_tree_mount(void **st)
{
	(void)st;
	assert_int_equal(pv_mkdir_p(path("t/mnt"), 0755), 0);
	assert_int_equal(pv_file_write_atomic(path("t/other"), "o", 1, 0644, NULL), 0);
	if (mount("pvtest", path("t/mnt"), "tmpfs", 0, "size=1m") < 0) {
		/* only root can mount: without it the boundary cannot be built; say so */
		assert_int_not_equal(geteuid(), 0);
		print_message("not root: mount boundary not exercised\n");
		return;
	}
	assert_int_equal(pv_file_write_atomic(path("t/mnt/inside"), "i", 1, 0644, NULL), 0);
	assert_int_equal(pv_remove_tree(path("t")), -EBUSY);
	struct stat s;
	assert_int_equal(stat(path("t/mnt/inside"), &s), 0); /* other mount untouched */
	assert_int_equal(lstat(path("t/other"), &s), -1);    /* own files removed */
	assert_int_equal(umount2(path("t/mnt"), MNT_DETACH), 0);
	assert_int_equal(pv_remove_tree(path("t")), 0);
	assert_int_equal(lstat(path("t"), &s), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_atomic_replaces, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_atomic_failure_keeps_old, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_all_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sha256_vectors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_tree_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_tree_mount, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
