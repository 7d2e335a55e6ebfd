SUMMARY = "Pantavisor-C example programs (pv-example-*) for the example containers"
DESCRIPTION = "The unix, REST, D-Bus, DRM and wayland example servers and clients with their \
manifests (args.json, services.json, run.json), image.conf and start scripts, installed in \
${libdir}/pantavisor/examples/<example>/, one package per example."
SECTION = "examples"

require pantavisor-source.inc
require pantavisor-build.inc

# Only the examples: the daemons come from the pantavisor recipe.
PACKAGECONFIG = "examples"

PV_EXAMPLES_DIR = "${libdir}/pantavisor/examples"
PV_EXAMPLE_NAMES = "\
    unix-server unix-client rest-server rest-client \
    dbus-server dbus-client dbus-client-nobody \
    drm-provider drm-master drm-render wayland-server wayland-client \
"

# libpvstate is built too (every configuration builds it) but belongs to the pantavisor recipe:
# keep only the examples tree so the two recipes never ship the same file.
do_install:append() {
	rm -rf ${WORKDIR}/pv-examples-keep
	mv ${D}${PV_EXAMPLES_DIR} ${WORKDIR}/pv-examples-keep
	rm -rf ${D}/*
	install -d ${D}${libdir}/pantavisor
	mv ${WORKDIR}/pv-examples-keep ${D}${PV_EXAMPLES_DIR}
}

# One package per example (pantavisor-examples-<name>) so a container gets only its own program
# and the libraries that program links; pantavisor-examples itself pulls them all in.
python __anonymous() {
    pkgs = []
    for ex in (d.getVar('PV_EXAMPLE_NAMES') or '').split():
        pkg = 'pantavisor-examples-' + ex
        pkgs.append(pkg)
        d.setVar('FILES:' + pkg, '${PV_EXAMPLES_DIR}/pv-example-' + ex)
        # start scripts are POSIX sh
        d.setVar('RDEPENDS:' + pkg, '${VIRTUAL-RUNTIME_base-utils}')
    d.prependVar('PACKAGE_BEFORE_PN', ' '.join(pkgs) + ' ')
    d.setVar('RDEPENDS:' + d.getVar('PN'), ' '.join(pkgs))
}
ALLOW_EMPTY:${PN} = "1"
FILES:${PN} = ""
