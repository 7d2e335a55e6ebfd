SUMMARY = "Example container: D-Bus client as role nobody (may call, may not own)"

require pv-example-container.inc

SRC_URI = "file://${PN}.args.json"

# Same program as pv-example-dbus-client; only its role differs.
PVREXPORT_ENTRYPOINT = "${bindir}/pv-example-dbus-client"
