/* ops_meta.c: user- and device-metadata: one file per key in <storage>/cache/{usrmeta,devmeta},
 * mirrored into <rundir>/{user,device}-meta/ where containers read them (spec core §3, §5.3), and
 * each container's view: a key "<c>.<k>" is also <rundir>/{user,device}-meta.<c>/<k> (upstream's
 * per-container directory) and is what meta-list {container: c} answers. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/fileio.h"
#include "pvstate/status.h"

#define META_VALUE_MAX (1024 * 1024)
#define META_KEY_MAX   255

/* A key becomes a file name: no separators, no dot files, no "..", printable. */
static bool key_ok(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > META_KEY_MAX || k[0] == '.' || strchr(k, '/') || strstr(k, ".."))
		return false;
	for (const char *p = k; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* args.kind -> storage dir and run dir of that kind. */
static int dirs(struct pv_engine *e, const struct pv_msg *m, char *store, char *run, size_t len)
{
	const char *kind = NULL;
	if (pv_msg_arg_str(m, "kind", &kind) < 0 || !kind)
		return -EINVAL;
	bool user = !strcmp(kind, "user");
	if (!user && strcmp(kind, "device") != 0)
		return -EINVAL;
	snprintf(store, len, "%s/cache/%s", e->storage, user ? "usrmeta" : "devmeta");
	snprintf(run, len, "%s/%s", e->rundir, user ? "user-meta" : "device-meta");
	return 0;
}

/* "<c>.<k>" → the container part and the key inside its view; false for keys without both. */
static bool view_split(const char *key, char *ctr, size_t clen, const char **rest)
{
	const char *dot = strchr(key, '.');
	if (!dot || dot == key || !dot[1] || (size_t)(dot - key) >= clen)
		return false;
	memcpy(ctr, key, (size_t)(dot - key));
	ctr[dot - key] = '\0';
	*rest = dot + 1;
	return true;
}

/* Mirrors (value) or removes (value NULL) key in its container's view dir <run>.<c>/. */
static void view_mirror(const char *run, const char *key, const char *value, size_t len)
{
	char ctr[META_KEY_MAX + 1], dir[4500], path[4800];
	const char *rest;
	if (!view_split(key, ctr, sizeof(ctr), &rest))
		return;
	snprintf(dir, sizeof(dir), "%s.%s", run, ctr);
	snprintf(path, sizeof(path), "%s/%s", dir, rest);
	if (!value) {
		unlink(path);
		return;
	}
	struct pv_error err = PV_ERROR_INIT;
	pv_mkdir_p(dir, 0755);
	if (pv_file_write_atomic(path, value, len, 0644, &err) < 0)
		pv_log_error(PV_LOG_WARN, "meta", &err);
	pv_error_clear(&err);
}

static const char *key_arg(const struct pv_msg *m, char **reply)
{
	const char *key = NULL;
	char msg[400];
	if (pv_msg_arg_str(m, "key", &key) < 0 || !key) {
		*reply = pv_msg_reply_error(m->id, 400, "meta: args.key needed");
		return NULL;
	}
	if (!key_ok(key)) {
		snprintf(msg, sizeof(msg), "meta key \"%.80s\": not a valid key name", key);
		*reply = pv_msg_reply_error(m->id, 400, msg);
		return NULL;
	}
	return key;
}

/* Sets key to value (taken) in the list, replacing a stored one; dropped on ENOMEM. */
static void add_live(char ***keys, char ***vals, size_t *n, const char *key, char *value)
{
	if (!value)
		return;
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*keys)[i], key)) {
			free((*vals)[i]);
			(*vals)[i] = value;
			return;
		}
	char **nk = realloc(*keys, (*n + 1) * sizeof(**keys));
	if (nk)
		*keys = nk;
	char **nv = realloc(*vals, (*n + 1) * sizeof(**vals));
	if (nv)
		*vals = nv;
	char *k = strdup(key);
	if (!nk || !nv || !k) {
		free(k);
		free(value);
		return;
	}
	(*keys)[*n] = k;
	(*vals)[(*n)++] = value;
}

char *pv_op_meta_list(struct pv_engine *e, const struct pv_msg *m)
{
	char store[4200], run[4200];
	if (dirs(e, m, store, run, sizeof(store)) < 0)
		return pv_msg_reply_error(m->id, 400,
					  "meta-list: args.kind must be user or device");
	/* a container's view: only its "<c>." keys, named without the prefix */
	const char *view = NULL;
	if (pv_msg_arg_str(m, "container", &view) < 0 || (view && !view[0]))
		view = NULL;
	size_t vlen = view ? strlen(view) : 0;
	char **keys = NULL, **vals = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir(store);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char path[4500], *v = NULL;
		if (!key_ok(de->d_name))
			continue;
		if (view && (strncmp(de->d_name, view, vlen) || de->d_name[vlen] != '.' ||
			     !de->d_name[vlen + 1]))
			continue;
		snprintf(path, sizeof(path), "%s/%s", store, de->d_name);
		if (pv_file_read_all(path, META_VALUE_MAX, &v, NULL, NULL) < 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nk = realloc(keys, cap * sizeof(*keys));
			if (nk)
				keys = nk;
			char **nv = realloc(vals, cap * sizeof(*vals));
			if (nv)
				vals = nv;
			if (!nk || !nv) {
				free(v);
				break;
			}
		}
		keys[n] = strdup(view ? de->d_name + vlen + 1 : de->d_name);
		vals[n] = v;
		if (!keys[n]) {
			free(v);
			break;
		}
		n++;
	}
	if (d)
		closedir(d);
	/* device-meta "storage" is live (gc_auto.c): the stored value, if any, is stale */
	const char *kind = NULL;
	if (!view && pv_msg_arg_str(m, "kind", &kind) == 0 && kind && !strcmp(kind, "device"))
		add_live(&keys, &vals, &n, "storage", pv_storage_usage_json(e));
	char *body = pv_status_emit_meta((const char *const *)keys, (const char *const *)vals, n);
	for (size_t i = 0; i < n; i++) {
		free(keys[i]);
		free(vals[i]);
	}
	free(keys);
	free(vals);
	return pv_op_reply_json(m, body);
}

char *pv_op_meta_put(struct pv_engine *e, const struct pv_msg *m)
{
	char store[4200], run[4200], path[4500], *reply = NULL;
	const char *value = NULL;
	if (dirs(e, m, store, run, sizeof(store)) < 0)
		return pv_msg_reply_error(m->id, 400, "meta-put: args.kind must be user or device");
	const char *key = key_arg(m, &reply);
	if (!key)
		return reply;
	if (pv_msg_arg_str(m, "value", &value) < 0 || !value)
		return pv_msg_reply_error(m->id, 400, "meta-put: args.value needed");
	struct pv_error err = PV_ERROR_INIT;
	pv_mkdir_p(store, 0755);
	snprintf(path, sizeof(path), "%s/%s", store, key);
	if (pv_file_write_atomic(path, value, strlen(value), 0644, &err) < 0) {
		reply = pv_op_reply_errors(m, 500, &err);
		pv_error_clear(&err);
		return reply;
	}
	/* the run-dir copy is what containers see; storage is the truth, so a failed mirror is
	 * only logged */
	pv_mkdir_p(run, 0755);
	snprintf(path, sizeof(path), "%s/%s", run, key);
	if (pv_file_write_atomic(path, value, strlen(value), 0644, &err) < 0)
		pv_log_error(PV_LOG_WARN, "meta", &err);
	pv_error_clear(&err);
	view_mirror(run, key, value, strlen(value));
	return pv_msg_reply(m->id, 200, NULL);
}

char *pv_op_meta_delete(struct pv_engine *e, const struct pv_msg *m)
{
	char store[4200], run[4200], path[4500], msg[400], *reply = NULL;
	if (dirs(e, m, store, run, sizeof(store)) < 0)
		return pv_msg_reply_error(m->id, 400,
					  "meta-delete: args.kind must be user or device");
	const char *key = key_arg(m, &reply);
	if (!key)
		return reply;
	snprintf(path, sizeof(path), "%s/%s", store, key);
	if (unlink(path) < 0) {
		int er = errno;
		snprintf(msg, sizeof(msg), "meta key %s: %s", key,
			 er == ENOENT ? "not found" : strerror(er));
		return pv_msg_reply_error(m->id, er == ENOENT ? 404 : 500, msg);
	}
	pv_fsync_dir(store);
	snprintf(path, sizeof(path), "%s/%s", run, key);
	unlink(path);
	view_mirror(run, key, NULL, 0);
	return pv_msg_reply(m->id, 200, NULL);
}

/* The run dir is volatile: at start, containers must see the metadata kept in storage. */
void pv_meta_sync(struct pv_engine *e)
{
	static const char *const kinds[][2] = {{"usrmeta", "user-meta"},
					       {"devmeta", "device-meta"}};
	for (size_t k = 0; k < 2; k++) {
		char store[4200], run[4200];
		snprintf(store, sizeof(store), "%s/cache/%s", e->storage, kinds[k][0]);
		snprintf(run, sizeof(run), "%s/%s", e->rundir, kinds[k][1]);
		pv_mkdir_p(run, 0755);
		DIR *d = opendir(store);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char src[4500], dst[4500], *v = NULL;
			size_t len = 0;
			if (!key_ok(de->d_name))
				continue;
			snprintf(src, sizeof(src), "%s/%s", store, de->d_name);
			snprintf(dst, sizeof(dst), "%s/%s", run, de->d_name);
			if (pv_file_read_all(src, META_VALUE_MAX, &v, &len, NULL) == 0) {
				pv_file_write_atomic(dst, v, len, 0644, NULL);
				view_mirror(run, de->d_name, v, len);
			}
			free(v);
		}
		if (d)
			closedir(d);
	}
}
