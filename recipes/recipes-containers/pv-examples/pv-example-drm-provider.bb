SUMMARY = "Example container: exports the card and render DRM nodes"

require pv-example-container.inc
