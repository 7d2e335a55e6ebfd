SUMMARY = "Pantavisor-C: container supervisor init, state engine, pv-ctrl and pv-xconnect"
DESCRIPTION = "pantavisor runs a device's userland as LXC containers described by a versioned \
JSON state; this recipe builds the init, its three daemons, libpvstate and the tools. \
pantavisor-native provides the tools (pvtx, pv-mkexport) used to build pvrexport tarballs."
SECTION = "base"

require pantavisor-source.inc
require pantavisor-build.inc

PACKAGECONFIG ??= "${@pantavisor_packageconfig(d)}"
# The native build only provides the image tools; it needs neither liblxc nor libuv.
PACKAGECONFIG:class-native = "tools"

# libpvstate first, so that the daemons and tools link to one shared copy.
PACKAGE_BEFORE_PN += "libpvstate pv-ctrl pv-xconnect pantavisor-tools pantavisor-appengine"

FILES:libpvstate = "${libdir}/libpvstate${SOLIBS}"
FILES:pv-ctrl = "${libexecdir}/pantavisor/pv-ctrl ${bindir}/pvcontrol ${bindir}/pvcurl"
FILES:pv-xconnect = "${libexecdir}/pantavisor/pv-xconnect ${libdir}/pantavisor/xconnect"
FILES:pantavisor-tools = "\
    ${bindir}/pvstate ${bindir}/pvtx ${bindir}/pventer \
    ${bindir}/pv-mkexport ${bindir}/pv-mkimage \
"
FILES:pantavisor-appengine = "\
    ${bindir}/pv-appengine \
    ${sysconfdir}/pantavisor-appengine.config \
    ${prefix}/lib/pantavisor/pvtx.d \
    ${prefix}/lib/pantavisor/pvtx.extra.d \
    ${prefix}/lib/pantavisor/skel \
"
FILES:${PN} += "${libexecdir}/pantavisor ${sysconfdir}/pantavisor"

# A component switched off by PACKAGECONFIG leaves its package empty; images may still name it.
ALLOW_EMPTY:pv-ctrl = "1"
ALLOW_EMPTY:pv-xconnect = "1"
ALLOW_EMPTY:pantavisor-tools = "1"
ALLOW_EMPTY:pantavisor-appengine = "1"

# Runtime relations only for the target: a native recipe would turn them into -native
# build dependencies that do not exist.
RDEPENDS:${PN}:append:class-target = " lxc"
RRECOMMENDS:${PN}:append:class-target = " pv-ctrl pv-xconnect"
# pv-mkexport is a POSIX sh script driving tar, gzip and sha256sum.
RDEPENDS:pantavisor-tools:append:class-target = " ${VIRTUAL-RUNTIME_base-utils}"
RDEPENDS:pantavisor-appengine:append:class-target = " ${PN} pantavisor-tools"

BBCLASSEXTEND = "native"
