SUMMARY = "Example container: headless Weston exporting wayland-0"

require pv-example-container.inc

SRC_URI = "file://${PN}.services.json file://${PN}.args.json"

inherit features_check
REQUIRED_DISTRO_FEATURES = "wayland opengl"
IMAGE_INSTALL += "weston"
