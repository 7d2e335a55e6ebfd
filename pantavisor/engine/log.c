/* log.c: the engine's pantavisor.log (upstream line format), the per-container lxc log paths and
 * size-bounded rotation. The open log file is this file's own state (one engine, one log). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "pvstate/fileio.h"

#define PV_LOG_KEEP 2 /* rotated files kept: pantavisor.log.1, pantavisor.log.2 */

static struct {
	int fd;
	char path[4200];
	long rotate_size;
	long size;
	int level;
} g_log = {.fd = -1, .level = PV_LOG_INFO};

static const char *level_str(enum pv_log_level l)
{
	static const char *const s[] = {"FATAL", "ERROR", "WARN", "INFO", "DEBUG"};
	return (l >= 0 && l <= PV_LOG_DEBUG) ? s[l] : "INFO";
}

char *pv_log_lxc_dir(const char *logdir, const char *rev, const char *container)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s/%s/lxc", logdir, rev, container) < 0)
		return NULL;
	pv_mkdir_p(p, 0755);
	return p;
}

int pv_log_open(const char *logdir, const char *rev, long rotate_size, int level)
{
	char dir[4096], cur[4096], tmp[4200];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/%s/pantavisor", logdir, rev);
	int r = pv_mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	snprintf(g_log.path, sizeof(g_log.path), "%s/pantavisor.log", dir);
	int fd = open(g_log.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (g_log.fd >= 0)
		close(g_log.fd);
	g_log.fd = fd;
	g_log.size = fstat(fd, &st) == 0 ? st.st_size : 0;
	g_log.rotate_size = rotate_size > 0 ? rotate_size : 512 * 1024;
	g_log.level = level;

	/* logs/current -> <rev>: replaced atomically so readers never see it missing. */
	snprintf(cur, sizeof(cur), "%s/current", logdir);
	snprintf(tmp, sizeof(tmp), "%s/.current.%d", logdir, (int)getpid());
	unlink(tmp);
	if (symlink(rev, tmp) == 0 && rename(tmp, cur) < 0)
		unlink(tmp);
	return 0;
}

void pv_log_close(void)
{
	if (g_log.fd >= 0)
		close(g_log.fd);
	g_log.fd = -1;
}

/* Shifts pantavisor.log -> .1 -> .2 (the oldest dropped) and starts a fresh file. */
static void rotate(void)
{
	char from[4300], to[4300];
	for (int i = PV_LOG_KEEP; i >= 1; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", g_log.path);
		else
			snprintf(from, sizeof(from), "%s.%d", g_log.path, i - 1);
		snprintf(to, sizeof(to), "%s.%d", g_log.path, i);
		rename(from, to);
	}
	int fd = open(g_log.path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		close(g_log.fd);
		g_log.fd = fd;
	}
	g_log.size = 0;
}

void pv_log(enum pv_log_level lvl, const char *module, const char *fmt, ...)
{
	char msg[2048], line[2300];
	va_list ap;

	if ((int)lvl > g_log.level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line per message: an embedded newline would forge a second log line. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	int n = snprintf(line, sizeof(line), "[pantavisor] %lld %s\t -- [%s]: %s\n",
			 (long long)time(NULL), level_str(lvl), module, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* stderr goes to init (and to the terminal when run by hand). */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nothing useful to do: the file below is the record */
	}
	if (g_log.fd < 0)
		return;
	if (write(g_log.fd, line, n) == n)
		g_log.size += n;
	if (g_log.size >= g_log.rotate_size)
		rotate();
}

void pv_log_error(enum pv_log_level lvl, const char *module, const struct pv_error *err)
{
	if (!err)
		return;
	for (size_t i = 0; i < err->count; i++)
		pv_log(lvl, module, "%s", err->msgs[i]);
	if (err->dropped)
		pv_log(lvl, module, "(%zu more errors not shown)", err->dropped);
}
