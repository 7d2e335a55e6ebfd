SUMMARY = "Example container: REST client of network-manager"

require pv-example-container.inc
