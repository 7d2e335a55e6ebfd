/* The D-Bus examples' shared connection code (see pvex_dbus.h): retrying until the bus answers,
 * logged once, and closing a private connection the way libdbus requires. */
#include "pvex_dbus.h"

#include <stdbool.h>

#include "pvex.h"

DBusConnection *pvex_dbus_connect(const char *address)
{
	bool told = false;
	DBusError err;

	dbus_error_init(&err);
	while (!pvex_stopping()) {
		DBusConnection *conn = dbus_connection_open_private(address, &err);
		if (conn && dbus_bus_register(conn, &err)) {
			/* Stay up when the bus goes away: the caller reports it and decides. */
			dbus_connection_set_exit_on_disconnect(conn, FALSE);
			pvex_log("connected to %s as %s", address, dbus_bus_get_unique_name(conn));
			return conn;
		}
		if (conn)
			pvex_dbus_close(conn);
		if (!told) {
			pvex_log("waiting for the bus at %s: %s", address, err.message);
			told = true;
		}
		dbus_error_free(&err);
		pvex_sleep_ms(500);
	}
	return NULL;
}

void pvex_dbus_close(DBusConnection *conn)
{
	/* A private connection must be closed before its last unref. */
	dbus_connection_close(conn);
	dbus_connection_unref(conn);
}
