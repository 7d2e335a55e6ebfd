SUMMARY = "Pantavisor-C example programs (pv-example-*) for the example containers"
DESCRIPTION = "The unix, REST, D-Bus, DRM and wayland example servers and clients, with their \
manifests and start scripts, installed in ${libdir}/pantavisor/examples/<example>/ for the \
pv-example-* container recipes."
SECTION = "examples"

require pantavisor-source.inc
require pantavisor-build.inc

# Only the examples: the daemons come from the pantavisor recipe.
PACKAGECONFIG = "examples"

# libpvstate is built too (every configuration builds it) but belongs to the pantavisor recipe:
# keep only the examples tree so the two recipes never ship the same file.
do_install:append() {
	rm -rf ${WORKDIR}/pv-examples-keep
	mv ${D}${libdir}/pantavisor/examples ${WORKDIR}/pv-examples-keep
	rm -rf ${D}/*
	install -d ${D}${libdir}/pantavisor
	mv ${WORKDIR}/pv-examples-keep ${D}${libdir}/pantavisor/examples
}

FILES:${PN} = "${libdir}/pantavisor/examples"
# The start scripts are POSIX sh.
RDEPENDS:${PN} += "${VIRTUAL-RUNTIME_base-utils}"
