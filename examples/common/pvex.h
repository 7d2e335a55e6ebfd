/* Helpers shared by the pv-example-* programs: one-line logging, stop signals, the common command
 * line, the round/reconnect loops, Unix sockets, and waiting for a device node to be injected. */
#ifndef PVEX_H
#define PVEX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Remember the program name for log lines, make stdout line-buffered (container logs are read
 * live) and turn SIGTERM/SIGINT/SIGPWR into a stop request instead of a kill. */
void pvex_init(const char *argv0);

/* One event, one line on stdout: "<prog>: <message>". */
void pvex_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True once SIGTERM or SIGINT arrived. */
bool pvex_stopping(void);

/* Sleep up to ms milliseconds; returns early (and true) when a stop was requested. */
bool pvex_sleep_ms(long ms);

/* "ENXIO (No such device or address)" for an errno value; static storage per call site is not
 * needed because the result is built into buf. */
const char *pvex_errstr(int err, char *buf, size_t len);

/* Parse "2", "0.5", "250ms" into milliseconds; returns 0 or -EINVAL. */
int pvex_parse_ms(const char *s, long *ms);

/* Parse a non-negative integer; returns 0 or -EINVAL. */
int pvex_parse_uint(const char *s, unsigned long *v);

/* argv value if given, else the environment variable env if set, else def. */
const char *pvex_pick(const char *arg, const char *env, const char *def);

/* Create every missing parent directory of path (mode 0755). Returns 0 or -errno. */
int pvex_mkdir_parents(const char *path);

/* Bind and listen on a SOCK_STREAM Unix socket at path: parent directories are created and a
 * stale socket file left by an earlier run is removed first. Returns the fd or -errno; a failure
 * is also logged ("listen on PATH: ERRNO"), which is all a server can do about it. */
int pvex_unix_listen(const char *path);

/* Connect to the Unix socket at path, retrying every retry_ms until it accepts or a stop is
 * requested (logs once while waiting). Returns the fd or -errno (-EINTR when stopped). */
int pvex_unix_connect_retry(const char *path, long retry_ms);

/* Write all len bytes (restarting on EINTR). Returns 0 or -errno. */
int pvex_write_all(int fd, const void *buf, size_t len);

/* One example-specific option besides the common ones. Exactly one of flag, ms, num is set:
 * flag: no argument, sets *flag; ms: a duration ("2", "0.5", "250ms"); num: an integer in
 * [num_min, num_max]. A bad value is a usage error "bad --NAME 'VALUE'" (exit 2). */
struct pvex_opt {
	const char *name;
	char short_name; /* 0: long option only */
	bool *flag;
	long *ms;
	unsigned long *num;
	unsigned long num_min, num_max;
};

/* The command line every example shares: a target (socket, bus address, device, display) with
 * its environment variable and default, and for the programs that work in rounds -i/--interval
 * and -n/--count. Fill the inputs, call pvex_cli_parse, read the outputs. */
struct pvex_cli {
	/* in */
	const char *usage;	 /* the whole --help text */
	char target_short;	 /* 's', 'a', 'd' */
	const char *target_long; /* "socket", "address", "device", ... */
	const char *target_env;	 /* environment variable that may set it, or NULL */
	const char *target_default;
	bool rounds;		      /* accept -i/--interval and -n/--count */
	const struct pvex_opt *extra; /* terminated by an entry with name NULL; may be NULL */
	/* in: default, out: value */
	long interval_ms;
	/* out */
	unsigned long count; /* 0: run until stopped */
	const char *target;  /* argv, else env, else default */
};

/* The target of the socket examples: -s/--socket PATH, or $PV_EXAMPLE_SOCKET. */
#define PVEX_CLI_SOCKET(default_path)                                                              \
	.target_short = 's', .target_long = "socket", .target_env = "PV_EXAMPLE_SOCKET",           \
	.target_default = (default_path)

/* Parse argv. Returns -1 to go on, or the status main must exit with now: 0 after --help
 * (usage on stdout), 2 after a usage error (message and usage on stderr). */
int pvex_cli_parse(struct pvex_cli *cli, int argc, char **argv);

/* What one round reports to pvex_rounds: done (0), failed (-errno), or a status > 0 that ends
 * the program at once with that exit status. */
typedef int (*pvex_round_fn)(void *ctx);

/* Run round(ctx) now and then every cli->interval_ms until cli->count rounds ran (0: until a
 * stop request), then log "stopped after N <unit>, last worked|failed". Returns the exit
 * status: a round's status > 0, else 0 when the last round worked, else 1. */
int pvex_rounds(const struct pvex_cli *cli, pvex_round_fn round, void *ctx, const char *unit);

/* One exchange on a connected client socket. fresh is true on the first round of a connection
 * (reset per-connection buffers then). Returns 0 (worked, keep the connection), 1 (worked, the
 * connection is finished: close it) or -errno (lost: reconnect). */
typedef int (*pvex_exchange_fn)(int fd, bool fresh, void *ctx);

/* The client loop of the socket examples: connect to cli->target (waiting while it is not there
 * yet), run exchange every cli->interval_ms, reconnect after a lost connection (logged with its
 * reason), stop after cli->count worked exchanges or a stop request, and log "stopped after N
 * <unit>". Returns the exit status: 1 if the count was not reached or a connect failed for good,
 * else 0. */
int pvex_client_loop(const struct pvex_cli *cli, pvex_exchange_fn exchange, void *ctx,
		     const char *unit);

/* Wait until path exists, up to timeout_ms (0: do not wait, < 0: until a stop request). The
 * node is injected from outside the container (pv-xconnect mknods it), so the wait watches the
 * deepest existing parent directory with inotify and re-checks on every change, plus a bounded
 * re-check interval in case an event is missed. Logs once when it has to wait. Fills *st and
 * returns 0, or -ETIMEDOUT, -EINTR (stopped) or another -errno. *waited_ms says how long. */
int pvex_wait_path(const char *path, long timeout_ms, struct stat *st, long *waited_ms);

#endif
