/* pv-ctrl/caller.c: who is calling: SO_PEERCRED pid → its container, read from the lxc payload
 * cgroup in /proc/<pid>/cgroup (as upstream); roles of a container are asked of the engine. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctrl.h"
#include "pvstate/cgroup.h"

int pv_ctrl_cgroup_container(const char *text, char *name, size_t len)
{
	/* a payload whose name does not fit is a container all the same: unnamed, it gets
	 * nothing beyond what every container may do */
	return pv_cgroup_payload(text, NULL, 0, name, len) != -ENOENT;
}

int pv_ctrl_caller_identify(struct pv_ctrl *ctrl, int fd, struct pv_ctrl_caller *c)
{
	memset(c, 0, sizeof(*c));
	struct ucred cr;
	socklen_t sl = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &sl) < 0)
		return -errno;
	c->pid = cr.pid;
	if (cr.pid <= 0)
		return -ESRCH; /* a peer in a pid namespace we cannot see: not trusted as host */
	char path[64], text[8192];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)cr.pid);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	ssize_t n = read(f, text, sizeof(text) - 1);
	close(f);
	if (n < 0)
		return -errno;
	text[n] = '\0';
	bool in_ctr = pv_ctrl_cgroup_container(text, c->container, sizeof(c->container));
	/* the socket is world-connectable (containers may map root elsewhere): on the host only
	 * root speaks for the device; another host user is treated like a non-mgmt container */
	c->host = !in_ctr && cr.uid == 0;
	return 0;
}

void pv_ctrl_caller_resolve(struct pv_ctrl *ctrl, struct pv_ctrl_caller *c)
{
	if (c->host || c->roles_known || !c->container[0])
		return;
	char *args = pv_ctrl_args_pid((int)c->pid);
	struct pv_ctrl_reply rep = {.fd = -1};
	pv_ctrl_engine_relay(ctrl->engine, "whois", args, &rep);
	free(args);
	char name[sizeof(c->container)];
	bool mgmt = false;
	/* no answer, or an engine without whois: roles unknown, so only what every container may
	 * do (fail closed) */
	if (rep.status == 200 && pv_ctrl_whois_parse(rep.body, name, sizeof(name), &mgmt) == 0) {
		c->mgmt = mgmt;
		c->roles_known = true;
		memcpy(c->container, name, sizeof(name));
	}
	pv_ctrl_reply_clear(&rep);
}

bool pv_ctrl_caller_allowed(struct pv_ctrl *ctrl, struct pv_ctrl_caller *c, int role)
{
	if (role == PV_CTRL_ROLE_ANY || c->host)
		return true;
	pv_ctrl_caller_resolve(ctrl, c);
	return c->container[0] && c->mgmt;
}
