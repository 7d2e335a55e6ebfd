/* pv-ctrl/http_client.h: a minimal HTTP/1.0 client over a Unix socket for pvcontrol and pvcurl:
 * one request per connection, bodies streamed from/to file descriptors. */
#ifndef PV_HTTP_CLIENT_H
#define PV_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pv_http_req {
	const char *sock;
	const char *method;
	const char *path;	    /* "/containers" */
	const char *const *headers; /* NULL-terminated "Name: value" lines, may be NULL */
	const char *body;	    /* in-memory body, or NULL */
	size_t body_len;
	int body_fd; /* >= 0: body streamed from this fd (body_fd_len bytes) */
	uint64_t body_fd_len;
	int connect_timeout_s; /* 0 = none */
	bool verbose;	       /* trace the exchange on stderr */
};

struct pv_http_resp {
	int status;
	char head[16384]; /* status line and headers as received */
	size_t head_len;
	char *body; /* when collected in memory (out_fd < 0) */
	size_t body_len;
};

/* Sends the request; the response body goes to out_fd, or into resp->body when out_fd < 0.
 * 0 or -errno (connection or protocol failure; resp->status is then 0). */
int pv_http_do(const struct pv_http_req *q, struct pv_http_resp *resp, int out_fd);

#endif
