/* pvtx.c: local pvtx transactions: begin/add/remove/show/abort/commit/deploy of revision states
 * against an object dir, keeping every JSON value's bytes exactly as they came in. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pvstate/error.h"
#include "pvstate/fileio.h"
#include "pvstate/jsondoc.h"
#include "pvstate/state.h"

/* A pvrexport `json` is a fragment (no #spec), not a whole valid state: pvtx edits it as a
 * pv_jsondoc (libpvstate), every value kept as its exact text. */

#define MAX_JSON (64u * 1024 * 1024)

struct tx {
	char dir[PATH_MAX];
	char status[16]; /* ACTIVE, ABORTED, COMMITED, DEPLOYED, or "" */
	char objdir[PATH_MAX];
};

static bool has_prefix(const char *key, const void *arg)
{
	return !strncmp(key, arg, strlen(arg));
}

/* A part is its top-level name: "<part>", "<part>/...", "_sigs/<part>.json", "_config/<part>/". */
static bool in_part(const char *key, const void *arg)
{
	const char *part = arg;
	size_t n = strlen(part);
	char buf[PATH_MAX];
	if (!strncmp(key, part, n) && (key[n] == '\0' || key[n] == '/'))
		return true;
	snprintf(buf, sizeof(buf), "_sigs/%s.json", part);
	if (!strcmp(key, buf))
		return true;
	snprintf(buf, sizeof(buf), "_config/%s/", part);
	return !strncmp(key, buf, strlen(buf));
}

/* ---- transaction dir ---- */

static int tx_path(const struct tx *t, const char *name, char *out, size_t n)
{
	return snprintf(out, n, "%s/%s", t->dir, name) >= (int)n ? -ENAMETOOLONG : 0;
}

static void tx_load(struct tx *t)
{
	const char *env = getenv("PVTXDIR");
	char p[PATH_MAX + 16], line[PATH_MAX + 16];
	snprintf(t->dir, sizeof(t->dir), "%s", env && *env ? env : "/var/cache/pvtx");
	t->status[0] = t->objdir[0] = '\0';
	tx_path(t, "status", p, sizeof(p));
	FILE *f = fopen(p, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "status=", 7))
			snprintf(t->status, sizeof(t->status), "%.15s", line + 7);
		else if (!strncmp(line, "objdir=", 7))
			snprintf(t->objdir, sizeof(t->objdir), "%.4095s", line + 7);
	}
	fclose(f);
}

static int tx_save(struct tx *t, const char *status, struct pv_error *err)
{
	char p[PATH_MAX + 16], buf[PATH_MAX + 64];
	snprintf(t->status, sizeof(t->status), "%s", status);
	int n = snprintf(buf, sizeof(buf), "status=%s\nobjdir=%s\n", t->status, t->objdir);
	if (pv_mkdir_p(t->dir, 0755) < 0)
		return pv_error_set(err, -errno, "%s: %s", t->dir, strerror(errno));
	tx_path(t, "status", p, sizeof(p));
	return pv_file_write_atomic(p, buf, (size_t)n, 0644, err);
}

static int tx_read_state(struct tx *t, struct pv_jsondoc *d, struct pv_error *err)
{
	char p[PATH_MAX + 16], *text;
	size_t len;
	int rc;
	if (strcmp(t->status, "ACTIVE"))
		return pv_error_set(err, -EINVAL, "no active transaction in %s (pvtx begin first)",
				    t->dir);
	tx_path(t, "current.json", p, sizeof(p));
	rc = pv_file_read_all(p, MAX_JSON, &text, &len, err);
	if (rc < 0)
		return rc;
	rc = pv_jsondoc_parse(text, len, p, d, err);
	free(text);
	return rc;
}

static int tx_write_state(struct tx *t, struct pv_jsondoc *d, struct pv_error *err)
{
	char p[PATH_MAX + 16];
	char *text = pv_jsondoc_emit(d);
	if (!text)
		return pv_error_set(err, -ENOMEM, "out of memory");
	tx_path(t, "current.json", p, sizeof(p));
	int rc = pv_file_write_atomic(p, text, strlen(text), 0644, err);
	free(text);
	return rc;
}

/* ---- helpers ---- */

static bool is_sha(const char *raw, char sha[65])
{
	size_t n = strlen(raw);
	if (n != 66 || raw[0] != '"' || raw[65] != '"' || !pv_is_sha256_hex(raw + 1, 64))
		return false;
	memcpy(sha, raw + 1, 64);
	sha[64] = '\0';
	return true;
}

/* Keys become paths: refuse anything that could leave the revision dir. */
static bool key_safe(const char *k)
{
	if (!*k || k[0] == '/' || strstr(k, "//"))
		return false;
	for (const char *s = k; s; s = strchr(s, '/')) {
		if (*s == '/')
			s++;
		if (!strncmp(s, "..", 2) && (s[2] == '/' || s[2] == '\0'))
			return false;
		if (s[0] == '.' && (s[1] == '/' || s[1] == '\0'))
			return false;
	}
	return true;
}

static int copy_file(const char *src, const char *dst, struct pv_error *err)
{
	char *data;
	size_t len;
	int rc = pv_file_read_all(src, SIZE_MAX / 2, &data, &len, err);
	if (rc < 0)
		return rc;
	rc = pv_file_write_atomic(dst, data, len, 0644, err);
	free(data);
	return rc;
}

static int run_tar(const char *file, const char *dir)
{
	pid_t pid = fork();
	int st;
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("tar", "tar", "-xf", file, "-C", dir, "--no-same-owner", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EINVAL;
}

/* Moves every objects/<sha> of an unpacked package into the object dir, checking its hash. */
/* syncfs on the file system holding path: every entry and data block written under it */
static int sync_tree(const char *path, struct pv_error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return pv_error_set(err, -e, "sync %s: %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

static int import_objects(const char *pkgdir, const char *objdir, struct pv_error *err)
{
	char od[PATH_MAX + 32], src[PATH_MAX + 320], dst[PATH_MAX + 300], sha[65];
	snprintf(od, sizeof(od), "%s/objects", pkgdir);
	DIR *dir = opendir(od);
	struct dirent *de;
	int rc = 0;
	if (!dir)
		return errno == ENOENT ? 0
				       : pv_error_set(err, -errno, "%s: %s", od, strerror(errno));
	if (pv_mkdir_p(objdir, 0755) < 0) {
		closedir(dir);
		return pv_error_set(err, -errno, "%s: %s", objdir, strerror(errno));
	}
	while (rc == 0 && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(src, sizeof(src), "%s/%s", od, de->d_name);
		if (!pv_is_sha256_hex(de->d_name, strlen(de->d_name)))
			rc = pv_error_set(err, -EINVAL, "package object %s: not a sha256 name",
					  de->d_name);
		else if ((rc = pv_sha256_file(src, sha, err)) < 0)
			break;
		else if (strcmp(sha, de->d_name))
			rc = pv_error_set(err, -EINVAL, "package object %s: content hashes to %s",
					  de->d_name, sha);
		if (rc < 0)
			break;
		snprintf(dst, sizeof(dst), "%s/%s", objdir, de->d_name);
		if (access(dst, F_OK) == 0)
			continue;
		if (rename(src, dst) < 0)
			rc = copy_file(src, dst, err);
	}
	closedir(dir);
	/* renamed objects keep whatever the package writer left unsynced */
	if (rc == 0)
		rc = sync_tree(objdir, err);
	return rc;
}

static bool is_tar(const char *path)
{
	unsigned char b[512];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof(b)) : -1;
	if (fd >= 0)
		close(fd);
	if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		return true;
	if (n >= 3 && !memcmp(b, "BZh", 3))
		return true;
	return n >= 262 && !memcmp(b + 257, "ustar", 5);
}

static bool tar_name(const char *path)
{
	static const char *const ext[] = {".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tbz2"};
	size_t n = strlen(path);
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t e = strlen(ext[i]);
		if (n > e && !strcmp(path + n - e, ext[i]))
			return true;
	}
	return false;
}

/* ---- commands ---- */

static int cmd_begin(struct tx *t, int argc, char **argv, struct pv_error *err)
{
	char p[PATH_MAX + 16], *text = NULL;
	size_t len = 0;
	int rc;
	struct stat st;
	struct pv_jsondoc d = {0};
	if (argc < 1)
		return pv_error_set(err, -EINVAL, "usage: pvtx begin <empty|file|dir> <objdir>");
	if (argc < 2)
		return pv_error_set(err, -ENOTSUP,
				    "begin without an object dir needs pv-ctrl (remote mode), "
				    "which this pvtx does not support");
	if (!strcmp(t->status, "ACTIVE"))
		return pv_error_set(err, -EBUSY, "a transaction is active in %s (pvtx abort first)",
				    t->dir);
	if (!strcmp(argv[0], "empty")) {
		text = strdup("{\"#spec\":\"" PV_SPEC_SYSTEM1 "\"}");
		len = text ? strlen(text) : 0;
	} else if (!strcmp(argv[0], "current")) {
		return pv_error_set(err, -ENOTSUP, "begin current needs pv-ctrl (remote mode)");
	} else {
		snprintf(p, sizeof(p), "%s", argv[0]);
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			snprintf(p, sizeof(p), "%s/json", argv[0]);
			if (access(p, F_OK) < 0)
				snprintf(p, sizeof(p), "%s/.pvr/json", argv[0]);
		}
		if ((rc = pv_file_read_all(p, MAX_JSON, &text, &len, err)) < 0)
			return rc;
	}
	if (!text)
		return -ENOMEM;
	rc = pv_jsondoc_parse(text, len, argv[0], &d, err);
	free(text);
	if (rc == 0) {
		if (!realpath(argv[1], t->objdir)) {
			if (pv_mkdir_p(argv[1], 0755) < 0 || !realpath(argv[1], t->objdir))
				rc = pv_error_set(err, -errno, "object dir %s: %s", argv[1],
						  strerror(errno));
		}
	}
	if (rc == 0 && (rc = tx_save(t, "ACTIVE", err)) == 0)
		rc = tx_write_state(t, &d, err);
	pv_jsondoc_free(&d);
	return rc;
}

static int cmd_add(struct tx *t, const char *file, struct pv_error *err)
{
	struct pv_jsondoc cur = {0}, pkg = {0};
	char tmpl[] = "/tmp/pvtx-add.XXXXXX", path[PATH_MAX + 64], *text = NULL;
	const char *src = file;
	bool tmpdir = false;
	size_t len;
	int rc = tx_read_state(t, &cur, err);
	if (rc < 0)
		return rc;
	if (!strcmp(file, "-")) {
		/* stdin: spool to a file so tar can detect the compression */
		if (!mkdtemp(tmpl)) {
			rc = pv_error_set(err, -errno, "mkdtemp: %s", strerror(errno));
			goto out;
		}
		tmpdir = true;
		snprintf(path, sizeof(path), "%s/stdin", tmpl);
		FILE *o = fopen(path, "we");
		char buf[65536];
		size_t n;
		while (o && (n = fread(buf, 1, sizeof(buf), stdin)) > 0)
			fwrite(buf, 1, n, o);
		if (!o || fclose(o) != 0) {
			rc = pv_error_set(err, -EIO, "reading stdin failed");
			goto out;
		}
		src = path;
	}
	if (is_tar(src)) {
		char pkgdir[PATH_MAX + 16];
		if (!tmpdir && !mkdtemp(tmpl)) {
			rc = pv_error_set(err, -errno, "mkdtemp: %s", strerror(errno));
			goto out;
		}
		tmpdir = true;
		snprintf(pkgdir, sizeof(pkgdir), "%s/pkg", tmpl);
		mkdir(pkgdir, 0755);
		if (run_tar(src, pkgdir) < 0) {
			rc = pv_error_set(err, -EINVAL, "%s: cannot unpack", file);
			goto out;
		}
		if ((rc = import_objects(pkgdir, t->objdir, err)) < 0)
			goto out;
		snprintf(path, sizeof(path), "%s/json", pkgdir);
		rc = pv_file_read_all(path, MAX_JSON, &text, &len, err);
		if (rc < 0) {
			pv_error_set(err, rc, "%s: package has no json", file);
			goto out;
		}
	} else if (tar_name(file)) {
		rc = pv_error_set(err, -EINVAL,
				  "%s: named like a package but not one (no gzip, bzip2 or tar "
				  "header)",
				  file);
		goto out;
	} else if ((rc = pv_file_read_all(src, MAX_JSON, &text, &len, err)) < 0) {
		goto out;
	}
	if ((rc = pv_jsondoc_parse(text, len, file, &pkg, err)) < 0)
		goto out;
	/* upstream's prefix rule: a package key replaces every key it is a prefix of; a signed
	 * part (_sigs/<part>.json) replaces the whole part */
	for (size_t i = 0; i < pkg.n; i++) {
		const char *k = pkg.m[i].key;
		if (!strcmp(k, "#spec"))
			continue;
		if (!key_safe(k)) {
			rc = pv_error_set(err, -EINVAL, "%s: key \"%s\" is not a safe path", file,
					  k);
			goto out;
		}
		pv_jsondoc_remove_if(&cur, has_prefix, k);
		if (!strncmp(k, "_sigs/", 6) && strlen(k) > 11 &&
		    !strcmp(k + strlen(k) - 5, ".json")) {
			char part[PATH_MAX];
			snprintf(part, sizeof(part), "%.*s", (int)(strlen(k) - 11), k + 6);
			pv_jsondoc_remove_if(&cur, in_part, part);
		}
	}
	for (size_t i = 0; i < pkg.n; i++) {
		if (!strcmp(pkg.m[i].key, "#spec"))
			continue;
		if ((rc = pv_jsondoc_take(&cur, &pkg.m[i])) < 0)
			goto out;
	}
	rc = tx_write_state(t, &cur, err);
out:
	free(text);
	pv_jsondoc_free(&cur);
	pv_jsondoc_free(&pkg);
	if (tmpdir)
		pv_remove_tree(tmpl);
	return rc;
}

static int cmd_remove(struct tx *t, const char *part, struct pv_error *err)
{
	struct pv_jsondoc cur = {0};
	int rc = tx_read_state(t, &cur, err);
	if (rc == 0) {
		size_t before = cur.n;
		pv_jsondoc_remove_if(&cur, in_part, part);
		if (cur.n == before)
			rc = pv_error_set(err, -ENOENT, "part \"%s\" is not in the state", part);
		else
			rc = tx_write_state(t, &cur, err);
	}
	pv_jsondoc_free(&cur);
	return rc;
}

static int link_or_copy(const char *src, const char *dst, bool copy, struct pv_error *err)
{
	if (!copy && link(src, dst) == 0)
		return 0;
	if (!copy && errno != EXDEV)
		return pv_error_set(err, -errno, "link %s -> %s: %s", src, dst, strerror(errno));
	return copy_file(src, dst, err);
}

/* Writes the revision into <dir>.tmp, then swaps it in: old dir -> <dir>.bak -> removed. */
static int deploy(struct tx *t, const char *dir, struct pv_error *err)
{
	struct pv_jsondoc cur = {0};
	char tmp[PATH_MAX], bak[PATH_MAX], p[PATH_MAX * 2], src[PATH_MAX + 80], sha[65];
	char *text = NULL;
	int rc = tx_read_state(t, &cur, err);
	if (rc < 0)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.pvtx-tmp", dir);
	snprintf(bak, sizeof(bak), "%s.bak", dir);
	pv_remove_tree(tmp);
	snprintf(p, sizeof(p), "%s/.pvr", tmp);
	if (pv_mkdir_p(p, 0755) < 0) {
		rc = pv_error_set(err, -errno, "%s: %s", p, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < cur.n && rc == 0; i++) {
		const char *k = cur.m[i].key, *raw = cur.m[i].raw;
		size_t kl = strlen(k);
		if (!strcmp(k, "#spec"))
			continue;
		if (!key_safe(k)) {
			rc = pv_error_set(err, -EINVAL, "state key \"%s\" is not a safe path", k);
			break;
		}
		snprintf(p, sizeof(p), "%s/%s", tmp, k);
		char *slash = strrchr(p, '/');
		*slash = '\0';
		if (pv_mkdir_p(p, 0755) < 0) {
			rc = pv_error_set(err, -errno, "%s: %s", p, strerror(errno));
			break;
		}
		*slash = '/';
		if (is_sha(raw, sha) && !(kl > 5 && !strcmp(k + kl - 5, ".json"))) {
			snprintf(src, sizeof(src), "%s/%s", t->objdir, sha);
			if (access(src, F_OK) < 0) {
				rc = pv_error_set(err, -ENOENT, "%s: object %s missing from %s", k,
						  sha, t->objdir);
				break;
			}
			/* .bind files are copied: a bind-mounted file must not alias the object */
			rc = link_or_copy(src, p, kl > 5 && !strcmp(k + kl - 5, ".bind"), err);
		} else {
			rc = pv_file_write_atomic(p, raw, strlen(raw), 0644, err);
		}
	}
	if (rc < 0)
		goto out;
	if (!(text = pv_jsondoc_emit(&cur))) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(p, sizeof(p), "%s/.pvr/json", tmp);
	if ((rc = pv_file_write_atomic(p, text, strlen(text), 0644, err)) < 0)
		goto out;
	struct pv_jsondoc cfg = {0};
	char *cfgs = pv_jsondoc_add_string(&cfg, "ObjectsDir", t->objdir) == 0
			 ? pv_jsondoc_emit(&cfg)
			 : NULL;
	pv_jsondoc_free(&cfg);
	snprintf(p, sizeof(p), "%s/.pvr/config", tmp);
	rc = cfgs ? pv_file_write_atomic(p, cfgs, strlen(cfgs), 0644, err) : -ENOMEM;
	free(cfgs);
	if (rc < 0)
		goto out;
	/* the new tree's hard links and directories must be on disk before it becomes the
	 * trail: one syncfs covers every entry the deploy made */
	if ((rc = sync_tree(tmp, err)) < 0)
		goto out;
	/* one atomic step from the old trail to the new one: a crash leaves either whole, never
	 * no trail at all (two renames through <dir>.bak had a window with neither) */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
		pv_remove_tree(tmp); /* now the old trail */
	} else if (errno == ENOENT && rename(tmp, dir) == 0) {
		/* first deploy: nothing to exchange with */
	} else {
		rc = pv_error_set(err, -errno, "rename %s -> %s: %s", tmp, dir, strerror(errno));
		goto out;
	}
	pv_remove_tree(bak); /* left by an older pvtx */
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *sl = strrchr(parent, '/');
	if (sl && sl != parent) {
		*sl = '\0';
		pv_fsync_dir(parent);
	}
out:
	if (rc < 0)
		pv_remove_tree(tmp);
	free(text);
	pv_jsondoc_free(&cur);
	return rc;
}

static int cmd_deploy(struct tx *t, const char *dir, struct pv_error *err)
{
	int rc = deploy(t, dir, err);
	return rc < 0 ? rc : tx_save(t, "DEPLOYED", err);
}

/* Local commit: what pv-ctrl's PUT /steps/<rev> does, done straight into the storage that owns
 * the object dir (<storage>/objects): deploy to <storage>/trails/<rev>, print the rev. */
static int cmd_commit(struct tx *t, const char *name, struct pv_error *err)
{
	char rev[256], storage[PATH_MAX], dir[PATH_MAX + 300], text_sha[65];
	struct pv_jsondoc cur = {0};
	int rc = tx_read_state(t, &cur, err);
	if (rc < 0)
		return rc;
	char *text = pv_jsondoc_emit(&cur);
	pv_jsondoc_free(&cur);
	if (!text)
		return -ENOMEM;
	pv_sha256_buf(text, strlen(text), text_sha);
	free(text);
	if (name) {
		if (strncmp(name, "locals/", 7) || !key_safe(name) || strchr(name + 7, '/'))
			return pv_error_set(err, -EINVAL,
					    "commit name \"%s\" must be locals/<name>", name);
		snprintf(rev, sizeof(rev), "%s", name);
	} else {
		srand((unsigned)time(NULL) ^ (unsigned)getpid());
		snprintf(rev, sizeof(rev), "locals/pvtx-%lld-%.8s-%04x", (long long)time(NULL),
			 text_sha, rand() & 0xffff);
	}
	snprintf(storage, sizeof(storage), "%s", t->objdir);
	char *sl = strrchr(storage, '/');
	if (!sl || strcmp(sl, "/objects"))
		return pv_error_set(err, -EINVAL,
				    "local commit needs the object dir to be <storage>/objects, "
				    "not %s",
				    t->objdir);
	*sl = '\0';
	snprintf(dir, sizeof(dir), "%s/trails/%s", storage, rev);
	snprintf(storage + strlen(storage), sizeof(storage) - strlen(storage), "/trails/locals");
	pv_mkdir_p(storage, 0755);
	if ((rc = deploy(t, dir, err)) < 0)
		return rc;
	printf("%s\n", rev);
	return tx_save(t, "COMMITED", err);
}

static int cmd_show(struct tx *t, struct pv_error *err)
{
	char p[PATH_MAX + 16], *text;
	size_t len;
	int rc;
	if (strcmp(t->status, "ACTIVE"))
		return pv_error_set(err, -EINVAL, "no active transaction in %s", t->dir);
	tx_path(t, "current.json", p, sizeof(p));
	if ((rc = pv_file_read_all(p, MAX_JSON, &text, &len, err)) < 0)
		return rc;
	fwrite(text, 1, len, stdout);
	putchar('\n');
	free(text);
	return 0;
}

static int cmd_abort(struct tx *t, struct pv_error *err)
{
	char p[PATH_MAX + 16];
	tx_path(t, "current.json", p, sizeof(p));
	unlink(p);
	if (access(t->dir, F_OK) < 0)
		return 0;
	return tx_save(t, "ABORTED", err);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: pvtx begin <empty|state.json|dir> <objdir>\n"
		   "       pvtx add <file.json|pkg.tar[.gz|.bz2]|->\n"
		   "       pvtx remove <part>\n"
		   "       pvtx show | abort\n"
		   "       pvtx commit [locals/<name>]   (deploys into <objdir>/../trails/<rev>)\n"
		   "       pvtx deploy <dir>\n"
		   "env PVTXDIR: transaction dir (default /var/cache/pvtx)\n");
}

int main(int argc, char **argv)
{
	struct tx t;
	struct pv_error err;
	int rc;
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	pv_error_init(&err);
	tx_load(&t);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	} else if (!strcmp(cmd, "begin")) {
		rc = cmd_begin(&t, argc - 2, argv + 2, &err);
	} else if (!strcmp(cmd, "add") && argc == 3) {
		rc = cmd_add(&t, argv[2], &err);
	} else if (!strcmp(cmd, "remove") && argc == 3) {
		rc = cmd_remove(&t, argv[2], &err);
	} else if (!strcmp(cmd, "show")) {
		rc = cmd_show(&t, &err);
	} else if (!strcmp(cmd, "abort")) {
		rc = cmd_abort(&t, &err);
	} else if (!strcmp(cmd, "commit")) {
		rc = cmd_commit(&t, argc > 2 ? argv[2] : NULL, &err);
	} else if (!strcmp(cmd, "deploy") && argc == 3) {
		rc = cmd_deploy(&t, argv[2], &err);
	} else {
		usage(stderr);
		return 2;
	}
	if (rc < 0) {
		const char *m = pv_error_msg(&err);
		fprintf(stderr, "pvtx %s: %s\n", cmd, m && *m ? m : strerror(-rc));
	}
	pv_error_clear(&err);
	return rc < 0 ? 1 : 0;
}
