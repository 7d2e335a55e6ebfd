SUMMARY = "Example container: opens the injected DRM card node and queries KMS"

require pv-example-container.inc
