/* engine.h: the state engine's internal contract: the engine struct every job file works on, the
 * runtime container record and the functions each job file (storage.c, volumes.c, ...) exports. */
#ifndef PV_ENGINE_H
#define PV_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "pvstate/config.h"
#include "pvstate/error.h"
#include "pvstate/graph.h"
#include "pvstate/proto.h"
#include "pvstate/state.h"
#include "pvstate/status.h"

/* Runtime status, ordered as upstream compares them (spec §5.1). */
enum pv_cstatus {
	PV_CS_NONE = 0,
	PV_CS_INSTALLED,
	PV_CS_MOUNTED,
	PV_CS_BLOCKED,
	PV_CS_STARTING,
	PV_CS_STARTED,
	PV_CS_READY,
	PV_CS_RECOVERING,
	PV_CS_STOPPING,
	PV_CS_STOPPED,
};

const char *pv_cstatus_str(enum pv_cstatus s);

struct pv_engine;

/* One container of the running revision. spec points into engine->state. */
struct pv_ctr {
	struct pv_engine *e;
	const struct pv_container *spec;
	enum pv_cstatus status;
	int pid;	 /* init pid, 0 when not running */
	int pidfd;	 /* -1 when not watched */
	uv_poll_t *poll; /* on the pidfd; heap-allocated because closing is asynchronous */
	int helper_pid;	 /* the forked start helper while STARTING, else 0 */
	int helper_fd;
	uv_poll_t *helper_poll;
	uv_timer_t timer;    /* retry delay (RECOVERING) and stop grace (STOPPING) */
	bool stop_requested; /* an engine- or API-initiated stop: exit is not a failure */
	bool user_stopped, recovery_failed, adopted;
	bool api_stop, api_restart; /* a container-action stop/restart is in progress */
	bool ready_pending;	    /* `ready` arrived while STARTING: applied once STARTED */
	int retries;
	uint64_t start_ms;	 /* monotonic ms of the last start (group timeout, reset_window) */
	uint64_t first_start_ms; /* its first start, not reset by recovery restarts (an update's
				  * goal timeout for a crash loop); reset by an API start */
	uint64_t goal_ms;	 /* monotonic ms it became STARTED/READY in this run; 0 while not */
	char **mounts;		 /* mount points made for this container, unmounted in reverse */
	size_t n_mounts;
};

struct pv_ipc;	  /* ipc.c */
struct pv_update; /* update.c: the update in flight, NULL when none */

struct pv_engine {
	uv_loop_t *loop;
	struct pv_config *cfg;
	bool appengine;
	char *rundir, *storage, *lxcpath, *socket_path, *logdir, *voldir, *confdir;
	char *cmdline;
	char rev[128];	      /* running revision */
	char fallback[128];   /* revision to go back to when `rev` fails ("" = none) */
	char update_rev[128]; /* revision of an update in flight ("" = none): GC keeps it */
	bool have_state;
	struct pv_state state;
	struct pv_ctr *ctrs;
	size_t n_ctrs;
	char error[512]; /* clear error state (no revision running), "" when fine */
	int initctl_fd;	 /* -1 when run by hand */
	uv_timer_t wake, tick;
	uv_signal_t sigterm, sigint;
	struct pv_ipc *ipc;
	uint64_t graph_generation;
	char *graph_links;	     /* last emitted links JSON */
	struct pv_graph link_status; /* last `link-status` from pv-xconnect (state/error only) */
	bool link_status_lost;	     /* its reporter went away: every link is pending until the
				      * next report */
	bool cmd_busy;		     /* a `command` is running (reboot/poweroff under way) */
	uv_fs_event_t ctrl_watch;    /* rundir watch: re-link pv-ctrl for non-mgmt containers */
	bool shutting_down, failing;
	int exit_code;
	char booted[128];	  /* the revision the bootloader (cmdline / env) chose */
	bool load_bad_format;	  /* the last failed pv_revision_load failed to parse */
	struct pv_update *update; /* update.c */
	long log_rotate;	  /* pantavisor.log rotation size (bytes) */
	int log_level;
	/* gc_auto.c */
	uint64_t gc_next_check_ms, gc_defer_until_ms, gc_idle_until_ms;
	struct pv_status_storage storage_published; /* last mirrored to device-meta */
	bool storage_meta_done;
};

/* main.c */
void pv_engine_shutdown(struct pv_engine *e, int exit_code); /* stop all, exit with code */
void pv_engine_wake(struct pv_engine *e); /* run the scheduler soon (next loop turn) */
void pv_engine_fail(struct pv_engine *e, const char *why); /* steady-state failure: reboot */
/* A reboot the engine chose (an update needs one): same path as pv_engine_fail, logged INFO. */
void pv_engine_reboot(struct pv_engine *e, const char *why);
uint64_t pv_now_ms(void);

/* log.c: pantavisor.log lines `[pantavisor] <tsec> <LEVEL>\t -- [<module>]: <msg>`. */
enum pv_log_level { PV_LOG_FATAL = 0, PV_LOG_ERROR, PV_LOG_WARN, PV_LOG_INFO, PV_LOG_DEBUG };
int pv_log_open(const char *logdir, const char *rev, long rotate_size, int level);
void pv_log_close(void);
void pv_log(enum pv_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs every message of err at lvl. */
void pv_log_error(enum pv_log_level lvl, const char *module, const struct pv_error *err);
/* "<logdir>/<rev>/<c>/lxc" (created). Caller frees. */
char *pv_log_lxc_dir(const char *logdir, const char *rev, const char *container);

/* storage.c */
int pv_storage_boot_revision(const char *storage, const char *cmdline, char *rev, size_t n,
			     char *fallback, size_t fn);
int pv_storage_read_state(const char *storage, const char *rev, char **text, size_t *len,
			  struct pv_error *err);
int pv_storage_verify(const char *storage, const char *rev, const struct pv_state *s, bool checksum,
		      struct pv_error *err);
int pv_storage_set_current(const char *storage, const char *rev, struct pv_error *err);
int pv_storage_mark_done(const char *storage, const char *rev, struct pv_error *err);
char *pv_storage_trail_path(const char *storage, const char *rev, const char *key);

/* revision.c */
int pv_revision_load(struct pv_engine *e, const char *rev, struct pv_error *err);
/* trails/<rev>/.pvr/json read and validated into *st (nothing verified on disk). */
int pv_revision_parse(struct pv_engine *e, const char *rev, struct pv_state *st,
		      struct pv_error *err);
/* Object and json files of st in trails/<rev> (same inode, sha256 unless disabled). */
int pv_revision_verify(struct pv_engine *e, const char *rev, const struct pv_state *st,
		       struct pv_error *err);
/* Makes *st (taken over, left empty) the running revision `rev` in memory. Containers named in
 * keep carry over as they are (pid, mounts, status); every other old record is dropped, so its
 * container must be stopped already; new ones are INSTALLED for the scheduler to start. */
int pv_revision_swap(struct pv_engine *e, const char *rev, struct pv_state *st,
		     const char *const *keep, size_t n_keep);

/* update.c: local updates (spec core 4): LOCAL_RUN install / decide / hot switch / try boot /
 * commit / rollback, and their recovery after an engine restart or a reboot. */
/* At start: true when this engine replaces one that died in this same boot (init respawn). */
bool pv_update_session_begin(struct pv_engine *e);
void pv_update_session_end(struct pv_engine *e); /* clean exit: the next start is a new boot */
/* Same boot after a crash: the revision that was really running (trails/current and the update
 * record), into rev; false when the booted one stands. */
bool pv_update_running_rev(struct pv_engine *e, char *rev, size_t n);
/* The try revision `rev` failed to load and the engine fell back: ERROR, pv_try cleared. */
void pv_update_try_failed(struct pv_engine *e, const char *rev, bool bad_format);
/* After the boot revision is loaded and running containers adopted: spec core 4.7. */
void pv_update_resume(struct pv_engine *e, bool same_session);
void pv_update_tick(struct pv_engine *e); /* every wake-up / second: advance the update */
bool pv_update_active(const struct pv_engine *e);
/* c is one the update in flight is stopping (before its switch or its rollback): the API must
 * not start or restart it meanwhile */
bool pv_update_claims(const struct pv_ctr *c);
bool pv_update_is(const struct pv_engine *e, const char *rev); /* rev is the update in flight */
/* A container failed (no recovery left) while an update is testing it: true when the update
 * handles it (ERROR and rollback) instead of the steady-state failure path. */
bool pv_update_container_failed(struct pv_ctr *c, const char *why);
/* `command` ops LOCAL_RUN, LOCAL_RUN_COMMIT, MAKE_FACTORY (payload may be NULL). */
char *pv_update_command(struct pv_engine *e, const struct pv_msg *m, const char *op,
			const char *payload);
void pv_update_free(struct pv_engine *e);

/* volumes.c */
int pv_volumes_mount(struct pv_ctr *c, struct pv_error *err);
void pv_volumes_umount(struct pv_ctr *c);
/* The expected mounts of a container already mounted by an earlier engine (re-adoption). */
int pv_volumes_adopt(struct pv_ctr *c);
/* The rootfs spec for liblxc: "overlayfs:[<conf>:]<root>:<upper>". Caller frees. */
char *pv_volumes_rootfs(struct pv_ctr *c);
bool pv_is_mountpoint(const char *path);

/* container.c */
int pv_container_start(struct pv_ctr *c, struct pv_error *err);
void pv_container_stop(struct pv_ctr *c); /* lenient: shutdown now, kill after grace */
/* (Re)arms the grace after which a STOPPING container is killed (a record that took over a
 * stopping container from an update's swap). */
void pv_container_arm_stop_grace(struct pv_ctr *c);
bool pv_container_adopt(struct pv_ctr *c);
/* PUT /containers/<name> {"action"}: 0, or an HTTP-like status with a message in *why. */
int pv_container_action(struct pv_ctr *c, const char *action, const char **why);
void pv_container_set_status(struct pv_ctr *c, enum pv_cstatus s);

/* watch.c */
int pv_watch_start(struct pv_ctr *c);
void pv_watch_stop(struct pv_ctr *c);

/* group.c */
void pv_group_run(struct pv_engine *e);
/* Status of group g as upstream computes it (lowest unachieved member, else READY). */
enum pv_cstatus pv_group_status(const struct pv_engine *e, int g);
/* Every container at its status goal: 1; some still on the way: 0; one timed out: -1 (*who =
 * its name). Containers the user stopped before do not count. */
/* since_ms: when the update began to track goals; a container recovering (a crash loop with
 * retries left) counts as timed out once its group timeout has run since its first start in
 * this revision, or since since_ms if later. */
int pv_group_goals(const struct pv_engine *e, uint64_t since_ms, const char **who);
/* Stopped and meant to stay so (API stop, recovery used up, a backoff wait). */
bool pv_container_left_stopped(const struct pv_ctr *c);
/* ms until the container has run at its goal for its auto_recovery stable_timeout (0: stable,
 * or no stable_timeout, or stopped by the user; UINT64_MAX: not running at its goal). */
uint64_t pv_container_unstable_ms(const struct pv_ctr *c);

/* stopmark.c: containers stopped on purpose, remembered in the run dir across an engine
 * respawn within the same boot (liblxc only knows the running ones) */
void pv_stopmark_note(struct pv_ctr *c);	 /* after a change of status or flags */
void pv_stopmark_restore(struct pv_ctr *c);	 /* at start, for one that is not running */
void pv_stopmark_forget(struct pv_ctr *c);	 /* its record leaves the revision */
void pv_stopmark_clear_all(struct pv_engine *e); /* a new boot, or a clean exit */

/* recovery.c */
void pv_recovery_on_exit(struct pv_ctr *c);
/* (Re)starts the wait of a container whose retries are used up and whose backoff_policy is a
 * duration (recovery_failed, RECOVERING): started again with a fresh count when it is over. */
void pv_recovery_backoff_start(struct pv_ctr *c);
/* A record that took over a RECOVERING container (an update kept it): its retry timer or its
 * backoff wait goes on (from the start: the time left is not kept). */
void pv_recovery_resume(struct pv_ctr *c);

/* graph.c */
void pv_graph_update(struct pv_engine *e);		 /* recompute; push when changed */
int pv_graph_current(struct pv_engine *e, char **event); /* event JSON for a new subscriber */
/* The links with the live status pv-xconnect last reported (`graph` op body). Caller frees. */
char *pv_graph_with_status(struct pv_engine *e);
/* Keeps a `link-status` report (replaces the previous one). */
int pv_graph_set_status(struct pv_engine *e, const struct pv_msg *m, struct pv_error *err);
/* The client that reported link status disconnected (pv-xconnect died or was stopped): its
 * last report says nothing any more. */
void pv_graph_status_lost(struct pv_engine *e);

/* ctrlsock.c: non-mgmt containers see <rundir>/pantavisor.<c>/ at /pantavisor, a directory
 * holding hard links of the pv-ctrl sockets, kept current when pv-ctrl is respawned. */
char *pv_ctrlsock_dir(struct pv_engine *e, const char *container); /* created; caller frees */
void pv_ctrlsock_refresh(struct pv_engine *e); /* re-link where the socket inode changed */
int pv_ctrlsock_watch(struct pv_engine *e);    /* refresh on every change of the run dir */

/* ipc.c */
int pv_ipc_start(struct pv_engine *e, struct pv_error *err);
void pv_ipc_push(struct pv_engine *e, const char *event_json);
void pv_ipc_stop(struct pv_engine *e);

/* initctl.c */
bool pv_initctl_present(int fd);
int pv_initctl_request(int fd, unsigned op, const char *name);
struct pv_initctl_reply;
/* Same, keeping the whole reply (DAEMON_LIST). */
int pv_initctl_request_reply(int fd, unsigned op, const char *name, struct pv_initctl_reply *rep);

/* storage.c */
bool pv_storage_rev_name_ok(const char *rev);

/* ops_*.c: private-protocol op handlers (ipc.c dispatches). Each returns the reply payload. */
typedef char *(*pv_op_fn)(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_whois(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_graph(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_link_status(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_buildinfo(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_config(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_config2(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_daemons_list(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_daemon_action(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_objects_list(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_object_installed(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_gc(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_drivers_list(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_driver_action(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_steps_list(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_step_get(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_step_put(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_step_progress(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_step_commitmsg(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_meta_list(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_meta_put(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_meta_delete(struct pv_engine *e, const struct pv_msg *m);
char *pv_op_command(struct pv_engine *e, const struct pv_msg *m);
/* Copies storage's user/device metadata into the run dir mirrors (ops_meta.c). */
void pv_meta_sync(struct pv_engine *e);
/* Garbage collector (ops_objects.c): bytes reclaimed, or -errno. */
int64_t pv_gc_run(struct pv_engine *e);

/* gc_auto.c: storage usage (device-meta "storage") and the threshold GC */
int pv_storage_usage(const struct pv_engine *e, struct pv_status_storage *u);
char *pv_storage_usage_json(const struct pv_engine *e); /* NULL on error; caller frees */
void pv_gc_auto_tick(struct pv_engine *e);		/* from the 1 s tick */
void pv_gc_auto_object_put(struct pv_engine *e);	/* an object came: defer the GC */
/* A reply with a JSON body, 500 when the body could not be built; frees body. */
char *pv_op_reply_json(const struct pv_msg *m, char *body);
/* Every message of err joined with "; " as one error reply. */
char *pv_op_reply_errors(const struct pv_msg *m, int status, const struct pv_error *err);

#endif
