SUMMARY = "Example container: D-Bus client calling GetInfo as role root"

require pv-example-container.inc
