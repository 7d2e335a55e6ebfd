SUMMARY = "Example container: dbus-daemon with a role policy and the org.pantavisor.Example service"

require pv-example-container.inc

# image.conf's start script runs the container's own dbus-daemon with the example policy.
IMAGE_INSTALL += "dbus"
