/* Helpers shared by the pv-example-* programs: one-line logging, stop signals, option values,
 * and the Unix-socket listen/connect-with-retry every example needs. */
#ifndef PVEX_H
#define PVEX_H

#include <stdbool.h>
#include <stddef.h>

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
 * stale socket file left by an earlier run is removed first. Returns the fd or -errno. */
int pvex_unix_listen(const char *path);

/* Connect to the Unix socket at path, retrying every retry_ms until it accepts or a stop is
 * requested (logs once while waiting). Returns the fd or -errno (-EINTR when stopped). */
int pvex_unix_connect_retry(const char *path, long retry_ms);

/* Write all len bytes (restarting on EINTR). Returns 0 or -errno. */
int pvex_write_all(int fd, const void *buf, size_t len);

#endif
