SUMMARY = "Example container: headless Weston exporting wayland-0"

require pv-example-container.inc

SRC_URI = "file://${PN}.services.json file://${PN}.args.json"

inherit features_check
REQUIRED_DISTRO_FEATURES = "wayland opengl"
IMAGE_INSTALL += "weston"

# start.sh runs Weston headless on /run/wayland-0 with the example's weston.ini.
PVREXPORT_ENTRYPOINT = "${PV_EXAMPLES_DIR}/${PN}/start.sh"
ROOTFS_POSTPROCESS_COMMAND += "pv_example_weston_ini"
pv_example_weston_ini () {
	install -d ${IMAGE_ROOTFS}${sysconfdir}/xdg/weston
	install -m 0644 ${IMAGE_ROOTFS}${PV_EXAMPLES_DIR}/${PN}/weston.ini \
		${IMAGE_ROOTFS}${sysconfdir}/xdg/weston/weston.ini
}
