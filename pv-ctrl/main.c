/* pv-ctrl/main.c: the pv-ctrl process: arguments and config, the Unix socket <rundir>/pv-ctrl,
 * libmicrohttpd on it, and the per-request flow (route, identity, role, body, handler, reply). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "pvstate/config.h"
#include "pvstate/proto.h"

#include "ctrl.h"

/* Bounds for hostile clients (issue 4 "bad input"): a slowloris connection is dropped after
 * CONN_TIMEOUT idle seconds, at most CONN_LIMIT connections are served, and all headers of a
 * request must fit in MEM_LIMIT bytes (MHD answers 431/413). The first two can be set with
 * PV_CTRL_CONNECTION_TIMEOUT and PV_CTRL_CONNECTION_LIMIT.
 * Over the cap a client learns why: as many connections again are accepted, each answered 503
 * (Retry-After) to its first request and closed, or dropped after OVER_TIMEOUT_S if it sends
 * none (so idle floods cannot hold those slots either); only past twice the cap are
 * connections closed at accept, unanswered. */
#define CONN_TIMEOUT_S 10
#define CONN_LIMIT     512
#define OVER_TIMEOUT_S 1
#define OVER_RETRY_S   1
/* fds besides connections: engine channels, epoll, stdio, the config (generous) */
#define FD_SPARE	  64
#define MEM_LIMIT	  (64u * 1024u)
#define ENGINE_TIMEOUT_MS 10000
/* Reads do not hold an HTTP thread while other connections are open (the connection is parked
 * while the engine answers); writes do, so there are as many threads as write channels. */
#define HTTP_THREADS PV_CTRL_ENGINE_CHANNELS
#define DRAIN_MAX    (1024u * 1024u)

extern char **environ;

/* Per-connection state: the caller's identity, learnt once. */
struct conn_ctx {
	bool over_cap; /* accepted over the cap: its first request is answered 503 */
	bool identified;
	int ir;
	struct pv_ctrl_caller caller;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pv-ctrl --mode appengine|embedded --rundir DIR --storage DIR\n"
		   "               [--config FILE] [--cmdline STR] [--engine-socket PATH]\n"
		   "       pv-ctrl --list-routes\n");
}

static void list_routes(void)
{
	for (size_t i = 0; i < pv_ctrl_n_routes; i++) {
		const struct pv_ctrl_route *r = &pv_ctrl_routes[i];
		printf("%s %s %s %zd\n", pv_route_method_str(r->method), r->pattern,
		       r->role == PV_CTRL_ROLE_ANY ? "any" : "mgmt",
		       r->body_max == (size_t)-1 ? (ssize_t)-1 : (ssize_t)r->body_max);
	}
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct pv_ctrl_reply *rep, int allow)
{
	struct MHD_Response *res;
	if (rep->fd >= 0) {
		res = MHD_create_response_from_fd64(rep->fd_size, rep->fd);
		if (res)
			rep->fd = -1; /* MHD owns and closes it */
	} else {
		if (!rep->body) {
			rep->body = pv_msg_http_error_body("out of memory");
			rep->status = 500;
			rep->len = rep->body ? strlen(rep->body) : 0;
		}
		res = MHD_create_response_from_buffer(rep->len, rep->body ? rep->body : (void *)"",
						      rep->body ? MHD_RESPMEM_MUST_FREE
								: MHD_RESPMEM_PERSISTENT);
		if (res)
			rep->body = NULL;
	}
	if (!res)
		return MHD_NO;
	MHD_add_response_header(res, "Content-Type", rep->ctype ? rep->ctype : "application/json");
	if (rep->retry_after > 0) {
		char v[16];
		snprintf(v, sizeof(v), "%d", rep->retry_after);
		MHD_add_response_header(res, "Retry-After", v);
	}
	if (rep->close)
		MHD_add_response_header(res, MHD_HTTP_HEADER_CONNECTION, "close");
	if (allow) {
		char v[64] = "";
		for (int m = PV_M_GET; m <= PV_M_DELETE; m <<= 1)
			if (allow & m) {
				if (v[0])
					strcat(v, ", ");
				strcat(v, pv_route_method_str(m));
			}
		MHD_add_response_header(res, "Allow", v);
	}
	enum MHD_Result r = MHD_queue_response(conn, (unsigned)rep->status, res);
	MHD_destroy_response(res);
	return r;
}

/* An error decided before the body is read: answered at once (MHD then skips the body). */
static enum MHD_Result early(struct pv_ctrl_req *r, struct MHD_Connection *conn, int allow)
{
	r->has_early = true;
	return send_reply(conn, &r->early, allow);
}

static bool host_ok(const char *h)
{
	/* spec §A: Host empty or localhost (curl --unix-socket http://localhost/...) */
	return !h || !h[0] || !strcmp(h, "localhost") || !strncmp(h, "localhost:", 10);
}

static enum MHD_Result first_call(struct pv_ctrl *ctrl, struct pv_ctrl_req *r,
				  struct MHD_Connection *conn, const char *url, const char *method)
{
	const union MHD_ConnectionInfo *sc =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_ctx *cc = sc ? sc->socket_context : NULL;
	if (cc && cc->over_cap) {
		pv_ctrl_reply_error(&r->early, 503,
				    "too many connections: %d are served at once "
				    "(PV_CTRL_CONNECTION_LIMIT); try again",
				    ctrl->conn_cap);
		r->early.retry_after = OVER_RETRY_S;
		r->early.close = true;
		return early(r, conn, 0);
	}
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	if (!host_ok(host)) {
		pv_ctrl_reply_error(&r->early, 400, "Host must be empty or localhost, not \"%s\"",
				    host);
		return early(r, conn, 0);
	}
	r->method = pv_route_method(method);
	char msg[512];
	int allowed = 0;
	int st = pv_route_lookup(r->method, url, &r->route, r->caps, &allowed, msg, sizeof(msg));
	if (st == 404) {
		pv_ctrl_reply_error(&r->early, 404, "Resource %s not found", url);
		return early(r, conn, 0);
	}
	if (st == 405) {
		pv_ctrl_reply_error(&r->early, 405, "Method %s not allowed on %s", method, url);
		return early(r, conn, allowed);
	}
	if (st != 0) {
		pv_ctrl_reply_error(&r->early, st, "%s", msg);
		return early(r, conn, 0);
	}
	/* the peer of a connection never changes: identify it once, on its first request */
	int ir;
	if (cc && cc->identified) {
		ir = cc->ir;
		r->caller = cc->caller;
	} else {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		ir = ci ? pv_ctrl_caller_identify(ctrl, ci->connect_fd, &r->caller) : -EBADF;
		if (cc) {
			cc->identified = true;
			cc->ir = ir;
			cc->caller = r->caller;
		}
	}
	if (ir >= 0)
		pv_ctrl_caller_resolve(ctrl,
				       &r->caller); /* every endpoint sees the engine's name */
	bool allowed_role = ir >= 0 && pv_ctrl_caller_allowed(ctrl, &r->caller, r->route->role);
	if (cc)
		cc->caller = r->caller; /* keeps the roles learnt from the engine */
	if (ir < 0 && r->route->role != PV_CTRL_ROLE_ANY) {
		pv_ctrl_reply_error(&r->early, 403, "caller identity unknown: %s", strerror(-ir));
		return early(r, conn, 0);
	}
	if (!allowed_role && r->route->role != PV_CTRL_ROLE_ANY) {
		pv_ctrl_reply_error(&r->early, 403,
				    "%s %s needs role mgmt; caller %s%s does not have it", method,
				    r->route->pattern, r->caller.container[0] ? "container " : "",
				    r->caller.container[0] ? r->caller.container : "(unknown)");
		return early(r, conn, 0);
	}
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	if (cl && r->route->body_max != (size_t)-1 &&
	    strtoull(cl, NULL, 10) > (unsigned long long)r->route->body_max) {
		pv_ctrl_reply_error(&r->early, 413, "request body over %zu bytes for %s",
				    r->route->body_max, r->route->pattern);
		return early(r, conn, 0);
	}
	if (r->route->stream && pv_ep_objects_put_begin(r, &r->early) < 0)
		return early(r, conn, 0);
	return MHD_YES;
}

static bool body_append(struct pv_ctrl_req *r, const char *data, size_t n)
{
	if (r->body_len + n > r->route->body_max)
		return false;
	if (r->body_len + n + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 1024;
		while (cap < r->body_len + n + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return false;
		r->body = b;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return true;
}

/* A deferred read: the connection sleeps (no thread held) until the engine I/O thread answers. */
static void park_cb(void *ctx)
{
	struct pv_ctrl_req *r = ctx;
	MHD_suspend_connection(r->conn);
}

static void done_cb(void *ctx, const struct pv_ctrl_reply *rep)
{
	struct pv_ctrl_req *r = ctx;
	if (pv_ctrl_reply_copy(&r->async_rep, rep) < 0)
		pv_ctrl_reply_error(&r->async_rep, 500, "out of memory copying the engine reply");
	r->async_done = true;
	MHD_resume_connection(r->conn); /* MHD calls access_cb again: it sends async_rep */
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	struct pv_ctrl *ctrl = cls;
	struct pv_ctrl_req *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->ctrl = ctrl;
		r->up_fd = -1;
		r->early.fd = -1;
		r->async_rep.fd = -1;
		*con_cls = r;
		return first_call(ctrl, r, conn, url, method);
	}
	if (r->deferred) {
		if (!r->async_done)
			return MHD_YES;
		r->deferred = false;
		r->has_early = true; /* answered: ignore any further call */
		return send_reply(conn, &r->async_rep, 0);
	}
	if (r->has_early) {
		/* MHD cannot answer before the body is consumed: drain a bounded amount, then
		 * answer; a client that keeps sending past that is cut off */
		if (*upload_data_size) {
			r->drained += *upload_data_size;
			*upload_data_size = 0;
			if (r->early_pending && r->drained > DRAIN_MAX)
				return MHD_NO;
			return MHD_YES;
		}
		if (r->early_pending) { /* the final call: the body is consumed */
			r->early_pending = false;
			return send_reply(conn, &r->early, 0);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (r->route->stream) {
			pv_ep_objects_put_data(r, upload_data, *upload_data_size);
		} else if (!body_append(r, upload_data, *upload_data_size)) {
			/* chunked or lying Content-Length: the limit holds anyway */
			*upload_data_size = 0;
			pv_ctrl_reply_error(&r->early, 413, "request body over %zu bytes for %s",
					    r->route->body_max, r->route->pattern);
			r->has_early = true;
			r->early_pending = true;
			return MHD_YES;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	struct pv_ctrl_reply rep = {.fd = -1};
	pv_ctrl_handler h = pv_ctrl_handler_of(r->route->id);
	if (h)
		h(r, &rep);
	else
		pv_ctrl_reply_error(&rep, 500, "no handler for %s", r->route->pattern);
	if (r->defer_op && __atomic_load_n(&ctrl->open_conns, __ATOMIC_RELAXED) <= 1) {
		/* a lone connection starves nobody by blocking its thread for the round trip, and
		 * parking it would cost MHD's suspend/resume wakeups (≈2x the latency) */
		pv_ctrl_engine_relay(ctrl->engine, r->defer_op, r->defer_args, &rep);
		free(r->defer_args);
		r->defer_args = NULL;
		r->defer_op = NULL;
	}
	if (r->defer_op) {
		r->conn = conn;
		r->deferred = true;
		int e = pv_ctrl_engine_read_async(ctrl->engine, r->defer_op, r->defer_args, park_cb,
						  done_cb, r);
		if (e == 0) {
			free(r->defer_args);
			r->defer_args = NULL;
			return MHD_YES;
		}
		/* no I/O thread (stopping) or no memory: a blocking round trip still answers */
		r->deferred = false;
		pv_ctrl_engine_relay(ctrl->engine, r->defer_op, r->defer_args, &rep);
		free(r->defer_args);
		r->defer_args = NULL;
	}
	enum MHD_Result res = send_reply(conn, &rep, 0);
	pv_ctrl_reply_clear(&rep);
	r->has_early = true; /* answered: ignore any further call */
	return res;
}

static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct pv_ctrl *ctrl = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		int n = __atomic_add_fetch(&ctrl->open_conns, 1, __ATOMIC_RELAXED);
		struct conn_ctx *cc = calloc(1, sizeof(*cc)); /* NULL: identify per request */
		*socket_context = cc;
		if (cc && n > ctrl->conn_cap) {
			cc->over_cap = true;
			MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
						  (unsigned)OVER_TIMEOUT_S);
		}
	} else {
		__atomic_fetch_sub(&ctrl->open_conns, 1, __ATOMIC_RELAXED);
		free(*socket_context);
		*socket_context = NULL;
	}
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct pv_ctrl_req *r = *con_cls;
	if (!r)
		return;
	/* a client gone mid-upload leaves no temp file */
	pv_ep_objects_put_abort(r);
	pv_ctrl_reply_clear(&r->early);
	pv_ctrl_reply_clear(&r->async_rep);
	free(r->defer_args);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

/* A pv-ctrl killed mid-upload (kill -9, power loss) leaves "<sha>.tmp.<pid>.<n>": remove the
 * temps whose writer is gone, so a crash never leaves garbage that looks like an object. */
static void sweep_uploads(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		const char *t = strstr(de->d_name, ".tmp.");
		if (!t || t - de->d_name != 64)
			continue;
		int pid = atoi(t + 5);
		if (pid > 0 && pid != getpid() && (kill(pid, 0) == 0 || errno != ESRCH))
			continue; /* a live writer (should not happen: init runs one pv-ctrl) */
		unlinkat(dirfd(d), de->d_name, 0);
	}
	if (d)
		closedir(d);
}

/* Connections MHD may hold (served + over the cap), within the fds this process may open:
 * the soft RLIMIT_NOFILE is raised towards what that needs (a served connection may also
 * stream a file). Returns the limit to give MHD; *cap is lowered if the fds are too few. */
static unsigned fit_fd_limit(int *cap)
{
	rlim_t need = (rlim_t)*cap * 3 + FD_SPARE;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return (unsigned)*cap * 2;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rl.rlim_cur =
		    rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		rlim_t room = rl.rlim_cur > 2 * FD_SPARE ? rl.rlim_cur - FD_SPARE : FD_SPARE;
		int fit = (int)(room / 3) > 1 ? (int)(room / 3) : 1;
		fprintf(stderr, "pv-ctrl: %llu fds allowed: %d connections served, not %d\n",
			(unsigned long long)rl.rlim_cur, fit, *cap);
		*cap = fit;
	}
	return (unsigned)*cap * 2;
}

/* The socket appears at path only once it listens (bound under a temporary name, then renamed
 * over any stale one a killed pv-ctrl left): a client that sees the path can connect. */
static int bind_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s.tmp.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		memcpy(sa.sun_path, path, len + 1); /* no room for a temporary name: in place */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);
	/* any local process may connect: what it may do is decided per request by its identity */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0 ||
	    chmod(sa.sun_path, 0666) < 0 ||
	    (strcmp(sa.sun_path, path) != 0 && rename(sa.sun_path, path) < 0)) {
		int e = -errno;
		unlink(sa.sun_path);
		close(fd);
		return e;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"mode", required_argument, NULL, 'm'},
					     {"rundir", required_argument, NULL, 'r'},
					     {"storage", required_argument, NULL, 's'},
					     {"config", required_argument, NULL, 'c'},
					     {"cmdline", required_argument, NULL, 'k'},
					     {"engine-socket", required_argument, NULL, 'e'},
					     {"list-routes", no_argument, NULL, 'L'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *mode = NULL, *rundir = NULL, *storage = NULL, *config = NULL, *cmdline = NULL,
		   *engine_sock = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'm':
			mode = optarg;
			break;
		case 'r':
			rundir = optarg;
			break;
		case 's':
			storage = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'k':
			cmdline = optarg;
			break;
		case 'e':
			engine_sock = optarg;
			break;
		case 'L':
			list_routes();
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!mode || !rundir || !storage ||
	    (strcmp(mode, "appengine") != 0 && strcmp(mode, "embedded") != 0)) {
		usage(stderr);
		return 2;
	}

	struct pv_config *cfg = pv_config_new();
	if (!cfg) {
		fprintf(stderr, "pv-ctrl: out of memory\n");
		return 1;
	}
	struct pv_error err = PV_ERROR_INIT;
	if (pv_config_load_layers(cfg, config, cmdline, environ, &err) < 0 && err.count)
		fprintf(stderr, "pv-ctrl: %s\n", pv_error_msg(&err));
	pv_error_clear(&err);
	char *sock_from_cfg = pv_config_engine_socket(cfg, rundir);
	int conn_timeout = pv_config_get_seconds(cfg, "PV_CTRL_CONNECTION_TIMEOUT", CONN_TIMEOUT_S);
	int conn_limit = pv_config_get_int(cfg, "PV_CTRL_CONNECTION_LIMIT", CONN_LIMIT);
	if (conn_timeout <= 0)
		conn_timeout = CONN_TIMEOUT_S;
	if (conn_limit <= 0)
		conn_limit = CONN_LIMIT;
	if (!engine_sock)
		engine_sock = sock_from_cfg;
	if (!engine_sock) {
		fprintf(stderr, "pv-ctrl: out of memory\n");
		return 1;
	}

	unsigned mhd_limit = fit_fd_limit(&conn_limit);
	struct pv_ctrl ctrl = {.conn_cap = conn_limit};
	ctrl.rundir = strdup(rundir);
	ctrl.storage = strdup(storage);
	if (asprintf(&ctrl.objects_dir, "%s/objects", storage) < 0)
		ctrl.objects_dir = NULL;
	ctrl.engine = pv_ctrl_engine_new(engine_sock, ENGINE_TIMEOUT_MS);
	if (!ctrl.rundir || !ctrl.storage || !ctrl.objects_dir || !ctrl.engine) {
		fprintf(stderr, "pv-ctrl: engine socket %s: %s\n", engine_sock, strerror(errno));
		return 1;
	}
	sweep_uploads(ctrl.objects_dir);

	char path[4096];
	snprintf(path, sizeof(path), "%s/pv-ctrl", rundir);
	int fd = bind_socket(path);
	if (fd < 0) {
		fprintf(stderr, "pv-ctrl: socket %s: %s\n", path, strerror(-fd));
		return 1;
	}

	/* signals are taken synchronously by this thread; MHD's threads must not see them */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
		MHD_ALLOW_SUSPEND_RESUME,
	    0, NULL, NULL, access_cb, &ctrl, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT,
	    mhd_limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)conn_timeout,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEM_LIMIT,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, 0u, MHD_OPTION_NOTIFY_CONNECTION, connection_cb,
	    &ctrl, MHD_OPTION_NOTIFY_COMPLETED, completed_cb, &ctrl, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "pv-ctrl: cannot start the HTTP server on %s\n", path);
		unlink(path);
		return 1;
	}
	fprintf(stderr, "pv-ctrl: serving %s (engine %s, timeout %ds, %d connections)\n", path,
		engine_sock, conn_timeout, conn_limit);

	if (pv_ctrl_engine_start(ctrl.engine) < 0)
		fprintf(stderr, "pv-ctrl: no engine I/O thread: reads block an HTTP thread each\n");
	int sig = 0;
	sigwait(&set, &sig);
	/* parked connections must be resumed (answered 503) before MHD may stop */
	pv_ctrl_engine_stop(ctrl.engine);
	MHD_stop_daemon(d);
	unlink(path);
	pv_ctrl_engine_free(ctrl.engine);
	free(ctrl.rundir);
	free(ctrl.storage);
	free(ctrl.objects_dir);
	free(sock_from_cfg);
	pv_config_free(cfg);
	return 0;
}
