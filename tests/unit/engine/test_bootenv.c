/* test_bootenv.c: the bootloader env backends (engine/bootenv.c): exact on-disk bytes, round
 * trips, grub-editenv interop, malformed files rejected by name, one rename per set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bootenv.h"

static char dir[256];

static int setup(void **st)
{
	(void)st;
	snprintf(dir, sizeof(dir), "/tmp/pv-test-bootenv.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	char b[300];
	snprintf(b, sizeof(b), "%s/boot", dir);
	return mkdir(b, 0755);
}

static int teardown(void **st)
{
	(void)st;
	char cmd[300];
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

static void put_file(const char *rel, const void *data, size_t len)
{
	FILE *f = fopen(path(rel), "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* whole file into a malloc'd buffer; *len its size */
static char *get_file(const char *rel, size_t *len)
{
	FILE *f = fopen(path(rel), "r");
	assert_non_null(f);
	char *buf = malloc(200000);
	assert_non_null(buf);
	*len = fread(buf, 1, 200000, f);
	fclose(f);
	return buf;
}

static void open_env(struct pv_bootenv *b, const char *type, bool appengine)
{
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_open(b, dir, type, appengine, &err), 0);
	pv_error_clear(&err);
}

static void want_value(const struct pv_bootenv *b, const char *key, const char *want)
{
	char v[256];
	struct pv_error err = PV_ERROR_INIT;
	int r = pv_bootenv_get(b, key, v, sizeof(v), &err);
	if (r)
		fail_msg("get %s: %d %s", key, r, pv_error_msg(&err));
	assert_string_equal(v, want);
	pv_error_clear(&err);
}

static void set2(const struct pv_bootenv *b, const char *k, const char *v)
{
	const char *kv[] = {k, v, NULL};
	struct pv_error err = PV_ERROR_INIT;
	int r = pv_bootenv_set(b, kv, &err);
	if (r)
		fail_msg("set %s=%s: %d %s", k, v, r, pv_error_msg(&err));
	pv_error_clear(&err);
}

/* get must fail with code, and the message must name the file and contain `what` */
static void expect_get_error(const struct pv_bootenv *b, int code, const char *what)
{
	char v[64];
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_get(b, "pv_rev", v, sizeof(v), &err), code);
	const char *m = pv_error_msg(&err);
	if (!strstr(m, b->path) || !strstr(m, what))
		fail_msg("message \"%s\" lacks \"%s\" or the file name", m, what);
	pv_error_clear(&err);
}

static void test_open_types(void **st)
{
	(void)st;
	struct pv_bootenv b;
	struct pv_error err = PV_ERROR_INIT;
	open_env(&b, "uboot", false);
	assert_int_equal(b.type, PV_BOOTENV_UBOOT);
	assert_string_equal(b.path, path("boot/uboot.txt"));
	open_env(&b, "uboot-pvk", true);
	assert_int_equal(b.type, PV_BOOTENV_UBOOT);
	open_env(&b, "grub", false);
	assert_int_equal(b.type, PV_BOOTENV_GRUB);
	assert_string_equal(b.path, path("boot/grubenv"));
	open_env(&b, NULL, true);
	assert_int_equal(b.type, PV_BOOTENV_APPENGINE);
	assert_string_equal(b.path, path("boot/uboot.txt"));
	open_env(&b, "", false);
	assert_int_equal(b.type, PV_BOOTENV_UBOOT);
	assert_int_equal(pv_bootenv_open(&b, dir, "rpiab", false, &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "\"rpiab\""));
	pv_error_clear(&err);
}

static void test_missing_file_is_empty(void **st)
{
	(void)st;
	struct pv_bootenv b;
	for (int t = 0; t < 3; t++) {
		open_env(&b, t == 0 ? "uboot" : t == 1 ? "grub" : NULL, t == 2);
		want_value(&b, "pv_rev", "");
		want_value(&b, "pv_try", "");
	}
}

static void test_uboot_bytes_and_roundtrip(void **st)
{
	(void)st;
	struct pv_bootenv b;
	open_env(&b, "uboot", false);
	const char *kv[] = {"pv_rev", "1", "pv_try", "locals/a", NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_set(&b, kv, &err), 0);
	size_t len;
	char *f = get_file("boot/uboot.txt", &len);
	assert_int_equal(len, 65536);
	static const char want[] = "pv_rev=1\0pv_try=locals/a\0pv_trying=\0";
	assert_memory_equal(f, want, sizeof(want)); /* sizeof includes the final \0: `\0\0` */
	for (size_t i = sizeof(want); i < len; i++)
		if (f[i])
			fail_msg("padding byte %zu is %d", i, f[i]);
	free(f);
	want_value(&b, "pv_rev", "1");
	want_value(&b, "pv_try", "locals/a");
	/* unset = `key=`, read back as "" */
	set2(&b, "pv_try", "");
	want_value(&b, "pv_try", "");
	f = get_file("boot/uboot.txt", &len);
	static const char want2[] = "pv_rev=1\0pv_try=\0pv_trying=\0";
	assert_memory_equal(f, want2, sizeof(want2));
	free(f);
}

static void test_uboot_keeps_other_keys_and_clears_trying(void **st)
{
	(void)st;
	static const char seed[] = "bootcmd=run pv\0pv_rev=0\0pv_trying=locals/a\0";
	put_file("boot/uboot.txt", seed, sizeof(seed));
	struct pv_bootenv b;
	open_env(&b, "uboot", false);
	/* writing pv_rev alone leaves pv_trying as the bootloader set it */
	set2(&b, "pv_rev", "2");
	want_value(&b, "pv_trying", "locals/a");
	want_value(&b, "bootcmd", "run pv");
	set2(&b, "pv_try", "locals/b");
	want_value(&b, "pv_trying", "");
	want_value(&b, "pv_try", "locals/b");
	want_value(&b, "bootcmd", "run pv");
	want_value(&b, "pv_rev", "2");
}

static void test_appengine_unpadded_and_shell_readable(void **st)
{
	(void)st;
	struct pv_bootenv b;
	open_env(&b, NULL, true);
	const char *kv[] = {"pv_rev", "0", "pv_try", "locals/x", NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_set(&b, kv, &err), 0);
	size_t len;
	char *f = get_file("boot/uboot.txt", &len);
	static const char want[] = "pv_rev=0\0pv_try=locals/x\0"; /* no pv_trying: not U-Boot */
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(f, want, len);
	free(f);
	/* the same pipeline pv-appengine uses */
	char cmd[4300], out[64] = "";
	snprintf(cmd, sizeof(cmd), "tr '\\000' '\\n' <'%s' | sed -n 's/^pv_try=//p' | tail -n 1",
		 b.path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	pclose(p);
	assert_string_equal(out, "locals/x\n");
	/* an env seeded by pv-appengine (`printf 'pv_rev=0\0\0'`) */
	put_file("boot/uboot.txt", "pv_rev=0\0", 10);
	want_value(&b, "pv_rev", "0");
	set2(&b, "pv_rev", "");
	f = get_file("boot/uboot.txt", &len);
	assert_int_equal(len, 9);
	assert_memory_equal(f, "pv_rev=\0", 9);
	free(f);
}

static void test_empty_env_written_as_double_nul(void **st)
{
	(void)st;
	struct pv_bootenv b;
	open_env(&b, NULL, true);
	const char *none[] = {NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_set(&b, none, &err), 0);
	size_t len;
	char *f = get_file("boot/uboot.txt", &len);
	assert_int_equal(len, 2);
	assert_memory_equal(f, "\0\0", 2);
	free(f);
	want_value(&b, "pv_rev", "");
	/* a zero-length file (created, never written) is also empty */
	put_file("boot/uboot.txt", "", 0);
	want_value(&b, "pv_rev", "");
}

static void test_duplicate_key_last_wins(void **st)
{
	(void)st;
	static const char seed[] = "pv_rev=1\0pv_try=\0pv_rev=2\0";
	put_file("boot/uboot.txt", seed, sizeof(seed));
	struct pv_bootenv b;
	open_env(&b, NULL, true);
	want_value(&b, "pv_rev", "2");
	set2(&b, "pv_try", "3");
	size_t len;
	char *f = get_file("boot/uboot.txt", &len);
	static const char want[] = "pv_rev=2\0pv_try=3\0"; /* one record per key after a write */
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(f, want, len);
	free(f);
}

static void test_uboot_malformed(void **st)
{
	(void)st;
	struct pv_bootenv b;
	open_env(&b, "uboot", false);
	put_file("boot/uboot.txt", "pv_rev=1", 8);
	expect_get_error(&b, -EINVAL, "record 1: no NUL");
	put_file("boot/uboot.txt", "pv_rev=1\0", 9); /* one NUL: the env never ends */
	expect_get_error(&b, -EINVAL, "no \\0\\0");
	put_file("boot/uboot.txt", "pv_rev=1\0garbage\0\0", 18);
	expect_get_error(&b, -EINVAL, "record 2 \"garbage\": no '='");
	put_file("boot/uboot.txt", "pv_rev=1\x01\x02\x7f\0\0", 13);
	expect_get_error(&b, -EINVAL, "record 1 \"pv_rev=1???\": binary bytes");
	put_file("boot/uboot.txt", "\x89PNG\r\n=\0\0", 9);
	expect_get_error(&b, -EINVAL, "record 1 \"?PNG?\?=\": bad key");
	char *big = malloc(70000);
	assert_non_null(big);
	memcpy(big, "pv_rev=", 7);
	memset(big + 7, 'x', 5000);
	memcpy(big + 5007, "\0\0", 2);
	put_file("boot/uboot.txt", big, 5009);
	expect_get_error(&b, -EINVAL,
			 "record 1 \"pv_rev=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\": "
			 "value of 5000 bytes");
	memset(big, 0, 70000);
	put_file("boot/uboot.txt", big, 70000);
	expect_get_error(&b, -EFBIG, "larger than 65536");
	free(big);
	/* a malformed file is never overwritten by a set */
	put_file("boot/uboot.txt", "junk", 4);
	const char *kv[] = {"pv_rev", "1", NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_set(&b, kv, &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), b.path));
	pv_error_clear(&err);
	size_t len;
	char *f = get_file("boot/uboot.txt", &len);
	assert_int_equal(len, 4);
	assert_memory_equal(f, "junk", 4);
	free(f);
	/* a directory where the file should be */
	unlink(b.path);
	assert_int_equal(mkdir(b.path, 0755), 0);
	expect_get_error(&b, -EINVAL, "not a regular file");
	rmdir(b.path);
}

static void test_bad_input(void **st)
{
	(void)st;
	struct pv_bootenv b;
	struct pv_error err = PV_ERROR_INIT;
	open_env(&b, "grub", false);
	const char *odd[] = {"pv_rev", NULL};
	assert_int_equal(pv_bootenv_set(&b, odd, &err), -EINVAL);
	const char *badkey[] = {"pv=rev", "1", NULL};
	assert_int_equal(pv_bootenv_set(&b, badkey, &err), -EINVAL);
	const char *emptykey[] = {"", "1", NULL};
	assert_int_equal(pv_bootenv_set(&b, emptykey, &err), -EINVAL);
	const char *nl[] = {"pv_rev", "1\npv_try=evil", NULL};
	assert_int_equal(pv_bootenv_set(&b, nl, &err), -EINVAL);
	assert_non_null(strstr(err.msgs[3], "pv_rev"));
	pv_error_clear(&err);
	/* nothing was created by the refused writes */
	assert_int_equal(access(b.path, F_OK), -1);
	/* a value too long for the caller's buffer */
	set2(&b, "pv_rev", "locals/a-long-name");
	char small[8];
	assert_int_equal(pv_bootenv_get(&b, "pv_rev", small, sizeof(small), &err), -ERANGE);
	assert_non_null(strstr(pv_error_msg(&err), "pv_rev"));
	assert_string_equal(small, "");
	pv_error_clear(&err);
}

static void test_grub_bytes_and_roundtrip(void **st)
{
	(void)st;
	struct pv_bootenv b;
	open_env(&b, "grub", false);
	const char *kv[] = {"pv_rev", "1", "pv_try", "locals/a", NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_set(&b, kv, &err), 0);
	size_t len;
	char *f = get_file("boot/grubenv", &len);
	assert_int_equal(len, 1024);
	const char *want = "# GRUB Environment Block\npv_rev=1\npv_try=locals/a\n";
	assert_memory_equal(f, want, strlen(want));
	for (size_t i = strlen(want); i < len; i++)
		if (f[i] != '#')
			fail_msg("padding byte %zu is %d", i, f[i]);
	free(f);
	want_value(&b, "pv_try", "locals/a");
	/* no pv_trying for GRUB, and unset removes the line */
	set2(&b, "pv_try", "");
	f = get_file("boot/grubenv", &len);
	assert_int_equal(len, 1024);
	assert_null(memmem(f, len, "pv_try", 6));
	want = "# GRUB Environment Block\npv_rev=1\n#";
	assert_memory_equal(f, want, strlen(want));
	free(f);
	want_value(&b, "pv_try", "");
	want_value(&b, "pv_rev", "1");
	/* a backslash survives the round trip (escaped on disk as GRUB does) */
	set2(&b, "note", "a\\b");
	want_value(&b, "note", "a\\b");
	f = get_file("boot/grubenv", &len);
	assert_non_null(memmem(f, len, "note=a\\\\b\n", 10));
	free(f);
}

static void test_grub_full_block_refused(void **st)
{
	(void)st;
	struct pv_bootenv b;
	open_env(&b, "grub", false);
	set2(&b, "pv_rev", "1");
	size_t len0, len1;
	char *before = get_file("boot/grubenv", &len0);
	/* header 25 + "pv_rev=1\n" 9 + "big=" 4 + value + "\n" = 1024 exactly fits */
	char v[1100];
	memset(v, 'v', sizeof(v));
	v[1024 - 25 - 9 - 4 - 1] = '\0';
	set2(&b, "big", v);
	char *full = get_file("boot/grubenv", &len1);
	assert_int_equal(len1, 1024);
	assert_int_equal(full[1023], '\n');
	free(full);
	want_value(&b, "pv_rev", "1");
	set2(&b, "big", "");
	/* one byte more is refused, the file untouched */
	v[1024 - 25 - 9 - 4 - 1] = 'v';
	v[1024 - 25 - 9 - 4] = '\0';
	const char *kv[] = {"big", v, NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_set(&b, kv, &err), -ENOSPC);
	assert_non_null(strstr(pv_error_msg(&err), b.path));
	assert_non_null(strstr(pv_error_msg(&err), "needs 1025 bytes"));
	pv_error_clear(&err);
	char *after = get_file("boot/grubenv", &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	free(before);
	free(after);
}

static void test_grub_malformed(void **st)
{
	(void)st;
	struct pv_bootenv b;
	open_env(&b, "grub", false);
	char blk[1100];
	memset(blk, '#', sizeof(blk));
	memcpy(blk, "# GRUB Environment Block\npv_rev=1\n", 34);
	put_file("boot/grubenv", blk, 1023);
	expect_get_error(&b, -EINVAL, "1023 bytes");
	put_file("boot/grubenv", blk, 1025);
	expect_get_error(&b, -EFBIG, "larger than 1024");
	memcpy(blk, "# GRUB Environment Blocx", 24);
	put_file("boot/grubenv", blk, 1024);
	expect_get_error(&b, -EINVAL, "header");
	memcpy(blk, "# GRUB Environment Block\npv_rev=1\nnoequals\n", 43);
	put_file("boot/grubenv", blk, 1024);
	expect_get_error(&b, -EINVAL, "record 3 \"noequals\": no '='");
	memcpy(blk, "# GRUB Environment Block\npv_rev=1\0", 34);
	put_file("boot/grubenv", blk, 1024);
	expect_get_error(&b, -EINVAL, "NUL byte at offset 33");
	/* a record running into the end of the block without a newline */
	memset(blk, 'x', sizeof(blk));
	memcpy(blk, "# GRUB Environment Block\npv_rev=", 32);
	put_file("boot/grubenv", blk, 1024);
	expect_get_error(&b, -EINVAL, "no newline");
}

static bool have_grub_editenv(void)
{
	return system("command -v grub-editenv >/dev/null 2>&1") == 0;
}

/* grub-editenv <env file> <args> (args are shell words) */
static void grub_editenv(const char *file, const char *args)
{
	char cmd[8400];
	snprintf(cmd, sizeof(cmd), "grub-editenv '%s' %s", file, args);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static void test_grub_editenv_interop(void **st)
{
	(void)st;
	if (!have_grub_editenv())
		skip(); /* reported as skipped: the hand-built blocks above still cover the format
			 */
	struct pv_bootenv b;
	open_env(&b, "grub", false);
	/* a block made by grub-editenv: its WARNING comment line, a backslash value */
	grub_editenv(b.path, "create");
	grub_editenv(b.path, "set pv_rev=5 saved_entry=x 'path=C:\\dir'");
	want_value(&b, "pv_rev", "5");
	want_value(&b, "saved_entry", "x");
	want_value(&b, "path", "C:\\dir");
	/* our write keeps its keys and grub-editenv reads ours */
	const char *kv[] = {"pv_try", "locals/t", "pv_rev", "6", NULL};
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_bootenv_set(&b, kv, &err), 0);
	char cmd[4300], out[512] = "";
	snprintf(cmd, sizeof(cmd), "grub-editenv '%s' list", b.path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	assert_int_equal(pclose(p), 0);
	assert_string_equal(out, "pv_rev=6\nsaved_entry=x\npath=C:\\dir\npv_try=locals/t\n");
	/* grub-editenv unsets what we wrote, we see it gone */
	grub_editenv(b.path, "unset pv_try");
	want_value(&b, "pv_try", "");
	want_value(&b, "pv_rev", "6");
}

/* Several keys in one set are one rename: watched with inotify, one IN_MOVED_TO into boot/ and
 * the file's inode changed once; no temp file is left behind. */
static void test_set_is_one_rename(void **st)
{
	(void)st;
	for (int t = 0; t < 3; t++) {
		struct pv_bootenv b;
		open_env(&b, t == 0 ? "uboot" : t == 1 ? "grub" : NULL, t == 2);
		set2(&b, "pv_rev", "0");
		struct stat s0, s1;
		assert_int_equal(stat(b.path, &s0), 0);
		int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		assert_true(in >= 0);
		assert_true(inotify_add_watch(in, path("boot"), IN_MOVED_TO | IN_CREATE) >= 0);
		const char *kv[] = {"pv_rev", "1", "pv_try", "locals/a", "extra", "e", NULL};
		struct pv_error err = PV_ERROR_INIT;
		assert_int_equal(pv_bootenv_set(&b, kv, &err), 0);
		char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t n = read(in, buf, sizeof(buf));
		assert_true(n > 0);
		int moved = 0, created = 0;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->mask & IN_MOVED_TO)
				moved++;
			if (ev->mask & IN_CREATE)
				created++;
			p += sizeof(*ev) + ev->len;
		}
		close(in);
		assert_int_equal(moved, 1);
		assert_int_equal(created, 1); /* one temp file */
		assert_int_equal(stat(b.path, &s1), 0);
		assert_true(s0.st_ino != s1.st_ino);
		want_value(&b, "pv_rev", "1");
		want_value(&b, "pv_try", "locals/a");
		want_value(&b, "extra", "e");
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", path("boot"));
		assert_int_equal(system(cmd), 0);
		unlink(b.path);
	}
}

static void test_set_creates_boot_dir(void **st)
{
	(void)st;
	char b_dir[600];
	snprintf(b_dir, sizeof(b_dir), "rm -rf '%s'", path("boot"));
	assert_int_equal(system(b_dir), 0);
	struct pv_bootenv b;
	open_env(&b, "uboot", false);
	set2(&b, "pv_rev", "0");
	want_value(&b, "pv_rev", "0");
}

/* Random bytes, random records and truncations of a valid env: every outcome is a value or an
 * error with a message, never a crash (run under ASan by scripts/test). */
static void test_junk_never_crashes(void **st)
{
	(void)st;
	unsigned seed = 12345;
	char *buf = malloc(70000);
	assert_non_null(buf);
	for (int t = 0; t < 3; t++) {
		struct pv_bootenv b;
		open_env(&b, t == 0 ? "uboot" : t == 1 ? "grub" : NULL, t == 2);
		for (int i = 0; i < 400; i++) {
			size_t len = t == 1 && i % 2 ? 1024 : (size_t)(rand_r(&seed) % 2048);
			int mode = i % 4;
			for (size_t j = 0; j < len; j++) {
				int r = rand_r(&seed);
				/* mode 0: any byte; others: mostly env-like bytes */
				buf[j] = mode == 0     ? (char)r
					 : r % 7 == 0  ? '\0'
					 : r % 11 == 0 ? '='
					 : r % 13 == 0 ? '\n'
						       : (char)('a' + r % 26);
			}
			if (t == 1 && mode == 3 && len >= 25)
				memcpy(buf, "# GRUB Environment Block\n", 25);
			put_file(t == 1 ? "boot/grubenv" : "boot/uboot.txt", buf, len);
			char v[64];
			struct pv_error err = PV_ERROR_INIT;
			int r = pv_bootenv_get(&b, "pv_rev", v, sizeof(v), &err);
			if (r == 0)
				assert_true(strlen(v) < sizeof(v));
			else
				assert_non_null(strstr(pv_error_msg(&err), b.path));
			pv_error_clear(&err);
		}
	}
	free(buf);
}

/* kill -9 of a writer at random moments: the env file is always whole, old or new, and no
 * stray state is ever seen (the temp file is never the env). */
static void test_kill_during_set(void **st)
{
	(void)st;
	for (int t = 0; t < 3; t++) {
		struct pv_bootenv b;
		open_env(&b, t == 0 ? "uboot" : t == 1 ? "grub" : NULL, t == 2);
		unlink(b.path); /* uboot and appengine share the file name */
		set2(&b, "pv_rev", "0");
		for (int i = 0; i < 20; i++) {
			pid_t pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				/* alternates two complete states, each with both keys */
				for (unsigned n = 0;; n++) {
					const char *kv[] = {"pv_rev", n % 2 ? "1" : "2", "pv_try",
							    n % 2 ? "locals/one" : "locals/two",
							    NULL};
					if (pv_bootenv_set(&b, kv, NULL) < 0)
						_exit(1);
				}
			}
			usleep(2000 + (useconds_t)(i * 700));
			kill(pid, SIGKILL);
			int status;
			waitpid(pid, &status, 0);
			assert_true(WIFSIGNALED(status));
			char rev[16], try[32];
			struct pv_error err = PV_ERROR_INIT;
			if (pv_bootenv_get(&b, "pv_rev", rev, sizeof(rev), &err) < 0 ||
			    pv_bootenv_get(&b, "pv_try", try, sizeof(try), &err) < 0)
				fail_msg("after kill %d: %s", i, pv_error_msg(&err));
			/* the first writes may not have happened yet: then the seed state */
			if (!((!strcmp(rev, "1") && !strcmp(try, "locals/one")) ||
			      (!strcmp(rev, "2") && !strcmp(try, "locals/two")) ||
			      (!strcmp(rev, "0") && !strcmp(try, ""))))
				fail_msg("after kill %d: torn env pv_rev=%s pv_try=%s", i, rev,
					 try);
		}
		/* temp files of killed writers may remain: never under the env's own name */
		struct stat sb;
		assert_int_equal(stat(b.path, &sb), 0);
		assert_true(S_ISREG(sb.st_mode));
		char cmd[4300];
		snprintf(cmd, sizeof(cmd), "rm -f '%s'.tmp.*", b.path);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file_is_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uboot_bytes_and_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uboot_keeps_other_keys_and_clears_trying, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_appengine_unpadded_and_shell_readable, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_empty_env_written_as_double_nul, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_key_last_wins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uboot_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_grub_bytes_and_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_grub_full_block_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_grub_malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_grub_editenv_interop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_is_one_rename, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_set_creates_boot_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_junk_never_crashes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill_during_set, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
