/* bootenv.c: reads and writes pv_rev/pv_try in the bootloader environment file of the chosen
 * backend (U-Boot env file, GRUB env block, appengine env file); every write is one atomic rename.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bootenv.h"
#include "pvstate/fileio.h"

/* U-Boot imports the file as one 64 KiB env block: larger content could not be loaded. */
#define UBOOT_BLOCK 65536
/* grub-editenv and GRUB's load_env/save_env work on a fixed 1024-byte block. */
#define GRUB_BLOCK  1024
#define GRUB_HEADER "# GRUB Environment Block\n"
/* Bounds on what a record may hold: revision names are short; anything near these is junk. */
#define KEY_MAX	  128
#define VALUE_MAX 4095

struct rec {
	char *key, *value;
};

struct env {
	struct rec *v;
	size_t n, cap;
};

static void env_free(struct env *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].key);
		free(e->v[i].value);
	}
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

static struct rec *env_find(struct env *e, const char *key)
{
	for (size_t i = 0; i < e->n; i++)
		if (!strcmp(e->v[i].key, key))
			return &e->v[i];
	return NULL;
}

/* A key seen twice keeps its first place and takes the last value (last wins, as U-Boot's
 * `env import` and GRUB's load_env both overwrite on a repeated name). */
static int env_put(struct env *e, const char *key, size_t klen, const char *value, size_t vlen)
{
	char *k = strndup(key, klen), *v = strndup(value, vlen);
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	struct rec *r = env_find(e, k);
	if (r) {
		free(k);
		free(r->value);
		r->value = v;
		return 0;
	}
	if (e->n == e->cap) {
		size_t nc = e->cap ? e->cap * 2 : 8;
		struct rec *nv = realloc(e->v, nc * sizeof(*nv));
		if (!nv) {
			free(k);
			free(v);
			return -ENOMEM;
		}
		e->v = nv;
		e->cap = nc;
	}
	e->v[e->n].key = k;
	e->v[e->n].value = v;
	e->n++;
	return 0;
}

static void env_del(struct env *e, const char *key)
{
	struct rec *r = env_find(e, key);
	if (!r)
		return;
	free(r->key);
	free(r->value);
	size_t i = (size_t)(r - e->v);
	memmove(&e->v[i], &e->v[i + 1], (e->n - i - 1) * sizeof(*r));
	e->n--;
}

/* A short printable excerpt of a bad record, so the message names it without dumping junk. */
static const char *excerpt(const char *p, size_t len, char *buf, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < len && j + 4 < n && i < 40; i++)
		buf[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
	if (len > 40 && j + 4 < n) {
		memcpy(buf + j, "...", 3);
		j += 3;
	}
	buf[j] = '\0';
	return buf;
}

static bool key_ok(const char *k, size_t len)
{
	if (len == 0 || len > KEY_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Control bytes in a value mean the file is not an env at all (or a record boundary was lost). */
static bool value_ok(const char *v, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* One `key=value` record (no terminator) into e; errors name file and record number. */
static int parse_record(struct env *e, const char *path, size_t idx, const char *p, size_t len,
			struct pv_error *err)
{
	char ex[64];
	const char *eq = memchr(p, '=', len);
	if (!eq)
		return pv_error_set(err, -EINVAL, "%s: record %zu \"%s\": no '='", path, idx,
				    excerpt(p, len, ex, sizeof(ex)));
	size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
	if (!key_ok(p, klen))
		return pv_error_set(err, -EINVAL, "%s: record %zu \"%s\": bad key", path, idx,
				    excerpt(p, len, ex, sizeof(ex)));
	if (vlen > VALUE_MAX)
		return pv_error_set(err, -EINVAL,
				    "%s: record %zu \"%s\": value of %zu bytes (max %d)", path, idx,
				    excerpt(p, len, ex, sizeof(ex)), vlen, VALUE_MAX);
	if (!value_ok(eq + 1, vlen))
		return pv_error_set(err, -EINVAL, "%s: record %zu \"%s\": binary bytes in value",
				    path, idx, excerpt(p, len, ex, sizeof(ex)));
	int r = env_put(e, p, klen, eq + 1, vlen);
	return r ? pv_error_set(err, r, "%s: out of memory", path) : 0;
}

/* NUL-separated records; an empty record (the second NUL of `\0\0`) ends the env. What follows
 * the terminator is padding and is not looked at. */
static int parse_uboot(struct env *e, const char *path, const char *buf, size_t len,
		       struct pv_error *err)
{
	size_t off = 0, idx = 1;
	if (len == 0)
		return 0; /* a file created but never written: nothing set yet */
	while (off < len) {
		const char *p = buf + off, *nul = memchr(p, '\0', len - off);
		if (!nul)
			return pv_error_set(err, -EINVAL,
					    "%s: record %zu: no NUL terminator (file truncated?)",
					    path, idx);
		size_t rl = (size_t)(nul - p);
		if (rl == 0)
			return 0;
		int r = parse_record(e, path, idx, p, rl, err);
		if (r)
			return r;
		off += rl + 1;
		idx++;
	}
	return pv_error_set(err, -EINVAL, "%s: no \\0\\0 end of environment (file truncated?)",
			    path);
}

/* GRUB's value escaping: a backslash quotes the next byte (grub-editenv writes `\\` and `\n`). */
static int grub_unescape(char *v, size_t *len)
{
	size_t j = 0;
	for (size_t i = 0; i < *len; i++) {
		if (v[i] == '\\') {
			if (++i == *len)
				return -EINVAL;
		}
		v[j++] = v[i];
	}
	*len = j;
	return 0;
}

static int parse_grub(struct env *e, const char *path, char *buf, size_t len, struct pv_error *err)
{
	size_t hl = strlen(GRUB_HEADER), idx = 2; /* line 1 is the header */
	if (len != GRUB_BLOCK)
		return pv_error_set(err, -EINVAL, "%s: %zu bytes, a GRUB env block is exactly %d",
				    path, len, GRUB_BLOCK);
	if (memcmp(buf, GRUB_HEADER, hl) != 0)
		return pv_error_set(err, -EINVAL, "%s: no \"# GRUB Environment Block\" header",
				    path);
	if (memchr(buf, '\0', len))
		return pv_error_set(err, -EINVAL,
				    "%s: NUL byte at offset %zu: not a GRUB env block", path,
				    (size_t)((char *)memchr(buf, '\0', len) - buf));
	for (size_t off = hl; off < len; idx++) {
		char *p = buf + off, *nl = memchr(p, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - p) : len - off;
		off += ll + (nl ? 1 : 0);
		/* '#' lines are comments, and the padding is one '#' run to the end of the block */
		if (ll == 0 || p[0] == '#')
			continue;
		char ex[64];
		if (!nl)
			return pv_error_set(err, -EINVAL, "%s: line %zu \"%s\": no newline", path,
					    idx, excerpt(p, ll, ex, sizeof(ex)));
		/* unescape in place after the '=' so the record checks see the real value */
		char *eq = memchr(p, '=', ll);
		if (eq) {
			size_t vlen = ll - (size_t)(eq + 1 - p);
			if (grub_unescape(eq + 1, &vlen) < 0)
				return pv_error_set(err, -EINVAL,
						    "%s: line %zu \"%s\": dangling backslash", path,
						    idx, excerpt(p, ll, ex, sizeof(ex)));
			ll = (size_t)(eq + 1 - p) + vlen;
		}
		int r = parse_record(e, path, idx, p, ll, err);
		if (r)
			return r;
	}
	return 0;
}

static int env_load(const struct pv_bootenv *b, struct env *e, struct pv_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	/* a file past the block size is refused by the read itself (-EFBIG) */
	size_t max = b->type == PV_BOOTENV_GRUB ? GRUB_BLOCK : UBOOT_BLOCK;
	if (stat(b->path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return pv_error_set(err, -errno, "%s: %s", b->path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return pv_error_set(err, -EINVAL, "%s: not a regular file", b->path);
	int r = pv_file_read_all(b->path, max, &buf, &len, NULL);
	if (r == -EFBIG)
		return pv_error_set(err, r, "%s: larger than %zu bytes: not a bootloader env",
				    b->path, max);
	if (r < 0)
		return pv_error_set(err, r, "%s: read: %s", b->path, strerror(-r));
	r = b->type == PV_BOOTENV_GRUB ? parse_grub(e, b->path, buf, len, err)
				       : parse_uboot(e, b->path, buf, len, err);
	free(buf);
	if (r)
		env_free(e);
	return r;
}

/* Serializes e in the backend's format; *out is the exact bytes to write. */
static int env_emit(const struct pv_bootenv *b, const struct env *e, char **out, size_t *olen,
		    struct pv_error *err)
{
	size_t need = 0;
	for (size_t i = 0; i < e->n; i++)
		need += strlen(e->v[i].key) + 1 + 2 * strlen(e->v[i].value) + 1;
	size_t cap = b->type == PV_BOOTENV_GRUB ? GRUB_BLOCK : need + 2;
	if (b->type == PV_BOOTENV_UBOOT && cap < UBOOT_BLOCK)
		cap = UBOOT_BLOCK;
	char *buf = calloc(1, cap + need + 64), *p = buf;
	if (!buf)
		return pv_error_set(err, -ENOMEM, "%s: out of memory", b->path);
	if (b->type == PV_BOOTENV_GRUB) {
		p += sprintf(p, "%s", GRUB_HEADER);
		for (size_t i = 0; i < e->n; i++) {
			p += sprintf(p, "%s=", e->v[i].key);
			for (const char *v = e->v[i].value; *v; v++) {
				if (*v == '\\')
					*p++ = '\\';
				*p++ = *v;
			}
			*p++ = '\n';
		}
		size_t used = (size_t)(p - buf);
		if (used > GRUB_BLOCK) {
			free(buf);
			return pv_error_set(
			    err, -ENOSPC,
			    "%s: the environment needs %zu bytes, a GRUB env block holds %d",
			    b->path, used, GRUB_BLOCK);
		}
		memset(p, '#', GRUB_BLOCK - used);
		*olen = GRUB_BLOCK;
	} else {
		for (size_t i = 0; i < e->n; i++)
			p += sprintf(p, "%s=%s", e->v[i].key, e->v[i].value) + 1;
		*p++ = '\0';
		if (p == buf + 1)
			*p++ = '\0'; /* an empty env is still `\0\0` */
		size_t used = (size_t)(p - buf);
		if (used > UBOOT_BLOCK) {
			free(buf);
			return pv_error_set(err, -ENOSPC,
					    "%s: the environment needs %zu bytes, more than %d",
					    b->path, used, UBOOT_BLOCK);
		}
		/* U-Boot's block is zero-padded (calloc did it); the appengine file is not */
		*olen = b->type == PV_BOOTENV_UBOOT ? UBOOT_BLOCK : used;
	}
	*out = buf;
	return 0;
}

int pv_bootenv_open(struct pv_bootenv *b, const char *storage, const char *type, bool appengine,
		    struct pv_error *err)
{
	const char *file;
	if (!type || !*type)
		b->type = appengine ? PV_BOOTENV_APPENGINE : PV_BOOTENV_UBOOT;
	else if (!strcmp(type, "uboot") || !strcmp(type, "uboot-pvk"))
		b->type = PV_BOOTENV_UBOOT;
	else if (!strcmp(type, "grub"))
		b->type = PV_BOOTENV_GRUB;
	else
		return pv_error_set(
		    err, -EINVAL,
		    "PV_BOOTLOADER_TYPE \"%.64s\": not supported (uboot, uboot-pvk, "
		    "grub)",
		    type);
	file = b->type == PV_BOOTENV_GRUB ? "grubenv" : "uboot.txt";
	if (!storage || !*storage)
		return pv_error_set(err, -EINVAL, "bootenv: no storage directory");
	if ((size_t)snprintf(b->path, sizeof(b->path), "%s/boot/%s", storage, file) >=
	    sizeof(b->path))
		return pv_error_set(err, -ENAMETOOLONG, "%s/boot/%s: path too long", storage, file);
	return 0;
}

int pv_bootenv_get(const struct pv_bootenv *b, const char *key, char *out, size_t n,
		   struct pv_error *err)
{
	struct env e = {NULL, 0, 0};
	if (n)
		out[0] = '\0';
	int r = env_load(b, &e, err);
	if (r)
		return r;
	struct rec *rec = env_find(&e, key);
	if (rec && strlen(rec->value) >= n)
		r = pv_error_set(err, -ERANGE, "%s: %s: value of %zu bytes does not fit %zu",
				 b->path, key, strlen(rec->value), n);
	else if (rec)
		memcpy(out, rec->value, strlen(rec->value) + 1);
	env_free(&e);
	return r;
}

int pv_bootenv_set(const struct pv_bootenv *b, const char *const *kv, struct pv_error *err)
{
	struct env e = {NULL, 0, 0};
	char *buf = NULL, dir[4096];
	size_t len = 0;
	int r;

	/* refuse bad input before touching the file */
	for (size_t i = 0; kv && kv[i]; i += 2) {
		if (!kv[i + 1])
			return pv_error_set(err, -EINVAL, "%s: key %.64s without a value", b->path,
					    kv[i]);
		size_t vl = strlen(kv[i + 1]);
		if (!key_ok(kv[i], strlen(kv[i])))
			return pv_error_set(err, -EINVAL, "%s: bad key \"%.64s\"", b->path, kv[i]);
		if (vl > VALUE_MAX || !value_ok(kv[i + 1], vl))
			return pv_error_set(err, -EINVAL,
					    "%s: %s: value has control bytes or is over %d bytes",
					    b->path, kv[i], VALUE_MAX);
	}
	if ((r = env_load(b, &e, err)))
		return r;
	for (size_t i = 0; kv && kv[i] && !r; i += 2) {
		const char *k = kv[i], *v = kv[i + 1];
		/* GRUB has no empty-value convention: unset means the line is gone. U-Boot's
		 * script tests `pv_try` for emptiness, so `key=` is the upstream way to unset. */
		if (b->type == PV_BOOTENV_GRUB && !*v)
			env_del(&e, k);
		else
			r = env_put(&e, k, strlen(k), v, strlen(v));
		/* the try revision changed: the bootloader has not attempted it yet */
		if (!r && b->type == PV_BOOTENV_UBOOT && !strcmp(k, "pv_try"))
			r = env_put(&e, "pv_trying", 9, "", 0);
	}
	if (r) {
		env_free(&e);
		return pv_error_set(err, r, "%s: out of memory", b->path);
	}
	r = env_emit(b, &e, &buf, &len, err);
	env_free(&e);
	if (r)
		return r;
	snprintf(dir, sizeof(dir), "%s", b->path);
	*strrchr(dir, '/') = '\0';
	if ((r = pv_mkdir_p(dir, 0755)) < 0)
		r = pv_error_set(err, r, "%s: create directory: %s", dir, strerror(-r));
	else
		r = pv_file_write_atomic(b->path, buf, len, 0644, err);
	free(buf);
	return r;
}
