/* xconnect.h: pv-xconnect's internal interfaces between the daemon core (main, reconcile),
 * the namespace plumbing, the stream proxy and the plugins. Not installed. */
#ifndef PVX_XCONNECT_H
#define PVX_XCONNECT_H

#include <stdbool.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "pvstate/error.h"
#include "pvstate/graph.h"

/* ---- logging (stderr; init forwards it to the log) ---- */
enum pvx_log_level { PVX_ERROR = 0, PVX_WARN, PVX_INFO, PVX_DEBUG };
void pvx_log(enum pvx_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pvx_log_set_level(enum pvx_log_level lvl);

/* ---- the daemon ---- */
struct pvx_link;
struct pvx_reconciler;

/* Reports live link status to whoever listens (the engine client). The reconciler calls it
 * with every link whenever any link's state changed (coalesced per loop turn). */
typedef void (*pvx_status_cb)(void *opaque, const struct pvx_link *const *links, size_t n);

struct pvx_reconciler *pvx_reconciler_new(uv_loop_t *loop, pvx_status_cb cb, void *opaque);
/* Applies a whole graph (the engine always pushes the complete set). Takes ownership of g. */
void pvx_reconciler_apply(struct pvx_reconciler *r, struct pv_graph *g);
/* Tears every link down (shutdown) and frees the reconciler. */
void pvx_reconciler_free(struct pvx_reconciler *r);
size_t pvx_reconciler_count(const struct pvx_reconciler *r);

/* A live link as the reconciler and plugins see it. */
struct pvx_link {
	struct pv_link spec; /* deep copy of the graph entry */
	const struct pvx_plugin *plugin;
	struct pvx_reconciler *owner;
	uv_loop_t *loop;
	enum pv_link_state state;
	char *error; /* last failure, NULL when up */
	void *priv;  /* plugin state (NULL when not established) */
	uv_timer_t retry;
	unsigned attempts;
	bool established;
	bool closing;
};

/* Plugins call this when a link they established broke or recovered later (e.g. a device node
 * appeared). state PENDING/ERROR schedules a retry (plugin's link_remove is called first). */
void pvx_link_report(struct pvx_link *l, enum pv_link_state state, const char *error);
/* Target path the link injects at (the link's target or upstream's default). */
const char *pvx_link_target(const struct pvx_link *l, char *buf, size_t len);
/* true when the link (or its export) asked for mode "direct". */
bool pvx_link_direct(const struct pvx_link *l);

/* ---- plumbing: namespaces, injection, provider access (plumbing.c) ---- */

/* Ownership/mode of an injected socket or node. */
struct pvx_owner {
	uid_t uid;
	gid_t gid;
	mode_t mode;
	bool passcred; /* SO_PASSCRED on the listening socket (accepted ones inherit it) */
};
#define PVX_OWNER_DEFAULT                                                                          \
	{                                                                                          \
		0, 0, 0666, false                                                                  \
	}

/* What was injected, so teardown removes exactly that and nothing a container put there later. */
struct pvx_injected {
	pid_t pid; /* consumer pid whose mount ns holds it */
	char *path;
	dev_t dev;
	ino_t ino;
	bool mounted; /* a bind mount (direct mode) rather than a file */
};

/* Creates a listening unix socket at `target` inside pid's mount namespace (parent dirs made
 * 0755, a stale socket replaced, no symlink followed in any component). Returns the listening
 * fd (non-blocking, cloexec) in *fd. */
int pvx_plumb_listen(pid_t pid, const char *target, const struct pvx_owner *own, int *fd,
		     struct pvx_injected *inj, struct pv_error *err);
/* Bind-mounts the provider's socket (provider ns, resolved inside its root) onto target in
 * the consumer's ns. Idempotent: an earlier mount at target is detached first. */
int pvx_plumb_bind_socket(pid_t provider_pid, const char *socket_path, pid_t consumer_pid,
			  const char *target, struct pvx_injected *inj, struct pv_error *err);
/* Creates a device node at target in pid's ns with the provider node's type/rdev/mode and
 * grants it in the consumer's device cgroup. */
int pvx_plumb_mknod(pid_t provider_pid, const char *node_path, pid_t consumer_pid,
		    const char *target, struct pvx_injected *inj, struct pv_error *err);
/* Removes what pvx_plumb_* injected (if it is still the same inode). Safe on a dead pid. */
void pvx_plumb_remove(struct pvx_injected *inj);
void pvx_injected_clear(struct pvx_injected *inj);

/* O_PATH fd of `path` resolved inside /proc/<pid>/root (a symlink can't leave that root). */
int pvx_plumb_open_in_root(pid_t pid, const char *path, int *fd, struct pv_error *err);
/* Connects (non-blocking stream socket) to the provider socket at path inside pid's root. */
int pvx_plumb_connect(pid_t pid, const char *path, int *fd, struct pv_error *err);
/* Same through an O_PATH fd from pvx_plumb_open_in_root (cached per link). -errno. */
int pvx_plumb_connect_at(int pathfd, int *fd);
/* Connects through *cache (an O_PATH fd, opened on first use, re-resolved once when the
 * provider re-created its socket). passcred: SO_PASSCRED set before connect, so what the
 * provider sends at once carries its credentials too. -errno. */
int pvx_plumb_connect_cached(int *cache, pid_t pid, const char *path, bool passcred, int *fd);
/* Device cgroup grant "c|b major:minor rwm" for the consumer (v1 devices.allow; see
 * docs/xconnect.md for v2). */
int pvx_plumb_cgroup_allow(pid_t pid, char type, unsigned maj, unsigned min, struct pv_error *err);

/* ---- listener: the injected socket a consumer connects to (listener.c) ---- */

struct pvx_listener;
/* Called for every accepted consumer connection (non-blocking, cloexec); takes the fd. */
typedef void (*pvx_accept_cb)(void *opaque, int fd);
/* Injects a listening socket at the link's target in the consumer and accepts on the loop. */
int pvx_listener_start(struct pvx_link *l, pvx_accept_cb cb, void *opaque,
		       struct pvx_listener **out, struct pv_error *err);
/* Stops accepting, closes the socket and removes it from the consumer. */
void pvx_listener_stop(struct pvx_listener *ls);

/* ---- the stream proxy (proxy.c): two sockets glued on the loop ---- */

struct pvx_proxy;
struct pvx_proxy_stats {
	uint64_t bytes[2]; /* [0] consumer->provider, [1] provider->consumer */
	uint64_t fds[2];   /* fds carried */
	uint64_t cmsg_msgs[2];
};
typedef void (*pvx_proxy_close_cb)(struct pvx_proxy *p, void *opaque);

/* Starts proxying between a (consumer side) and b (provider side); takes both fds.
 * Bytes move with splice() through a pipe per direction; a message carrying ancillary data
 * (SCM_RIGHTS, SCM_CREDENTIALS) is moved with recvmsg/sendmsg so its fds travel with it.
 * close_cb runs once when either side closed (both fds are closed by then). */
int pvx_proxy_start(uv_loop_t *loop, int a, int b, pvx_proxy_close_cb cb, void *opaque,
		    struct pvx_proxy **out);
/* Closes both sides now (teardown); close_cb is not called. */
void pvx_proxy_close(struct pvx_proxy *p);
/* Every byte read in direction dir (0: a -> b, 1: b -> a) goes through fn before it is
 * forwarded: fn writes what to forward to out (room: len + extra) and sets *out_len; <0 closes
 * the connection. Bulk splicing is off while a filter is set. Set it right after start. */
/* The link's export asked for SCM_CREDENTIALS passthrough ("credentials": "pass"): the
 * listening socket and the provider connection get SO_PASSCRED before any byte can arrive, so
 * every read carries its writer's pid/uid/gid and the proxy forwards them as explicit
 * SCM_CREDENTIALS (CAP_SYS_ADMIN and CAP_SETUID let it). Not the default: a socket with
 * SO_PASSCRED makes every message sent to it carry a credentials record, which cost +40 % round
 * trip on this kernel (bench/xconnect/compare.py). */
static inline bool pvx_link_passes_credentials(const struct pvx_link *l)
{
	return l->spec.credentials && !strcmp(l->spec.credentials, "pass");
}
typedef int (*pvx_proxy_filter_fn)(void *opaque, int dir, const char *in, size_t len, char *out,
				   size_t *out_len);
void pvx_proxy_set_filter(struct pvx_proxy *p, pvx_proxy_filter_fn fn, void *opaque, size_t extra);
void pvx_proxy_get_stats(const struct pvx_proxy *p, struct pvx_proxy_stats *st);

/* Pipe capacity asked for per direction (F_SETPIPE_SZ); also the per-direction memory cap. */
#define PVX_PIPE_SIZE (1u << 20)

#endif
