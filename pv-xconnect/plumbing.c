/* plumbing.c: everything pv-xconnect does inside other mount namespaces: listening sockets,
 * bind mounts and device nodes injected at a consumer's target, their removal, provider access.
 *
 * Why a dedicated thread: setns(CLONE_NEWNS) changes the calling thread's whole view of the file
 * system; done in the loop thread it would leave the daemon inside a container. A thread with a
 * private fs struct joins the consumer's namespace, does a handful of syscalls, rejoins ours and
 * hands back the result (an fd, an inode identity, a message). On this class of machine a fork
 * per injection costs 1.5-4 ms against ~0.1 ms for the thread round trip.
 *
 * Why no plain paths: a consumer owns its file system and may plant symlinks anywhere. Every
 * component is walked with openat2(RESOLVE_NO_SYMLINKS) from the namespace root, new entries are
 * created relative to the directory fd, and the provider side is resolved with
 * RESOLVE_IN_ROOT inside /proc/<pid>/root so an absolute symlink stays inside that root.
 *
 * Device grants: cgroup v1 gets a devices.allow line. cgroup v2 has no such file: access is
 * decided by BPF_PROG_TYPE_CGROUP_DEVICE programs attached along the consumer's cgroup path (LXC
 * builds one from its rules). Each attached program is replaced, atomically (BPF_F_REPLACE), by
 * a copy of itself behind a short prefix that allows the injected node; see pvx_plumb_cgroup_allow
 * for why this and not liblxc. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>

#include "xconnect.h"

#define cleanup_close __attribute__((cleanup(close_p)))
static void close_p(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static int sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve)
{
	struct open_how how = {.flags = (unsigned long long)flags | O_CLOEXEC, .resolve = resolve};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

/* ---- the child protocol ---- */

/* What a namespace child reports back. */
struct ns_result {
	int rc;
	dev_t dev;
	ino_t ino;
	char msg[256];
};

static void res_fail(struct ns_result *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void res_fail(struct ns_result *r, int rc, const char *fmt, ...)
{
	va_list ap;
	r->rc = rc;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
}

/* Work done in the child; returns an fd to hand back or -1. */
typedef int (*ns_fn)(void *arg, struct ns_result *r);

static int open_ns(pid_t pid, int *fd, struct pv_error *err)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/ns/mnt", (int)pid);
	*fd = open(p, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return pv_error_set(err, -errno, "open %s: %s", p, strerror(errno));
	return 0;
}

/* One job for the namespace thread. */
struct ns_job {
	int ns_fd;
	ns_fn fn;
	void *arg;
	int fd;
	struct ns_result res;
};

/* The namespace thread: jobs arrive as pointers over a socketpair, one at a time, and the
 * caller waits for the same pointer to come back. The thread's fs struct (root, cwd, umask)
 * is private (unshare(CLONE_FS)), which is what setns(CLONE_NEWNS) requires of a thread. */
static struct {
	pthread_mutex_t lock;
	int sock[2];
	int host_ns; /* our own mount namespace, rejoined after every job */
	bool running;
} nst = {.lock = PTHREAD_MUTEX_INITIALIZER, .sock = {-1, -1}, .host_ns = -1};

static void *ns_thread(void *unused)
{
	if (unshare(CLONE_FS) < 0)
		return NULL;
	mode_t mask = umask(022);
	umask(mask);
	for (;;) {
		struct ns_job *j;
		if (read(nst.sock[1], &j, sizeof(j)) != (ssize_t)sizeof(j))
			return NULL;
		j->fd = -1;
		memset(&j->res, 0, sizeof(j->res));
		if (j->ns_fd >= 0 && setns(j->ns_fd, CLONE_NEWNS) < 0)
			res_fail(&j->res, -errno, "setns: %s", strerror(errno));
		else
			j->fd = j->fn(j->arg, &j->res);
		if (j->res.rc < 0 && j->fd >= 0) {
			close(j->fd);
			j->fd = -1;
		}
		/* Back home before anything else runs here: root and cwd follow setns. */
		bool home = setns(nst.host_ns, CLONE_NEWNS) == 0;
		umask(mask);
		if (!home) {
			res_fail(&j->res, -EIO, "namespace thread cannot return to its namespace");
			/* a thread stuck in a container must not serve again */
			nst.running = false;
		}
		if (write(nst.sock[1], &j, sizeof(j)) != (ssize_t)sizeof(j) || !home)
			return NULL;
	}
}

static int ns_thread_start(struct ns_result *res)
{
	if (nst.running)
		return 0;
	if (nst.sock[0] >= 0) {
		close(nst.sock[0]);
		close(nst.sock[1]);
	}
	if (nst.host_ns < 0)
		nst.host_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (nst.host_ns < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, nst.sock) < 0) {
		res_fail(res, -errno, "namespace thread: %s", strerror(errno));
		return res->rc;
	}
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, ns_thread, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		res_fail(res, -rc, "namespace thread: %s", strerror(rc));
		return res->rc;
	}
	nst.running = true;
	return 0;
}

/* Runs fn in the namespace thread after it joined ns_fd (if >= 0); returns fn's rc and the fd
 * it produced in *out_fd (the thread shares our fd table). Waits for the result: the work is a
 * handful of syscalls, and a thread round trip is ~0.1 ms where a fork costs milliseconds. */
static int run_in_ns(int ns_fd, ns_fn fn, void *arg, int *out_fd, struct ns_result *res)
{
	struct ns_job job = {.ns_fd = ns_fd, .fn = fn, .arg = arg, .fd = -1};
	struct ns_job *j = &job;
	memset(res, 0, sizeof(*res));
	if (out_fd)
		*out_fd = -1;
	pthread_mutex_lock(&nst.lock);
	int rc = ns_thread_start(res);
	if (rc == 0) {
		if (write(nst.sock[0], &j, sizeof(j)) != (ssize_t)sizeof(j) ||
		    read(nst.sock[0], &j, sizeof(j)) != (ssize_t)sizeof(j)) {
			nst.running = false;
			res_fail(res, -EIO, "namespace thread gone");
			rc = res->rc;
		}
	}
	pthread_mutex_unlock(&nst.lock);
	if (rc < 0)
		return rc;
	*res = job.res;
	if (out_fd)
		*out_fd = job.fd;
	else if (job.fd >= 0)
		close(job.fd);
	return res->rc;
}

/* ---- path walking (runs in the child, after setns: "/" is the namespace root) ---- */

/* Host uid/gid pair (what fchownat takes from the daemon). */
struct ids {
	uid_t uid;
	gid_t gid;
};

/* Opens the parent directory of path without following any symlink, creating missing
 * directories (mode 0755, owned by *create: the consumer's root) when create is set. *base
 * points into path at the last component. */
static int open_parent(const char *path, const struct ids *create, int *dirfd, const char **base,
		       struct ns_result *r)
{
	char buf[PATH_MAX];
	if (!path || path[0] != '/' || strlen(path) >= sizeof(buf)) {
		res_fail(r, -EINVAL, "target `%s`: must be an absolute path", path ? path : "");
		return r->rc;
	}
	memcpy(buf, path, strlen(path) + 1);
	const char *last = strrchr(path, '/') + 1;
	if (!*last || !strcmp(last, ".") || !strcmp(last, "..")) {
		res_fail(r, -EINVAL, "target `%s`: no file name", path);
		return r->rc;
	}
	int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		res_fail(r, -errno, "open /: %s", strerror(errno));
		return r->rc;
	}
	char *save = NULL;
	size_t parent_len = (size_t)(last - path);
	buf[parent_len] = '\0';
	for (char *comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, "..")) {
			res_fail(r, -EINVAL, "target `%s`: `..` not allowed", path);
			close(fd);
			return r->rc;
		}
		int nfd =
		    sys_openat2(fd, comp, O_PATH | O_DIRECTORY,
				RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH);
		if (nfd == -ENOENT && create) {
			if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
				res_fail(r, -errno, "target `%s`: mkdir `%s`: %s", path, comp,
					 strerror(errno));
				close(fd);
				return r->rc;
			}
			/* ours, made for the consumer: its root may manage it (a user namespace's
			 * root is not host root) */
			if ((create->uid || create->gid) &&
			    fchownat(fd, comp, create->uid, create->gid, AT_SYMLINK_NOFOLLOW) < 0) {
				res_fail(r, -errno, "target `%s`: chown `%s`: %s", path, comp,
					 strerror(errno));
				close(fd);
				return r->rc;
			}
			nfd = sys_openat2(fd, comp, O_PATH | O_DIRECTORY,
					  RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
					      RESOLVE_BENEATH);
		}
		if (nfd < 0) {
			if (nfd == -ELOOP || nfd == -EXDEV)
				res_fail(r, -ELOOP,
					 "target `%s`: `%s` is a symlink planted in the consumer: "
					 "refusing to follow it",
					 path, comp);
			else
				res_fail(r, nfd, "target `%s`: open `%s`: %s", path, comp,
					 strerror(-nfd));
			close(fd);
			return r->rc;
		}
		close(fd);
		fd = nfd;
	}
	*dirfd = fd;
	*base = last;
	return 0;
}

/* Clears whatever a previous instance of us left at dirfd/base: a stale socket (re-adoption
 * after kill -9 must not hit EADDRINUSE), a bind mount, a placeholder. Refuses anything else. */
static int clear_target(int dirfd, const char *base, const char *path, bool keep_socket,
			struct ns_result *r)
{
	struct stat st;
	for (int i = 0; i < 8; i++) {
		if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				return 0;
			res_fail(r, -errno, "target `%s`: stat: %s", path, strerror(errno));
			return r->rc;
		}
		/* A mount on top (direct mode of an earlier run): peel it off first. */
		if (fchdir(dirfd) == 0 && umount2(base, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
			continue;
		break;
	}
	if (S_ISSOCK(st.st_mode) && keep_socket)
		return 0; /* the caller renames over it */
	if (S_ISSOCK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_size == 0)) {
		if (unlinkat(dirfd, base, 0) < 0 && errno != ENOENT) {
			res_fail(r, -errno, "target `%s`: unlink stale entry: %s", path,
				 strerror(errno));
			return r->rc;
		}
		return 0;
	}
	res_fail(r, -EEXIST, "target `%s`: exists and is not a socket (mode %o): not replacing it",
		 path, (unsigned)st.st_mode);
	return r->rc;
}

/* ---- listening socket ---- */

struct listen_arg {
	const char *target;
	struct pvx_owner own; /* host ids by now */
	struct ids dirs;
};

/* The host id that `inside` is in pid's user namespace (/proc/<pid>/uid_map or gid_map; the
 * initial namespace maps every id to itself). -ERANGE when it is not mapped. */
static int map_id(pid_t pid, const char *which, unsigned inside, unsigned *out)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, which);
	FILE *f = fopen(p, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	unsigned long a, b, n;
	int rc = -ERANGE;
	while (fscanf(f, "%lu %lu %lu", &a, &b, &n) == 3)
		if (inside >= a && inside - a < n) {
			*out = (unsigned)(b + (inside - a));
			rc = 0;
			break;
		}
	fclose(f);
	return rc;
}

/* uid/gid as seen inside the consumer -> host ids. */
static int consumer_ids(pid_t pid, unsigned uid, unsigned gid, struct ids *out,
			struct pv_error *err)
{
	unsigned hu, hg;
	int rc = map_id(pid, "uid_map", uid, &hu);
	if (rc == 0)
		rc = map_id(pid, "gid_map", gid, &hg);
	if (rc < 0)
		return pv_error_set(err, rc, "pid %d: owner %u:%u: %s", (int)pid, uid, gid,
				    rc == -ERANGE ? "not mapped in the consumer's user namespace"
						  : strerror(-rc));
	out->uid = (uid_t)hu;
	out->gid = (gid_t)hg;
	return 0;
}

/* Jobs that create in the consumer do it as the consumer's root (file system uid/gid of the
 * namespace thread only): a file system mounted inside a user namespace (an unprivileged
 * container's own tmpfs /run) refuses inodes owned by ids it cannot map (EOVERFLOW), and what
 * we create is the consumer's from the start. A non-zero fsuid drops the file capabilities from
 * the effective set; they are raised again from the permitted set, for this thread only. */
struct fs_saved {
	long uid, gid;
	bool set;
};

static int fs_as(const struct ids *id, struct fs_saved *sv)
{
	sv->set = false;
	if (!id->uid && !id->gid)
		return 0;
	sv->gid = syscall(SYS_setfsgid, id->gid);
	sv->uid = syscall(SYS_setfsuid, id->uid);
	sv->set = true;
	if ((uid_t)syscall(SYS_setfsuid, -1) != id->uid)
		return -EPERM;
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

static void fs_restore(const struct fs_saved *sv)
{
	if (!sv->set)
		return;
	syscall(SYS_setfsuid, sv->uid);
	syscall(SYS_setfsgid, sv->gid);
}

static int listen_do(struct listen_arg *a, struct ns_result *r)
{
	int dirfd cleanup_close = -1;
	const char *base;
	if (open_parent(a->target, &a->dirs, &dirfd, &base, r) < 0)
		return -1;
	if (clear_target(dirfd, base, a->target, true, r) < 0)
		return -1;
	/* Bound and listening under a temporary name first, then renamed into place: the target
	 * never exists without a listener behind it (no ECONNREFUSED window), and a stale socket
	 * of an earlier run is replaced atomically (re-adoption never leaves the target missing).
	 */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), ".pvx%d.%s", (int)getpid(), base);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		res_fail(r, -ENAMETOOLONG, "target `%s`: file name too long", a->target);
		return -1;
	}
	const char *tmp = sa.sun_path;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int on = 1;
	if (fd < 0 ||
	    (a->own.passcred && setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0)) {
		res_fail(r, -errno, "socket: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* bind relative to the verified directory: no path lookup outside dirfd. The umask gives
	 * the socket its mode atomically (no window with wider permissions). */
	umask(~a->own.mode & 0777);
	if (fchdir(dirfd) < 0 || (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		res_fail(r, -errno, "target `%s`: bind: %s", a->target, strerror(errno));
		close(fd);
		return -1;
	}
	struct stat st;
	const char *what = "chown";
	if (fchownat(dirfd, tmp, a->own.uid, a->own.gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (what = "listen", listen(fd, SOMAXCONN) < 0) ||
	    (what = "rename", renameat(dirfd, tmp, dirfd, base) < 0) ||
	    (what = "stat", fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)) {
		res_fail(r, -errno, "target `%s`: %s: %s", a->target, what, strerror(errno));
		unlinkat(dirfd, tmp, 0);
		close(fd);
		return -1;
	}
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	return fd;
}

static int listen_fn(void *arg, struct ns_result *r)
{
	struct listen_arg *a = arg;
	struct fs_saved sv;
	int rc = fs_as(&a->dirs, &sv);
	int fd = -1;
	if (rc < 0)
		res_fail(r, rc, "act as the consumer's root: %s", strerror(-rc));
	else
		fd = listen_do(a, r);
	fs_restore(&sv);
	return fd;
}

static int inj_set(struct pvx_injected *inj, pid_t pid, const char *path,
		   const struct ns_result *res, bool mounted)
{
	pvx_injected_clear(inj);
	inj->path = strdup(path);
	if (!inj->path)
		return -ENOMEM;
	inj->pid = pid;
	inj->dev = res->dev;
	inj->ino = res->ino;
	inj->mounted = mounted;
	return 0;
}

int pvx_plumb_listen(pid_t pid, const char *target, const struct pvx_owner *own, int *fd,
		     struct pvx_injected *inj, struct pv_error *err)
{
	int ns cleanup_close = -1;
	int rc = open_ns(pid, &ns, err);
	if (rc < 0)
		return rc;
	/* own is in the consumer's ids (default: its root, see PVX_OWNER_DEFAULT) */
	struct listen_arg a = {.target = target,
			       .own = own ? *own : (struct pvx_owner)PVX_OWNER_DEFAULT};
	struct ids sock = {0, 0};
	rc = consumer_ids(pid, a.own.uid, a.own.gid, &sock, err);
	if (rc == 0)
		rc = consumer_ids(pid, 0, 0, &a.dirs, err);
	if (rc < 0)
		return rc;
	a.own.uid = sock.uid;
	a.own.gid = sock.gid;
	struct ns_result res;
	rc = run_in_ns(ns, listen_fn, &a, fd, &res);
	if (rc < 0)
		return pv_error_set(err, rc, "inject into pid %d: %s", (int)pid, res.msg);
	rc = inj_set(inj, pid, target, &res, false);
	if (rc < 0) {
		close(*fd);
		*fd = -1;
		return pv_error_set(err, rc, "out of memory");
	}
	return 0;
}

/* ---- direct mode: bind mount of the provider's socket ---- */

struct bind_arg {
	int proot;   /* O_PATH of /proc/<provider>/root, opened before any setns */
	int cons_ns; /* consumer mount ns */
	const char *socket;
	const char *target;
	struct ids dirs;
};

static void bind_attach(struct bind_arg *a, int tree, struct ns_result *r);

static int bind_fn(void *arg, struct ns_result *r)
{
	struct bind_arg *a = arg;
	/* open_tree(OPEN_TREE_CLONE) only clones mounts of the caller's own namespace, so the
	 * clone is taken from inside the provider's; the detached copy can then be attached in
	 * the consumer's namespace. */
	int sfd cleanup_close =
	    sys_openat2(a->proot, a->socket, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	if (sfd < 0) {
		res_fail(r, sfd, "provider socket `%s`: %s", a->socket, strerror(-sfd));
		return -1;
	}
	struct stat st;
	if (fstat(sfd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		res_fail(r, -ENOTSOCK, "provider socket `%s`: not a socket", a->socket);
		return -1;
	}
	int tree cleanup_close = (int)syscall(SYS_open_tree, sfd, "",
					      OPEN_TREE_CLONE | AT_EMPTY_PATH | OPEN_TREE_CLOEXEC);
	if (tree < 0) {
		res_fail(r, -errno, "provider socket `%s`: open_tree: %s", a->socket,
			 strerror(errno));
		return -1;
	}
	if (setns(a->cons_ns, CLONE_NEWNS) < 0) {
		res_fail(r, -errno, "setns consumer: %s", strerror(errno));
		return -1;
	}
	struct fs_saved sv;
	int rc = fs_as(&a->dirs, &sv);
	if (rc < 0)
		res_fail(r, rc, "act as the consumer's root: %s", strerror(-rc));
	else
		bind_attach(a, tree, r);
	fs_restore(&sv);
	return -1;
}

/* In the consumer's namespace: the mount point at target, the provider's socket on it. */
static void bind_attach(struct bind_arg *a, int tree, struct ns_result *r)
{
	struct stat st;
	int dirfd cleanup_close = -1;
	const char *base;
	if (open_parent(a->target, &a->dirs, &dirfd, &base, r) < 0)
		return;
	if (clear_target(dirfd, base, a->target, false, r) < 0)
		return;
	int f = openat(dirfd, base, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0666);
	if (f < 0) {
		res_fail(r, -errno, "target `%s`: create mount point: %s", a->target,
			 strerror(errno));
		return;
	}
	close(f);
	if (syscall(SYS_move_mount, tree, "", dirfd, base, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		res_fail(r, -errno, "target `%s`: move_mount: %s", a->target, strerror(errno));
		unlinkat(dirfd, base, 0);
		return;
	}
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		r->dev = st.st_dev;
		r->ino = st.st_ino;
	}
}

int pvx_plumb_bind_socket(pid_t provider_pid, const char *socket_path, pid_t consumer_pid,
			  const char *target, struct pvx_injected *inj, struct pv_error *err)
{
	int cns cleanup_close = -1, pns cleanup_close = -1, proot cleanup_close = -1;
	int rc = open_ns(consumer_pid, &cns, err);
	if (rc < 0)
		return rc;
	rc = open_ns(provider_pid, &pns, err);
	if (rc < 0)
		return rc;
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/root", (int)provider_pid);
	proot = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (proot < 0)
		return pv_error_set(err, -errno, "open %s: %s", p, strerror(errno));
	struct bind_arg a = {
	    .proot = proot, .cons_ns = cns, .socket = socket_path, .target = target};
	rc = consumer_ids(consumer_pid, 0, 0, &a.dirs, err);
	if (rc < 0)
		return rc;
	struct ns_result res;
	rc = run_in_ns(pns, bind_fn, &a, NULL, &res);
	if (rc < 0)
		return pv_error_set(err, rc, "bind provider pid %d into pid %d: %s",
				    (int)provider_pid, (int)consumer_pid, res.msg);
	rc = inj_set(inj, consumer_pid, target, &res, true);
	if (rc < 0)
		return pv_error_set(err, rc, "out of memory");
	return 0;
}

/* ---- device nodes ---- */

struct mknod_arg {
	const char *target;
	mode_t mode; /* type | permission bits */
	dev_t rdev;
	struct ids dirs;
};

static int mknod_do(struct mknod_arg *a, struct ns_result *r)
{
	int dirfd cleanup_close = -1;
	const char *base;
	if (open_parent(a->target, &a->dirs, &dirfd, &base, r) < 0)
		return -1;
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if ((st.st_mode & S_IFMT) == (a->mode & S_IFMT) && st.st_rdev == a->rdev)
			goto done; /* idempotent: already the node we want */
		res_fail(r, -EEXIST, "target `%s`: exists with another type or device", a->target);
		return -1;
	}
	umask(0);
	if (mknodat(dirfd, base, a->mode, a->rdev) < 0) {
		res_fail(r, -errno, "target `%s`: mknod %u:%u: %s", a->target, major(a->rdev),
			 minor(a->rdev), strerror(errno));
		return -1;
	}
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		res_fail(r, -errno, "target `%s`: stat: %s", a->target, strerror(errno));
		return -1;
	}
done:
	r->dev = st.st_dev;
	r->ino = st.st_ino;
	return -1;
}

static int mknod_fn(void *arg, struct ns_result *r)
{
	struct mknod_arg *a = arg;
	struct fs_saved sv;
	int rc = fs_as(&a->dirs, &sv);
	if (rc < 0)
		res_fail(r, rc, "act as the consumer's root: %s", strerror(-rc));
	else
		mknod_do(a, r);
	fs_restore(&sv);
	return -1;
}

int pvx_plumb_mknod(pid_t provider_pid, const char *node_path, pid_t consumer_pid,
		    const char *target, struct pvx_injected *inj, struct pv_error *err)
{
	int nfd cleanup_close = -1;
	int rc = pvx_plumb_open_in_root(provider_pid, node_path, &nfd, err);
	if (rc < 0)
		return rc;
	struct stat st;
	if (fstat(nfd, &st) < 0)
		return pv_error_set(err, -errno, "provider node `%s`: %s", node_path,
				    strerror(errno));
	if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
		return pv_error_set(err, -ENODEV, "provider node `%s`: not a device node",
				    node_path);
	int ns cleanup_close = -1;
	rc = open_ns(consumer_pid, &ns, err);
	if (rc < 0)
		return rc;
	struct mknod_arg a = {
	    .target = target, .mode = st.st_mode & (S_IFMT | 07777), .rdev = st.st_rdev};
	rc = consumer_ids(consumer_pid, 0, 0, &a.dirs, err);
	if (rc < 0)
		return rc;
	struct ns_result res;
	rc = run_in_ns(ns, mknod_fn, &a, NULL, &res);
	if (rc < 0)
		return pv_error_set(err, rc, "inject node into pid %d: %s", (int)consumer_pid,
				    res.msg);
	rc = inj_set(inj, consumer_pid, target, &res, false);
	if (rc < 0)
		return pv_error_set(err, rc, "out of memory");
	return pvx_plumb_cgroup_allow(consumer_pid, S_ISCHR(st.st_mode) ? 'c' : 'b',
				      major(st.st_rdev), minor(st.st_rdev), err);
}

/* The consumer's cgroup path in hierarchy `want` of /proc/<pid>/cgroup: a v1 controller name
 * ("devices"), or "" for the v2 line ("0::/path"). -ENOENT when there is none. */
static int proc_cgroup(pid_t pid, const char *want, char *out, size_t len)
{
	char p[64], line[1024];
	snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	FILE *f = fopen(p, "re");
	if (!f)
		return -errno;
	int rc = -ENOENT;
	while (rc == -ENOENT && fgets(line, sizeof(line), f)) {
		/* "4:devices:/lxc/name" or "0::/lxc.payload.name" */
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		/* v2: hierarchy 0 with no controller list */
		bool has = !*want && c1 == line + 1 && line[0] == '0' && c2 == c1 + 1;
		for (char *sv = NULL, *t = *want ? strtok_r(c1 + 1, ",", &sv) : NULL; t;
		     t = strtok_r(NULL, ",", &sv))
			has = has || !strcmp(t, want);
		if (!has)
			continue;
		char *path = c2 + 1;
		path[strcspn(path, "\n")] = '\0';
		snprintf(out, len, "%s", path);
		rc = 0;
	}
	fclose(f);
	return rc;
}

static int cgroup_v1_allow(pid_t pid, const char *cg, const char *rule, struct pv_error *err)
{
	if (!strcmp(cg, "/"))
		return 0; /* the root devices cgroup allows everything */
	char p[PATH_MAX];
	if (strstr(cg, "..") ||
	    snprintf(p, sizeof(p), "/sys/fs/cgroup/devices%s/devices.allow", cg) >= (int)sizeof(p))
		return pv_error_set(err, -EINVAL, "pid %d: odd cgroup path `%s`", (int)pid, cg);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return pv_error_set(err, -errno, "open %s: %s", p, strerror(errno));
	size_t n = strlen(rule);
	int rc = write(fd, rule, n) == (ssize_t)n ? 0 : -errno;
	close(fd);
	if (rc < 0)
		return pv_error_set(err, rc, "%s: write `%s`: %s", p, rule, strerror(-rc));
	return 0;
}

/* ---- cgroup v2: device programs ---- */

#define GRANT_INSNS 9
#define MAX_PROGS   64

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	int rc = (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
	return rc < 0 ? -errno : rc;
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return (struct bpf_insn){
	    .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

/* "allow this one node, else go on": the prefix put in front of a device program. r1 is the
 * context (struct bpf_cgroup_dev_ctx) and is left untouched for the program that follows. */
static void grant_block(struct bpf_insn *b, uint32_t type, uint32_t maj, uint32_t min)
{
	const uint8_t ldxw = BPF_LDX | BPF_MEM | BPF_W, jne = BPF_JMP | BPF_JNE | BPF_K;
	b[0] =
	    insn(ldxw, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
	b[1] = insn(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff); /* the device type */
	b[2] = insn(jne, BPF_REG_2, 0, 6, (int32_t)type);
	b[3] = insn(ldxw, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, major), 0);
	b[4] = insn(jne, BPF_REG_2, 0, 4, (int32_t)maj);
	b[5] = insn(ldxw, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
	b[6] = insn(jne, BPF_REG_2, 0, 2, (int32_t)min);
	b[7] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
	b[8] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

/* true when one of the grant blocks at the start of prog is already this one */
static bool has_grant(const struct bpf_insn *prog, size_t n, const struct bpf_insn *want)
{
	struct bpf_insn probe[GRANT_INSNS];
	for (size_t at = 0; at + GRANT_INSNS <= n; at += GRANT_INSNS) {
		const struct bpf_insn *b = prog + at;
		grant_block(probe, (uint32_t)b[2].imm, (uint32_t)b[4].imm, (uint32_t)b[6].imm);
		if (memcmp(probe, b, sizeof(probe)))
			return false; /* past our prefix: the runtime's own program */
		if (!memcmp(b, want, sizeof(probe)))
			return true;
	}
	return false;
}

/* The instructions of a loaded program, as the kernel keeps them (what bpftool dumps). */
static int prog_insns(int pfd, struct bpf_insn **out, size_t *n)
{
	struct bpf_prog_info info = {0};
	union bpf_attr a = {0};
	a.info.bpf_fd = (uint32_t)pfd;
	a.info.info_len = sizeof(info);
	a.info.info = (uint64_t)(uintptr_t)&info;
	int rc = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
	if (rc < 0)
		return rc;
	size_t len = info.xlated_prog_len;
	if (!len || len % sizeof(struct bpf_insn))
		return -EPERM; /* not dumpable for us */
	struct bpf_insn *v = malloc(len);
	if (!v)
		return -ENOMEM;
	memset(&info, 0, sizeof(info));
	info.xlated_prog_len = (uint32_t)len;
	info.xlated_prog_insns = (uint64_t)(uintptr_t)v;
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = (uint32_t)pfd;
	a.info.info_len = sizeof(info);
	a.info.info = (uint64_t)(uintptr_t)&info;
	rc = sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
	if (rc < 0 || info.xlated_prog_len != len) {
		free(v);
		return rc < 0 ? rc : -EAGAIN;
	}
	*out = v;
	*n = len / sizeof(struct bpf_insn);
	return 0;
}

/* Replaces device program pfd attached at cgfd (with flags) by grant + itself. */
static int extend_prog(int cgfd, int pfd, uint32_t flags, const struct bpf_insn *grant,
		       const char *where, struct pv_error *err)
{
	struct bpf_insn *old = NULL;
	size_t n = 0;
	int rc = prog_insns(pfd, &old, &n);
	if (rc < 0)
		return pv_error_set(err, rc, "%s: read device program: %s", where, strerror(-rc));
	if (has_grant(old, n, grant)) {
		free(old);
		return 0;
	}
	/* A copy only works for self-contained programs: the dump of a helper call or a map
	 * reference holds kernel values, not something that can be loaded again. */
	for (size_t i = 0; i < n; i++)
		if (old[i].code == (BPF_JMP | BPF_CALL) ||
		    old[i].code == (BPF_LD | BPF_IMM | BPF_DW)) {
			free(old);
			return pv_error_set(err, -EOPNOTSUPP,
					    "%s: device program uses helpers or maps: cannot add "
					    "a grant to it",
					    where);
		}
	struct bpf_insn *prog = malloc((n + GRANT_INSNS) * sizeof(*prog));
	if (!prog) {
		free(old);
		return pv_error_set(err, -ENOMEM, "out of memory");
	}
	memcpy(prog, grant, GRANT_INSNS * sizeof(*prog));
	memcpy(prog + GRANT_INSNS, old, n * sizeof(*prog));
	free(old);
	char log[4096] = "";
	union bpf_attr a = {0};
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insn_cnt = (uint32_t)(n + GRANT_INSNS);
	a.insns = (uint64_t)(uintptr_t)prog;
	a.license = (uint64_t)(uintptr_t) "GPL";
	int nfd = sys_bpf(BPF_PROG_LOAD, &a);
	if (nfd < 0 && nfd != -ENOMEM && nfd != -EPERM) {
		/* again with the verifier's log, for the message (a full log is -ENOSPC, so it is
		 * not asked for when the load works) */
		a.log_level = 1;
		a.log_size = sizeof(log);
		a.log_buf = (uint64_t)(uintptr_t)log;
		int again = sys_bpf(BPF_PROG_LOAD, &a);
		if (again >= 0)
			close(again);
		log[sizeof(log) - 1] = '\0';
	}
	free(prog);
	if (nfd < 0)
		return pv_error_set(err, nfd, "%s: load extended device program: %s %s", where,
				    strerror(-nfd), log);
	memset(&a, 0, sizeof(a));
	a.target_fd = (uint32_t)cgfd;
	a.attach_bpf_fd = (uint32_t)nfd;
	a.attach_type = BPF_CGROUP_DEVICE;
	if (flags & BPF_F_ALLOW_MULTI) {
		/* in place of the old one, same position in the list, no moment without it */
		a.attach_flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
		a.replace_bpf_fd = (uint32_t)pfd;
	} else {
		a.attach_flags = flags; /* a single program is swapped by attaching another */
	}
	rc = sys_bpf(BPF_PROG_ATTACH, &a);
	close(nfd);
	if (rc < 0)
		return pv_error_set(err, rc, "%s: attach extended device program: %s", where,
				    strerror(-rc));
	return 0;
}

/* Extends every device program attached along the cgroup path (every one of them must allow
 * an access). No program anywhere: v2 restricts nothing, nothing to do. */
static int cgroup_v2_allow(pid_t pid, const char *mnt, const char *cg, uint32_t type, unsigned maj,
			   unsigned min, struct pv_error *err)
{
	char path[PATH_MAX];
	if (!strcmp(cg, "/"))
		cg = ""; /* the mount point is the root cgroup */
	if (strstr(cg, "..") || snprintf(path, sizeof(path), "%s%s", mnt, cg) >= (int)sizeof(path))
		return pv_error_set(err, -EINVAL, "pid %d: odd cgroup path `%s`", (int)pid, cg);
	struct bpf_insn grant[GRANT_INSNS];
	grant_block(grant, type, maj, min);
	size_t root_len = strlen(mnt);
	for (;;) {
		int cgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cgfd < 0)
			return pv_error_set(err, -errno, "open %s: %s", path, strerror(errno));
		uint32_t ids[MAX_PROGS];
		union bpf_attr a = {0};
		a.query.target_fd = (uint32_t)cgfd;
		a.query.attach_type = BPF_CGROUP_DEVICE;
		a.query.prog_ids = (uint64_t)(uintptr_t)ids;
		a.query.prog_cnt = MAX_PROGS;
		int rc = sys_bpf(BPF_PROG_QUERY, &a);
		if (rc == -ENOSYS || rc == -EINVAL || rc == -EOPNOTSUPP) {
			/* a kernel without cgroup BPF has no device programs to extend */
			close(cgfd);
			return 0;
		}
		if (rc < 0) {
			close(cgfd);
			return pv_error_set(err, rc, "%s: query device programs: %s", path,
					    strerror(-rc));
		}
		for (uint32_t i = 0; i < a.query.prog_cnt && rc == 0; i++) {
			union bpf_attr g = {0};
			g.prog_id = ids[i];
			int pfd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &g);
			if (pfd == -ENOENT)
				continue; /* detached meanwhile */
			if (pfd < 0) {
				rc = pv_error_set(err, pfd, "%s: device program %u: %s", path,
						  ids[i], strerror(-pfd));
				break;
			}
			rc = extend_prog(cgfd, pfd, a.query.attach_flags, grant, path, err);
			close(pfd);
		}
		close(cgfd);
		if (rc < 0)
			return rc;
		char *slash = strrchr(path, '/');
		if (strlen(path) <= root_len || !slash || (size_t)(slash - path) < root_len)
			return 0;
		*slash = '\0'; /* up one level, the mount point last */
	}
}

/* Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup (unified), or
 * /sys/fs/cgroup/unified (hybrid), or nowhere. */
static const char *cgroup2_mount(void)
{
	static const char *const cands[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified", NULL};
	for (size_t i = 0; cands[i]; i++) {
		struct statfs sf;
		if (statfs(cands[i], &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
			return cands[i];
	}
	return NULL;
}

/* Why not liblxc's set_cgroup_item("devices.allow") on the running container: pv-xconnect
 * would need liblxc, the container's name and the engine's lxcpath, and it would only work
 * for consumers LXC runs through a live monitor. Extending the attached programs works for any
 * runtime. The cost: a runtime that rebuilds its program later (a new devices rule through
 * LXC) drops our prefix; the node then fails with EPERM until the link is re-established. */
int pvx_plumb_cgroup_allow(pid_t pid, char type, unsigned maj, unsigned min, struct pv_error *err)
{
	char cg[512], rule[64];
	snprintf(rule, sizeof(rule), "%c %u:%u rwm", type, maj, min);
	int rc = proc_cgroup(pid, "devices", cg, sizeof(cg));
	if (rc < 0 && rc != -ENOENT)
		return pv_error_set(err, rc, "pid %d: read cgroup: %s", (int)pid, strerror(-rc));
	bool v1 = rc == 0;
	if (v1 && (rc = cgroup_v1_allow(pid, cg, rule, err)) < 0)
		return rc;
	/* v2 programs apply on top of v1 rules (hybrid hosts), so both are granted */
	const char *mnt = cgroup2_mount();
	if (mnt && proc_cgroup(pid, "", cg, sizeof(cg)) == 0)
		return cgroup_v2_allow(pid, mnt, cg,
				       type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, maj,
				       min, err);
	if (!v1)
		return pv_error_set(err, -EOPNOTSUPP,
				    "pid %d: neither a cgroup v1 devices controller nor cgroup v2",
				    (int)pid);
	return 0;
}

/* ---- removal ---- */

struct remove_arg {
	const struct pvx_injected *inj;
};

static int remove_fn(void *arg, struct ns_result *r)
{
	const struct pvx_injected *inj = ((struct remove_arg *)arg)->inj;
	int dirfd cleanup_close = -1;
	const char *base;
	if (open_parent(inj->path, NULL, &dirfd, &base, r) < 0)
		return -1;
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		res_fail(r, -errno, "%s: %s", inj->path, strerror(errno));
		return -1;
	}
	/* Only remove what is still ours: the container may have replaced it meanwhile. */
	if (st.st_dev != inj->dev || st.st_ino != inj->ino) {
		res_fail(r, -ESTALE, "%s: replaced since injection: left alone", inj->path);
		return -1;
	}
	if (inj->mounted) {
		if (fchdir(dirfd) < 0 || umount2(base, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
			res_fail(r, -errno, "%s: umount: %s", inj->path, strerror(errno));
			return -1;
		}
		if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    st.st_size == 0)
			unlinkat(dirfd, base, 0);
		return -1;
	}
	if (unlinkat(dirfd, base, 0) < 0)
		res_fail(r, -errno, "%s: unlink: %s", inj->path, strerror(errno));
	return -1;
}

void pvx_plumb_remove(struct pvx_injected *inj)
{
	if (!inj->path)
		return;
	int ns cleanup_close = -1;
	if (open_ns(inj->pid, &ns, NULL) == 0) {
		struct remove_arg a = {.inj = inj};
		struct ns_result res;
		if (run_in_ns(ns, remove_fn, &a, NULL, &res) < 0)
			pvx_log(PVX_DEBUG, "remove %s in pid %d: %s", inj->path, (int)inj->pid,
				res.msg);
	}
	/* A dead consumer took its namespace (and our socket) with it. */
	pvx_injected_clear(inj);
}

void pvx_injected_clear(struct pvx_injected *inj)
{
	free(inj->path);
	memset(inj, 0, sizeof(*inj));
}

/* ---- provider side ---- */

int pvx_plumb_open_in_root(pid_t pid, const char *path, int *fd, struct pv_error *err)
{
	char p[64];
	*fd = -1;
	if (pid <= 0)
		return pv_error_set(err, -ESRCH, "provider not running");
	snprintf(p, sizeof(p), "/proc/%d/root", (int)pid);
	int root cleanup_close = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return pv_error_set(err, -errno == -ENOENT ? -ESRCH : -errno, "open %s: %s", p,
				    strerror(errno));
	int rc = sys_openat2(root, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
	if (rc < 0)
		return pv_error_set(err, rc, "provider pid %d: `%s`: %s", (int)pid, path,
				    strerror(-rc));
	*fd = rc;
	return 0;
}

static int connect_at(int pathfd, bool passcred, int *fd)
{
	/* connect() through the O_PATH fd's /proc/self/fd link reaches exactly the inode we
	 * resolved safely, without a second path walk in the provider's tree. */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", pathfd);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	int on = 1;
	if (passcred && setsockopt(s, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) {
		int rc = -errno;
		close(s);
		return rc;
	}
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = -errno;
		close(s);
		return rc;
	}
	*fd = s;
	return 0;
}

int pvx_plumb_connect_at(int pathfd, int *fd)
{
	return connect_at(pathfd, false, fd);
}

int pvx_plumb_connect(pid_t pid, const char *path, int *fd, struct pv_error *err)
{
	int pfd cleanup_close = -1;
	int rc = pvx_plumb_open_in_root(pid, path, &pfd, err);
	if (rc < 0)
		return rc;
	rc = pvx_plumb_connect_at(pfd, fd);
	if (rc < 0)
		return pv_error_set(err, rc, "provider pid %d: connect `%s`: %s", (int)pid, path,
				    strerror(-rc));
	return 0;
}

int pvx_plumb_connect_cached(int *cache, pid_t pid, const char *path, bool passcred, int *fd)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (*cache < 0) {
			int rc = pvx_plumb_open_in_root(pid, path, cache, NULL);
			if (rc < 0)
				return rc;
		}
		int rc = connect_at(*cache, passcred, fd);
		if (rc == 0 || (rc != -ECONNREFUSED && rc != -ENOENT))
			return rc;
		/* the provider re-created its socket: the cached inode is dead, resolve again */
		close(*cache);
		*cache = -1;
	}
	return -ECONNREFUSED;
}
