/* ops_objects.c: the object store ops: objects-list, object-installed (verify an upload pv-ctrl
 * streamed into storage/objects) and the garbage collector of revisions and objects (gc op,
 * RUN_GC). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootenv.h"
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
		*strrchr(want, '/') = '\0'; /* the removal must survive a power cut too */
		pv_fsync_dir(want);
		pv_log(PV_LOG_WARN, "objects", "object %s: content hashes to %s: removed", sha,
		       hex);
		return pv_msg_reply_error(m->id, 422, "Object has bad checksum");
	}
	pv_gc_auto_object_put(e);
	return pv_msg_reply(m->id, 200, NULL);
}

/* ---- garbage collector (spec §3.3) ----
 * Revisions are removed first (trail, logs/<rev>, disks/rev/<rev>), except the ones a boot, a
 * rollback or an update may still need; then every object no remaining trail links (link count
 * <= 1) and no kept revision's state names. */

/* Every sha a kept revision names (sorted): a kept revision put through step-put is not checked
 * out yet (its objects have one link only) but must keep its objects. */
struct shas {
	char (*v)[65];
	size_t n, cap;
};

/* false when out of memory: the caller must then keep every object */
static bool shas_add(struct shas *s, const char *sha)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		char(*nv)[65] = realloc(s->v, nc * 65);
		if (!nv)
			return false;
		s->v = nv;
		s->cap = nc;
	}
	memcpy(s->v[s->n], sha, 64);
	s->v[s->n++][64] = '\0';
	return true;
}

static bool collect_text(struct shas *s, const char *t)
{
	/* a state names objects as 64 lowercase hex characters in a JSON string */
	for (const char *p = t; (p = strchr(p, '"'));) {
		const char *q = p + 1;
		size_t n = strspn(q, "0123456789abcdef");
		p = q + n;
		if (n == 64 && *p == '"' && !shas_add(s, q))
			return false;
	}
	return true;
}

static int cmp_sha(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Why each kept revision is kept: a revision may have several reasons. */
#define GC_MAX_KEEP 8
struct gc_keep {
	size_t n;
	char rev[GC_MAX_KEEP][128];
	char why[GC_MAX_KEEP][96];
};

static void keep_add(struct gc_keep *k, const char *rev, const char *why)
{
	if (!rev || !*rev || !pv_storage_rev_name_ok(rev))
		return;
	for (size_t i = 0; i < k->n; i++) {
		if (!strcmp(k->rev[i], rev)) {
			size_t l = strlen(k->why[i]);
			snprintf(k->why[i] + l, sizeof(k->why[i]) - l, ", %s", why);
			return;
		}
	}
	if (k->n == GC_MAX_KEEP)
		return; /* cannot happen: one slot per reason below */
	snprintf(k->rev[k->n], sizeof(k->rev[k->n]), "%s", rev);
	snprintf(k->why[k->n], sizeof(k->why[k->n]), "%s", why);
	k->n++;
}

static const char *keep_why(const struct gc_keep *k, const char *rev)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->rev[i], rev))
			return k->why[i];
	return NULL;
}

/* The revisions the collector must not touch. An unreadable boot env stops the collector: without
 * pv_rev/pv_try it cannot know what the bootloader will boot next. */
static int gc_keep_list(struct pv_engine *e, struct gc_keep *k, struct pv_error *err)
{
	char cur[4200], target[256], prev[128] = "", ptry[128] = "";
	struct pv_bootenv b;
	const char *type = NULL;

	memset(k, 0, sizeof(*k));
	keep_add(k, e->rev, "running");
	keep_add(k, e->fallback, "rollback target");
	keep_add(k, e->update_rev, "update in flight");
	snprintf(cur, sizeof(cur), "%s/trails/current", e->storage);
	ssize_t l = readlink(cur, target, sizeof(target) - 1);
	if (l > 0) {
		target[l] = '\0';
		keep_add(k, target, "trails/current");
	}
	/* the default-level type is the device default; the appengine has its own env file */
	if (e->cfg && pv_config_get_level(e->cfg, "PV_BOOTLOADER_TYPE") != PV_CFG_DEFAULT)
		type = pv_config_get(e->cfg, "PV_BOOTLOADER_TYPE");
	int r = pv_bootenv_open(&b, e->storage, type, e->appengine, err);
	if (!r)
		r = pv_bootenv_get(&b, "pv_rev", prev, sizeof(prev), err);
	if (!r)
		r = pv_bootenv_get(&b, "pv_try", ptry, sizeof(ptry), err);
	if (r)
		return r;
	/* a name the engine would refuse to boot: what the bootloader does with it is unknown */
	if ((prev[0] && !pv_storage_rev_name_ok(prev)) ||
	    (ptry[0] && !pv_storage_rev_name_ok(ptry)))
		return pv_error_set(err, -EINVAL,
				    "%s: pv_rev \"%.64s\" / pv_try \"%.64s\": not a "
				    "revision name",
				    b.path, prev, ptry);
	/* no pv_rev: the bootloader boots the factory revision */
	keep_add(k, prev[0] ? prev : "0", "committed (pv_rev)");
	keep_add(k, ptry, "trying (pv_try)");
	/* PV_STORAGE_GC_KEEP_FACTORY defaults to 1 in libpvstate's config table (ours, not
	 * upstream's 0: a device can always go back to what it shipped with) */
	if (!e->cfg || pv_config_get_bool(e->cfg, "PV_STORAGE_GC_KEEP_FACTORY", true))
		keep_add(k, "0", "factory (PV_STORAGE_GC_KEEP_FACTORY)");
	return 0;
}

/* A directory below a removed tree that is a mount point is left alone: its contents belong to
 * the mounted filesystem (a bind mount of the same device is told apart by its mount id). */
static bool is_mount_below(int dfd, const char *name, const struct statx *parent)
{
	struct statx sx;
	if (statx(dfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID, &sx) < 0)
		return false; /* gone or unreadable: rm_tree_at reports it */
	if (!S_ISDIR(sx.stx_mode))
		return false;
	if (sx.stx_dev_major != parent->stx_dev_major || sx.stx_dev_minor != parent->stx_dev_minor)
		return true;
	return (sx.stx_mask & STATX_MNT_ID) && (parent->stx_mask & STATX_MNT_ID) &&
	       sx.stx_mnt_id != parent->stx_mnt_id;
}

/* rm -rf of dfd/name without following symlinks (a symlink is unlinked, never its target) and
 * without crossing mount points. *freed grows by the size of every regular file whose last link
 * was removed here: bytes the filesystem got back. First error wins; the rest is still tried. */
static int rm_tree_at(int dfd, const char *name, const char *top, int64_t *freed, int depth)
{
	struct statx sx;
	if (statx(dfd, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID, &sx) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(sx.stx_mode)) {
		if (unlinkat(dfd, name, 0) < 0)
			return errno == ENOENT ? 0 : -errno;
		if (S_ISREG(sx.stx_mode) && sx.stx_nlink == 1)
			*freed += (int64_t)sx.stx_size;
		return 0;
	}
	if (depth > 64)
		return -ELOOP;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (is_mount_below(fd, de->d_name, &sx)) {
			pv_log(PV_LOG_WARN, "gc", "%s: .../%s: a mount point: left alone", top,
			       de->d_name);
			if (!r)
				r = -EBUSY;
			continue;
		}
		int rr = rm_tree_at(fd, de->d_name, top, freed, depth + 1);
		if (rr && !r)
			r = rr;
	}
	closedir(d);
	if (!r && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
		r = -errno;
	return r;
}

/* Removes <base>/<rel> (rel may hold one '/': locals/<name>), unless it is itself a mount point. */
static int rm_path(const char *base, const char *rel, int64_t *freed)
{
	char parent[4400], top[4400];
	const char *slash = strrchr(rel, '/'), *leaf = slash ? slash + 1 : rel;
	struct statx px;
	snprintf(parent, sizeof(parent), "%s/%.*s", base, slash ? (int)(slash - rel) : 0, rel);
	snprintf(top, sizeof(top), "%s/%s", base, rel);
	int dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	int r;
	if (statx(dfd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, &px) < 0) {
		r = -errno;
	} else if (is_mount_below(dfd, leaf, &px)) {
		pv_log(PV_LOG_WARN, "gc", "%s: a mount point: left alone", top);
		r = -EBUSY;
	} else {
		r = rm_tree_at(dfd, leaf, top, freed, 0);
		if (fsync(dfd) < 0 && !r)
			r = -errno;
	}
	close(dfd);
	return r;
}

/* Every revision with a trail: trails/<rev> and trails/locals/<name> directories (symlinks such as
 * trails/current are not revisions). Names are heap strings; caller frees each and the array. */
static char **list_revs(const char *storage, size_t *n)
{
	char dir[4200];
	char **v = NULL;
	size_t cap = 0;
	*n = 0;
	for (int locals = 0; locals < 2; locals++) {
		snprintf(dir, sizeof(dir), "%s/trails%s", storage, locals ? "/locals" : "");
		DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			struct stat st;
			char rev[300];
			if (de->d_name[0] == '.' ||
			    (!locals &&
			     (!strcmp(de->d_name, "locals") || !strcmp(de->d_name, "current"))) ||
			    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
			snprintf(rev, sizeof(rev), "%s%.200s", locals ? "locals/" : "", de->d_name);
			if (!pv_storage_rev_name_ok(rev))
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				char **nv = realloc(v, cap * sizeof(*v));
				if (!nv)
					break;
				v = nv;
			}
			if ((v[*n] = strdup(rev)))
				(*n)++;
		}
		if (d)
			closedir(d);
	}
	return v;
}

static int gc_run(struct pv_engine *e, int64_t *reclaimed, struct pv_error *err)
{
	struct gc_keep keep;
	struct shas refs = {NULL, 0, 0};
	char dir[4200], base[4200];
	size_t n_revs = 0, removed_revs = 0, removed_objs = 0;
	int64_t freed = 0, obj_bytes = 0;
	bool refs_ok = true;

	*reclaimed = 0;
	int r = gc_keep_list(e, &keep, err);
	if (r) {
		pv_error_prefix(err, 0, "gc: boot env unreadable, nothing removed");
		return r;
	}
	char **revs = list_revs(e->storage, &n_revs);
	for (size_t i = 0; i < n_revs; i++) {
		const char *why = keep_why(&keep, revs[i]);
		/* the update being installed (worker thread) or tested, before pv_try names it */
		if (!why && pv_update_is(e, revs[i]))
			why = "update in flight";
		if (why) {
			pv_log(PV_LOG_INFO, "gc", "kept revision %s: %s", revs[i], why);
			char *text = NULL;
			if (pv_storage_read_state(e->storage, revs[i], &text, NULL, NULL) == 0 &&
			    !collect_text(&refs, text))
				refs_ok = false;
			free(text);
			continue;
		}
		int64_t f = 0;
		snprintf(base, sizeof(base), "%s/trails", e->storage);
		int rt = rm_path(base, revs[i], &f);
		snprintf(base, sizeof(base), "%s", e->logdir ? e->logdir : "");
		if (!e->logdir)
			snprintf(base, sizeof(base), "%s/logs", e->storage);
		int rl = rm_path(base, revs[i], &f);
		snprintf(base, sizeof(base), "%s/disks/rev", e->storage);
		int rd = rm_path(base, revs[i], &f);
		if (rt || rl || rd)
			pv_log(PV_LOG_WARN, "gc",
			       "revision %s: not fully removed (trail: %s, logs: %s, disks: %s)",
			       revs[i], strerror(-rt), strerror(-rl), strerror(-rd));
		pv_log(PV_LOG_INFO, "gc",
		       "removed revision %s (not running, current, committed, trying, in an update "
		       "or a kept factory): %lld bytes freed",
		       revs[i], (long long)f);
		freed += f;
		removed_revs++;
	}
	for (size_t i = 0; i < n_revs; i++)
		free(revs[i]);
	free(revs);
	/* kept revisions whose trail is gone (a running state loaded before its trail was lost)
	 * still name their objects through the state in memory */
	if (e->have_state)
		for (size_t i = 0; i < e->state.n_entries && refs_ok; i++)
			if (e->state.entries[i].sha[0])
				refs_ok = shas_add(&refs, e->state.entries[i].sha);
	/* without the full list of names no object can be proven unused */
	if (!refs_ok) {
		free(refs.v);
		*reclaimed = freed;
		return pv_error_set(err, -ENOMEM, "gc: out of memory listing kept objects");
	}
	if (refs.n)
		qsort(refs.v, refs.n, 65, cmp_sha);

	snprintf(dir, sizeof(dir), "%s/objects", e->storage);
	DIR *d = opendir(dir);
	if (!d && errno != ENOENT) {
		r = pv_error_set(err, -errno, "gc: %s: %s", dir, strerror(errno));
		free(refs.v);
		*reclaimed = freed;
		return r;
	}
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		/* a link count of 1 means no trail hard-links it; a kept state may still name it */
		if (!is_sha(de->d_name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_nlink > 1 ||
		    (refs.n && bsearch(de->d_name, refs.v, refs.n, 65, cmp_sha)))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
			obj_bytes += (int64_t)st.st_size;
			removed_objs++;
		}
	}
	if (d) {
		closedir(d);
		pv_fsync_dir(dir);
	}
	free(refs.v);
	*reclaimed = freed + obj_bytes;
	pv_log(PV_LOG_INFO, "gc",
	       "removed %zu revisions (%lld bytes) and %zu unreferenced objects (%lld bytes)",
	       removed_revs, (long long)freed, removed_objs, (long long)obj_bytes);
	return 0;
}

int64_t pv_gc_run(struct pv_engine *e)
{
	struct pv_error err = PV_ERROR_INIT;
	int64_t reclaimed;
	int r = gc_run(e, &reclaimed, &err);
	if (r) {
		pv_log_error(PV_LOG_ERROR, "gc", &err);
		pv_error_clear(&err);
		return r;
	}
	return reclaimed;
}

char *pv_op_gc(struct pv_engine *e, const struct pv_msg *m)
{
	struct pv_error err = PV_ERROR_INIT;
	int64_t reclaimed;
	if (gc_run(e, &reclaimed, &err) < 0) {
		pv_log_error(PV_LOG_ERROR, "gc", &err);
		char *r = pv_op_reply_errors(m, 500, &err);
		pv_error_clear(&err);
		return r;
	}
	return pv_op_reply_json(m, pv_status_emit_gc((uint64_t)reclaimed));
}
