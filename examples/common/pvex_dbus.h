/* What the D-Bus examples share: the example service's names and opening a private connection to
 * a bus that may not be there yet (the injected socket, or a bus daemon still starting). */
#ifndef PVEX_DBUS_H
#define PVEX_DBUS_H

#include <dbus/dbus.h>

#define PVEX_DBUS_DEFAULT_ADDRESS "unix:path=/run/dbus/system_bus_socket"
#define PVEX_DBUS_SERVICE	  "org.pantavisor.Example"
#define PVEX_DBUS_OBJECT	  "/org/pantavisor/Example"
#define PVEX_DBUS_INTERFACE	  "org.pantavisor.Example"

/* Open a private connection to address and register on the bus, retrying every 500 ms (the
 * first failure is logged) until it works or a stop is requested. The connection does not exit
 * the process on disconnect. NULL when stopped. Close with pvex_dbus_close. */
DBusConnection *pvex_dbus_connect(const char *address);

/* Close and release a private connection (libdbus wants both, in this order). */
void pvex_dbus_close(DBusConnection *conn);

#endif
