/* pv-example-rest-server: a libmicrohttpd server on a Unix socket (the "network-manager" export)
 * that answers every GET with the identity headers xconnect added: {"client","role","path"}. */
#include "pvex.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/nm/api.sock"

static const char usage[] =
    "usage: pv-example-rest-server [-s SOCKET]\n"
    "  -s, --socket PATH  listen here (env PV_EXAMPLE_SOCKET, default " DEFAULT_SOCKET ")\n"
    "GET <any path> answers {\"client\": X-PV-Client, \"role\": X-PV-Role, \"path\": path}.\n";

/* Append s as a JSON value (a quoted, escaped string, or null) to out. This tiny emitter keeps
 * the example free of a JSON library: the only values are header strings and the URL path. */
static void json_value(char *out, size_t len, const char *s)
{
	size_t o = strlen(out);

	if (!s) {
		snprintf(out + o, len - o, "null");
		return;
	}
	if (o + 1 < len)
		out[o++] = '"';
	for (; *s && o + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	if (o + 1 < len)
		out[o++] = '"';
	out[o] = '\0';
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body)
{
	struct MHD_Response *res;
	enum MHD_Result r;

	res = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!res)
		return MHD_NO;
	MHD_add_response_header(res, "Content-Type", "application/json");
	r = MHD_queue_response(conn, status, res);
	MHD_destroy_response(res);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	const char *client, *role;
	char body[4096];

	(void)cls;
	(void)version;
	(void)upload;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		/* Drain any body before answering; MHD calls again until it is consumed. */
		if (*upload_size) {
			*upload_size = 0;
			return MHD_YES;
		}
		pvex_log("%s %s: 405", method, url);
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"Error\":\"only GET\"}");
	}
	/* The first call only announces the request; answer on the second, as MHD expects. */
	if (!*req_cls) {
		*req_cls = conn;
		return MHD_YES;
	}
	client = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-PV-Client");
	role = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-PV-Role");
	pvex_log("%s %s client=%s role=%s", method, url, client ? client : "(none)",
		 role ? role : "(none)");
	snprintf(body, sizeof(body), "{\"client\": ");
	json_value(body, sizeof(body), client);
	strncat(body, ", \"role\": ", sizeof(body) - strlen(body) - 1);
	json_value(body, sizeof(body), role);
	strncat(body, ", \"path\": ", sizeof(body) - strlen(body) - 1);
	json_value(body, sizeof(body), url);
	strncat(body, "}", sizeof(body) - strlen(body) - 1);
	return reply(conn, MHD_HTTP_OK, body);
}

/* Connections are logged so keep-alive (one connection, many requests) is visible. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **sock_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	(void)conn;
	(void)sock_ctx;
	pvex_log("connection %s", code == MHD_CONNECTION_NOTIFY_STARTED ? "opened" : "closed");
}

int main(int argc, char **argv)
{
	struct pvex_cli cli = {.usage = usage, PVEX_CLI_SOCKET(DEFAULT_SOCKET)};
	struct MHD_Daemon *d;
	const char *path;
	int fd, r;

	pvex_init(argv[0]);
	r = pvex_cli_parse(&cli, argc, argv);
	if (r >= 0)
		return r;
	path = cli.target;
	/* MHD only binds TCP itself; a Unix socket is bound here and handed over. */
	fd = pvex_unix_listen(path);
	if (fd < 0)
		return 1;
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
			     on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
			     MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
	if (!d) {
		pvex_log("libmicrohttpd failed to start on %s", path);
		close(fd);
		unlink(path);
		return 1;
	}
	pvex_log("listening on %s", path);
	while (!pvex_sleep_ms(1000))
		;
	MHD_stop_daemon(d);
	unlink(path);
	pvex_log("stopped");
	return 0;
}
