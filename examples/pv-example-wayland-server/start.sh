#!/bin/sh
# Entry point of the pv-example-wayland-server container: Weston on the headless backend,
# listening on $XDG_RUNTIME_DIR/wayland-0 (/run/wayland-0, the socket services.json exports).
set -eu
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/run}
ini=${PV_EXAMPLE_WESTON_INI:-/etc/xdg/weston/weston.ini}
# Weston looks a relative --config up in its own search path, not in the current directory.
case $ini in /*) ;; *) ini=$PWD/$ini ;; esac
mkdir -p "$XDG_RUNTIME_DIR"
# Weston refuses a runtime dir that others can write to.
chmod 0700 "$XDG_RUNTIME_DIR"
rm -f "$XDG_RUNTIME_DIR/wayland-0" "$XDG_RUNTIME_DIR/wayland-0.lock"
# Debian's Weston 10 names backends by module file; newer Westons accept the same name.
exec weston --backend=headless-backend.so --socket=wayland-0 --config="$ini" --idle-time=0 "$@"
