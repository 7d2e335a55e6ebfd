SUMMARY = "Example container: dbus-daemon with a role policy and the org.pantavisor.Example service"

require pv-example-container.inc

SRC_URI = "file://${PN}.services.json"

IMAGE_INSTALL += "dbus"

# start.sh runs the container's own dbus-daemon with the example policy, then the service.
PVREXPORT_ENTRYPOINT = "${PV_EXAMPLES_DIR}/${PN}/start.sh"
ROOTFS_POSTPROCESS_COMMAND += "pv_example_dbus_policy"
pv_example_dbus_policy () {
	install -d ${IMAGE_ROOTFS}${sysconfdir}/dbus-1
	install -m 0644 ${IMAGE_ROOTFS}${PV_EXAMPLES_DIR}/${PN}/system.conf \
		${IMAGE_ROOTFS}${sysconfdir}/dbus-1/pv-example-system.conf
}
