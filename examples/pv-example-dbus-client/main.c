/* pv-example-dbus-client: calls org.pantavisor.Example.GetInfo on the bus xconnect injects and
 * logs each reply; with --expect-denied it also tries to own the name, which policy must refuse. */
#include "pvex.h"

#include <dbus/dbus.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ADDRESS	   "unix:path=/run/dbus/system_bus_socket"
#define SERVICE_NAME	   "org.pantavisor.Example"
#define OBJECT_PATH	   "/org/pantavisor/Example"
#define INTERFACE_NAME	   "org.pantavisor.Example"
#define CALL_TIMEOUT_MS	   5000
#define EXIT_ATTACK_WORKED 3

static void usage(FILE *f)
{
	fprintf(f, "usage: pv-example-dbus-client [-a ADDRESS] [-i SECONDS] [-n COUNT] "
		   "[--expect-denied]\n"
		   "  -a, --address ADDR   bus address (env DBUS_SYSTEM_BUS_ADDRESS, "
		   "default " DEFAULT_ADDRESS ")\n"
		   "  -i, --interval SECS  between rounds (default 5; \"250ms\" works too)\n"
		   "  -n, --count N        exit after N rounds (default: run forever)\n"
		   "      --expect-denied  each round, first try to own " SERVICE_NAME "; exit "
		   "3 if that works\n");
}

/* One refused call, logged the same way whatever was refused, so it is easy to find. */
static void log_error(const char *what, const DBusError *err)
{
	if (dbus_error_has_name(err, DBUS_ERROR_ACCESS_DENIED))
		pvex_log("denied: %s (%s)", err->name, what);
	else
		pvex_log("error: %s (%s): %s", err->name, what, err->message);
}

/* Try to take the service name away from the server. Returns true if that (wrongly) worked. */
static bool try_own(DBusConnection *conn)
{
	DBusError err;
	int r;

	dbus_error_init(&err);
	r = dbus_bus_request_name(conn, SERVICE_NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE, &err);
	if (dbus_error_is_set(&err)) {
		log_error("RequestName " SERVICE_NAME, &err);
		dbus_error_free(&err);
		return false;
	}
	if (r == DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
		pvex_log("attack succeeded: this client now owns %s", SERVICE_NAME);
		return true;
	}
	/* Allowed to own but someone already does: policy did not stop us, the race did. */
	pvex_log("RequestName %s: not denied by policy (reply %d)", SERVICE_NAME, r);
	return false;
}

static void get_info(DBusConnection *conn)
{
	DBusMessage *call, *reply;
	const char *info;
	DBusError err;

	call = dbus_message_new_method_call(SERVICE_NAME, OBJECT_PATH, INTERFACE_NAME, "GetInfo");
	if (!call) {
		pvex_log("out of memory");
		return;
	}
	dbus_error_init(&err);
	reply = dbus_connection_send_with_reply_and_block(conn, call, CALL_TIMEOUT_MS, &err);
	dbus_message_unref(call);
	if (!reply) {
		log_error("GetInfo", &err);
		dbus_error_free(&err);
		return;
	}
	if (dbus_message_get_args(reply, &err, DBUS_TYPE_STRING, &info, DBUS_TYPE_INVALID))
		pvex_log("reply: %s", info);
	else
		log_error("GetInfo reply", &err);
	dbus_error_free(&err);
	dbus_message_unref(reply);
}

/* Open and register on the bus, retrying while the (injected) socket is not there yet. */
static DBusConnection *bus_connect(const char *address)
{
	bool told = false;
	DBusError err;

	dbus_error_init(&err);
	while (!pvex_stopping()) {
		DBusConnection *conn = dbus_connection_open_private(address, &err);
		if (conn && dbus_bus_register(conn, &err))
			return conn;
		if (conn) {
			dbus_connection_close(conn);
			dbus_connection_unref(conn);
		}
		if (!told) {
			pvex_log("waiting for the bus at %s: %s", address, err.message);
			told = true;
		}
		dbus_error_free(&err);
		pvex_sleep_ms(500);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"address", required_argument, NULL, 'a'}, {"interval", required_argument, NULL, 'i'},
	    {"count", required_argument, NULL, 'n'},   {"expect-denied", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},	       {NULL, 0, NULL, 0}};
	const char *addr_arg = NULL, *address;
	unsigned long count = 0, rounds = 0;
	long interval_ms = 5000;
	bool attacker = false;
	DBusConnection *conn = NULL;
	int o, status = 0;

	pvex_init(argv[0]);
	while ((o = getopt_long(argc, argv, "a:i:n:h", opts, NULL)) != -1) {
		switch (o) {
		case 'a':
			addr_arg = optarg;
			break;
		case 'i':
			if (pvex_parse_ms(optarg, &interval_ms) < 0) {
				fprintf(stderr, "bad --interval '%s'\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (pvex_parse_uint(optarg, &count) < 0) {
				fprintf(stderr, "bad --count '%s'\n", optarg);
				return 2;
			}
			break;
		case 'd':
			attacker = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	address = pvex_pick(addr_arg, "DBUS_SYSTEM_BUS_ADDRESS", DEFAULT_ADDRESS);

	while (!pvex_stopping() && (count == 0 || rounds < count)) {
		if (!conn) {
			conn = bus_connect(address);
			if (!conn)
				break;
			dbus_connection_set_exit_on_disconnect(conn, FALSE);
			pvex_log("connected to %s as %s", address, dbus_bus_get_unique_name(conn));
		}
		if (attacker && try_own(conn)) {
			status = EXIT_ATTACK_WORKED;
			break;
		}
		get_info(conn);
		rounds++;
		if (!dbus_connection_get_is_connected(conn)) {
			/* The bus (or the proxy in front of it) went away: start over. */
			pvex_log("disconnected from the bus; reconnecting");
			/* A private connection must be closed before its last unref. */
			dbus_connection_close(conn);
			dbus_connection_unref(conn);
			conn = NULL;
		}
		if (count == 0 || rounds < count)
			pvex_sleep_ms(interval_ms);
	}
	if (conn) {
		dbus_connection_close(conn);
		dbus_connection_unref(conn);
	}
	pvex_log("stopped after %lu rounds", rounds);
	return status;
}
