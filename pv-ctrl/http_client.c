/* pv-ctrl/http_client.c: HTTP/1.0 over AF_UNIX for the command-line clients; the server closes
 * after each response, so the body is everything after the headers. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "http_client.h"

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int out_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int connect_sock(const char *path, int timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (timeout_s > 0) {
		/* a Unix connect blocks only while the backlog is full */
		struct timeval tv = {.tv_sec = timeout_s};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	struct timeval none = {0};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
	return fd;
}

static int append(struct pv_http_resp *resp, const char *d, size_t n)
{
	char *b = realloc(resp->body, resp->body_len + n + 1);
	if (!b)
		return -ENOMEM;
	memcpy(b + resp->body_len, d, n);
	resp->body = b;
	resp->body_len += n;
	b[resp->body_len] = '\0';
	return 0;
}

int pv_http_do(const struct pv_http_req *q, struct pv_http_resp *resp, int out_fd)
{
	memset(resp, 0, sizeof(*resp));
	int fd = connect_sock(q->sock, q->connect_timeout_s);
	if (fd < 0)
		return fd;
	char hdr[8192];
	int n =
	    snprintf(hdr, sizeof(hdr), "%s %s HTTP/1.0\r\nHost: localhost\r\n", q->method, q->path);
	for (size_t i = 0; q->headers && q->headers[i]; i++)
		n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%s\r\n", q->headers[i]);
	if (q->body || q->body_fd >= 0)
		n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "Content-Length: %llu\r\n",
			      (unsigned long long)(q->body ? q->body_len : q->body_fd_len));
	n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "\r\n");
	if ((size_t)n >= sizeof(hdr)) {
		close(fd);
		return -E2BIG;
	}
	if (q->verbose)
		fprintf(stderr, "> %.*s", n, hdr);
	int r = write_all(fd, hdr, (size_t)n);
	if (!r && q->body)
		r = write_all(fd, q->body, q->body_len);
	if (!r && q->body_fd >= 0) {
		char buf[65536];
		uint64_t left = q->body_fd_len;
		while (!r && left) {
			ssize_t got =
			    read(q->body_fd, buf, left < sizeof(buf) ? left : sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				r = got < 0 ? -errno : -EIO;
				break;
			}
			r = write_all(fd, buf, (size_t)got);
			left -= (uint64_t)got;
		}
	}
	/* a server refusing early (403, 413) may close before the whole body was sent: its
	 * response is still there to read */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
		close(fd);
		return r;
	}
	shutdown(fd, SHUT_WR);

	char buf[65536];
	bool in_body = false;
	for (;;) {
		ssize_t got = recv(fd, buf, sizeof(buf), 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			break;
		}
		if (got == 0) {
			r = in_body ? 0 : -EPROTO;
			break;
		}
		if (in_body) {
			r = out_fd >= 0 ? out_all(out_fd, buf, (size_t)got)
					: append(resp, buf, (size_t)got);
			if (r < 0)
				break;
			continue;
		}
		size_t room = sizeof(resp->head) - 1 - resp->head_len;
		size_t take = (size_t)got < room ? (size_t)got : room;
		memcpy(resp->head + resp->head_len, buf, take);
		resp->head_len += take;
		resp->head[resp->head_len] = '\0';
		char *end = strstr(resp->head, "\r\n\r\n");
		if (!end) {
			if (take < (size_t)got) {
				r = -EPROTO; /* headers larger than we keep */
				break;
			}
			continue;
		}
		size_t hl = (size_t)(end - resp->head) + 4;
		size_t rest_off = take - (resp->head_len - hl);
		size_t rest = (size_t)got - rest_off;
		resp->head_len = hl;
		resp->head[hl] = '\0';
		in_body = true;
		if (sscanf(resp->head, "HTTP/%*d.%*d %d", &resp->status) != 1) {
			r = -EPROTO;
			break;
		}
		if (q->verbose)
			fprintf(stderr, "< %s", resp->head);
		if (rest) {
			r = out_fd >= 0 ? out_all(out_fd, buf + rest_off, rest)
					: append(resp, buf + rest_off, rest);
			if (r < 0)
				break;
		}
	}
	close(fd);
	if (r < 0)
		resp->status = resp->status ? resp->status : 0;
	return r;
}
