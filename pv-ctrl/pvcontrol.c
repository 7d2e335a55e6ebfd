/* pv-ctrl/pvcontrol.c: pvcontrol, upstream's command-line client of the pv-ctrl API (spec §8.3):
 * sub-commands → HTTP requests over the socket; JSON printed as received; exit 1 on HTTP >= 400;
 * `steps install` uploads a pvr export and can follow the update it starts line by line. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pvstate/ctrl.h"

#include "http_client.h"

struct opts {
	const char *sock;
	const char *outfile;
	const char *msg;
	bool verbose;
	bool wait;     /* -w: cmd run/run-commit/make-factory follow the progress */
	int poll_ms;   /* progress poll interval */
	int timeout_s; /* -t: give up following after this long (0: never) */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pvcontrol [-s sock] [-v] [-w] [-t secs] [-f outfile] [-m msg] <command>\n"
		"  ls | containers ls|start|stop|restart <name> | groups ls\n"
		"  signal ready|alive\n"
		"  cmd run|run-commit <rev> | cmd reboot|poweroff [msg] | cmd make-factory [rev]\n"
		"      (-w: follow the update: \"STATUS progress%% message\" lines until final)\n"
		"  cmd run-gc|enable-ssh|disable-ssh|go-remote|unclaim | cmd defer-reboot <secs>\n"
		"  devmeta|usrmeta ls|save <key> <value>|delete <key>\n"
		"  buildinfo | storage gc | graph ls | conf ls | config ls\n"
		"  objects ls|put <file> <sha>|get <sha>\n"
		"  steps ls|get <rev>|show-progress <rev>|put <json> <rev>\n"
		"  steps install [--run|--run-commit] <pvrexport.tgz|dir> [rev]\n"
		"  daemons ls|start|stop|restart <name>\n");
}

static const char *find_socket(const char *given)
{
	static const char *const paths[] = {"/run/pantavisor/pv/pv-ctrl", "/pv/pv-ctrl",
					    "/pantavisor/pv-ctrl"};
	if (given)
		return given;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], F_OK) == 0)
			return paths[i];
	return paths[0];
}

/* Seconds of the Retry-After header of a response, 0 when it has none. */
static int retry_after(const struct pv_http_resp *resp)
{
	for (const char *p = resp->head; (p = strchr(p, '\n')); p++)
		if (!strncasecmp(p + 1, "Retry-After:", 12))
			return atoi(p + 13);
	return 0;
}

/* One request; the body is printed (or written to -f), errors go to stderr. 0 on HTTP < 400. */
static int call(const struct opts *o, const char *method, const char *path, const char *body,
		int body_fd, uint64_t body_fd_len, const char *ctype, bool print)
{
	const char *hdrs[2] = {NULL, NULL};
	char ct[128];
	if (body || body_fd >= 0) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
		hdrs[0] = ct;
	}
	struct pv_http_req q = {.sock = o->sock,
				.method = method,
				.path = path,
				.headers = hdrs,
				.body = body,
				.body_len = body ? strlen(body) : 0,
				.body_fd = body_fd,
				.body_fd_len = body_fd_len,
				.verbose = o->verbose};
	int out = -1;
	if (print && o->outfile) {
		out = open(o->outfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out < 0) {
			fprintf(stderr, "pvcontrol: %s: %s\n", o->outfile, strerror(errno));
			return 1;
		}
	}
	struct pv_http_resp resp;
	int r = pv_http_do(&q, &resp, -1);
	if (r < 0 && !resp.status) {
		fprintf(stderr, "pvcontrol: %s %s: %s: %s\n", method, path, o->sock, strerror(-r));
		if (out >= 0)
			close(out);
		free(resp.body);
		return 1;
	}
	int rc = 0;
	if (resp.status >= 400) {
		fprintf(stderr, "pvcontrol: %s %s: HTTP %d: %.*s\n", method, path, resp.status,
			(int)resp.body_len, resp.body ? resp.body : "");
		int ra = retry_after(&resp);
		if (ra > 0)
			fprintf(stderr, "pvcontrol: busy, retry after %d s\n", ra);
		rc = 1;
	} else if (print && resp.body_len) {
		int fd = out >= 0 ? out : 1;
		if (write(fd, resp.body, resp.body_len) < 0)
			rc = 1;
		if (fd == 1 && resp.body[resp.body_len - 1] != '\n' && write(1, "\n", 1) < 0)
			rc = 1;
	}
	if (out >= 0)
		close(out);
	free(resp.body);
	return rc;
}

static int progress_follow(const struct opts *o, const char *rev);

static int cmd_op(const struct opts *o, const char *op, const char *payload)
{
	char *body = pv_ctrl_json_command(op, payload ? payload : "");
	if (!body)
		return 1;
	int r = call(o, "POST", "/commands", body, -1, 0, NULL, !o->wait);
	free(body);
	if (r || !o->wait)
		return r;
	/* which revision to follow: the one run, or the factory revision made */
	if (!strcmp(op, "LOCAL_RUN") || !strcmp(op, "LOCAL_RUN_COMMIT"))
		return progress_follow(o, payload);
	if (!strcmp(op, "MAKE_FACTORY"))
		return progress_follow(o, "0");
	return 0;
}

static int action(const struct opts *o, const char *base, const char *name, const char *act)
{
	char path[1024];
	char *body = pv_ctrl_json_action(act);
	if (!body)
		return 1;
	snprintf(path, sizeof(path), "%s/%s", base, name);
	int r = call(o, "PUT", path, body, -1, 0, NULL, true);
	free(body);
	return r;
}

static int put_file(const struct opts *o, const char *path, const char *file, const char *ctype)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "pvcontrol: %s: %s\n", file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	int r = call(o, "PUT", path, NULL, fd, (uint64_t)st.st_size, ctype, true);
	close(fd);
	return r;
}

static int run(char *const argv[])
{
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int steps_put(const struct opts *o, const char *json, const char *rev)
{
	char path[1024];
	snprintf(path, sizeof(path), "/steps/%s", rev);
	if (put_file(o, path, json, NULL))
		return 1;
	if (o->msg) {
		snprintf(path, sizeof(path), "/steps/%s/commitmsg", rev);
		return call(o, "PUT", path, o->msg, -1, 0, "text/plain", true);
	}
	return 0;
}

/* GET path into memory: HTTP status (0 when the socket failed), body in *body (malloc'd). */
static int fetch(const struct opts *o, const char *path, char **body, size_t *len)
{
	struct pv_http_req q = {
	    .sock = o->sock, .method = "GET", .path = path, .body_fd = -1, .verbose = o->verbose};
	struct pv_http_resp resp;
	int r = pv_http_do(&q, &resp, -1);
	*body = resp.body;
	*len = resp.body_len;
	return r < 0 ? 0 : resp.status;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The progress path of a revision: "locals/x" → /steps/locals/x/progress, "3" → /steps/3/... */
static void progress_path(const char *rev, char *out, size_t len)
{
	snprintf(out, len, "/steps/%s/progress", rev);
}

/* Polls the revision's progress and prints a line each time it changes, until a final status:
 * 0 on DONE/UPDATED, 1 on ERROR/WONTGO (or on timeout). The engine may restart during an update
 * (a reboot-path update in appengine mode): connection failures and 503s are waited out. */
static int progress_follow(const struct opts *o, const char *rev)
{
	char path[1024], last[1024] = "";
	progress_path(rev, path, sizeof(path));
	long long start = now_ms();
	for (;;) {
		char *body = NULL;
		size_t len = 0;
		int st = fetch(o, path, &body, &len);
		if (st == 200 && len > 2) { /* "{}": nothing recorded yet */
			struct pv_ctrl_progress p;
			struct pv_error err = PV_ERROR_INIT;
			if (pv_ctrl_json_progress(body, len, &p, &err) == 0) {
				char line[1024];
				snprintf(line, sizeof(line), "%s %d%% %s", p.status, p.progress,
					 p.msg);
				if (strcmp(line, last)) {
					printf("%s\n", line);
					fflush(stdout);
					snprintf(last, sizeof(last), "%s", line);
				}
				bool ok;
				if (pv_ctrl_progress_final(p.status, &ok)) {
					free(body);
					return ok ? 0 : 1;
				}
			} else {
				fprintf(stderr, "pvcontrol: %s: %s\n", path, pv_error_msg(&err));
			}
			pv_error_clear(&err);
		} else if (st >= 400 && st != 503 && st != 404) {
			fprintf(stderr, "pvcontrol: GET %s: HTTP %d: %.*s\n", path, st, (int)len,
				body ? body : "");
			free(body);
			return 1;
		}
		free(body);
		if (o->timeout_s > 0 && now_ms() - start > (long long)o->timeout_s * 1000) {
			fprintf(stderr, "pvcontrol: %s: no final status after %d s\n", rev,
				o->timeout_s);
			return 1;
		}
		usleep((useconds_t)o->poll_ms * 1000);
	}
}

/* Names of objects the device already has (GET /objects), sorted for bsearch. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int have_objects(const struct opts *o, char ***shas, size_t *n)
{
	char *body = NULL;
	size_t len = 0;
	int st = fetch(o, "/objects", &body, &len);
	if (st != 200) {
		fprintf(stderr, "pvcontrol: GET /objects: %s%d\n", st ? "HTTP " : "no answer ", st);
		free(body);
		return -1;
	}
	struct pv_error err = PV_ERROR_INIT;
	int r = pv_ctrl_json_objects(body, len, shas, n, &err);
	if (r < 0)
		fprintf(stderr, "pvcontrol: GET /objects: %s\n", pv_error_msg(&err));
	pv_error_clear(&err);
	free(body);
	if (r == 0)
		qsort(*shas, *n, sizeof(char *), cmp_str);
	return r;
}

/* The directory of a pvr export holding `json` (some exports wrap it in one top directory). */
static int export_root(const char *top, char *dir, size_t len)
{
	char p[4400];
	snprintf(dir, len, "%s", top);
	snprintf(p, sizeof(p), "%s/json", dir);
	if (access(p, R_OK) == 0)
		return 0;
	DIR *d = opendir(top);
	struct dirent *de;
	int r = -1;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(dir, len, "%s/%s", top, de->d_name);
			snprintf(p, sizeof(p), "%s/json", dir);
			r = access(p, R_OK) == 0 ? 0 : -1;
			break;
		}
	if (d)
		closedir(d);
	return r;
}

/* steps install [--run|--run-commit] <tgz|dir> [rev]: a pvr export holds `json` and
 * `objects/<sha>`. Objects the device lacks go up first (streamed; the state then never names a
 * missing object), then the state as <rev> (default locals/install-<UTC timestamp>); the rev is
 * printed on stdout. The tarball is unpacked by `tar` (busybox has it on every device): no
 * libarchive, and pvcontrol links no zlib to read gzip itself. */
static int steps_install(const struct opts *o, const char *src, const char *rev_arg,
			 const char *run_op)
{
	char tmp[] = "/tmp/pvcontrol-install.XXXXXX", dir[4096], p[4400];
	struct stat st;
	bool unpacked = false;
	int rc = 1;
	char **have = NULL;
	size_t n_have = 0;
	if (stat(src, &st) < 0) {
		fprintf(stderr, "pvcontrol: %s: %s\n", src, strerror(errno));
		return 1;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(tmp, sizeof(tmp), "%s", "");
		if (export_root(src, dir, sizeof(dir)) < 0) {
			fprintf(stderr, "pvcontrol: %s has no json\n", src);
			return 1;
		}
	} else {
		if (!mkdtemp(tmp)) {
			fprintf(stderr, "pvcontrol: temp dir: %s\n", strerror(errno));
			return 1;
		}
		unpacked = true;
		char *const tar[] = {"tar", "-xzf", (char *)src, "-C", tmp, NULL};
		if (run(tar) != 0) {
			fprintf(stderr, "pvcontrol: cannot unpack %s (tar -xzf failed)\n", src);
			goto out;
		}
		if (export_root(tmp, dir, sizeof(dir)) < 0) {
			fprintf(stderr, "pvcontrol: %s has no json\n", src);
			goto out;
		}
	}
	snprintf(p, sizeof(p), "%s/json", dir);
	if (have_objects(o, &have, &n_have) < 0)
		goto out;

	char objdir[4400];
	snprintf(objdir, sizeof(objdir), "%s/objects", dir);
	DIR *d = opendir(objdir);
	size_t total = 0, sent = 0, skipped = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			total++;
	if (d)
		rewinddir(d);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		const char *name = de->d_name;
		if (bsearch(&name, have, n_have, sizeof(char *), cmp_str)) {
			skipped++;
			continue;
		}
		char file[8800], path[512];
		snprintf(file, sizeof(file), "%s/%s", objdir, name);
		snprintf(path, sizeof(path), "/objects/%s", name);
		fprintf(stderr, "pvcontrol: object %zu/%zu %s\n", sent + skipped + 1, total, name);
		struct opts quiet = *o;
		quiet.outfile = "/dev/null";
		if (put_file(&quiet, path, file, "application/octet-stream")) {
			closedir(d);
			goto out;
		}
		sent++;
	}
	if (d)
		closedir(d);
	char rev[256];
	if (rev_arg) {
		snprintf(rev, sizeof(rev), "%s%s", strncmp(rev_arg, "locals/", 7) ? "locals/" : "",
			 rev_arg);
	} else {
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(rev, sizeof(rev), "locals/install-%Y%m%dT%H%M%SZ", &tm);
	}
	fprintf(stderr, "pvcontrol: %zu objects uploaded, %zu already on the device; state %s\n",
		sent, skipped, rev);
	struct opts quiet = *o;
	quiet.outfile = "/dev/null";
	if (steps_put(&quiet, p, rev))
		goto out;
	printf("%s\n", rev);
	fflush(stdout);
	rc = 0;
	if (run_op) {
		struct opts w = *o;
		w.wait = true;
		rc = cmd_op(&w, run_op, rev);
	}
out:
	pv_ctrl_json_strv_free(have, n_have);
	if (unpacked) {
		char *const rm[] = {"rm", "-rf", tmp, NULL};
		run(rm);
	}
	return rc;
}

static bool is(const char *a, const char *b)
{
	return a && !strcmp(a, b);
}

int main(int argc, char **argv)
{
	struct opts o = {.poll_ms = 1000};
	int c;
	const char *pm = getenv("PVCONTROL_POLL_MS"); /* tests poll faster */
	if (pm && atoi(pm) > 0)
		o.poll_ms = atoi(pm);
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
		usage(stdout);
		return 0;
	}
	while ((c = getopt(argc, argv, "+s:vwt:f:m:h")) != -1) {
		switch (c) {
		case 's':
			o.sock = optarg;
			break;
		case 'v':
			o.verbose = true;
			break;
		case 'w':
			o.wait = true;
			break;
		case 't':
			o.timeout_s = atoi(optarg);
			break;
		case 'f':
			o.outfile = optarg;
			break;
		case 'm':
			o.msg = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	o.sock = find_socket(o.sock);
	int n = argc - optind;
	char **a = argv + optind;
	const char *c0 = n > 0 ? a[0] : NULL, *c1 = n > 1 ? a[1] : NULL, *c2 = n > 2 ? a[2] : NULL,
		   *c3 = n > 3 ? a[3] : NULL;

	if (is(c0, "ls") || (is(c0, "containers") && is(c1, "ls")))
		return call(&o, "GET", "/containers", NULL, -1, 0, NULL, true);
	if (is(c0, "containers") && c2 && (is(c1, "start") || is(c1, "stop") || is(c1, "restart")))
		return action(&o, "/containers", c2, c1);
	if (is(c0, "groups") && is(c1, "ls"))
		return call(&o, "GET", "/groups", NULL, -1, 0, NULL, true);
	if (is(c0, "signal") && (is(c1, "ready") || is(c1, "alive"))) {
		char *body = pv_ctrl_json_signal(c1, "");
		int r = body ? call(&o, "POST", "/signal", body, -1, 0, NULL, true) : 1;
		free(body);
		return r;
	}
	if (is(c0, "cmd") && c1) {
		static const struct {
			const char *sub, *op;
			int arg; /* 0 none, 1 optional, 2 required */
		} cmds[] = {{"run", "LOCAL_RUN", 2},
			    {"run-commit", "LOCAL_RUN_COMMIT", 2},
			    {"reboot", "REBOOT_DEVICE", 1},
			    {"poweroff", "POWEROFF_DEVICE", 1},
			    {"make-factory", "MAKE_FACTORY", 1},
			    {"run-gc", "RUN_GC", 0},
			    {"enable-ssh", "ENABLE_SSH", 0},
			    {"disable-ssh", "DISABLE_SSH", 0},
			    {"go-remote", "GO_REMOTE", 0},
			    {"unclaim", "UNCLAIM", 0},
			    {"defer-reboot", "DEFER_REBOOT", 2}};
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			if (strcmp(c1, cmds[i].sub))
				continue;
			if (cmds[i].arg == 2 && !c2)
				break;
			return cmd_op(&o, cmds[i].op, cmds[i].arg ? c2 : NULL);
		}
	}
	if ((is(c0, "devmeta") || is(c0, "usrmeta")) && c1) {
		const char *base = is(c0, "devmeta") ? "/device-meta" : "/user-meta";
		char path[1024];
		if (is(c1, "ls"))
			return call(&o, "GET", base, NULL, -1, 0, NULL, true);
		if (is(c1, "save") && c3) {
			snprintf(path, sizeof(path), "%s/%s", base, c2);
			return call(&o, "PUT", path, c3, -1, 0, "text/plain", true);
		}
		if (is(c1, "delete") && c2) {
			snprintf(path, sizeof(path), "%s/%s", base, c2);
			return call(&o, "DELETE", path, NULL, -1, 0, NULL, true);
		}
	}
	if (is(c0, "buildinfo"))
		return call(&o, "GET", "/buildinfo", NULL, -1, 0, NULL, true);
	if (is(c0, "storage") && is(c1, "gc"))
		return call(&o, "POST", "/storage/gc", NULL, -1, 0, NULL, true);
	if (is(c0, "graph") && is(c1, "ls"))
		return call(&o, "GET", "/xconnect-graph", NULL, -1, 0, NULL, true);
	if ((is(c0, "conf") || is(c0, "config")) && is(c1, "ls"))
		return call(&o, "GET", "/config", NULL, -1, 0, NULL, true);
	if (is(c0, "objects") && c1) {
		char path[1024];
		if (is(c1, "ls"))
			return call(&o, "GET", "/objects", NULL, -1, 0, NULL, true);
		if (is(c1, "put") && c3) {
			snprintf(path, sizeof(path), "/objects/%s", c3);
			return put_file(&o, path, c2, "application/octet-stream");
		}
		if (is(c1, "get") && c2) {
			snprintf(path, sizeof(path), "/objects/%s", c2);
			return call(&o, "GET", path, NULL, -1, 0, NULL, true);
		}
	}
	if (is(c0, "steps") && c1) {
		char path[1024];
		if (is(c1, "ls"))
			return call(&o, "GET", "/steps", NULL, -1, 0, NULL, true);
		if (is(c1, "get") && c2) {
			snprintf(path, sizeof(path), "/steps/%s", c2);
			return call(&o, "GET", path, NULL, -1, 0, NULL, true);
		}
		if (is(c1, "show-progress") && c2) {
			snprintf(path, sizeof(path), "/steps/%s/progress", c2);
			return call(&o, "GET", path, NULL, -1, 0, NULL, true);
		}
		if (is(c1, "put") && c3)
			return steps_put(&o, c2, c3);
		if (is(c1, "install") && c2) {
			const char *run_op = NULL;
			if (is(c2, "--run") || is(c2, "--run-commit")) {
				run_op = is(c2, "--run") ? "LOCAL_RUN" : "LOCAL_RUN_COMMIT";
				c2 = c3;
				c3 = n > 4 ? a[4] : NULL;
			}
			if (c2)
				return steps_install(&o, c2, c3, run_op);
		}
	}
	if (is(c0, "daemons") && c1) {
		if (is(c1, "ls"))
			return call(&o, "GET", "/daemons", NULL, -1, 0, NULL, true);
		if (c2 && (is(c1, "start") || is(c1, "stop") || is(c1, "restart")))
			return action(&o, "/daemons", c2, c1);
	}
	usage(stderr);
	return 2;
}
