/* volumes.c: a container's mounts under PV_DISK_VOLDIR/<c>/: loop-mounted squashfs volumes, the
 * writable storage volumes by persistence (permanent / revision / boot tmpfs) and the rootfs spec.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/fileio.h"

/* "[handler:]file" -> file; handlers other than none are not supported here (dm-verity). */
static const char *vol_file(const char *spec, const char **handler)
{
	const char *colon = strchr(spec, ':');
	*handler = NULL;
	if (!colon)
		return spec;
	*handler = spec;
	return colon + 1;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

bool pv_is_mountpoint(const char *path)
{
	char line[8192];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	size_t pl = strlen(path);
	while (!found && fgets(line, sizeof(line), f)) {
		/* field 5 is the mount point (octal-escaped; our paths have no spaces) */
		char *p = line;
		for (int i = 0; i < 4 && p; i++) {
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (p && !strncmp(p, path, pl) && p[pl] == ' ')
			found = true;
	}
	fclose(f);
	return found;
}

/* Attaches file to a free loop device (read-only, autoclear: the device is released when the
 * last mount goes) and returns its path. Retries when another process takes the same device. */
static int loop_attach(const char *file, char *dev, size_t n)
{
	int ffd = open(file, O_RDONLY | O_CLOEXEC);
	if (ffd < 0)
		return -errno;
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		int r = -errno;
		close(ffd);
		return r;
	}
	int r = -EBUSY;
	for (int tries = 0; tries < 32; tries++) {
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0) {
			r = -errno;
			break;
		}
		snprintf(dev, n, "/dev/loop%d", nr);
		int lfd = open(dev, O_RDONLY | O_CLOEXEC);
		if (lfd < 0) {
			r = -errno;
			continue;
		}
		struct loop_config cfg;
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = ffd;
		cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
		/* the name is informational (losetup -a); keep its tail, which names the file */
		size_t fl = strlen(file);
		const char *tail = fl >= LO_NAME_SIZE ? file + fl - (LO_NAME_SIZE - 1) : file;
		memcpy(cfg.info.lo_file_name, tail, strlen(tail));
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
			/* keep lfd open until mounted: autoclear would free an unused device */
			r = lfd;
			break;
		}
		r = -errno;
		close(lfd);
		if (r != -EBUSY)
			break;
	}
	close(ctl);
	close(ffd);
	return r;
}

static int add_mount(struct pv_ctr *c, const char *path)
{
	char **m = realloc(c->mounts, (c->n_mounts + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	c->mounts = m;
	m[c->n_mounts] = strdup(path);
	if (!m[c->n_mounts])
		return -ENOMEM;
	c->n_mounts++;
	return 0;
}

static int mount_loop(struct pv_ctr *c, const char *file, const char *target, const char *fstype,
		      struct pv_error *err)
{
	char dev[64];
	const char *name = c->spec->name;
	int lfd = loop_attach(file, dev, sizeof(dev));
	if (lfd < 0)
		return pv_error_set(err, lfd, "container %s: loop device for %s: %s", name, file,
				    strerror(-lfd));
	int r = 0;
	if (mount(dev, target, fstype, MS_RDONLY | MS_NODEV, NULL) < 0) {
		r = -errno;
		pv_error_set(err, r, "container %s: mount %s (%s) on %s: %s", name, file, fstype,
			     target, strerror(-r));
	}
	close(lfd);
	return r < 0 ? r : add_mount(c, target);
}

static int mount_bind(struct pv_ctr *c, const char *src, const char *target, struct pv_error *err)
{
	if (mount(src, target, NULL, MS_BIND, NULL) < 0) {
		int r = -errno;
		return pv_error_set(err, r, "container %s: bind %s on %s: %s", c->spec->name, src,
				    target, strerror(-r));
	}
	return add_mount(c, target);
}

/* One volume listed in root-volume / volumes. */
static int mount_volume(struct pv_ctr *c, const char *spec, struct pv_error *err)
{
	struct pv_engine *e = c->e;
	const char *handler;
	const char *file = vol_file(spec, &handler);
	char src[4096], dst[4096];
	struct stat st;

	if (handler)
		return pv_error_set(err, -ENOTSUP, "container %s: volume %s: handler not supported",
				    c->spec->name, spec);
	snprintf(src, sizeof(src), "%s/trails/%s/%s/%s", e->storage, e->rev, c->spec->name, file);
	snprintf(dst, sizeof(dst), "%s/%s/%s", e->voldir, c->spec->name, file);
	if (stat(src, &st) < 0)
		return pv_error_set(err, -errno, "container %s: volume %s missing: %s",
				    c->spec->name, src, strerror(errno));
	if (ends_with(file, ".bind")) {
		int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		return mount_bind(c, src, dst, err);
	}
	pv_mkdir_p(dst, 0755);
	if (ends_with(file, ".data"))
		return mount_bind(c, src, dst, err);
	const char *dot = strrchr(file, '.');
	const char *fstype = (dot && dot[1]) ? dot + 1 : "squashfs";
	return mount_loop(c, src, dst, fstype, err);
}

/* A storage volume: permanent and revision are directories on storage bound in place, boot is a
 * fresh tmpfs (spec §3). */
static int mount_storage(struct pv_ctr *c, const struct pv_storage_vol *v, struct pv_error *err)
{
	struct pv_engine *e = c->e;
	char src[4096], dst[4096];
	snprintf(dst, sizeof(dst), "%s/%s/%s", e->voldir, c->spec->name, v->name);
	pv_mkdir_p(dst, 0755);
	if (v->persistence == PV_PERSIST_BOOT) {
		if (mount("tmpfs", dst, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0755") < 0) {
			int r = -errno;
			return pv_error_set(err, r, "container %s: tmpfs on %s: %s", c->spec->name,
					    dst, strerror(-r));
		}
		return add_mount(c, dst);
	}
	if (v->persistence == PV_PERSIST_PERMANENT)
		snprintf(src, sizeof(src), "%s/disks/perm/%s/%s", e->storage, c->spec->name,
			 v->name);
	else
		snprintf(src, sizeof(src), "%s/disks/rev/%s/%s/%s", e->storage, e->rev,
			 c->spec->name, v->name);
	int r = pv_mkdir_p(src, 0755);
	if (r < 0)
		return pv_error_set(err, r, "container %s: create %s: %s", c->spec->name, src,
				    strerror(-r));
	return mount_bind(c, src, dst, err);
}

static const struct pv_storage_vol *find_storage(const struct pv_container *s, const char *name)
{
	for (size_t i = 0; i < s->n_storage; i++)
		if (!strcmp(s->storage[i].name, name))
			return &s->storage[i];
	return NULL;
}

int pv_volumes_mount(struct pv_ctr *c, struct pv_error *err)
{
	const struct pv_container *s = c->spec;
	char path[4096];
	int r = 0;

	snprintf(path, sizeof(path), "%s/%s", c->e->voldir, s->name);
	pv_mkdir_p(path, 0755);
	if (s->root_volume)
		r = mount_volume(c, s->root_volume, err);
	for (size_t i = 0; r == 0 && i < s->n_volumes; i++)
		r = mount_volume(c, s->volumes[i], err);
	for (size_t i = 0; r == 0 && i < s->n_storage; i++)
		r = mount_storage(c, &s->storage[i], err);
	/* The overlay upper lives in the lxc-overlay volume; without one, a boot tmpfs. */
	if (r == 0 && s->root_volume && s->config && !find_storage(s, "lxc-overlay")) {
		struct pv_storage_vol v = {.name = "lxc-overlay", .persistence = PV_PERSIST_BOOT};
		r = mount_storage(c, &v, err);
	}
	if (r == 0 && s->root_volume && s->config) {
		snprintf(path, sizeof(path), "%s/%s/lxc-overlay/upper", c->e->voldir, s->name);
		pv_mkdir_p(path, 0755);
	}
	if (r < 0)
		pv_volumes_umount(c);
	return r;
}

void pv_volumes_umount(struct pv_ctr *c)
{
	while (c->n_mounts > 0) {
		char *m = c->mounts[--c->n_mounts];
		if (umount2(m, 0) < 0 && errno != EINVAL && errno != ENOENT) {
			/* busy: detach so the loop device is released once its users go */
			pv_log(PV_LOG_WARN, "volumes", "container %s: umount %s: %s; detaching",
			       c->spec->name, m, strerror(errno));
			umount2(m, MNT_DETACH);
		}
		free(m);
	}
	free(c->mounts);
	c->mounts = NULL;
}

int pv_volumes_adopt(struct pv_ctr *c)
{
	const struct pv_container *s = c->spec;
	char path[4096];
	const char *handler;

	if (s->root_volume) {
		snprintf(path, sizeof(path), "%s/%s/%s", c->e->voldir, s->name,
			 vol_file(s->root_volume, &handler));
		if (pv_is_mountpoint(path))
			add_mount(c, path);
	}
	for (size_t i = 0; i < s->n_volumes; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", c->e->voldir, s->name,
			 vol_file(s->volumes[i], &handler));
		if (pv_is_mountpoint(path))
			add_mount(c, path);
	}
	for (size_t i = 0; i < s->n_storage; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", c->e->voldir, s->name, s->storage[i].name);
		if (pv_is_mountpoint(path))
			add_mount(c, path);
	}
	if (!find_storage(s, "lxc-overlay")) {
		snprintf(path, sizeof(path), "%s/%s/lxc-overlay", c->e->voldir, s->name);
		if (pv_is_mountpoint(path))
			add_mount(c, path);
	}
	return 0;
}

char *pv_volumes_rootfs(struct pv_ctr *c)
{
	const struct pv_container *s = c->spec;
	const char *handler;
	char conf[4096], *out = NULL;
	struct stat st;

	if (!s->root_volume)
		return NULL;
	snprintf(conf, sizeof(conf), "%s/%s", c->e->confdir, s->name);
	bool has_conf = stat(conf, &st) == 0 && S_ISDIR(st.st_mode);
	if (asprintf(&out, "overlayfs:%s%s%s/%s/%s:%s/%s/lxc-overlay/upper", has_conf ? conf : "",
		     has_conf ? ":" : "", c->e->voldir, s->name, vol_file(s->root_volume, &handler),
		     c->e->voldir, s->name) < 0)
		return NULL;
	return out;
}
