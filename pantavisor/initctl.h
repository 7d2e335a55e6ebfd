/* initctl.h: the tiny fixed-size binary channel between pantavisor init and the state engine.
 * Init stays free of JSON; the engine (and through it pv-ctrl's /daemons and /commands) asks init
 * to reboot, power off, or start/stop a managed daemon. Init passes one end of a SOCK_SEQPACKET
 * socketpair to the engine as fd PV_INITCTL_FD. Each request gets exactly one reply. */
#ifndef PV_INITCTL_H
#define PV_INITCTL_H

#include <stdint.h>

#define PV_INITCTL_FD	       3 /* the engine's end, inherited across exec */
#define PV_INITCTL_NAME_MAX    32
#define PV_INITCTL_MAX_DAEMONS 8

enum pv_initctl_op {
	PV_INITCTL_REBOOT = 1,	 /* ordered shutdown, then reboot (appengine: exit 0) */
	PV_INITCTL_POWEROFF = 2, /* ordered shutdown, then power off (appengine: exit 3) */
	PV_INITCTL_DAEMON_START = 3,
	PV_INITCTL_DAEMON_STOP = 4,
	PV_INITCTL_DAEMON_LIST = 5,
};

struct pv_initctl_req {
	uint32_t op;
	char name[PV_INITCTL_NAME_MAX]; /* daemon name for START/STOP, NUL-terminated */
};

struct pv_initctl_daemon {
	char name[PV_INITCTL_NAME_MAX];
	int32_t pid;	  /* 0 when not running */
	uint32_t respawn; /* 1 when init restarts it on exit */
};

struct pv_initctl_reply {
	int32_t status; /* 0 or -errno (-ENOENT unknown daemon) */
	uint32_t n_daemons;
	struct pv_initctl_daemon daemons[PV_INITCTL_MAX_DAEMONS]; /* DAEMON_LIST */
};

/* Exit statuses of the engine that init understands (besides crashes, which it respawns). */
#define PV_ENGINE_EXIT_REBOOT	10
#define PV_ENGINE_EXIT_POWEROFF 11

#endif
