SUMMARY = "Example container: client of raw-unix through the socket pv-xconnect injects"

require pv-example-container.inc
