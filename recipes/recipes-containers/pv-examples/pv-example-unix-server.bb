SUMMARY = "Example container: unix socket echo server exported as raw-unix"

require pv-example-container.inc
