SUMMARY = "Example container: REST server on a unix socket echoing the caller identity headers"

require pv-example-container.inc
