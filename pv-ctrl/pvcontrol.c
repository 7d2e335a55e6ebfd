/* pv-ctrl/pvcontrol.c: pvcontrol, upstream's command-line client of the pv-ctrl API (spec §B):
 * sub-commands → HTTP requests over the socket; JSON printed as received; exit 1 on HTTP >= 400. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http_client.h"

struct opts {
	const char *sock;
	const char *outfile;
	const char *msg;
	bool verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pvcontrol [-s sock] [-v] [-f outfile] [-m msg] <command>\n"
		"  ls | containers ls|start|stop|restart <name> | groups ls\n"
		"  signal ready|alive\n"
		"  cmd run|run-commit <rev> | cmd reboot|poweroff [msg] | cmd make-factory [rev]\n"
		"  cmd run-gc|enable-ssh|disable-ssh|go-remote|unclaim | cmd defer-reboot <secs>\n"
		"  devmeta|usrmeta ls|save <key> <value>|delete <key>\n"
		"  buildinfo | storage gc | graph ls | conf ls | config ls\n"
		"  objects ls|put <file> <sha>|get <sha>\n"
		"  steps ls|get <rev>|show-progress <rev>|put <json> <rev>|install <tgz> [rev]\n"
		"  daemons ls|start|stop|restart <name>\n");
}

/* Command-line values into a JSON string literal (escaping quotes, backslashes, controls). */
static char *json_str(const char *s)
{
	size_t n = strlen(s);
	char *o = malloc(n * 6 + 3), *p = o;
	if (!o)
		return NULL;
	*p++ = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			*p++ = '\\';
			*p++ = (char)c;
		} else if (c < 0x20) {
			p += sprintf(p, "\\u%04x", c);
		} else {
			*p++ = (char)c;
		}
	}
	*p++ = '"';
	*p = '\0';
	return o;
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

static int cmd_op(const struct opts *o, const char *op, const char *payload)
{
	char *p = json_str(payload ? payload : ""), *q = json_str(op), body[8192];
	if (!p || !q)
		return 1;
	snprintf(body, sizeof(body), "{\"op\":%s,\"payload\":%s}", q, p);
	free(p);
	free(q);
	return call(o, "POST", "/commands", body, -1, 0, NULL, true);
}

static int action(const struct opts *o, const char *base, const char *name, const char *act)
{
	char path[1024], body[64];
	snprintf(path, sizeof(path), "%s/%s", base, name);
	snprintf(body, sizeof(body), "{\"action\":\"%s\"}", act);
	return call(o, "PUT", path, body, -1, 0, NULL, true);
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

/* steps install <tgz> [rev]: a pvr export holds `json` and `objects/<sha>`; every object goes
 * up first (so the state never names a missing object), then the state as locals/<rev>. */
static int steps_install(const struct opts *o, const char *tgz, const char *rev_arg)
{
	char tmp[] = "/tmp/pvcontrol-install.XXXXXX";
	if (!mkdtemp(tmp)) {
		fprintf(stderr, "pvcontrol: temp dir: %s\n", strerror(errno));
		return 1;
	}
	char *const tar[] = {"tar", "-xzf", (char *)tgz, "-C", tmp, NULL};
	int rc = 1;
	if (run(tar) != 0) {
		fprintf(stderr, "pvcontrol: cannot unpack %s\n", tgz);
		goto out;
	}
	char dir[4096], p[4096 + 300];
	snprintf(dir, sizeof(dir), "%s", tmp);
	snprintf(p, sizeof(p), "%s/json", dir);
	if (access(p, R_OK) != 0) {
		/* some exports wrap everything in one top-level directory */
		DIR *d = opendir(tmp);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.') {
				snprintf(dir, sizeof(dir), "%s/%s", tmp, de->d_name);
				break;
			}
		if (d)
			closedir(d);
		snprintf(p, sizeof(p), "%s/json", dir);
		if (access(p, R_OK) != 0) {
			fprintf(stderr, "pvcontrol: %s has no json\n", tgz);
			goto out;
		}
	}
	char objdir[4096 + 16];
	snprintf(objdir, sizeof(objdir), "%s/objects", dir);
	DIR *d = opendir(objdir);
	size_t total = 0, done = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			total++;
	if (d)
		rewinddir(d);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char file[8192], path[512];
		snprintf(file, sizeof(file), "%s/%s", objdir, de->d_name);
		snprintf(path, sizeof(path), "/objects/%s", de->d_name);
		fprintf(stderr, "pvcontrol: object %zu/%zu %s\n", ++done, total, de->d_name);
		struct opts quiet = *o;
		quiet.outfile = "/dev/null";
		if (put_file(&quiet, path, file, "application/octet-stream")) {
			closedir(d);
			goto out;
		}
	}
	if (d)
		closedir(d);
	char rev[256];
	if (rev_arg) {
		snprintf(rev, sizeof(rev), "%s%s", strncmp(rev_arg, "locals/", 7) ? "locals/" : "",
			 rev_arg);
	} else {
		const char *b = strrchr(tgz, '/');
		snprintf(rev, sizeof(rev), "locals/%s", b ? b + 1 : tgz);
		char *dot = strstr(rev, ".tar.gz");
		if (!dot)
			dot = strstr(rev, ".tgz");
		if (dot)
			*dot = '\0';
	}
	fprintf(stderr, "pvcontrol: state %s\n", rev);
	rc = steps_put(o, p, rev);
	if (!rc)
		fprintf(stderr, "pvcontrol: installed %s (%zu objects)\n", rev, total);
out:;
	char *const rm[] = {"rm", "-rf", tmp, NULL};
	run(rm);
	return rc;
}

static bool is(const char *a, const char *b)
{
	return a && !strcmp(a, b);
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	int c;
	while ((c = getopt(argc, argv, "+s:vf:m:h")) != -1) {
		switch (c) {
		case 's':
			o.sock = optarg;
			break;
		case 'v':
			o.verbose = true;
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
		char body[64];
		snprintf(body, sizeof(body), "{\"type\":\"%s\",\"payload\":\"\"}", c1);
		return call(&o, "POST", "/signal", body, -1, 0, NULL, true);
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
		if (is(c1, "install") && c2)
			return steps_install(&o, c2, c3);
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
