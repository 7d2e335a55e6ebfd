/* ops_steps.c: revisions as pv-ctrl's /steps serves them: list, state text, crash-safe PUT of a
 * local revision with validation, progress and commit message (spec core §3.2, §4.2). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crashpoint.h"
#include "engine.h"
#include "pvstate/fileio.h"
#include "pvstate/status.h"

#define PROGRESS_MAX  4096
#define COMMITMSG_MAX 256

struct step {
	char name[300];
	char date[32];
	char *commitmsg, *progress;
};

static void add_step(struct pv_engine *e, const char *name, struct step **v, size_t *n, size_t *cap)
{
	char *trail = pv_storage_trail_path(e->storage, name, ""), *p;
	struct stat st;
	if (!trail)
		return;
	if (stat(trail, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(trail);
		return;
	}
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct step *nv = realloc(*v, nc * sizeof(**v));
		if (!nv) {
			free(trail);
			return;
		}
		*v = nv;
		*cap = nc;
	}
	struct step *s = &(*v)[(*n)++];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	struct tm tm;
	gmtime_r(&st.st_mtime, &tm);
	strftime(s->date, sizeof(s->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (asprintf(&p, "%s.pv/commitmsg", trail) >= 0) {
		if (pv_file_read_all(p, COMMITMSG_MAX + 1, &s->commitmsg, NULL, NULL) < 0)
			s->commitmsg = NULL;
		free(p);
	}
	if (asprintf(&p, "%s.pv/progress", trail) >= 0) {
		if (pv_file_read_all(p, PROGRESS_MAX, &s->progress, NULL, NULL) < 0)
			s->progress = NULL;
		free(p);
	}
	free(trail);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct step *)a)->name, ((const struct step *)b)->name);
}

char *pv_op_steps_list(struct pv_engine *e, const struct pv_msg *m)
{
	char dir[4200], name[300];
	struct step *v = NULL;
	size_t n = 0, cap = 0;
	snprintf(dir, sizeof(dir), "%s/trails", e->storage);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "current"))
			continue;
		if (!strcmp(de->d_name, "locals")) {
			/* the locals dir is no revision; each locals/<name> in it is */
			char ldir[4300];
			snprintf(ldir, sizeof(ldir), "%s/locals", dir);
			DIR *l = opendir(ldir);
			struct dirent *le;
			while (l && (le = readdir(l))) {
				if (le->d_name[0] == '.' || strlen(le->d_name) > 64)
					continue;
				snprintf(name, sizeof(name), "locals/%s", le->d_name);
				add_step(e, name, &v, &n, &cap);
			}
			if (l)
				closedir(l);
			continue;
		}
		if (strlen(de->d_name) < sizeof(name))
			add_step(e, de->d_name, &v, &n, &cap);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), by_name);
	struct pv_status_step *sv = calloc(n ? n : 1, sizeof(*sv));
	char *body = NULL;
	if (sv) {
		for (size_t i = 0; i < n; i++) {
			sv[i].name = v[i].name;
			sv[i].date = v[i].date;
			sv[i].commitmsg = v[i].commitmsg;
			sv[i].progress = v[i].progress;
		}
		body = pv_status_emit_steps(sv, n);
	}
	for (size_t i = 0; i < n; i++) {
		free(v[i].commitmsg);
		free(v[i].progress);
	}
	free(v);
	free(sv);
	return pv_op_reply_json(m, body);
}

/* args.rev, checked to stay inside trails/. NULL and *reply set when bad. */
static const char *rev_arg(const struct pv_msg *m, char **reply)
{
	const char *rev = NULL;
	char msg[256];
	if (pv_msg_arg_str(m, "rev", &rev) < 0 || !rev) {
		*reply = pv_msg_reply_error(m->id, 400, "args.rev needed");
		return NULL;
	}
	const char *local = !strncmp(rev, "locals/", 7) ? rev + 7 : NULL;
	if (!pv_storage_rev_name_ok(rev) ||
	    (local && (!*local || strlen(local) > 64 || local[0] == '.'))) {
		snprintf(msg, sizeof(msg), "step \"%.80s\": not a revision name", rev);
		*reply = pv_msg_reply_error(m->id, 400, msg);
		return NULL;
	}
	return rev;
}

static bool trail_exists(struct pv_engine *e, const char *rev)
{
	char *p = pv_storage_trail_path(e->storage, rev, ".pvr/json");
	bool ok = p && access(p, F_OK) == 0;
	free(p);
	return ok;
}

static char *not_found(const struct pv_msg *m, const char *rev)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "step %s: no such revision", rev);
	return pv_msg_reply_error(m->id, 404, msg);
}

char *pv_op_step_get(struct pv_engine *e, const struct pv_msg *m)
{
	char *reply = NULL, *text = NULL;
	const char *rev = rev_arg(m, &reply);
	if (!rev)
		return reply;
	if (!trail_exists(e, rev))
		return not_found(m, rev);
	struct pv_error err = PV_ERROR_INIT;
	if (pv_storage_read_state(e->storage, rev, &text, NULL, &err) < 0) {
		reply = pv_op_reply_errors(m, 500, &err);
		pv_error_clear(&err);
		return reply;
	}
	reply = pv_msg_reply(m->id, 200, text);
	free(text);
	if (!reply) {
		char msg[256];
		snprintf(msg, sizeof(msg), "step %s: .pvr/json is not valid JSON", rev);
		reply = pv_msg_reply_error(m->id, 500, msg);
	}
	return reply;
}

static int write_progress(struct pv_engine *e, const char *rev, const char *status, const char *msg,
			  struct pv_error *err)
{
	char *p = pv_storage_trail_path(e->storage, rev, ".pv/progress");
	char *body = pv_status_emit_progress(status, msg, 0);
	int r = -ENOMEM;
	if (p && body) {
		char *slash = strrchr(p, '/');
		*slash = '\0';
		pv_mkdir_p(p, 0755);
		*slash = '/';
		r = pv_file_write_atomic(p, body, strlen(body), 0644, err);
	}
	free(p);
	free(body);
	return r;
}

/* 507 Insufficient Storage when the write failed for want of space, as pv-ctrl's own uploads */
static int storage_status(const struct pv_error *err)
{
	return err->code == -ENOSPC || err->code == -EDQUOT ? 507 : 500;
}

char *pv_op_step_put(struct pv_engine *e, const struct pv_msg *m)
{
	char *reply = NULL, msg[256];
	const char *state = NULL;
	const char *rev = rev_arg(m, &reply);
	if (!rev)
		return reply;
	if (strncmp(rev, "locals/", 7) != 0) {
		snprintf(msg, sizeof(msg), "step %s: only locals/<name> revisions can be put", rev);
		return pv_msg_reply_error(m->id, 400, msg);
	}
	if (!strcmp(rev, e->rev) || !strcmp(rev, e->fallback) || pv_update_is(e, rev)) {
		snprintf(msg, sizeof(msg), "step %s: is the running or committed revision", rev);
		return pv_msg_reply_error(m->id, 409, msg);
	}
	if (pv_msg_arg_str(m, "state", &state) < 0 || !state)
		return pv_msg_reply_error(m->id, 400, "step-put: args.state needed");

	struct pv_error err = PV_ERROR_INIT;
	char *trail = pv_storage_trail_path(e->storage, rev, "");
	char *json = pv_storage_trail_path(e->storage, rev, ".pvr/json");
	char *pvr = pv_storage_trail_path(e->storage, rev, ".pvr");
	if (!trail || !json || !pvr) {
		reply = pv_msg_reply_error(m->id, 500, "step-put: out of memory");
		goto out;
	}
	/* a PUT replaces the revision: nothing of an older one with that name survives */
	pv_remove_tree(trail);
	if (pv_mkdir_p(pvr, 0755) < 0 ||
	    pv_file_write_atomic(json, state, strlen(state), 0644, &err) < 0 ||
	    write_progress(e, rev, "NEW", "Update not yet installed", &err) < 0) {
		if (!err.count)
			pv_error_set(&err, -EIO, "step %s: cannot write %s", rev, json);
		pv_remove_tree(trail);
		reply = pv_op_reply_errors(m, storage_status(&err), &err);
		goto out;
	}
	pv_crashpoint("step-stored");
	struct pv_state_opts o;
	struct pv_state s;
	char source[200];
	pv_state_opts_default(&o);
	o.appengine = e->appengine;
	snprintf(source, sizeof(source), "trails/%s/.pvr/json", rev);
	o.source = source;
	memset(&s, 0, sizeof(s));
	if (pv_state_parse(state, strlen(state), &o, &s, &err) < 0) {
		/* an invalid state is never left behind to be run later */
		pv_remove_tree(trail);
		reply = pv_op_reply_errors(m, 422, &err);
		goto out;
	}
	pv_state_free(&s);
	if (write_progress(e, rev, "NEW", "Update ready to be run", &err) < 0) {
		pv_remove_tree(trail); /* not runnable without its progress: nothing half-stored */
		reply = pv_op_reply_errors(m, storage_status(&err), &err);
		goto out;
	}
	pv_log(PV_LOG_INFO, "steps", "revision %s stored", rev);
	reply = pv_msg_reply(m->id, 200, NULL);
out:
	pv_error_clear(&err);
	free(trail);
	free(json);
	free(pvr);
	return reply;
}

char *pv_op_step_progress(struct pv_engine *e, const struct pv_msg *m)
{
	char *reply = NULL, *text = NULL;
	size_t len = 0;
	const char *rev = rev_arg(m, &reply);
	if (!rev)
		return reply;
	if (!trail_exists(e, rev))
		return not_found(m, rev);
	char *p = pv_storage_trail_path(e->storage, rev, ".pv/progress");
	if (p && pv_file_read_all(p, PROGRESS_MAX, &text, &len, NULL) == 0 &&
	    pv_status_is_json_object(text, len))
		reply = pv_msg_reply(m->id, 200, text);
	else
		reply = pv_msg_reply(m->id, 200, "{}"); /* no progress recorded (yet) */
	free(p);
	free(text);
	return reply;
}

char *pv_op_step_commitmsg(struct pv_engine *e, const struct pv_msg *m)
{
	char *reply = NULL, msg[256];
	const char *text = NULL;
	const char *rev = rev_arg(m, &reply);
	if (!rev)
		return reply;
	if (pv_msg_arg_str(m, "msg", &text) < 0 || !text || !*text)
		return pv_msg_reply_error(m->id, 400, "step-commitmsg: args.msg needed");
	if (strlen(text) > COMMITMSG_MAX) {
		snprintf(msg, sizeof(msg), "step %s: commit message longer than %d bytes", rev,
			 COMMITMSG_MAX);
		return pv_msg_reply_error(m->id, 400, msg);
	}
	if (!trail_exists(e, rev))
		return not_found(m, rev);
	struct pv_error err = PV_ERROR_INIT;
	char *dir = pv_storage_trail_path(e->storage, rev, ".pv");
	char *p = pv_storage_trail_path(e->storage, rev, ".pv/commitmsg");
	if (!dir || !p || pv_mkdir_p(dir, 0755) < 0 ||
	    pv_file_write_atomic(p, text, strlen(text), 0644, &err) < 0) {
		if (!err.count)
			pv_error_set(&err, -EIO, "step %s: cannot write .pv/commitmsg", rev);
		reply = pv_op_reply_errors(m, storage_status(&err), &err);
	} else {
		reply = pv_msg_reply(m->id, 200, NULL);
	}
	pv_error_clear(&err);
	free(dir);
	free(p);
	return reply;
}
