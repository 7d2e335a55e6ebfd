/* ops_objects.c: the object store ops: objects-list, object-installed (verify an upload pv-ctrl
 * streamed into storage/objects) and the garbage collector (gc op, RUN_GC command). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/fileio.h"
#include "pvstate/status.h"

static bool is_sha(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

char *pv_op_objects_list(struct pv_engine *e, const struct pv_msg *m)
{
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/objects", e->storage);
	struct pv_status_object *v = NULL;
	char(*names)[65] = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		/* only finished objects: upload temp files are not named by a bare sha */
		if (!is_sha(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			void *nv = realloc(v, cap * sizeof(*v)), *nn = realloc(names, cap * 65);
			if (nv)
				v = nv;
			if (nn)
				names = nn;
			if (!nv || !nn) {
				closedir(d);
				free(v);
				free(names);
				return pv_msg_reply_error(m->id, 500, "objects: out of memory");
			}
		}
		memcpy(names[n], de->d_name, 65);
		v[n].size = (uint64_t)st.st_size;
		n++;
	}
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		v[i].sha256 = names[i];
	char *r = pv_op_reply_json(m, pv_status_emit_objects(v, n));
	free(v);
	free(names);
	return r;
}

char *pv_op_object_installed(struct pv_engine *e, const struct pv_msg *m)
{
	const char *sha = NULL, *path = NULL;
	char want[4200], msg[4400], real_want[PATH_MAX], real_path[PATH_MAX], hex[65];
	if (pv_msg_arg_str(m, "sha", &sha) < 0 || pv_msg_arg_str(m, "path", &path) < 0)
		return pv_msg_reply_error(m->id, 400,
					  "object-installed: args.sha and args.path needed");
	if (!is_sha(sha)) {
		snprintf(msg, sizeof(msg), "object %.80s: not a sha256", sha);
		return pv_msg_reply_error(m->id, 400, msg);
	}
	/* the path must be the object's own place in the store: the engine deletes it on a bad
	 * checksum, so it must never be talked into touching another file */
	snprintf(want, sizeof(want), "%s/objects/%s", e->storage, sha);
	if (!realpath(want, real_want) || !realpath(path, real_path) ||
	    strcmp(real_want, real_path) != 0) {
		snprintf(msg, sizeof(msg), "object %s: %.1024s is not objects/%s in storage", sha,
			 path, sha);
		return pv_msg_reply_error(m->id, 400, msg);
	}
	struct pv_error err = PV_ERROR_INIT;
	if (pv_sha256_file(want, hex, &err) < 0) {
		char *r = pv_op_reply_errors(m, 500, &err);
		pv_error_clear(&err);
		return r;
	}
	if (strcmp(hex, sha) != 0) {
		unlink(want);
		pv_log(PV_LOG_WARN, "objects", "object %s: content hashes to %s: removed", sha,
		       hex);
		return pv_msg_reply_error(m->id, 422, "Object has bad checksum");
	}
	return pv_msg_reply(m->id, 200, NULL);
}

/* Every sha any stored revision names (sorted): a local revision put through step-put is not yet
 * checked out (its objects have one link only) but must keep its objects until it is removed. */
struct shas {
	char (*v)[65];
	size_t n, cap;
};

static void collect_text(struct shas *s, const char *t)
{
	/* a state names objects as 64 lowercase hex characters in a JSON string */
	for (const char *p = t; (p = strchr(p, '"'));) {
		const char *q = p + 1;
		size_t n = strspn(q, "0123456789abcdef");
		p = q + n;
		if (n != 64 || *p != '"')
			continue;
		if (s->n == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 256;
			char(*nv)[65] = realloc(s->v, nc * 65);
			if (!nv)
				return;
			s->v = nv;
			s->cap = nc;
		}
		memcpy(s->v[s->n], q, 64);
		s->v[s->n++][64] = '\0';
	}
}

static void collect_rev(struct pv_engine *e, struct shas *s, const char *rev)
{
	char *text = NULL;
	if (pv_storage_read_state(e->storage, rev, &text, NULL, NULL) == 0)
		collect_text(s, text);
	free(text);
}

static int cmp_sha(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void collect_all(struct pv_engine *e, struct shas *s)
{
	char dir[4200], rev[300];
	snprintf(dir, sizeof(dir), "%s/trails", e->storage);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > 200)
			continue;
		if (!strcmp(de->d_name, "locals")) {
			char ldir[4300];
			snprintf(ldir, sizeof(ldir), "%s/locals", dir);
			DIR *l = opendir(ldir);
			struct dirent *le;
			while (l && (le = readdir(l))) {
				if (le->d_name[0] == '.' || strlen(le->d_name) > 200)
					continue;
				snprintf(rev, sizeof(rev), "locals/%s", le->d_name);
				collect_rev(e, s, rev);
			}
			if (l)
				closedir(l);
			continue;
		}
		collect_rev(e, s, de->d_name);
	}
	if (d)
		closedir(d);
	if (s->n)
		qsort(s->v, s->n, 65, cmp_sha);
}

static bool referenced(struct pv_engine *e, const struct shas *s, const char *sha)
{
	if (s->n && bsearch(sha, s->v, s->n, 65, cmp_sha))
		return true;
	if (!e->have_state) /* the running revision's state, in case its trail is gone */
		return false;
	for (size_t i = 0; i < e->state.n_entries; i++)
		if (!strcmp(e->state.entries[i].sha, sha))
			return true;
	return false;
}

int64_t pv_gc_run(struct pv_engine *e)
{
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/objects", e->storage);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	int64_t reclaimed = 0;
	size_t removed = 0;
	struct dirent *de;
	struct shas refs = {NULL, 0, 0};
	collect_all(e, &refs);
	while ((de = readdir(d))) {
		struct stat st;
		/* a link count of 1 means no trail hard-links it; a stored state may still name it
		 */
		if (!is_sha(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_nlink > 1 || referenced(e, &refs, de->d_name))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
			reclaimed += (int64_t)st.st_size;
			removed++;
		}
	}
	closedir(d);
	free(refs.v);
	pv_fsync_dir(dir);
	pv_log(PV_LOG_INFO, "gc", "removed %zu unreferenced objects, %lld bytes", removed,
	       (long long)reclaimed);
	return reclaimed;
}

char *pv_op_gc(struct pv_engine *e, const struct pv_msg *m)
{
	int64_t r = pv_gc_run(e);
	if (r < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "gc: %s/objects: %s", e->storage, strerror((int)-r));
		return pv_msg_reply_error(m->id, 500, msg);
	}
	return pv_op_reply_json(m, pv_status_emit_gc((uint64_t)r));
}
