/* Shared helpers of the pv-example-* programs (see pvex.h): logging, stop signals and Unix
 * sockets. The only mutable state is the program name and the stop flag, both set once. */
#include "pvex.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *pvex_prog = "pv-example";
static volatile sig_atomic_t pvex_stop;

static void pvex_stop_cb(int sig)
{
	(void)sig;
	pvex_stop = 1;
}

void pvex_init(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	struct sigaction sa;

	pvex_prog = slash ? slash + 1 : argv0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A peer that goes away must show up as EPIPE on write, not kill the example. */
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pvex_stop_cb;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: blocking calls return EINTR so loops notice the stop promptly. SIGPWR is
	 * what lxc sends a container's init to halt it; as PID 1 of the container an unhandled
	 * signal would be ignored and the stop would wait for the kill timeout. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGPWR, &sa, NULL);
}

void pvex_log(const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One printf per event so lines from concurrent writers never interleave mid-line. */
	printf("%s: %s\n", pvex_prog, line);
}

bool pvex_stopping(void)
{
	return pvex_stop != 0;
}

bool pvex_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (!pvex_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return pvex_stop != 0;
}

const char *pvex_errstr(int err, char *buf, size_t len)
{
	const char *name = strerrorname_np(err);

	snprintf(buf, len, "%s (%s)", name ? name : "E?", strerror(err));
	return buf;
}

int pvex_parse_ms(const char *s, long *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0 || v > 86400.0 * 1000)
		return -EINVAL;
	if (strcmp(end, "ms") == 0)
		*ms = (long)v;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		*ms = (long)(v * 1000.0);
	else
		return -EINVAL;
	return 0;
}

int pvex_parse_uint(const char *s, unsigned long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoul(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

const char *pvex_pick(const char *arg, const char *env, const char *def)
{
	const char *e;

	if (arg)
		return arg;
	e = env ? getenv(env) : NULL;
	return e && *e ? e : def;
}

int pvex_mkdir_parents(const char *path)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path) + 256];
	char *p;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (p = buf + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int pvex_sockaddr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

int pvex_unix_listen(const char *path)
{
	struct sockaddr_un sa;
	int fd, r;

	r = pvex_sockaddr(path, &sa);
	if (r < 0)
		return r;
	r = pvex_mkdir_parents(path);
	if (r < 0)
		return r;
	/* A socket file survives its server; binding over it would fail with EADDRINUSE. */
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int pvex_unix_connect_retry(const char *path, long retry_ms)
{
	struct sockaddr_un sa;
	bool told = false;
	int fd, r;

	r = pvex_sockaddr(path, &sa);
	if (r < 0)
		return r;
	while (!pvex_stopping()) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		r = errno;
		close(fd);
		/* Only "not there yet" is worth waiting for; anything else is a real error. */
		if (r != ENOENT && r != ECONNREFUSED && r != EINTR)
			return -r;
		if (!told) {
			char eb[128];
			pvex_log("waiting for %s: %s", path, pvex_errstr(r, eb, sizeof(eb)));
			told = true;
		}
		pvex_sleep_ms(retry_ms);
	}
	return -EINTR;
}

int pvex_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR && !pvex_stopping())
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
