/* pv-ctrl/pvcurl.c: pvcurl, the subset of curl that upstream scripts use against pv-ctrl:
 * --unix-socket, -X, -H, --data, -T/--upload-file, -s, -i, -v, -o, -w, --connect-timeout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_client.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: pvcurl --unix-socket SOCK [-X METHOD] [-H 'Name: value']... "
		   "[--data DATA|@file] [-T FILE] [-s] [-i] [-v] [-o FILE] [-w FORMAT] "
		   "[--connect-timeout S] URL\n");
}

/* http://localhost/containers → /containers; a bare "/x" is taken as is */
static const char *url_path(const char *url)
{
	const char *p = strstr(url, "://");
	if (!p)
		return url[0] == '/' ? url : NULL;
	p = strchr(p + 3, '/');
	return p ? p : "/";
}

static void write_out(const char *fmt, int code)
{
	for (const char *p = fmt; *p; p++) {
		if (!strncmp(p, "%{http_code}", 12)) {
			printf("%03d", code);
			p += 11;
		} else if (p[0] == '\\' && p[1] == 'n') {
			putchar('\n');
			p++;
		} else {
			putchar(*p);
		}
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	enum { O_SOCK = 256, O_DATA, O_CTO };
	static const struct option opts[] = {{"unix-socket", required_argument, NULL, O_SOCK},
					     {"request", required_argument, NULL, 'X'},
					     {"header", required_argument, NULL, 'H'},
					     {"data", required_argument, NULL, 'd'},
					     {"data-binary", required_argument, NULL, 'd'},
					     {"upload-file", required_argument, NULL, 'T'},
					     {"silent", no_argument, NULL, 's'},
					     {"include", no_argument, NULL, 'i'},
					     {"verbose", no_argument, NULL, 'v'},
					     {"output", required_argument, NULL, 'o'},
					     {"write-out", required_argument, NULL, 'w'},
					     {"connect-timeout", required_argument, NULL, O_CTO},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *sock = NULL, *method = NULL, *data = NULL, *upload = NULL, *output = NULL,
		   *wfmt = NULL;
	const char *headers[64];
	size_t nh = 0;
	bool include = false, verbose = false, has_ctype = false;
	int cto = 0, o;
	while ((o = getopt_long(argc, argv, "X:H:d:T:sivo:w:h", opts, NULL)) != -1) {
		switch (o) {
		case O_SOCK:
			sock = optarg;
			break;
		case 'X':
			method = optarg;
			break;
		case 'H':
			if (nh < 62) {
				headers[nh++] = optarg;
				if (!strncasecmp(optarg, "Content-Type:", 13))
					has_ctype = true;
			}
			break;
		case 'd':
			data = optarg;
			break;
		case 'T':
			upload = optarg;
			break;
		case 's':
			break;
		case 'i':
			include = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'o':
			output = optarg;
			break;
		case 'w':
			wfmt = optarg;
			break;
		case O_CTO:
			cto = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || !sock || !url_path(argv[optind])) {
		usage(stderr);
		return 2;
	}
	/* upstream's pvcurl sends JSON unless told otherwise */
	if (!has_ctype && (data || upload))
		headers[nh++] = "Content-Type: application/json";
	headers[nh] = NULL;

	struct pv_http_req q = {.sock = sock,
				.path = url_path(argv[optind]),
				.headers = headers,
				.body_fd = -1,
				.connect_timeout_s = cto,
				.verbose = verbose};
	char *file_data = NULL;
	if (data && data[0] == '@') {
		size_t cap = 0, len = 0;
		FILE *f = strcmp(data + 1, "-") ? fopen(data + 1, "rb") : stdin;
		if (!f) {
			fprintf(stderr, "pvcurl: %s: %s\n", data + 1, strerror(errno));
			return 26;
		}
		char buf[65536];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
			if (len + n > cap) {
				cap = (len + n) * 2;
				char *b = realloc(file_data, cap);
				if (!b)
					return 26;
				file_data = b;
			}
			memcpy(file_data + len, buf, n);
			len += n;
		}
		if (f != stdin)
			fclose(f);
		q.body = file_data ? file_data : "";
		q.body_len = len;
	} else if (data) {
		q.body = data;
		q.body_len = strlen(data);
	}
	if (upload) {
		q.body_fd = open(upload, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (q.body_fd < 0 || fstat(q.body_fd, &st) < 0) {
			fprintf(stderr, "pvcurl: %s: %s\n", upload, strerror(errno));
			return 26;
		}
		q.body_fd_len = (uint64_t)st.st_size;
	}
	q.method = method ? method : upload ? "PUT" : data ? "POST" : "GET";

	int out = 1;
	if (output && strcmp(output, "-")) {
		out = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (out < 0) {
			fprintf(stderr, "pvcurl: %s: %s\n", output, strerror(errno));
			return 23;
		}
	}
	struct pv_http_resp resp;
	if (include) {
		/* headers first, then the body: collect in memory */
		int r = pv_http_do(&q, &resp, -1);
		if (r < 0) {
			fprintf(stderr, "pvcurl: %s: %s\n", sock, strerror(-r));
			return 7;
		}
		if (write(out, resp.head, resp.head_len) < 0 ||
		    (resp.body_len && write(out, resp.body, resp.body_len) < 0))
			return 23;
		free(resp.body);
	} else {
		int r = pv_http_do(&q, &resp, out);
		if (r < 0 && !resp.status) {
			fprintf(stderr, "pvcurl: %s: %s\n", sock, strerror(-r));
			return 7;
		}
	}
	if (wfmt)
		write_out(wfmt, resp.status);
	free(file_data);
	return 0;
}
