/* pv-ctrl/ep_objects.c: /objects: the list (engine), and GET/PUT of one object streamed straight
 * to/from <storage>/objects with bounded memory; uploads are hashed while written. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pvstate/fileio.h"

#include "ep_util.h"

void pv_ep_objects_list(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	pv_ep_relay(r, "objects-list", NULL, out);
}

void pv_ep_objects_get(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", r->ctrl->objects_dir, r->caps[0]);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = fd < 0 ? errno : EINVAL;
		if (fd >= 0)
			close(fd);
		pv_ctrl_reply_error(out, e == ENOENT ? 404 : 500, "object %s: %s", r->caps[0],
				    e == ENOENT ? "not found" : strerror(e));
		return;
	}
	out->status = 200;
	out->fd = fd;
	out->fd_size = (uint64_t)st.st_size;
	out->ctype = "application/octet-stream";
}

int pv_ep_objects_put_begin(struct pv_ctrl_req *r, struct pv_ctrl_reply *early)
{
	char final[4000];
	struct stat st;
	r->up_fd = -1;
	snprintf(final, sizeof(final), "%s/%s", r->ctrl->objects_dir, r->caps[0]);
	if (stat(final, &st) == 0 && S_ISREG(st.st_mode)) {
		r->up_present = true; /* content-addressed: same name, same bytes */
		return 0;
	}
	int e = pv_mkdir_p(r->ctrl->objects_dir, 0755);
	if (e < 0 && e != -EEXIST) {
		pv_ctrl_reply_error(early, 500, "objects directory %s: %s", r->ctrl->objects_dir,
				    strerror(-e));
		return -1;
	}
	uint64_t seq = __atomic_add_fetch(&r->ctrl->tmp_seq, 1, __ATOMIC_RELAXED);
	snprintf(r->up_tmp, sizeof(r->up_tmp), "%s.tmp.%d.%llu", final, (int)getpid(),
		 (unsigned long long)seq);
	r->up_fd = open(r->up_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (r->up_fd < 0) {
		pv_ctrl_reply_error(early, errno == ENOSPC ? 507 : 500, "object %s: %s", r->caps[0],
				    strerror(errno));
		r->up_tmp[0] = '\0';
		return -1;
	}
	r->up_sha = pv_sha256_new();
	if (!r->up_sha) {
		pv_ep_objects_put_abort(r);
		pv_ctrl_reply_error(early, 500, "object %s: out of memory", r->caps[0]);
		return -1;
	}
	return 0;
}

int pv_ep_objects_put_data(struct pv_ctrl_req *r, const char *data, size_t n)
{
	if (r->up_present || r->up_errno)
		return 0; /* drain: the client still sends the body */
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(r->up_fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r->up_errno = w < 0 ? errno : EIO;
			return 0;
		}
		off += (size_t)w;
	}
	pv_sha256_update(r->up_sha, data, n);
	return 0;
}

void pv_ep_objects_put_abort(struct pv_ctrl_req *r)
{
	if (r->up_sha)
		pv_sha256_abort(r->up_sha);
	r->up_sha = NULL;
	if (r->up_fd >= 0)
		close(r->up_fd);
	r->up_fd = -1;
	if (r->up_tmp[0])
		unlink(r->up_tmp);
	r->up_tmp[0] = '\0';
}

void pv_ep_objects_put(struct pv_ctrl_req *r, struct pv_ctrl_reply *out)
{
	if (r->up_present) {
		out->status = 200;
		out->body = strdup("{}");
		out->len = 2;
		return;
	}
	const char *sha = r->caps[0];
	if (r->up_errno) {
		int e = r->up_errno;
		pv_ep_objects_put_abort(r);
		pv_ctrl_reply_error(out, e == ENOSPC ? 507 : 500, "object %s: write: %s", sha,
				    strerror(e));
		return;
	}
	char hex[65];
	int fr = fsync(r->up_fd) < 0 ? -errno : 0;
	int hr = pv_sha256_final(r->up_sha, hex);
	r->up_sha = NULL;
	if (fr < 0 || hr < 0) {
		pv_ep_objects_put_abort(r);
		pv_ctrl_reply_error(out, fr == -ENOSPC ? 507 : 500, "object %s: %s", sha,
				    strerror(fr < 0 ? -fr : -hr));
		return;
	}
	if (strcmp(hex, sha) != 0) {
		pv_ep_objects_put_abort(r); /* nothing is left behind */
		pv_ctrl_reply_error(out, 422, "Object has bad checksum");
		return;
	}
	char final[4096];
	snprintf(final, sizeof(final), "%s/%s", r->ctrl->objects_dir, sha);
	close(r->up_fd);
	r->up_fd = -1;
	if (rename(r->up_tmp, final) < 0) {
		int e = errno;
		pv_ep_objects_put_abort(r);
		pv_ctrl_reply_error(out, 500, "object %s: rename: %s", sha, strerror(e));
		return;
	}
	r->up_tmp[0] = '\0';
	pv_fsync_dir(r->ctrl->objects_dir);
	const char *kv[] = {"sha", sha, "path", final, NULL};
	pv_ep_relay(r, "object-installed", kv, out);
}
