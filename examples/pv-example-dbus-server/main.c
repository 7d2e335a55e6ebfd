/* pv-example-dbus-server: owns org.pantavisor.Example on the system bus and answers GetInfo with
 * the caller's unix uid as the bus daemon reports it (which is what xconnect's role maps). */
#include "pvex.h"
#include "pvex_dbus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ADDRESS PVEX_DBUS_DEFAULT_ADDRESS
#define SERVICE_NAME	PVEX_DBUS_SERVICE
#define OBJECT_PATH	PVEX_DBUS_OBJECT
#define INTERFACE_NAME	PVEX_DBUS_INTERFACE

static const char introspection_xml[] = DBUS_INTROSPECT_1_0_XML_DOCTYPE_DECL_NODE
    "<node>\n"
    "  <interface name=\"" INTERFACE_NAME "\">\n"
    "    <method name=\"GetInfo\"><arg name=\"info\" type=\"s\" direction=\"out\"/></method>\n"
    "  </interface>\n"
    "  <interface name=\"org.freedesktop.DBus.Introspectable\">\n"
    "    <method name=\"Introspect\"><arg name=\"xml\" type=\"s\" direction=\"out\"/></method>\n"
    "  </interface>\n"
    "</node>\n";

static const char usage[] =
    "usage: pv-example-dbus-server [-a ADDRESS]\n"
    "  -a, --address ADDR  bus address (env DBUS_SYSTEM_BUS_ADDRESS, default " DEFAULT_ADDRESS ")\n"
    "Owns " SERVICE_NAME ", object " OBJECT_PATH ", method GetInfo -> string.\n";

/* Ask the bus which uid the sender connected as; -1 if the bus does not say. */
static long sender_uid(DBusConnection *conn, const char *sender)
{
	DBusMessage *call, *reply;
	DBusError err;
	dbus_uint32_t uid;
	long r = -1;

	call = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
					    "GetConnectionUnixUser");
	if (!call)
		return -1;
	dbus_message_append_args(call, DBUS_TYPE_STRING, &sender, DBUS_TYPE_INVALID);
	dbus_error_init(&err);
	reply = dbus_connection_send_with_reply_and_block(conn, call, 5000, &err);
	dbus_message_unref(call);
	if (!reply) {
		pvex_log("GetConnectionUnixUser %s: %s: %s", sender, err.name, err.message);
		dbus_error_free(&err);
		return -1;
	}
	if (dbus_message_get_args(reply, &err, DBUS_TYPE_UINT32, &uid, DBUS_TYPE_INVALID))
		r = (long)uid;
	else
		dbus_error_free(&err);
	dbus_message_unref(reply);
	return r;
}

static DBusHandlerResult send_string(DBusConnection *conn, DBusMessage *msg, const char *s)
{
	DBusMessage *reply = dbus_message_new_method_return(msg);

	if (!reply)
		return DBUS_HANDLER_RESULT_NEED_MEMORY;
	dbus_message_append_args(reply, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID);
	dbus_connection_send(conn, reply, NULL);
	dbus_message_unref(reply);
	return DBUS_HANDLER_RESULT_HANDLED;
}

static DBusHandlerResult on_message(DBusConnection *conn, DBusMessage *msg, void *data)
{
	const char *sender = dbus_message_get_sender(msg);
	const char *member = dbus_message_get_member(msg);
	char info[256];
	long uid;

	(void)data;
	if (dbus_message_is_method_call(msg, INTERFACE_NAME, "GetInfo")) {
		uid = sender_uid(conn, sender ? sender : "");
		snprintf(info, sizeof(info), "%s: hello %s, your uid is %ld", SERVICE_NAME,
			 sender ? sender : "?", uid);
		pvex_log("GetInfo from %s (uid %ld)", sender ? sender : "?", uid);
		return send_string(conn, msg, info);
	}
	if (dbus_message_is_method_call(msg, DBUS_INTERFACE_INTROSPECTABLE, "Introspect"))
		return send_string(conn, msg, introspection_xml);
	if (dbus_message_get_type(msg) == DBUS_MESSAGE_TYPE_METHOD_CALL) {
		DBusMessage *e = dbus_message_new_error_printf(msg, DBUS_ERROR_UNKNOWN_METHOD,
							       "no method %s on %s",
							       member ? member : "?", OBJECT_PATH);
		pvex_log("unknown method %s from %s", member ? member : "?", sender ? sender : "?");
		if (e) {
			dbus_connection_send(conn, e, NULL);
			dbus_message_unref(e);
		}
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

int main(int argc, char **argv)
{
	static const DBusObjectPathVTable vtable = {.message_function = on_message};
	struct pvex_cli cli = {.usage = usage,
			       .target_short = 'a',
			       .target_long = "address",
			       .target_env = "DBUS_SYSTEM_BUS_ADDRESS",
			       .target_default = DEFAULT_ADDRESS};
	DBusConnection *conn;
	DBusError err;
	int r, status = 0;

	pvex_init(argv[0]);
	r = pvex_cli_parse(&cli, argc, argv);
	if (r >= 0)
		return r;

	/* The daemon may still be starting: wait until it answers. */
	conn = pvex_dbus_connect(cli.target);
	if (!conn)
		return pvex_stopping() ? 0 : 1;

	dbus_error_init(&err);
	r = dbus_bus_request_name(conn, SERVICE_NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE, &err);
	if (r != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
		if (dbus_error_is_set(&err))
			pvex_log("cannot own %s: %s: %s", SERVICE_NAME, err.name, err.message);
		else
			pvex_log("cannot own %s: another connection owns it", SERVICE_NAME);
		dbus_error_free(&err);
		pvex_dbus_close(conn);
		return 1;
	}
	if (!dbus_connection_register_object_path(conn, OBJECT_PATH, &vtable, NULL)) {
		pvex_log("out of memory registering %s", OBJECT_PATH);
		return 1;
	}
	pvex_log("owns %s, serving %s", SERVICE_NAME, OBJECT_PATH);

	while (!pvex_stopping()) {
		if (!dbus_connection_read_write_dispatch(conn, 1000)) {
			pvex_log("disconnected from the bus");
			status = 1;
			break;
		}
	}
	pvex_dbus_close(conn);
	pvex_log("stopped");
	return status;
}
