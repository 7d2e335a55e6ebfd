SUMMARY = "Example container: headless Weston exporting wayland-0"

require pv-example-container.inc

inherit features_check
REQUIRED_DISTRO_FEATURES = "wayland opengl"

# image.conf's start script runs Weston headless on /run/wayland-0.
IMAGE_INSTALL += "weston"
