/* pvstate/cgroup.h: which LXC container a process is in, from the text of /proc/<pid>/cgroup.
 * The one reader of that format, for the engine (`whois`) and pv-ctrl (caller identity). */
#ifndef PVSTATE_CGROUP_H
#define PVSTATE_CGROUP_H

#include <stddef.h>

/* The LXC payload cgroup named in `text` (lines "<id>:<controllers>:<path>"; the first line that
 * names one wins): liblxc's .../lxc.payload.<name> (cgroup v1 and v2), or the older
 * .../lxc.payload/<name> and .../lxc/<name>; never the monitor's lxc.monitor.<name>. `path`
 * gets the path cut after the payload's own component (so a container's sub-cgroups are its
 * own) and `name` that component; either may be NULL. 0; -ENOENT when no line names a payload;
 * -ENAMETOOLONG when one does but does not fit (the process is in a container all the same). */
int pv_cgroup_payload(const char *text, char *path, size_t plen, char *name, size_t nlen);

#endif
