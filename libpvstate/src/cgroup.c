/* libpvstate/src/cgroup.c: the LXC payload cgroup in /proc/<pid>/cgroup text (pvstate/cgroup.h). */
#include <errno.h>
#include <string.h>

#include "pvstate/cgroup.h"

static int copy_out(char *dst, size_t len, const char *src, size_t n)
{
	if (!dst)
		return 0;
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

int pv_cgroup_payload(const char *text, char *path, size_t plen, char *name, size_t nlen)
{
	static const char *const marks[] = {"/lxc.payload.", "/lxc.payload/", "/lxc/"};
	if (path && plen)
		path[0] = '\0';
	if (name && nlen)
		name[0] = '\0';
	for (const char *l = text; l && *l;) {
		const char *eol = strchr(l, '\n');
		const char *end = eol ? eol : l + strlen(l);
		const char *c1 = memchr(l, ':', (size_t)(end - l));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		const char *p = c2 ? c2 + 1 : NULL;
		for (size_t k = 0; p && k < sizeof(marks) / sizeof(marks[0]); k++) {
			size_t ml = strlen(marks[k]);
			for (const char *at = p; at < end;) {
				at = memmem(at, (size_t)(end - at), marks[k], ml);
				if (!at)
					break;
				const char *s = at + ml, *e = s;
				while (e < end && *e != '/')
					e++;
				if (e == s) { /* an empty name is none: look further on */
					at = s;
					continue;
				}
				int r = copy_out(path, plen, p, (size_t)(e - p));
				int r2 = copy_out(name, nlen, s, (size_t)(e - s));
				return r < 0 ? r : r2;
			}
		}
		l = eol ? eol + 1 : NULL;
	}
	return -ENOENT;
}
