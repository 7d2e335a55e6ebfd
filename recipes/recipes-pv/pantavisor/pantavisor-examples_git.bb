SUMMARY = "Pantavisor-C example programs (pv-example-*) for the example containers"
DESCRIPTION = "The unix, REST, D-Bus, DRM and wayland example servers and clients that the \
pv-example-* container recipes put into their root filesystems."
SECTION = "examples"

require pantavisor-source.inc
require pantavisor-build.inc

# Only the examples: the daemons come from the pantavisor recipe, which also provides the
# shared libpvstate the example programs are linked against at run time.
PACKAGECONFIG = "examples"
DEPENDS += "pantavisor"

# libpvstate is also built here (every component links it); ship only the example programs so
# that pantavisor's libpvstate stays the one provider of the library.
do_install:append() {
	rm -rf ${WORKDIR}/pv-example-bin
	mv ${D}${bindir} ${WORKDIR}/pv-example-bin
	rm -rf ${D}/*
	install -d ${D}${bindir}
	install -m 0755 ${WORKDIR}/pv-example-bin/pv-example-* ${D}${bindir}/
}

FILES:${PN} = "${bindir}/pv-example-*"
