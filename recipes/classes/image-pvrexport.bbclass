# Image type "pvrexport": any image's rootfs -> root.squashfs + run.json + lxc.container.conf
# (+ services.json) -> a pvrexport tarball written by pv-mkexport from pantavisor-native.
#
# The tarball layout (json + objects/<sha256>) is produced by the same pv-mkexport script the
# local image builder uses, so a Yocto-built container and a locally built one are the same
# kind of file. Output: ${IMGDEPLOYDIR}/${IMAGE_NAME}.pvrexport.tgz and the stable link
# ${IMGDEPLOYDIR}/${PVREXPORT_NAME}.pvrexport.tgz.

IMAGE_TYPES += "pvrexport"

# Container name inside the state (directory name == run.json "name").
PVREXPORT_NAME ??= "${PN}"
# Group, roles and entry point of the container (run.json group/roles, lxc.init.cmd).
PVR_APP_ADD_GROUP ??= "root"
PVR_APP_ADD_ROLES ??= ""
PVREXPORT_ENTRYPOINT ??= "/sbin/init"
# Storage volumes "<name>:<persistence>" (persistence: permanent, revision or boot).
PVREXPORT_STORAGE ??= "lxc-overlay:boot"
# Extra lines appended to the generated lxc.container.conf.
PVREXPORT_LXC_EXTRA ??= ""
# mksquashfs options; lz4 when PANTAVISOR_FEATURES has squash-lz4 (faster, larger).
PVR_FORMAT_OPTS ??= "${@bb.utils.contains('PANTAVISOR_FEATURES', 'squash-lz4', '-comp lz4 -Xhc', '-comp xz', d)}"
# Never put kernel modules or firmware in a container: pantavisor bind-mounts the BSP's.
PVREXPORT_SQUASHFS_EXCLUDES ??= "-e lib/modules -e lib/firmware"
# Where the recipe's <name>.args.json / <name>.services.json are looked for.
PVREXPORT_SRCDIR ??= "${WORKDIR}"
PVREXPORT_STAGE = "${WORKDIR}/pvrexport-stage"

do_image_pvrexport[depends] += "pantavisor-native:do_populate_sysroot squashfs-tools-native:do_populate_sysroot"
do_image_pvrexport[prefuncs] += "pvrexport_write_manifests"
do_image_pvrexport[cleandirs] += "${PVREXPORT_STAGE}"
do_image_pvrexport[vardeps] += "PVREXPORT_NAME PVR_APP_ADD_GROUP PVR_APP_ADD_ROLES PVREXPORT_ENTRYPOINT PVREXPORT_STORAGE PVREXPORT_LXC_EXTRA"

# run.json and lxc.container.conf from the recipe's variables and its args.json (the PV_* keys
# pvr understands: PV_GROUP, PV_ROLES, PV_RESTART_POLICY, PV_STATUS_GOAL, PV_RUNLEVEL,
# PV_SERVICES_REQUIRED/OPTIONAL, PV_DRIVERS_REQUIRED/OPTIONAL/MANUAL).
python pvrexport_write_manifests() {
    import json
    import os

    name = d.getVar('PVREXPORT_NAME')
    srcdir = d.getVar('PVREXPORT_SRCDIR')
    stage = d.getVar('PVREXPORT_STAGE')
    os.makedirs(stage, exist_ok=True)

    args = {}
    for cand in (name + '.args.json', 'args.json'):
        path = os.path.join(srcdir, cand)
        if os.path.exists(path):
            with open(path) as f:
                try:
                    args = json.load(f)
                except ValueError as e:
                    bb.fatal('pvrexport %s: %s is not valid JSON: %s' % (name, path, e))
            if not isinstance(args, dict):
                bb.fatal('pvrexport %s: %s must hold a JSON object' % (name, path))
            break

    run = {
        '#spec': 'service-manifest-run@1',
        'name': name,
        'type': 'lxc',
        'config': 'lxc.container.conf',
        'root-volume': 'root.squashfs',
        'volumes': [],
        'group': args.get('PV_GROUP', d.getVar('PVR_APP_ADD_GROUP')),
    }
    roles = (d.getVar('PVR_APP_ADD_ROLES') or '').split()
    if 'PV_ROLES' in args:
        run['roles'] = args['PV_ROLES']
    elif roles:
        run['roles'] = roles
    for key, field in (('PV_RESTART_POLICY', 'restart_policy'),
                       ('PV_STATUS_GOAL', 'status_goal'),
                       ('PV_RUNLEVEL', 'runlevel')):
        if key in args:
            run[field] = args[key]
    services = {}
    for key, field in (('PV_SERVICES_REQUIRED', 'required'), ('PV_SERVICES_OPTIONAL', 'optional')):
        if key in args:
            services[field] = args[key]
    if services:
        run['services'] = services
    drivers = {}
    for key, field in (('PV_DRIVERS_REQUIRED', 'required'), ('PV_DRIVERS_OPTIONAL', 'optional'),
                       ('PV_DRIVERS_MANUAL', 'manual')):
        if key in args:
            drivers[field] = args[key]
    if drivers:
        run['drivers'] = drivers
    storage = {}
    for item in (d.getVar('PVREXPORT_STORAGE') or '').split():
        vol, _, persistence = item.partition(':')
        storage[vol] = {'persistence': persistence or 'boot'}
    run['storage'] = storage

    with open(os.path.join(stage, 'run.json'), 'w') as f:
        json.dump(run, f, indent=4, sort_keys=True)
        f.write('\n')

    # The same LXC settings the local image builder (pv-mkimage) writes, so a container behaves
    # the same however it was built. The engine sets lxc.rootfs.path and lxc.uts.name itself.
    entry = args.get('PV_ENTRYPOINT', d.getVar('PVREXPORT_ENTRYPOINT'))
    lines = [
        'lxc.init.cmd = %s' % entry,
        'lxc.mount.auto = proc sys:mixed cgroup:mixed',
        'lxc.mount.entry = tmpfs run tmpfs rw,nodev,nosuid,create=dir 0 0',
        'lxc.mount.entry = tmpfs tmp tmpfs rw,nodev,nosuid,create=dir 0 0',
        'lxc.tty.max = 0',
        'lxc.pty.max = 16',
        'lxc.signal.halt = SIGTERM',
        'lxc.namespace.keep = net ipc user',
    ]
    extra = (d.getVar('PVREXPORT_LXC_EXTRA') or '').strip()
    if extra:
        lines.extend(l.strip() for l in extra.split('\\n') if l.strip())
    with open(os.path.join(stage, 'lxc.container.conf'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
}

IMAGE_CMD:pvrexport () {
	stage="${PVREXPORT_STAGE}"
	name="${PVREXPORT_NAME}"
	out="${IMGDEPLOYDIR}/${IMAGE_NAME}.pvrexport.tgz"

	mksquashfs "${IMAGE_ROOTFS}" "$stage/root.squashfs" -noappend -quiet -no-progress \
		${PVR_FORMAT_OPTS} ${PVREXPORT_SQUASHFS_EXCLUDES}
	for f in "${PVREXPORT_SRCDIR}/$name.services.json" "${PVREXPORT_SRCDIR}/services.json"; do
		if [ -f "$f" ]; then
			cp "$f" "$stage/services.json"
			break
		fi
	done

	mkdir -p "${IMGDEPLOYDIR}"
	pv-mkexport "$name" "$stage" "$out"
	ln -sf "${IMAGE_NAME}.pvrexport.tgz" "${IMGDEPLOYDIR}/$name.pvrexport.tgz"
}
