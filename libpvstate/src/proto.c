/* proto.c: the private protocol: length-prefixed framing with an incremental decoder, and the
 * message schema (requests, replies, events) with table-driven validation of each op's args. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "graph_int.h"
#include "pvstate/proto.h"

/* ---- framing ---- */

int pv_proto_frame(const char *payload, size_t len, size_t max, char **out, size_t *out_len)
{
	*out = NULL;
	if (len == 0)
		return -EINVAL; /* a zero length is a framing error on the receiving side */
	if (len > max || len > 0xffffffffu)
		return -EMSGSIZE;
	char *b = malloc(len + PV_PROTO_HDR_LEN);
	if (!b)
		return -ENOMEM;
	b[0] = (char)((len >> 24) & 0xff);
	b[1] = (char)((len >> 16) & 0xff);
	b[2] = (char)((len >> 8) & 0xff);
	b[3] = (char)(len & 0xff);
	memcpy(b + PV_PROTO_HDR_LEN, payload, len);
	*out = b;
	*out_len = len + PV_PROTO_HDR_LEN;
	return 0;
}

static size_t hdr_len(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return ((size_t)u[0] << 24) | ((size_t)u[1] << 16) | ((size_t)u[2] << 8) | u[3];
}

void pv_proto_decoder_init(struct pv_proto_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max ? max : PV_PROTO_MAX_DEFAULT;
}

void pv_proto_decoder_free(struct pv_proto_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->len = d->cap = 0;
}

/* Checks every header now readable in the buffer, so a bad one is refused as soon as its four
 * bytes arrive, before its payload is buffered. */
static int check_headers(struct pv_proto_decoder *d)
{
	size_t off = 0;
	while (d->len - off >= PV_PROTO_HDR_LEN) {
		size_t n = hdr_len(d->buf + off);
		if (n == 0) {
			d->broken = true;
			return -EBADMSG;
		}
		if (n > d->max) {
			d->broken = true;
			return -EMSGSIZE;
		}
		if (d->len - off - PV_PROTO_HDR_LEN < n)
			break;
		off += PV_PROTO_HDR_LEN + n;
	}
	return 0;
}

int pv_proto_decoder_feed(struct pv_proto_decoder *d, const void *data, size_t n)
{
	if (d->broken)
		return -EBADMSG;
	if (n == 0)
		return 0;
	if (d->len + n > d->cap) {
		size_t nc = d->cap ? d->cap : 4096;
		while (nc < d->len + n)
			nc *= 2;
		char *nb = realloc(d->buf, nc);
		if (!nb)
			return -ENOMEM;
		d->buf = nb;
		d->cap = nc;
	}
	memcpy(d->buf + d->len, data, n);
	d->len += n;
	return check_headers(d);
}

int pv_proto_decoder_next(struct pv_proto_decoder *d, char **payload, size_t *len)
{
	*payload = NULL;
	if (d->broken)
		return -EBADMSG;
	if (d->len < PV_PROTO_HDR_LEN)
		return 0;
	size_t n = hdr_len(d->buf);
	if (n == 0 || n > d->max) {
		d->broken = true;
		return n ? -EMSGSIZE : -EBADMSG;
	}
	if (d->len - PV_PROTO_HDR_LEN < n)
		return 0;
	char *p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, d->buf + PV_PROTO_HDR_LEN, n);
	p[n] = '\0';
	d->len -= PV_PROTO_HDR_LEN + n;
	memmove(d->buf, d->buf + PV_PROTO_HDR_LEN + n, d->len);
	*payload = p;
	if (len)
		*len = n;
	return 1;
}

/* ---- op table ---- */

enum {
	A_STR = 1 << 0,
	A_INT = 1 << 1,
	A_NULL = 1 << 2,
	A_ARR = 1 << 3,
	A_OBJ = 1 << 4,
	A_BOOL = 1 << 5,
};

struct arg_spec {
	const char *name;
	unsigned types;
	bool required;
	const char *const *one_of; /* allowed string values, NULL-terminated; NULL = any */
};

#define MAX_ARGS 4

struct op_spec {
	const char *op;
	struct arg_spec args[MAX_ARGS];
	/* Extra checks the table cannot say (element shapes); NULL for most ops. */
	int (*check)(const char *op, const cJSON *args, struct pv_error *err);
};

static const char *const meta_kinds[] = {"user", "device", NULL};
static const char *const driver_actions[] = {"load", "unload", NULL};

static int check_link_status(const char *op, const cJSON *args, struct pv_error *err);

static const struct op_spec ops[] = {
    {"whois", {{"pid", A_INT, true, NULL}}, NULL},
    {"containers-list", {{0}}, NULL},
    {"groups-list", {{0}}, NULL},
    {"objects-list", {{0}}, NULL},
    {"steps-list", {{0}}, NULL},
    {"buildinfo", {{0}}, NULL},
    {"config", {{0}}, NULL},
    {"config2", {{0}}, NULL},
    {"daemons-list", {{0}}, NULL},
    {"graph", {{0}}, NULL},
    {"subscribe-graph", {{0}}, NULL},
    {"gc", {{0}}, NULL},
    {"drivers-list", {{"container", A_STR | A_NULL, false, NULL}}, NULL},
    {"driver-action",
     {{"action", A_STR, true, driver_actions},
      {"name", A_STR | A_NULL, false, NULL},
      {"container", A_STR | A_NULL, false, NULL}},
     NULL},
    {"container-action", {{"name", A_STR, true, NULL}, {"action", A_STR, true, NULL}}, NULL},
    {"daemon-action", {{"name", A_STR, true, NULL}, {"action", A_STR, true, NULL}}, NULL},
    {"signal",
     {{"container", A_STR, true, NULL},
      {"type", A_STR, true, NULL},
      {"payload", A_STR | A_NULL, false, NULL}},
     NULL},
    {"command", {{"op", A_STR, true, NULL}, {"payload", A_STR | A_NULL, false, NULL}}, NULL},
    {"step-get", {{"rev", A_STR, true, NULL}}, NULL},
    {"step-put", {{"rev", A_STR, true, NULL}, {"state", A_STR, true, NULL}}, NULL},
    {"step-progress", {{"rev", A_STR, true, NULL}}, NULL},
    {"step-commitmsg", {{"rev", A_STR, true, NULL}, {"msg", A_STR, true, NULL}}, NULL},
    {"meta-list",
     {{"kind", A_STR, true, meta_kinds}, {"container", A_STR | A_NULL, false, NULL}},
     NULL},
    {"meta-put",
     {{"kind", A_STR, true, meta_kinds}, {"key", A_STR, true, NULL}, {"value", A_STR, true, NULL}},
     NULL},
    {"meta-delete", {{"kind", A_STR, true, meta_kinds}, {"key", A_STR, true, NULL}}, NULL},
    {"object-installed", {{"sha", A_STR, true, NULL}, {"path", A_STR, true, NULL}}, NULL},
    {"link-status", {{"links", A_ARR, true, NULL}}, check_link_status},
};

static const struct op_spec *op_find(const char *op)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i].op, op))
			return &ops[i];
	return NULL;
}

bool pv_msg_op_known(const char *op)
{
	return op && op_find(op) != NULL;
}

static unsigned json_type(const cJSON *v)
{
	if (cJSON_IsString(v))
		return A_STR;
	if (cJSON_IsNumber(v))
		/* |x| <= 2^53: exact in a double, and the cast below is defined. */
		return v->valuedouble >= -9007199254740992.0 &&
			       v->valuedouble <= 9007199254740992.0 &&
			       v->valuedouble == (double)(long long)v->valuedouble
			   ? A_INT
			   : 0;
	if (cJSON_IsNull(v))
		return A_NULL;
	if (cJSON_IsArray(v))
		return A_ARR;
	if (cJSON_IsObject(v))
		return A_OBJ;
	if (cJSON_IsBool(v))
		return A_BOOL;
	return 0;
}

static const char *types_str(unsigned t, char *buf, size_t n)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{A_STR, "string"}, {A_INT, "integer"}, {A_NULL, "null"},
		     {A_ARR, "array"},	{A_OBJ, "object"},  {A_BOOL, "boolean"}};
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (t & names[i].bit) {
			size_t l = strlen(buf);
			snprintf(buf + l, n - l, "%s%s", l ? " or " : "", names[i].name);
		}
	return buf;
}

static int check_link_status(const char *op, const cJSON *args, struct pv_error *err)
{
	static const char *const str_members[] = {"consumer", "name", "state"};
	const cJSON *links = cJSON_GetObjectItemCaseSensitive(args, "links");
	const cJSON *l;
	size_t i = 0;
	cJSON_ArrayForEach(l, links)
	{
		if (!cJSON_IsObject(l))
			return pv_error_set(err, -EINVAL,
					    "request \"%s\": args.links[%zu]: not an "
					    "object",
					    op, i);
		for (size_t k = 0; k < 3; k++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, str_members[k]);
			if (!cJSON_IsString(v))
				return pv_error_set(err, -EINVAL,
						    "request \"%s\": args.links[%zu].%s: %s", op, i,
						    str_members[k], v ? "not a string" : "missing");
		}
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(l, "state");
		if (strcmp(st->valuestring, "up") && strcmp(st->valuestring, "pending") &&
		    strcmp(st->valuestring, "error") && strcmp(st->valuestring, "unknown"))
			return pv_error_set(err, -EINVAL,
					    "request \"%s\": args.links[%zu].state: \"%s\" is not "
					    "one of up, pending, error, unknown",
					    op, i, st->valuestring);
		const char *opt[] = {"target", "error"};
		for (size_t k = 0; k < 2; k++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, opt[k]);
			if (v && !cJSON_IsString(v) && !cJSON_IsNull(v))
				return pv_error_set(err, -EINVAL,
						    "request \"%s\": args.links[%zu].%s: not a "
						    "string or null",
						    op, i, opt[k]);
		}
		i++;
	}
	return 0;
}

static int check_args(const struct op_spec *spec, const cJSON *args, struct pv_error *err)
{
	char tb[96];
	if (args && !cJSON_IsObject(args))
		return pv_error_set(err, -EINVAL, "request \"%s\": args: not an object", spec->op);
	for (size_t i = 0; i < MAX_ARGS && spec->args[i].name; i++) {
		const struct arg_spec *a = &spec->args[i];
		const cJSON *v = args ? cJSON_GetObjectItemCaseSensitive(args, a->name) : NULL;
		if (!v) {
			if (a->required)
				return pv_error_set(err, -EINVAL,
						    "request \"%s\": args.%s: missing", spec->op,
						    a->name);
			continue;
		}
		if (!(json_type(v) & a->types))
			return pv_error_set(err, -EINVAL, "request \"%s\": args.%s: not %s",
					    spec->op, a->name, types_str(a->types, tb, sizeof(tb)));
		if (a->one_of && cJSON_IsString(v)) {
			bool ok = false;
			for (const char *const *o = a->one_of; *o; o++)
				ok = ok || !strcmp(*o, v->valuestring);
			if (!ok)
				return pv_error_set(
				    err, -EINVAL, "request \"%s\": args.%s: \"%s\" is not allowed",
				    spec->op, a->name, v->valuestring);
		}
	}
	return spec->check ? spec->check(spec->op, args, err) : 0;
}

/* ---- messages ---- */

void pv_msg_free(struct pv_msg *m)
{
	if (!m)
		return;
	free(m->args);
	free(m->body);
	free(m->error);
	free(m->content_type);
	cJSON_Delete(m->priv);
	m->args = m->body = m->error = m->content_type = NULL;
	m->priv = NULL;
}

static int get_id(const cJSON *root, uint64_t *id)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "id");
	/* ids are JSON numbers: integers up to 2^53 survive the double. */
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return -EINVAL;
	*id = (uint64_t)v->valuedouble;
	return 0;
}

static int parse_request(cJSON *root, struct pv_msg *out, struct pv_error *err)
{
	const struct op_spec *spec = op_find(out->op);
	if (!spec)
		return pv_error_set(err, -EINVAL, "request: op \"%s\": unknown", out->op);
	cJSON *args = cJSON_GetObjectItemCaseSensitive(root, "args");
	if (cJSON_IsNull(args))
		args = NULL;
	int r = check_args(spec, args, err);
	if (r)
		return r;
	if (args) {
		if (!(out->args = cJSON_PrintUnformatted(args)))
			return pv_error_set(err, -ENOMEM, "request: out of memory");
		/* Keep only the args subtree for the typed accessors. */
		cJSON_DetachItemViaPointer(root, args);
		out->priv = args;
	}
	return 0;
}

static int parse_reply(cJSON *root, struct pv_msg *out, struct pv_error *err)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "status");
	if (!(json_type(st) & A_INT) || st->valuedouble < 100 || st->valuedouble > 599)
		return pv_error_set(err, -EINVAL, "reply %llu: status: not an integer 100..599",
				    (unsigned long long)out->id);
	out->status = (int)st->valuedouble;
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "content_type");
	if (ct && !cJSON_IsNull(ct)) {
		if (!cJSON_IsString(ct))
			return pv_error_set(err, -EINVAL, "reply %llu: content_type: not a string",
					    (unsigned long long)out->id);
		if (!(out->content_type = strdup(ct->valuestring)))
			return -ENOMEM;
	}
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(root, "body");
	if (body && !cJSON_IsNull(body)) {
		if (out->content_type) {
			if (!cJSON_IsString(body))
				return pv_error_set(err, -EINVAL,
						    "reply %llu: body: not a string (content_type "
						    "%s)",
						    (unsigned long long)out->id, out->content_type);
			out->body = strdup(body->valuestring);
		} else {
			out->body = cJSON_PrintUnformatted(body);
		}
		if (!out->body)
			return -ENOMEM;
	}
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (e && !cJSON_IsNull(e)) {
		if (!cJSON_IsString(e))
			return pv_error_set(err, -EINVAL, "reply %llu: error: not a string",
					    (unsigned long long)out->id);
		if (!(out->error = strdup(e->valuestring)))
			return -ENOMEM;
	} else if (out->status >= 400) {
		return pv_error_set(err, -EINVAL, "reply %llu: error: missing (status %d)",
				    (unsigned long long)out->id, out->status);
	}
	return 0;
}

static int parse_event(cJSON *root, struct pv_msg *out, struct pv_error *err)
{
	if (strcmp(out->op, "graph"))
		return pv_error_set(err, -EINVAL, "event: op \"%s\": unknown", out->op);
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, "generation");
	if (!(json_type(g) & A_INT) || g->valuedouble < 0)
		return pv_error_set(err, -EINVAL, "event \"graph\": generation: %s",
				    g ? "not a non-negative integer" : "missing");
	const cJSON *links = cJSON_GetObjectItemCaseSensitive(root, "links");
	if (!cJSON_IsArray(links))
		return pv_error_set(err, -EINVAL, "event \"graph\": links: %s",
				    links ? "not an array" : "missing");
	if (!(out->body = cJSON_PrintUnformatted(root)))
		return -ENOMEM;
	out->priv = root;
	return 0;
}

int pv_msg_parse(const char *payload, size_t len, struct pv_msg *out, struct pv_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!payload || !len)
		return pv_error_set(err, -EINVAL, "message: empty");
	cJSON *root = cJSON_ParseWithLength(payload, len);
	if (!root)
		return pv_error_set(err, -EINVAL, "message: not valid JSON");
	int r = 0;
	if (!cJSON_IsObject(root)) {
		r = pv_error_set(err, -EINVAL, "message: not a JSON object");
		goto done;
	}
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(root, "op");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
	/* The id first, so even a rejected request gets a reply its sender can match. */
	bool have_id = id && get_id(root, &out->id) == 0;
	if (id && !have_id) {
		r = pv_error_set(err, -EINVAL, "message: id: not a non-negative integer");
		goto done;
	}
	if (op) {
		if (!cJSON_IsString(op)) {
			r = pv_error_set(err, -EINVAL, "message: op: not a string");
			goto done;
		}
		if (strlen(op->valuestring) >= sizeof(out->op)) {
			r = pv_error_set(err, -EINVAL,
					 "message: op \"%.47s...\": unknown (too long)",
					 op->valuestring);
			goto done;
		}
		strcpy(out->op, op->valuestring);
	}
	if (status) {
		out->kind = PV_MSG_REPLY;
		if (!have_id)
			r = pv_error_set(err, -EINVAL, "reply: id: missing");
		else
			r = parse_reply(root, out, err);
	} else if (op && have_id) {
		out->kind = PV_MSG_REQUEST;
		r = parse_request(root, out, err);
	} else if (op) {
		out->kind = PV_MSG_EVENT;
		r = parse_event(root, out, err);
		if (!r)
			root = NULL; /* now owned by out->priv */
	} else {
		r = pv_error_set(err, -EINVAL,
				 "message: neither a request (op, id), a reply (id, "
				 "status) nor an event (op)");
	}
done:
	cJSON_Delete(root);
	if (r) {
		uint64_t keep_id = out->id;
		char keep_op[sizeof(out->op)];
		memcpy(keep_op, out->op, sizeof(keep_op));
		enum pv_msg_kind kind = out->kind;
		pv_msg_free(out);
		memset(out, 0, sizeof(*out));
		out->id = keep_id;
		out->kind = kind;
		memcpy(out->op, keep_op, sizeof(keep_op));
	}
	return r;
}

/* ---- builders ---- */

static char *print_and_free(cJSON *o)
{
	if (!o)
		return NULL;
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

char *pv_msg_request(const char *op, uint64_t id, const char *args_json)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "op", op) ||
	    !cJSON_AddNumberToObject(o, "id", (double)id))
		goto fail;
	if (args_json) {
		cJSON *a = cJSON_Parse(args_json);
		if (!a || !cJSON_AddItemToObject(o, "args", a)) {
			cJSON_Delete(a);
			goto fail;
		}
	}
	return print_and_free(o);
fail:
	cJSON_Delete(o);
	return NULL;
}

char *pv_msg_reply(uint64_t id, int status, const char *body_json)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddNumberToObject(o, "id", (double)id) ||
	    !cJSON_AddNumberToObject(o, "status", status))
		goto fail;
	if (body_json) {
		cJSON *b = cJSON_Parse(body_json);
		if (!b || !cJSON_AddItemToObject(o, "body", b)) {
			cJSON_Delete(b);
			goto fail;
		}
	}
	return print_and_free(o);
fail:
	cJSON_Delete(o);
	return NULL;
}

char *pv_msg_reply_error(uint64_t id, int status, const char *message)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddNumberToObject(o, "id", (double)id) ||
	    !cJSON_AddNumberToObject(o, "status", status) ||
	    !cJSON_AddStringToObject(o, "error", message ? message : "")) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_and_free(o);
}

char *pv_msg_reply_text(uint64_t id, int status, const char *text, const char *content_type)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddNumberToObject(o, "id", (double)id) ||
	    !cJSON_AddNumberToObject(o, "status", status) ||
	    !cJSON_AddStringToObject(o, "body", text ? text : "") ||
	    !cJSON_AddStringToObject(o, "content_type",
				     content_type ? content_type : "text/plain")) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_and_free(o);
}

char *pv_msg_http_error_body(const char *message)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "Error", message ? message : "")) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_and_free(o);
}

char *pv_msg_args_str(size_t n_pairs, ...)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	va_list ap;
	va_start(ap, n_pairs);
	bool ok = true;
	for (size_t i = 0; i < n_pairs; i++) {
		const char *k = va_arg(ap, const char *);
		const char *v = va_arg(ap, const char *);
		if (ok)
			ok = v ? cJSON_AddStringToObject(o, k, v) != NULL
			       : cJSON_AddNullToObject(o, k) != NULL;
	}
	va_end(ap);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_and_free(o);
}

char *pv_msg_whois_body(const char *container, const char *const *roles, size_t n_roles)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *a = cJSON_CreateArray();
	bool ok = o && a &&
		  (container ? cJSON_AddStringToObject(o, "container", container) != NULL
			     : cJSON_AddNullToObject(o, "container") != NULL);
	for (size_t i = 0; ok && i < n_roles; i++) {
		cJSON *s = cJSON_CreateString(roles[i]);
		ok = s && cJSON_AddItemToArray(a, s);
		if (!ok)
			cJSON_Delete(s);
	}
	if (ok && cJSON_AddItemToObject(o, "roles", a))
		return print_and_free(o);
	if (!ok || o)
		cJSON_Delete(a);
	cJSON_Delete(o);
	return NULL;
}

/* ---- typed args ---- */

static const cJSON *arg(const struct pv_msg *m, const char *name)
{
	if (!m || m->kind != PV_MSG_REQUEST || !m->priv)
		return NULL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)m->priv, name);
	return cJSON_IsNull(v) ? NULL : v;
}

int pv_msg_arg_str(const struct pv_msg *m, const char *name, const char **out)
{
	const cJSON *v = arg(m, name);
	if (!v)
		return -ENOENT;
	if (!cJSON_IsString(v))
		return -EINVAL;
	*out = v->valuestring;
	return 0;
}

int pv_msg_arg_int(const struct pv_msg *m, const char *name, int64_t *out)
{
	const cJSON *v = arg(m, name);
	if (!v)
		return -ENOENT;
	if (!(json_type(v) & A_INT))
		return -EINVAL;
	*out = (int64_t)v->valuedouble;
	return 0;
}

int pv_msg_arg_bool(const struct pv_msg *m, const char *name, bool *out)
{
	const cJSON *v = arg(m, name);
	if (!v)
		return -ENOENT;
	if (!cJSON_IsBool(v))
		return -EINVAL;
	*out = cJSON_IsTrue(v);
	return 0;
}

int pv_msg_arg_json(const struct pv_msg *m, const char *name, char **out)
{
	const cJSON *v = arg(m, name);
	if (!v)
		return -ENOENT;
	*out = cJSON_PrintUnformatted(v);
	return *out ? 0 : -ENOMEM;
}

/* ---- graph events and link status ---- */

char *pv_msg_graph_event(uint64_t generation, const struct pv_graph *g)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *links = pv_graph_to_cjson(g ? g->links : NULL, g ? g->n_links : 0, false);
	if (!o || !links || !cJSON_AddStringToObject(o, "op", "graph") ||
	    !cJSON_AddNumberToObject(o, "generation", (double)generation) ||
	    !cJSON_AddItemToObject(o, "links", links)) {
		if (!o || !cJSON_GetObjectItemCaseSensitive(o, "links"))
			cJSON_Delete(links);
		cJSON_Delete(o);
		return NULL;
	}
	return print_and_free(o);
}

int pv_msg_parse_graph_event(const struct pv_msg *m, struct pv_graph *out, struct pv_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!m || m->kind != PV_MSG_EVENT || strcmp(m->op, "graph") || !m->priv)
		return pv_error_set(err, -EINVAL, "event: not a graph event");
	const cJSON *root = m->priv;
	const cJSON *gen = cJSON_GetObjectItemCaseSensitive(root, "generation");
	int r = pv_graph_from_cjson(cJSON_GetObjectItemCaseSensitive(root, "links"), out, err);
	if (r)
		return r;
	out->generation = (uint64_t)gen->valuedouble;
	return 0;
}

char *pv_msg_link_status(uint64_t id, const struct pv_link *links, size_t n)
{
	cJSON *o = cJSON_CreateObject(), *args = cJSON_CreateObject(), *a = cJSON_CreateArray();
	bool ok = o && args && a && cJSON_AddStringToObject(o, "op", "link-status") &&
		  cJSON_AddNumberToObject(o, "id", (double)id);
	if (ok) {
		ok = cJSON_AddItemToObject(args, "links", a);
		if (!ok)
			cJSON_Delete(a);
		a = NULL;
	}
	if (ok) {
		ok = cJSON_AddItemToObject(o, "args", args);
		if (!ok)
			cJSON_Delete(args);
		args = NULL;
	}
	cJSON *arr = ok ? cJSON_GetObjectItemCaseSensitive(
			      cJSON_GetObjectItemCaseSensitive(o, "args"), "links")
			: NULL;
	for (size_t i = 0; ok && i < n; i++) {
		const struct pv_link *l = &links[i];
		cJSON *e = cJSON_CreateObject();
		ok = e && cJSON_AddStringToObject(e, "consumer", l->consumer ? l->consumer : "") &&
		     cJSON_AddStringToObject(e, "name", l->name ? l->name : "") &&
		     (l->target ? cJSON_AddStringToObject(e, "target", l->target) != NULL
				: cJSON_AddNullToObject(e, "target") != NULL) &&
		     cJSON_AddStringToObject(e, "state", pv_link_state_str(l->state)) &&
		     (!l->error || cJSON_AddStringToObject(e, "error", l->error));
		if (ok)
			ok = cJSON_AddItemToArray(arr, e);
		if (!ok)
			cJSON_Delete(e);
	}
	cJSON_Delete(a);
	cJSON_Delete(args);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return print_and_free(o);
}

int pv_msg_parse_link_status(const struct pv_msg *m, struct pv_graph *out, struct pv_error *err)
{
	memset(out, 0, sizeof(*out));
	const cJSON *links = arg(m, "links");
	if (!m || strcmp(m->op, "link-status") || !cJSON_IsArray(links))
		return pv_error_set(err, -EINVAL, "request: not a link-status request");
	size_t n = (size_t)cJSON_GetArraySize(links), i = 0;
	out->links = calloc(n ? n : 1, sizeof(*out->links));
	if (!out->links)
		return pv_error_set(err, -ENOMEM, "link-status: out of memory");
	const cJSON *e;
	cJSON_ArrayForEach(e, links)
	{
		/* pv_msg_parse validated the shape already (check_link_status). */
		struct pv_link *l = &out->links[i];
		out->n_links = ++i;
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "target");
		const cJSON *er = cJSON_GetObjectItemCaseSensitive(e, "error");
		const char *st = cJSON_GetObjectItemCaseSensitive(e, "state")->valuestring;
		l->consumer = strdup(cJSON_GetObjectItemCaseSensitive(e, "consumer")->valuestring);
		l->name = strdup(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring);
		l->target = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
		l->error = cJSON_IsString(er) ? strdup(er->valuestring) : NULL;
		l->state = !strcmp(st, "up")	    ? PV_LINK_UP
			   : !strcmp(st, "pending") ? PV_LINK_PENDING
			   : !strcmp(st, "error")   ? PV_LINK_ERROR
						    : PV_LINK_UNKNOWN;
		if (!l->consumer || !l->name || (cJSON_IsString(t) && !l->target) ||
		    (cJSON_IsString(er) && !l->error)) {
			pv_graph_free(out);
			return pv_error_set(err, -ENOMEM, "link-status: out of memory");
		}
	}
	return 0;
}
