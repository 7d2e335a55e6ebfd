/* Shared helpers of the pv-example-* programs (see pvex.h): logging, stop signals, the common
 * command line and loops, Unix sockets, waiting for a node. Mutable state: program name, stop flag.
 */
#include "pvex.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
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

static int unix_listen(const char *path)
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

int pvex_unix_listen(const char *path)
{
	char eb[128];
	int fd = unix_listen(path);

	if (fd < 0)
		pvex_log("listen on %s: %s", path, pvex_errstr(-fd, eb, sizeof(eb)));
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

/* --- command line -------------------------------------------------------------------------- */

#define PVEX_MAX_OPTS 16

static int cli_bad(const struct pvex_cli *cli, const char *name, const char *val)
{
	fprintf(stderr, "bad --%s '%s'\n", name, val);
	fputs(cli->usage, stderr);
	return 2;
}

/* Value of one extra option; returns -1 (fine) or the exit status of a usage error. */
static int cli_extra(const struct pvex_cli *cli, const struct pvex_opt *x, const char *val)
{
	unsigned long n;

	if (x->flag) {
		*x->flag = true;
	} else if (x->ms) {
		if (pvex_parse_ms(val, x->ms) < 0)
			return cli_bad(cli, x->name, val);
	} else if (x->num) {
		if (pvex_parse_uint(val, &n) < 0 || n < x->num_min || n > x->num_max)
			return cli_bad(cli, x->name, val);
		*x->num = n;
	}
	return -1;
}

/* The extra option getopt_long answered with code o, or NULL. */
static const struct pvex_opt *cli_extra_of(const struct pvex_cli *cli, size_t nx, int o)
{
	for (size_t i = 0; i < nx; i++) {
		const struct pvex_opt *x = &cli->extra[i];
		if (o == (x->short_name ? x->short_name : 256 + (int)i))
			return x;
	}
	return NULL;
}

int pvex_cli_parse(struct pvex_cli *cli, int argc, char **argv)
{
	const struct pvex_opt *x;
	struct option opts[PVEX_MAX_OPTS + 5];
	char shorts[2 * PVEX_MAX_OPTS + 16];
	const char *target = NULL;
	size_t no = 0, ns = 0, nx = 0;
	int o, idx, r;

	opts[no++] = (struct option){cli->target_long, required_argument, NULL, cli->target_short};
	shorts[ns++] = cli->target_short;
	shorts[ns++] = ':';
	if (cli->rounds) {
		opts[no++] = (struct option){"interval", required_argument, NULL, 'i'};
		opts[no++] = (struct option){"count", required_argument, NULL, 'n'};
		memcpy(shorts + ns, "i:n:", 4);
		ns += 4;
	}
	for (nx = 0; cli->extra && cli->extra[nx].name; nx++) {
		const struct pvex_opt *e = &cli->extra[nx];
		int has_arg = e->flag ? no_argument : required_argument;

		if (nx == PVEX_MAX_OPTS)
			abort(); /* a programming error in the example, not an input error */
		/* A long-only option gets a code above any char, so it never clashes. */
		opts[no++] = (struct option){e->name, has_arg, NULL,
					     e->short_name ? e->short_name : 256 + (int)nx};
		if (e->short_name) {
			shorts[ns++] = e->short_name;
			if (has_arg == required_argument)
				shorts[ns++] = ':';
		}
	}
	opts[no++] = (struct option){"help", no_argument, NULL, 'h'};
	opts[no] = (struct option){NULL, 0, NULL, 0};
	shorts[ns++] = 'h';
	shorts[ns] = '\0';

	while ((o = getopt_long(argc, argv, shorts, opts, &idx)) != -1) {
		if (o == 'h') {
			fputs(cli->usage, stdout);
			return 0;
		}
		if (o == cli->target_short) {
			target = optarg;
			continue;
		}
		if (cli->rounds && o == 'i') {
			if (pvex_parse_ms(optarg, &cli->interval_ms) < 0)
				return cli_bad(cli, "interval", optarg);
			continue;
		}
		if (cli->rounds && o == 'n') {
			if (pvex_parse_uint(optarg, &cli->count) < 0)
				return cli_bad(cli, "count", optarg);
			continue;
		}
		x = cli_extra_of(cli, nx, o);
		if (x) {
			r = cli_extra(cli, x, optarg);
			if (r >= 0)
				return r;
			continue;
		}
		/* getopt already said what was wrong ("unrecognized option", ...). */
		fputs(cli->usage, stderr);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "unexpected argument '%s'\n", argv[optind]);
		fputs(cli->usage, stderr);
		return 2;
	}
	cli->target = pvex_pick(target, cli->target_env, cli->target_default);
	return -1;
}

/* --- loops --------------------------------------------------------------------------------- */

int pvex_rounds(const struct pvex_cli *cli, pvex_round_fn round, void *ctx, const char *unit)
{
	unsigned long done = 0;
	int r = 0;

	while (!pvex_stopping() && (cli->count == 0 || done < cli->count)) {
		r = round(ctx);
		done++;
		if (r > 0)
			break;
		if (cli->count == 0 || done < cli->count)
			pvex_sleep_ms(cli->interval_ms);
	}
	pvex_log("stopped after %lu %s, last %s", done, unit, r == 0 ? "worked" : "failed");
	return r > 0 ? r : r == 0 ? 0 : 1;
}

int pvex_client_loop(const struct pvex_cli *cli, pvex_exchange_fn exchange, void *ctx,
		     const char *unit)
{
	unsigned long done = 0;
	bool fresh = false;
	char eb[128];
	int fd = -1, r;

	while (!pvex_stopping() && (cli->count == 0 || done < cli->count)) {
		if (fd < 0) {
			fd = pvex_unix_connect_retry(cli->target, 100);
			if (fd == -EINTR)
				break;
			if (fd < 0) {
				pvex_log("connect %s: %s", cli->target,
					 pvex_errstr(-fd, eb, sizeof(eb)));
				return 1;
			}
			fresh = true;
			pvex_log("connected to %s", cli->target);
		}
		r = exchange(fd, fresh, ctx);
		fresh = false;
		if (r >= 0) {
			done++;
			if (r == 1) {
				close(fd);
				fd = -1;
			}
			if (cli->count && done >= cli->count)
				break;
			pvex_sleep_ms(cli->interval_ms);
			continue;
		}
		if (pvex_stopping())
			break;
		/* The server or the proxy went away: say so and reconnect, as a container would. */
		pvex_log("connection lost: %s; reconnecting", pvex_errstr(-r, eb, sizeof(eb)));
		close(fd);
		fd = -1;
		pvex_sleep_ms(cli->interval_ms);
	}
	if (fd >= 0)
		close(fd);
	pvex_log("stopped after %lu %s", done, unit);
	return cli->count && done < cli->count ? 1 : 0;
}

/* --- waiting for a path -------------------------------------------------------------------- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Watch the deepest existing directory on the way to path: creating /dev/dri and then card0 in
 * it are both changes of a watched directory in turn. Returns the watch or -errno. */
static int watch_nearest(int ifd, const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int wd;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	for (;;) {
		slash = strrchr(dir, '/');
		if (!slash)
			return -EINVAL; /* a relative name: the caller re-checks by time only */
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		wd = inotify_add_watch(ifd, dir,
				       IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF |
					   IN_MOVE_SELF | IN_ONLYDIR);
		if (wd >= 0 || slash == dir)
			return wd >= 0 ? wd : -errno;
	}
}

int pvex_wait_path(const char *path, long timeout_ms, struct stat *st, long *waited_ms)
{
	/* Re-check at least this often even without an event (a watch on an overmounted or
	 * replaced directory can stay silent). */
	const long recheck_ms = 250;
	long start = now_ms(), left;
	char buf[4096], eb[128];
	bool told = false;
	int ifd, wd = -1, r;

	*waited_ms = 0;
	if (stat(path, st) == 0)
		return 0;
	if (errno != ENOENT && errno != ENOTDIR)
		return -errno;
	if (timeout_ms == 0)
		return -ENOENT;
	ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	for (;;) {
		if (ifd >= 0) {
			if (wd >= 0)
				inotify_rm_watch(ifd, wd);
			wd = watch_nearest(ifd, path);
		}
		if (stat(path, st) == 0) {
			r = 0;
			break;
		}
		if (errno != ENOENT && errno != ENOTDIR) {
			r = -errno;
			break;
		}
		if (!told) {
			if (timeout_ms > 0)
				pvex_log("waiting up to %ld ms for %s: %s", timeout_ms, path,
					 pvex_errstr(errno, eb, sizeof(eb)));
			else
				pvex_log("waiting for %s: %s", path,
					 pvex_errstr(errno, eb, sizeof(eb)));
			told = true;
		}
		left = timeout_ms < 0 ? recheck_ms : timeout_ms - (now_ms() - start);
		if (left <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		if (pvex_stopping()) {
			r = -EINTR;
			break;
		}
		if (ifd >= 0) {
			struct pollfd pfd = {.fd = ifd, .events = POLLIN};
			if (poll(&pfd, 1, (int)(left < recheck_ms ? left : recheck_ms)) > 0)
				while (read(ifd, buf, sizeof(buf)) > 0)
					; /* which event does not matter: stat decides */
		} else {
			pvex_sleep_ms(left < recheck_ms ? left : recheck_ms);
		}
	}
	if (ifd >= 0)
		close(ifd);
	*waited_ms = now_ms() - start;
	return r;
}
