SUMMARY = "Example container: wayland client drawing shm frames on wayland-0"

require pv-example-container.inc
