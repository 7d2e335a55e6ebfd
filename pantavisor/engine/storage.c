/* storage.c: the storage tree (spec §3): boot revision from cmdline or boot/uboot.txt, the
 * revision's state text, object verification (same inode + sha256), trails/current, .pv/done. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/fileio.h"

#define UBOOT_ENV_MAX (64 * 1024)

/* noinline: inlined, gcc 12 -O3 loses track of asprintf's out-pointer and reports a dangling
 * pointer at every caller (a -Wdangling-pointer false positive). */
__attribute__((noinline)) char *pv_storage_trail_path(const char *storage, const char *rev,
						      const char *key)
{
	char *p = NULL;
	if (asprintf(&p, "%s/trails/%s/%s", storage, rev, key) < 0)
		return NULL;
	return p;
}

/* A revision name must stay inside trails/: "0", "12", "locals/<name>". */
bool pv_storage_rev_name_ok(const char *r)
{
	size_t n = strlen(r);
	if (n == 0 || n >= 128 || r[0] == '/' || r[0] == '.' || strstr(r, ".."))
		return false;
	const char *slash = strchr(r, '/');
	if (slash && (strncmp(r, "locals/", 7) != 0 || strchr(slash + 1, '/')))
		return false;
	return true;
}

/* Looks for `key=value` among whitespace- (cmdline) or NUL- (uboot.txt) separated words.
 * `key=` (empty) means unset, as upstream writes it. */
static bool find_word(const char *buf, size_t len, const char *key, char *out, size_t n)
{
	size_t kl = strlen(key);
	size_t i = 0;
	bool found = false;
	while (i < len) {
		while (i < len &&
		       (buf[i] == '\0' || buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t'))
			i++;
		size_t s = i;
		while (i < len && buf[i] != '\0' && buf[i] != ' ' && buf[i] != '\n' &&
		       buf[i] != '\t')
			i++;
		if (i - s > kl && strncmp(buf + s, key, kl) == 0 && buf[s + kl] == '=') {
			size_t vl = i - s - kl - 1;
			if (vl >= n)
				vl = n - 1;
			memcpy(out, buf + s + kl + 1, vl);
			out[vl] = '\0';
			found = out[0] != '\0';
		}
	}
	return found;
}

int pv_storage_boot_revision(const char *storage, const char *cmdline, char *rev, size_t n,
			     char *fallback, size_t fn)
{
	char prev[128] = "", ptry[128] = "";
	bool have = false;

	if (cmdline && *cmdline) {
		size_t l = strlen(cmdline);
		have = find_word(cmdline, l, "pv_rev", prev, sizeof(prev));
		have |= find_word(cmdline, l, "pv_try", ptry, sizeof(ptry));
	}
	if (!have) {
		char path[4096], *buf = NULL;
		size_t len = 0;
		snprintf(path, sizeof(path), "%s/boot/uboot.txt", storage);
		if (pv_file_read_all(path, UBOOT_ENV_MAX, &buf, &len, NULL) == 0) {
			find_word(buf, len, "pv_rev", prev, sizeof(prev));
			find_word(buf, len, "pv_try", ptry, sizeof(ptry));
			free(buf);
		}
	}
	if (prev[0] && !pv_storage_rev_name_ok(prev))
		prev[0] = '\0';
	if (ptry[0] && !pv_storage_rev_name_ok(ptry))
		ptry[0] = '\0';
	fallback[0] = '\0';
	/* Trying a revision: boot pv_try, and go back to the committed pv_rev if it fails. */
	if (ptry[0] && strcmp(ptry, prev[0] ? prev : "0") != 0) {
		snprintf(rev, n, "%s", ptry);
		snprintf(fallback, fn, "%s", prev[0] ? prev : "0");
	} else {
		snprintf(rev, n, "%s", prev[0] ? prev : "0");
	}
	return 0;
}

int pv_storage_read_state(const char *storage, const char *rev, char **text, size_t *len,
			  struct pv_error *err)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/trails/%s/.pvr/json", storage, rev);
	int r = pv_file_read_all(path, PV_STATE_MAX_BYTES, text, len, NULL);
	if (r < 0)
		return pv_error_set(err, r, "revision %s: read %s: %s", rev, path, strerror(-r));
	return 0;
}

/* A trail file missing from the checkout is re-linked from its object ("cure", as upstream). */
static int verify_object(const char *storage, const char *rev, const struct pv_entry *en,
			 bool checksum, struct pv_error *err)
{
	char obj[4096], hex[65];
	struct stat so, st;
	int r = 0;
	char *trail = pv_storage_trail_path(storage, rev, en->key);
	if (!trail)
		return -ENOMEM;
	snprintf(obj, sizeof(obj), "%s/objects/%s", storage, en->sha);
	bool is_copy = strlen(en->key) > 5 && !strcmp(en->key + strlen(en->key) - 5, ".bind");

	if (stat(obj, &so) < 0) {
		r = pv_error_set(err, -ENOENT, "%s: object %s missing (objects/%s)", en->key,
				 en->sha, en->sha);
		goto out;
	}
	if (lstat(trail, &st) < 0) {
		if (is_copy || link(obj, trail) < 0) {
			r = pv_error_set(err, -ENOENT, "%s: trail file %s missing", en->key, trail);
			goto out;
		}
		lstat(trail, &st);
	}
	if (!is_copy && (st.st_ino != so.st_ino || st.st_dev != so.st_dev)) {
		r = pv_error_set(err, -EINVAL, "%s: %s is not a hard link of objects/%s", en->key,
				 trail, en->sha);
		goto out;
	}
	if (checksum) {
		r = pv_sha256_file(is_copy ? trail : obj, hex, NULL);
		if (r < 0) {
			pv_error_set(err, r, "%s: read %s: %s", en->key, obj, strerror(-r));
			goto out;
		}
		if (strcmp(hex, en->sha) != 0) {
			r = pv_error_set(err, -EBADMSG, "%s: objects/%s has bad checksum %s",
					 en->key, en->sha, hex);
			goto out;
		}
	}
out:
	free(trail);
	return r;
}

/* json files must be byte-identical to their raw text in .pvr/json; a missing one is written. */
static int verify_json(const char *storage, const char *rev, const struct pv_entry *en,
		       struct pv_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int r;
	char *trail = pv_storage_trail_path(storage, rev, en->key);
	if (!trail)
		return -ENOMEM;
	r = pv_file_read_all(trail, PV_STATE_MAX_BYTES, &buf, &len, NULL);
	if (r == -ENOENT) {
		/* a copy of the parent path: gcc -O3 mistakes in-place truncation for a dangling
		 * use */
		char *dir = strndup(trail, (size_t)(strrchr(trail, '/') - trail));
		if (dir)
			pv_mkdir_p(dir, 0755);
		free(dir);
		r = pv_file_write_atomic(trail, en->raw, en->raw_len, 0644, err);
	} else if (r < 0) {
		pv_error_set(err, r, "%s: read %s: %s", en->key, trail, strerror(-r));
	} else if (len != en->raw_len || memcmp(buf, en->raw, len) != 0) {
		r = pv_error_set(err, -EBADMSG, "%s: %s differs from its text in .pvr/json",
				 en->key, trail);
	}
	free(buf);
	free(trail);
	return r;
}

int pv_storage_verify(const char *storage, const char *rev, const struct pv_state *s, bool checksum,
		      struct pv_error *err)
{
	int first = 0;
	for (size_t i = 0; i < s->n_entries; i++) {
		const struct pv_entry *en = &s->entries[i];
		int r;
		if (en->kind == PV_ENTRY_OBJECT)
			r = verify_object(storage, rev, en, checksum, err);
		else
			r = verify_json(storage, rev, en, err);
		if (r < 0 && !first)
			first = r;
	}
	return first;
}

int pv_storage_set_current(const char *storage, const char *rev, struct pv_error *err)
{
	char cur[4096], tmp[4200];
	snprintf(cur, sizeof(cur), "%s/trails/current", storage);
	snprintf(tmp, sizeof(tmp), "%s/trails/.current.%d", storage, (int)getpid());
	unlink(tmp);
	if (symlink(rev, tmp) < 0 || rename(tmp, cur) < 0) {
		int r = -errno;
		unlink(tmp);
		return pv_error_set(err, r, "set %s -> %s: %s", cur, rev, strerror(-r));
	}
	snprintf(tmp, sizeof(tmp), "%s/trails", storage);
	pv_fsync_dir(tmp);
	return 0;
}

int pv_storage_mark_done(const char *storage, const char *rev, struct pv_error *err)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/trails/%s/.pv", storage, rev);
	pv_mkdir_p(path, 0755);
	snprintf(path, sizeof(path), "%s/trails/%s/.pv/done", storage, rev);
	if (access(path, F_OK) == 0)
		return 0;
	return pv_file_write_atomic(path, "", 0, 0644, err);
}
