SUMMARY = "Example container: unix socket echo server exported as raw-unix"

require pv-example-container.inc

SRC_URI = "file://${PN}.services.json file://${PN}.args.json"
