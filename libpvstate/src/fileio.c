/* fileio.c: crash-safe writes (temp + fsync + rename + fsync dir), whole-file reads, mkdir -p,
 * a remove_tree that stays on one mount and never follows symlinks, and sha256 via libcrypto. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pvstate/fileio.h"

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Copies the directory part of path into dir ("." when there is none). */
static int dir_of(const char *path, char *dir, size_t n)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return snprintf(dir, n, ".") >= (int)n ? -ENAMETOOLONG : 0;
	size_t l = slash == path ? 1 : (size_t)(slash - path);
	if (l >= n)
		return -ENAMETOOLONG;
	memcpy(dir, path, l);
	dir[l] = '\0';
	return 0;
}

int pv_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int pv_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct pv_error *err)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	struct stat st;
	int r, fd = -1;

	if ((r = dir_of(path, dir, sizeof(dir))) < 0)
		return pv_error_set(err, r, "%s: path too long", path);
	/* rename() would replace an empty directory or fail oddly on a full one: refuse up front
	 * so the message names the real problem. */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return pv_error_set(err, -EISDIR, "%s: is a directory", path);

	/* A unique name per attempt: concurrent writers of the same path never share a temp. */
	for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%lx%x", path, (int)getpid(),
			     (unsigned long)ts.tv_nsec, attempt) >= (int)sizeof(tmp))
			return pv_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		if (fd < 0 && errno != EEXIST)
			return pv_error_set(err, -errno, "%s: create temp %s: %s", path, tmp,
					    strerror(errno));
	}
	if (fd < 0)
		return pv_error_set(err, -EEXIST, "%s: no unique temp name", path);

	const char *step = "write";
	r = write_all(fd, data, len);
	if (!r) {
		step = "chmod";
		/* O_CREAT applied the umask; the caller asked for exactly `mode`. */
		r = fchmod(fd, mode) < 0 ? -errno : 0;
	}
	if (!r) {
		step = "fsync";
		r = fsync(fd) < 0 ? -errno : 0;
	}
	if (close(fd) < 0 && !r) {
		step = "close";
		r = -errno;
	}
	if (!r) {
		step = "rename";
		r = rename(tmp, path) < 0 ? -errno : 0;
	}
	if (r) {
		unlink(tmp);
		return pv_error_set(err, r, "%s: %s: %s", path, step, strerror(-r));
	}
	r = pv_fsync_dir(dir);
	if (r)
		return pv_error_set(err, r, "%s: fsync directory %s: %s", path, dir, strerror(-r));
	return 0;
}

int pv_file_read_all(const char *path, size_t max, char **out, size_t *len, struct pv_error *err)
{
	*out = NULL;
	if (len)
		*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pv_error_set(err, -errno, "%s: %s", path, strerror(errno));
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	int r = 0;
	if (!buf) {
		close(fd);
		return pv_error_set(err, -ENOMEM, "%s: out of memory", path);
	}
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				r = pv_error_set(err, -EFBIG, "%s: larger than %zu bytes", path,
						 max);
				break;
			}
			size_t nc = cap * 2;
			char *nb = realloc(buf, nc + 1);
			if (!nb) {
				r = pv_error_set(err, -ENOMEM, "%s: out of memory", path);
				break;
			}
			buf = nb;
			cap = nc;
		}
		ssize_t got = read(fd, buf + n, cap - n);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = pv_error_set(err, -errno, "%s: read: %s", path, strerror(errno));
			break;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > max) {
			r = pv_error_set(err, -EFBIG, "%s: larger than %zu bytes", path, max);
			break;
		}
	}
	close(fd);
	if (r) {
		free(buf);
		return r;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int pv_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t l = strlen(path);
	if (l == 0)
		return -EINVAL;
	if (l >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, l + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0) {
		if (errno != EEXIST)
			return -errno;
		struct stat st;
		if (stat(buf, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
	}
	return 0;
}

/* Empties the directory dfd (which lives on device dev). Entries on another device are mount
 * points: they are left alone and reported as -EBUSY so the caller knows the tree is not gone. */
static int remove_contents(int dfd, dev_t dev, int depth)
{
	if (depth > 256)
		return -ELOOP;
	DIR *d = fdopendir(dfd);
	if (!d) {
		int r = -errno;
		close(dfd);
		return r;
	}
	int result = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT && !result)
				result = -errno;
			continue;
		}
		if (st.st_dev != dev) {
			if (!result)
				result = -EBUSY;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			/* O_NOFOLLOW: a directory swapped for a symlink meanwhile is not entered.
			 */
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				if (!result)
					result = -errno;
				continue;
			}
			struct stat sst;
			if (fstat(sub, &sst) < 0 || sst.st_dev != dev) {
				close(sub);
				if (!result)
					result = -EBUSY;
				continue;
			}
			int r = remove_contents(sub, dev, depth + 1);
			if (r && !result)
				result = r;
			if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT &&
			    !result)
				result = -errno;
		} else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && !result) {
			result = -errno;
		}
	}
	closedir(d);
	return result;
}

int pv_remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = remove_contents(fd, st.st_dev, 0);
	if (r)
		return r;
	return rmdir(path) < 0 ? -errno : 0;
}

/* ---- sha256 ---- */

struct pv_sha256_ctx {
	EVP_MD_CTX *md;
};

static void to_hex(const unsigned char *d, unsigned n, char *hex)
{
	static const char x[] = "0123456789abcdef";
	for (unsigned i = 0; i < n; i++) {
		hex[2 * i] = x[d[i] >> 4];
		hex[2 * i + 1] = x[d[i] & 15];
	}
	hex[2 * n] = '\0';
}

struct pv_sha256_ctx *pv_sha256_new(void)
{
	struct pv_sha256_ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c->md);
		free(c);
		return NULL;
	}
	return c;
}

int pv_sha256_update(struct pv_sha256_ctx *c, const void *data, size_t len)
{
	if (!c)
		return -EINVAL;
	return EVP_DigestUpdate(c->md, data, len) == 1 ? 0 : -EIO;
}

int pv_sha256_final(struct pv_sha256_ctx *c, char hex[65])
{
	if (!c)
		return -EINVAL;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	int r = EVP_DigestFinal_ex(c->md, d, &n) == 1 && n == 32 ? 0 : -EIO;
	if (!r)
		to_hex(d, n, hex);
	pv_sha256_abort(c);
	return r;
}

void pv_sha256_abort(struct pv_sha256_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md);
	free(c);
}

int pv_sha256_buf(const void *data, size_t len, char hex[65])
{
	struct pv_sha256_ctx *c = pv_sha256_new();
	if (!c)
		return -ENOMEM;
	int r = pv_sha256_update(c, data, len);
	if (r) {
		pv_sha256_abort(c);
		return r;
	}
	return pv_sha256_final(c, hex);
}

int pv_sha256_fd(int fd, char hex[65])
{
	struct pv_sha256_ctx *c = pv_sha256_new();
	if (!c)
		return -ENOMEM;
	char buf[64 * 1024];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int r = -errno;
			pv_sha256_abort(c);
			return r;
		}
		if (n == 0)
			break;
		pv_sha256_update(c, buf, (size_t)n);
	}
	return pv_sha256_final(c, hex);
}

int pv_sha256_file(const char *path, char hex[65], struct pv_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pv_error_set(err, -errno, "%s: %s", path, strerror(errno));
	int r = pv_sha256_fd(fd, hex);
	close(fd);
	if (r)
		return pv_error_set(err, r, "%s: hash: %s", path, strerror(-r));
	return 0;
}
