/* pv-example-dbus-client: calls org.pantavisor.Example.GetInfo on the bus xconnect injects and
 * logs each reply; with --expect-denied it also tries to own the name, which policy must refuse. */
#include "pvex.h"
#include "pvex_dbus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ADDRESS	   PVEX_DBUS_DEFAULT_ADDRESS
#define SERVICE_NAME	   PVEX_DBUS_SERVICE
#define OBJECT_PATH	   PVEX_DBUS_OBJECT
#define INTERFACE_NAME	   PVEX_DBUS_INTERFACE
#define CALL_TIMEOUT_MS	   5000
#define EXIT_ATTACK_WORKED 3

static const char usage[] =
    "usage: pv-example-dbus-client [-a ADDRESS] [-i SECONDS] [-n COUNT] [--expect-denied]\n"
    "  -a, --address ADDR   bus address (env DBUS_SYSTEM_BUS_ADDRESS, default " DEFAULT_ADDRESS
    ")\n"
    "  -i, --interval SECS  between rounds (default 5; \"250ms\" works too)\n"
    "  -n, --count N        exit after N rounds (default: run forever)\n"
    "      --expect-denied  each round, first try to own " SERVICE_NAME "; exit 3 if that "
    "works\n";

/* The connection (opened again after the bus went away) and what each round does. */
struct client {
	const char *address;
	bool attacker;
	DBusConnection *conn;
};

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

/* One round: (re)connect if needed, try the forbidden RequestName when asked to, call GetInfo.
 * A refused or failed call is logged and is the round's answer, not an error of the program. */
static int round_once(void *ctx)
{
	struct client *c = ctx;

	if (!c->conn) {
		c->conn = pvex_dbus_connect(c->address);
		if (!c->conn)
			return 0; /* stopped while waiting: nothing failed */
	}
	if (c->attacker && try_own(c->conn))
		return EXIT_ATTACK_WORKED;
	get_info(c->conn);
	if (!dbus_connection_get_is_connected(c->conn)) {
		/* The bus (or the proxy in front of it) went away: start over next round. */
		pvex_log("disconnected from the bus; reconnecting");
		pvex_dbus_close(c->conn);
		c->conn = NULL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct client c = {0};
	const struct pvex_opt extra[] = {{.name = "expect-denied", .flag = &c.attacker},
					 {.name = NULL}};
	struct pvex_cli cli = {.usage = usage,
			       .target_short = 'a',
			       .target_long = "address",
			       .target_env = "DBUS_SYSTEM_BUS_ADDRESS",
			       .target_default = DEFAULT_ADDRESS,
			       .rounds = true,
			       .extra = extra,
			       .interval_ms = 5000};
	int r;

	pvex_init(argv[0]);
	r = pvex_cli_parse(&cli, argc, argv);
	if (r >= 0)
		return r;
	c.address = cli.target;
	r = pvex_rounds(&cli, round_once, &c, "rounds");
	if (c.conn)
		pvex_dbus_close(c.conn);
	return r;
}
