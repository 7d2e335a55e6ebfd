#!/bin/sh
# Entry point of the pv-example-dbus-server container: start the container's own system bus with
# the example policy, wait for its socket, then run the service on it (exec: the service is PID 1's
# child that the container lives for).
set -eu
conf=${PV_EXAMPLE_DBUS_CONF:-/etc/dbus-1/pv-example-system.conf}
sock=${PV_EXAMPLE_DBUS_SOCKET:-/run/dbus/system_bus_socket}

mkdir -p "$(dirname "$sock")"
rm -f "$sock"
dbus-daemon --config-file="$conf" --address="unix:path=$sock" --nofork --nopidfile &
i=0
while [ ! -S "$sock" ]; do
	i=$((i + 1))
	if [ "$i" -gt 100 ]; then
		echo "pv-example-dbus-server: dbus-daemon did not create $sock" >&2
		exit 1
	fi
	sleep 0.1
done
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$sock"
exec pv-example-dbus-server
