SUMMARY = "Example container: opens the injected DRM render node"

require pv-example-container.inc
