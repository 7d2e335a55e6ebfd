SUMMARY = "Example container: D-Bus client as role nobody (may call, may not own)"

require pv-example-container.inc

# The same program as pv-example-dbus-client (image.conf BINS); only its role differs.
IMAGE_INSTALL += "pantavisor-examples-dbus-client"
