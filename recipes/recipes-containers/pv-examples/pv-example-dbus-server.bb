SUMMARY = "Example container: dbus-daemon with a role policy and the org.pantavisor.Example service"

require pv-example-container.inc

SRC_URI = "file://${PN}.services.json file://org.pantavisor.Example.conf"

IMAGE_INSTALL += "dbus"

ROOTFS_POSTPROCESS_COMMAND += "pv_example_dbus_policy"
pv_example_dbus_policy () {
	install -d ${IMAGE_ROOTFS}${datadir}/dbus-1/system.d
	install -m 0644 ${WORKDIR}/org.pantavisor.Example.conf ${IMAGE_ROOTFS}${datadir}/dbus-1/system.d/
}
