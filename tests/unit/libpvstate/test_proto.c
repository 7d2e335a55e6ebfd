/* test_proto.c: framing (every split of a stream, oversize on the header alone, zero length),
 * message parsing and validation per op, builders, typed args, graph events, link status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/proto.h"

static void append(char **buf, size_t *len, const char *payload)
{
	char *f;
	size_t fl;
	assert_int_equal(pv_proto_frame(payload, strlen(payload), PV_PROTO_MAX_DEFAULT, &f, &fl),
			 0);
	assert_int_equal(fl, strlen(payload) + 4);
	*buf = realloc(*buf, *len + fl);
	memcpy(*buf + *len, f, fl);
	*len += fl;
	free(f);
}

static void test_frame_header(void **st)
{
	(void)st;
	char *f;
	size_t fl;
	char big[300];
	memset(big, 'x', sizeof(big));
	assert_int_equal(pv_proto_frame(big, sizeof(big), 1024, &f, &fl), 0);
	assert_int_equal((unsigned char)f[0], 0);
	assert_int_equal((unsigned char)f[1], 0);
	assert_int_equal((unsigned char)f[2], 1);
	assert_int_equal((unsigned char)f[3], 300 - 256);
	free(f);
	assert_int_equal(pv_proto_frame(big, sizeof(big), 299, &f, &fl), -EMSGSIZE);
	assert_null(f);
	assert_int_equal(pv_proto_frame(big, 0, 299, &f, &fl), -EINVAL);
}

/* Every split point of a three-message stream, and byte-at-a-time, yields the same messages. */
static void test_decoder_every_split(void **st)
{
	(void)st;
	const char *msgs[] = {"{\"op\":\"gc\",\"id\":1}", "{\"id\":1,\"status\":200}",
			      "{\"op\":\"graph\",\"generation\":3,\"links\":[]}"};
	char *stream = NULL;
	size_t len = 0;
	for (int i = 0; i < 3; i++)
		append(&stream, &len, msgs[i]);

	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b += (a % 5) + 1) {
			struct pv_proto_decoder d;
			pv_proto_decoder_init(&d, 1024);
			size_t cuts[] = {0, a, b, len};
			int got = 0;
			for (int c = 0; c < 3; c++) {
				assert_int_equal(pv_proto_decoder_feed(&d, stream + cuts[c],
								       cuts[c + 1] - cuts[c]),
						 0);
				char *p;
				size_t pl;
				int r;
				while ((r = pv_proto_decoder_next(&d, &p, &pl)) == 1) {
					assert_true(got < 3);
					assert_int_equal(pl, strlen(msgs[got]));
					assert_string_equal(p, msgs[got]);
					free(p);
					got++;
				}
				assert_int_equal(r, 0);
			}
			assert_int_equal(got, 3);
			assert_int_equal(d.len, 0);
			pv_proto_decoder_free(&d);
		}
	}
	/* one byte at a time */
	struct pv_proto_decoder d;
	pv_proto_decoder_init(&d, 1024);
	int got = 0;
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(pv_proto_decoder_feed(&d, stream + i, 1), 0);
		char *p;
		size_t pl;
		while (pv_proto_decoder_next(&d, &p, &pl) == 1) {
			assert_string_equal(p, msgs[got++]);
			free(p);
		}
	}
	assert_int_equal(got, 3);
	pv_proto_decoder_free(&d);
	free(stream);
}

static void test_decoder_rejects(void **st)
{
	(void)st;
	struct pv_proto_decoder d;
	char *p;
	size_t pl;
	/* oversize: refused on the header alone, before any payload byte */
	unsigned char hdr[4] = {0, 0, 4, 1}; /* 1025 */
	pv_proto_decoder_init(&d, 1024);
	assert_int_equal(pv_proto_decoder_feed(&d, hdr, 3), 0);
	assert_int_equal(pv_proto_decoder_feed(&d, hdr + 3, 1), -EMSGSIZE);
	assert_true(d.broken);
	assert_true(pv_proto_decoder_next(&d, &p, &pl) < 0);
	assert_true(pv_proto_decoder_feed(&d, "x", 1) < 0); /* stays broken */
	pv_proto_decoder_free(&d);

	/* exactly max is fine */
	pv_proto_decoder_init(&d, 4);
	assert_int_equal(pv_proto_decoder_feed(&d, "\0\0\0\4{}  ", 8), 0);
	assert_int_equal(pv_proto_decoder_next(&d, &p, &pl), 1);
	assert_string_equal(p, "{}  ");
	free(p);
	pv_proto_decoder_free(&d);

	/* zero length */
	pv_proto_decoder_init(&d, 1024);
	assert_int_equal(pv_proto_decoder_feed(&d, "\0\0\0\0", 4), -EBADMSG);
	assert_true(pv_proto_decoder_next(&d, &p, &pl) < 0);
	pv_proto_decoder_free(&d);

	/* a bad header behind a good message is found when it arrives */
	pv_proto_decoder_init(&d, 16);
	assert_int_equal(pv_proto_decoder_feed(&d, "\0\0\0\2{}\xff\xff\xff\xff", 10), -EMSGSIZE);
	pv_proto_decoder_free(&d);
}

static int parse(const char *json, struct pv_msg *m, struct pv_error *err)
{
	return pv_msg_parse(json, strlen(json), m, err);
}

static void expect_reject(const char *json, const char *msg)
{
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(parse(json, &m, &err), -EINVAL);
	if (!strstr(pv_error_msg(&err), msg))
		fail_msg("%s: got \"%s\", want \"%s\"", json, pv_error_msg(&err), msg);
	assert_null(m.args);
	assert_null(m.priv);
	pv_error_clear(&err);
	pv_msg_free(&m);
}

static void expect_accept(const char *json)
{
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	if (parse(json, &m, &err))
		fail_msg("%s: rejected: %s", json, pv_error_msg(&err));
	pv_msg_free(&m);
}

static void test_parse_garbage_and_kinds(void **st)
{
	(void)st;
	expect_reject("{\"op\":", "not valid JSON");
	expect_reject("[1]", "not a JSON object");
	expect_reject("\"x\"", "not a JSON object");
	expect_reject("{}", "neither a request");
	expect_reject("{\"op\":5,\"id\":1}", "op: not a string");
	expect_reject("{\"op\":\"gc\",\"id\":-1}", "id: not a non-negative integer");
	expect_reject("{\"op\":\"gc\",\"id\":1.5}", "id: not a non-negative integer");
	expect_reject("{\"status\":200}", "id: missing");
	expect_reject("{\"id\":1,\"status\":\"200\"}", "status");
	expect_reject("{\"id\":1,\"status\":404}", "error: missing");
	expect_reject("{\"op\":\"news\"}", "event: op \"news\": unknown");
	expect_reject("{\"op\":\"graph\",\"links\":[]}", "generation: missing");
	expect_reject("{\"op\":\"graph\",\"generation\":1,\"links\":{}}", "links: not an array");

	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	/* unknown op: the id is kept so the engine can answer it; the message says unknown op */
	assert_int_equal(parse("{\"op\":\"frobnicate\",\"id\":77}", &m, &err), -EINVAL);
	assert_int_equal(m.id, 77);
	assert_non_null(strstr(pv_error_msg(&err), "op \"frobnicate\": unknown"));
	pv_error_clear(&err);
	pv_msg_free(&m);
	assert_false(pv_msg_op_known("frobnicate"));
	assert_true(pv_msg_op_known("step-put"));
	assert_false(pv_msg_op_known(NULL));
}

static void test_parse_requests_table(void **st)
{
	(void)st;
	/* every op accepts its documented args */
	const char *good[] = {
	    "{\"op\":\"whois\",\"id\":1,\"args\":{\"pid\":123}}",
	    "{\"op\":\"containers-list\",\"id\":2}",
	    "{\"op\":\"groups-list\",\"id\":2,\"args\":{}}",
	    "{\"op\":\"objects-list\",\"id\":2,\"args\":null}",
	    "{\"op\":\"steps-list\",\"id\":2}",
	    "{\"op\":\"buildinfo\",\"id\":2}",
	    "{\"op\":\"config\",\"id\":2}",
	    "{\"op\":\"config2\",\"id\":2}",
	    "{\"op\":\"daemons-list\",\"id\":2}",
	    "{\"op\":\"graph\",\"id\":2}",
	    "{\"op\":\"subscribe-graph\",\"id\":2}",
	    "{\"op\":\"gc\",\"id\":2}",
	    "{\"op\":\"container-action\",\"id\":3,\"args\":{\"name\":\"a\",\"action\":\"stop\"}}",
	    "{\"op\":\"daemon-action\",\"id\":3,\"args\":{\"name\":\"a\",\"action\":\"start\"}}",
	    "{\"op\":\"signal\",\"id\":3,\"args\":{\"container\":\"a\",\"type\":\"ready\"}}",
	    "{\"op\":\"signal\",\"id\":3,\"args\":{\"container\":\"a\",\"type\":\"ready\","
	    "\"payload\":\"x\"}}",
	    "{\"op\":\"command\",\"id\":3,\"args\":{\"op\":\"REBOOT_DEVICE\"}}",
	    "{\"op\":\"command\",\"id\":3,\"args\":{\"op\":\"RUN_GC\",\"payload\":\"\"}}",
	    "{\"op\":\"step-get\",\"id\":3,\"args\":{\"rev\":\"locals/a\"}}",
	    "{\"op\":\"step-put\",\"id\":3,\"args\":{\"rev\":\"locals/a\",\"state\":\"{}\"}}",
	    "{\"op\":\"step-progress\",\"id\":3,\"args\":{\"rev\":\"1\"}}",
	    "{\"op\":\"step-commitmsg\",\"id\":3,\"args\":{\"rev\":\"1\",\"msg\":\"m\"}}",
	    "{\"op\":\"meta-list\",\"id\":3,\"args\":{\"kind\":\"user\"}}",
	    "{\"op\":\"meta-list\",\"id\":3,\"args\":{\"kind\":\"device\",\"container\":\"c\"}}",
	    "{\"op\":\"meta-put\",\"id\":3,\"args\":{\"kind\":\"user\",\"key\":\"k\","
	    "\"value\":\"v\"}}",
	    "{\"op\":\"meta-delete\",\"id\":3,\"args\":{\"kind\":\"device\",\"key\":\"k\"}}",
	    "{\"op\":\"object-installed\",\"id\":3,\"args\":{\"sha\":\"ab\",\"path\":\"/p\"}}",
	    "{\"op\":\"link-status\",\"id\":3,\"args\":{\"links\":[]}}",
	    "{\"op\":\"link-status\",\"id\":3,\"args\":{\"links\":[{\"consumer\":\"c\",\"name\":"
	    "\"n\",\"target\":null,\"state\":\"up\"}]}}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		expect_accept(good[i]);

	expect_reject("{\"op\":\"whois\",\"id\":1}", "request \"whois\": args.pid: missing");
	expect_reject("{\"op\":\"whois\",\"id\":1,\"args\":{\"pid\":\"1\"}}",
		      "request \"whois\": args.pid: not integer");
	expect_reject("{\"op\":\"whois\",\"id\":1,\"args\":[1]}", "args: not an object");
	expect_reject("{\"op\":\"whois\",\"id\":1,\"args\":{\"pid\":1e300}}",
		      "args.pid: not integer");
	expect_reject("{\"op\":\"whois\",\"id\":1,\"args\":{\"pid\":-1e999}}",
		      "args.pid: not integer");
	expect_reject("{\"id\":1,\"status\":1e999}", "status");
	expect_reject("{\"op\":\"graph\",\"generation\":1e999,\"links\":[]}", "generation");
	expect_reject("{\"op\":\"container-action\",\"id\":1,\"args\":{\"name\":\"a\"}}",
		      "request \"container-action\": args.action: missing");
	expect_reject("{\"op\":\"signal\",\"id\":1,\"args\":{\"container\":\"a\",\"type\":\"r\","
		      "\"payload\":5}}",
		      "args.payload: not string or null");
	expect_reject("{\"op\":\"step-put\",\"id\":1,\"args\":{\"rev\":\"1\",\"state\":{}}}",
		      "args.state: not string");
	expect_reject("{\"op\":\"meta-list\",\"id\":1,\"args\":{\"kind\":\"other\"}}",
		      "args.kind: \"other\" is not allowed");
	expect_reject("{\"op\":\"meta-put\",\"id\":1,\"args\":{\"kind\":\"user\",\"key\":\"k\"}}",
		      "args.value: missing");
	expect_reject("{\"op\":\"link-status\",\"id\":1,\"args\":{\"links\":[{\"consumer\":\"c\","
		      "\"state\":\"up\"}]}}",
		      "args.links[0].name: missing");
	expect_reject("{\"op\":\"link-status\",\"id\":1,\"args\":{\"links\":[{\"consumer\":\"c\","
		      "\"name\":\"n\",\"state\":\"wobbly\"}]}}",
		      "args.links[0].state: \"wobbly\"");
	expect_reject("{\"op\":\"link-status\",\"id\":1,\"args\":{\"links\":[7]}}",
		      "args.links[0]: not an object");
	expect_reject("{\"op\":\"link-status\",\"id\":1,\"args\":{\"links\":[{\"consumer\":\"c\","
		      "\"name\":\"n\",\"state\":\"up\",\"target\":1}]}}",
		      "args.links[0].target: not a string or null");
}

static void test_typed_args(void **st)
{
	(void)st;
	char *args = pv_msg_args_str(2, "name", "nginx", "action", "stop");
	assert_string_equal(args, "{\"name\":\"nginx\",\"action\":\"stop\"}");
	char *req = pv_msg_request("container-action", 9, args);
	free(args);
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(parse(req, &m, &err), 0);
	free(req);
	assert_int_equal(m.kind, PV_MSG_REQUEST);
	assert_string_equal(m.op, "container-action");
	assert_int_equal(m.id, 9);
	assert_string_equal(m.args, "{\"name\":\"nginx\",\"action\":\"stop\"}");
	const char *s;
	assert_int_equal(pv_msg_arg_str(&m, "name", &s), 0);
	assert_string_equal(s, "nginx");
	assert_int_equal(pv_msg_arg_str(&m, "absent", &s), -ENOENT);
	int64_t n;
	assert_int_equal(pv_msg_arg_int(&m, "name", &n), -EINVAL);
	pv_msg_free(&m);

	assert_int_equal(parse("{\"op\":\"whois\",\"id\":4503599627370496,\"args\":{\"pid\":4242,"
			       "\"x\":true,\"o\":{\"a\":[1]},\"z\":null}}",
			       &m, &err),
			 0);
	assert_int_equal(m.id, 4503599627370496ULL);
	assert_int_equal(pv_msg_arg_int(&m, "pid", &n), 0);
	assert_int_equal(n, 4242);
	bool b = false;
	assert_int_equal(pv_msg_arg_bool(&m, "x", &b), 0);
	assert_true(b);
	assert_int_equal(pv_msg_arg_bool(&m, "pid", &b), -EINVAL);
	assert_int_equal(pv_msg_arg_str(&m, "z", &s), -ENOENT); /* null = absent */
	char *j;
	assert_int_equal(pv_msg_arg_json(&m, "o", &j), 0);
	assert_string_equal(j, "{\"a\":[1]}");
	free(j);
	pv_msg_free(&m);
	pv_msg_free(&m); /* idempotent */
}

static void test_replies(void **st)
{
	(void)st;
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	char *r = pv_msg_reply(5, 200, "[1,{\"a\":\"b\"}]");
	assert_int_equal(parse(r, &m, &err), 0);
	free(r);
	assert_int_equal(m.kind, PV_MSG_REPLY);
	assert_int_equal(m.id, 5);
	assert_int_equal(m.status, 200);
	assert_string_equal(m.body, "[1,{\"a\":\"b\"}]");
	assert_null(m.error);
	pv_msg_free(&m);

	assert_null(pv_msg_reply(5, 200, "not json"));

	r = pv_msg_reply_error(6, 404, "no container \"x\"");
	assert_int_equal(parse(r, &m, &err), 0);
	free(r);
	assert_int_equal(m.status, 404);
	assert_string_equal(m.error, "no container \"x\"");
	assert_null(m.body);
	pv_msg_free(&m);

	r = pv_msg_reply_text(7, 200, "line1\nline2\n", "text/plain");
	assert_int_equal(parse(r, &m, &err), 0);
	free(r);
	assert_string_equal(m.content_type, "text/plain");
	assert_string_equal(m.body, "line1\nline2\n"); /* decoded text, not JSON */
	pv_msg_free(&m);

	r = pv_msg_http_error_body("bad \"thing\"");
	assert_string_equal(r, "{\"Error\":\"bad \\\"thing\\\"\"}");
	free(r);

	const char *roles[] = {"mgmt"};
	r = pv_msg_whois_body("nginx", roles, 1);
	assert_string_equal(r, "{\"container\":\"nginx\",\"roles\":[\"mgmt\"]}");
	free(r);
	r = pv_msg_whois_body(NULL, NULL, 0);
	assert_string_equal(r, "{\"container\":null,\"roles\":[]}");
	free(r);
}

static void test_graph_event_and_link_status(void **st)
{
	(void)st;
	struct pv_link links[2] = {0};
	links[0].consumer = "c";
	links[0].name = "n";
	links[0].provider = "p";
	links[0].type = "unix";
	links[0].role = "any";
	links[0].interface = "unix";
	links[0].socket = "/s";
	links[0].consumer_pid = 10;
	links[1] = links[0];
	links[1].target = "/t";
	links[1].mode = "direct";
	links[1].state = PV_LINK_ERROR;
	links[1].error = "refused";
	struct pv_graph g = {0, links, 2};
	char *ev = pv_msg_graph_event(12, &g);
	assert_non_null(ev);
	assert_null(strstr(ev, "refused")); /* events carry no status */
	struct pv_msg m;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(parse(ev, &m, &err), 0);
	free(ev);
	assert_int_equal(m.kind, PV_MSG_EVENT);
	assert_string_equal(m.op, "graph");
	struct pv_graph out;
	assert_int_equal(pv_msg_parse_graph_event(&m, &out, &err), 0);
	assert_int_equal(out.generation, 12);
	assert_int_equal(out.n_links, 2);
	assert_true(pv_link_equal(&out.links[0], &links[0]));
	assert_true(pv_link_equal(&out.links[1], &links[1]));
	pv_graph_free(&out);
	pv_msg_free(&m);

	/* a request is not a graph event */
	assert_int_equal(parse("{\"op\":\"graph\",\"id\":1}", &m, &err), 0);
	assert_int_equal(pv_msg_parse_graph_event(&m, &out, &err), -EINVAL);
	pv_error_clear(&err);
	pv_msg_free(&m);
	/* an event with a malformed link */
	assert_int_equal(
	    parse("{\"op\":\"graph\",\"generation\":1,\"links\":[{\"name\":1}]}", &m, &err), 0);
	assert_int_equal(pv_msg_parse_graph_event(&m, &out, &err), -EINVAL);
	assert_non_null(strstr(pv_error_msg(&err), "links[0]"));
	pv_error_clear(&err);
	pv_msg_free(&m);

	char *ls = pv_msg_link_status(44, links, 2);
	assert_non_null(ls);
	assert_int_equal(parse(ls, &m, &err), 0);
	free(ls);
	assert_int_equal(m.kind, PV_MSG_REQUEST);
	assert_string_equal(m.op, "link-status");
	assert_int_equal(m.id, 44);
	assert_int_equal(pv_msg_parse_link_status(&m, &out, &err), 0);
	assert_int_equal(out.n_links, 2);
	assert_string_equal(out.links[0].consumer, "c");
	assert_null(out.links[0].target);
	assert_int_equal(out.links[0].state, PV_LINK_UNKNOWN);
	assert_string_equal(out.links[1].target, "/t");
	assert_int_equal(out.links[1].state, PV_LINK_ERROR);
	assert_string_equal(out.links[1].error, "refused");
	assert_true(pv_link_same_key(&out.links[1], &links[1]));
	pv_graph_free(&out);
	pv_msg_free(&m);

	ls = pv_msg_link_status(45, NULL, 0);
	assert_string_equal(ls, "{\"op\":\"link-status\",\"id\":45,\"args\":{\"links\":[]}}");
	free(ls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_header),
	    cmocka_unit_test(test_decoder_every_split),
	    cmocka_unit_test(test_decoder_rejects),
	    cmocka_unit_test(test_parse_garbage_and_kinds),
	    cmocka_unit_test(test_parse_requests_table),
	    cmocka_unit_test(test_typed_args),
	    cmocka_unit_test(test_replies),
	    cmocka_unit_test(test_graph_event_and_link_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
