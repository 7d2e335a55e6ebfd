/* test_graph.c: building the xconnect graph from states (defaults, several providers, self,
 * optional missing, pids), emit/parse round trip and upstream's form, parse errors, and diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/fileio.h"
#include "pvstate/graph.h"

/* ---- a small state builder (the test owns every string; pv_state_free is not used) ---- */

#define MAXC 4
#define MAXR 4

struct tstate {
	struct pv_state s;
	struct pv_container c[MAXC];
	struct pv_service_req r[MAXC][MAXR];
	struct pv_service_export e[MAXC][MAXR];
};

static struct pv_container *add_container(struct tstate *t, const char *name)
{
	struct pv_container *c = &t->c[t->s.n_containers];
	c->name = (char *)name;
	c->requires = t->r[t->s.n_containers];
	c->exports = t->e[t->s.n_containers];
	t->s.containers = t->c;
	t->s.n_containers++;
	return c;
}

static void add_req(struct pv_container *c, const char *name, const char *type, const char *role,
		    const char *iface, const char *target, const char *mode, bool optional)
{
	struct pv_service_req *r = &c->requires[c->n_requires++];
	r->name = (char *)name;
	r->type = (char *)type;
	r->role = (char *)role;
	r->interface = (char *)iface;
	r->target = (char *)target;
	r->mode = (char *)mode;
	r->optional = optional;
}

static void add_export(struct pv_container *c, const char *name, const char *type,
		       const char *socket, const char *mode)
{
	struct pv_service_export *e = &c->exports[c->n_exports++];
	e->name = (char *)name;
	e->type = (char *)type;
	e->socket = (char *)socket;
	e->mode = (char *)mode;
	c->has_services_json = true;
}

static void assert_str_or_null(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else
		assert_string_equal(got, want);
}

/* ---- build ---- */

static void test_build_defaults_and_pids(void **st)
{
	(void)st;
	struct tstate t = {0};
	struct pv_container *cl = add_container(&t, "client");
	struct pv_container *sv = add_container(&t, "server");
	add_req(cl, "raw-unix", "unix", NULL, NULL, NULL, NULL, false);
	add_export(sv, "raw-unix", "unix-provider-type", "/run/raw.sock", NULL);
	struct pv_pid pids[] = {{"server", 42}};
	struct pv_graph g;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_graph_build(&t.s, pids, 1, &g, &err), 0);
	assert_int_equal(g.n_links, 1);
	const struct pv_link *l = &g.links[0];
	/* type is the provider's; interface defaults to that type; role "any"; target null */
	assert_string_equal(l->type, "unix-provider-type");
	assert_string_equal(l->interface, "unix-provider-type");
	assert_string_equal(l->role, "any");
	assert_null(l->target);
	assert_null(l->mode);
	assert_string_equal(l->name, "raw-unix");
	assert_string_equal(l->consumer, "client");
	assert_int_equal(l->consumer_pid, 0); /* not in the pid list */
	assert_string_equal(l->provider, "server");
	assert_int_equal(l->provider_pid, 42);
	assert_string_equal(l->socket, "/run/raw.sock");

	char *json = pv_graph_emit(&g, false);
	assert_string_equal(json, "[{\"consumer\":\"client\",\"consumer_pid\":0,\"provider\":"
				  "\"server\",\"provider_pid\":42,\"name\":\"raw-unix\",\"type\":"
				  "\"unix-provider-type\",\"role\":\"any\",\"interface\":\"unix-"
				  "provider-type\",\"target\":null,\"socket\":\"/run/raw.sock\"}]");
	free(json);
	pv_graph_free(&g);
	assert_int_equal(g.n_links, 0);
}

static void test_build_explicit_fields_and_mode(void **st)
{
	(void)st;
	struct tstate t = {0};
	struct pv_container *cl = add_container(&t, "cl");
	struct pv_container *sv = add_container(&t, "sv");
	add_req(cl, "bus", "dbus", "admin", "org.example.If", "/run/dbus.sock", NULL, false);
	add_req(cl, "gpu", "drm", NULL, NULL, NULL, "direct", false);
	add_export(sv, "bus", "dbus", "/run/bus", "mediated");
	add_export(sv, "gpu", "drm", "/dev/dri/card0", "mediated");
	struct pv_graph g;
	assert_int_equal(pv_graph_build(&t.s, NULL, 0, &g, NULL), 0);
	assert_int_equal(g.n_links, 2);
	assert_string_equal(g.links[0].role, "admin");
	assert_string_equal(g.links[0].interface, "org.example.If");
	assert_string_equal(g.links[0].target, "/run/dbus.sock");
	assert_string_equal(g.links[0].mode, "mediated"); /* export's mode when req has none */
	assert_string_equal(g.links[1].mode, "direct");	  /* requirement's mode wins */
	char *json = pv_graph_emit(&g, false);
	assert_non_null(strstr(json, "\"mode\":\"direct\""));
	free(json);
	pv_graph_free(&g);
}

static void test_build_several_providers_self_optional(void **st)
{
	(void)st;
	struct tstate t = {0};
	struct pv_container *a = add_container(&t, "a");
	struct pv_container *b = add_container(&t, "b");
	struct pv_container *c = add_container(&t, "c");
	/* a requires "log" (exported by b and c) and, optionally, "missing" and "self" */
	add_req(a, "log", "unix", NULL, NULL, NULL, NULL, false);
	add_req(a, "missing", "unix", NULL, NULL, NULL, NULL, true);
	add_req(a, "self", "rest", NULL, NULL, "/t", NULL, true);
	add_export(a, "self", "rest", "/run/self.sock", NULL);
	add_export(c, "log", "unix", "/run/c.sock", NULL);
	add_export(b, "log", "unix", "/run/b.sock", NULL);
	/* c requires a name nobody exports (required: no link; the validator rejects it) */
	add_req(c, "nobody", "unix", NULL, NULL, NULL, NULL, false);
	struct pv_pid pids[] = {{"c", 3}, {"a", 1}, {"b", 2}};
	struct pv_graph g;
	assert_int_equal(pv_graph_build(&t.s, pids, 3, &g, NULL), 0);
	assert_int_equal(g.n_links, 3);
	/* state order of providers: b before c */
	assert_string_equal(g.links[0].provider, "b");
	assert_int_equal(g.links[0].provider_pid, 2);
	assert_string_equal(g.links[0].socket, "/run/b.sock");
	assert_string_equal(g.links[1].provider, "c");
	assert_int_equal(g.links[1].provider_pid, 3);
	assert_string_equal(g.links[2].name, "self");
	assert_string_equal(g.links[2].consumer, "a");
	assert_string_equal(g.links[2].provider, "a");
	assert_int_equal(g.links[2].consumer_pid, 1);
	assert_int_equal(g.links[2].provider_pid, 1);
	assert_string_equal(g.links[2].target, "/t");

	/* deterministic: building again gives byte-identical JSON */
	struct pv_graph g2;
	assert_int_equal(pv_graph_build(&t.s, pids, 3, &g2, NULL), 0);
	char *j1 = pv_graph_emit(&g, true), *j2 = pv_graph_emit(&g2, true);
	assert_string_equal(j1, j2);
	free(j1);
	free(j2);
	pv_graph_free(&g);
	pv_graph_free(&g2);

	/* empty state: empty array */
	struct tstate e = {0};
	assert_int_equal(pv_graph_build(&e.s, NULL, 0, &g, NULL), 0);
	char *j = pv_graph_emit(&g, false);
	assert_string_equal(j, "[]");
	free(j);
	pv_graph_free(&g);
}

static void test_build_hosted_system_bus(void **st)
{
	(void)st;
	struct tstate t = {0};
	struct pv_container *a = add_container(&t, "a");
	struct pv_container *b = add_container(&t, "b");
	add_req(a, "system-bus", "dbus", "admin", NULL, "/run/dbus/system_bus_socket", NULL, false);
	add_req(b, "system-bus", "dbus", NULL, NULL, NULL, NULL, true);
	struct pv_pid pids[] = {{"a", 11}};
	struct pv_graph g;
	/* disabled: no exporter, no link */
	assert_int_equal(pv_graph_build(&t.s, pids, 1, &g, NULL), 0);
	assert_int_equal(g.n_links, 0);
	pv_graph_free(&g);
	struct pv_graph_opts o = {.hosted_bus_socket = "/run/pantavisor/dbus/socket"};
	assert_int_equal(pv_graph_build_opts(&t.s, pids, 1, &o, &g, NULL), 0);
	assert_int_equal(g.n_links, 2);
	assert_string_equal(g.links[0].provider, PV_GRAPH_PROVIDER_HOSTED);
	assert_string_equal(g.links[0].provider, "_pv_");
	assert_int_equal(g.links[0].provider_pid, 0);
	assert_int_equal(g.links[0].consumer_pid, 11);
	assert_string_equal(g.links[0].type, "dbus");
	assert_string_equal(g.links[0].interface, "dbus");
	assert_string_equal(g.links[0].role, "admin");
	assert_string_equal(g.links[0].socket, "/run/pantavisor/dbus/socket");
	assert_string_equal(g.links[0].target, "/run/dbus/system_bus_socket");
	assert_string_equal(g.links[1].consumer, "b");
	pv_graph_free(&g);
	/* a container exporting the name is used instead of the hosted bus */
	add_export(b, "system-bus", "dbus", "/run/own-bus", NULL);
	assert_int_equal(pv_graph_build_opts(&t.s, pids, 1, &o, &g, NULL), 0);
	assert_int_equal(g.n_links, 2);
	assert_string_equal(g.links[0].provider, "b");
	assert_string_equal(g.links[1].provider, "b");
	pv_graph_free(&g);
}

static void test_build_from_fixture(void **st)
{
	(void)st;
	char *text = NULL;
	size_t len = 0;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_file_read_all(PV_FIXTURES "/states/valid/two-containers.json", 1 << 22,
					  &text, &len, &err),
			 0);
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	struct pv_state s;
	int r = pv_state_parse(text, len, &o, &s, &err);
	free(text);
	if (r) /* the parser belongs to another module; name what failed */
		fail_msg("pv_state_parse(two-containers.json): %s", pv_error_msg(&err));
	struct pv_graph g;
	struct pv_pid pids[] = {{"client", 100}, {"server", 200}};
	assert_int_equal(pv_graph_build(&s, pids, 2, &g, &err), 0);
	assert_int_equal(g.n_links, 1);
	assert_string_equal(g.links[0].consumer, "client");
	assert_string_equal(g.links[0].provider, "server");
	assert_string_equal(g.links[0].target, "/run/x.sock");
	assert_string_equal(g.links[0].socket, "/run/raw.sock");
	assert_string_equal(g.links[0].type, "unix");
	assert_int_equal(g.links[0].consumer_pid, 100);
	assert_int_equal(g.links[0].provider_pid, 200);
	pv_graph_free(&g);
	pv_state_free(&s);
}

static int parse_fixture(const char *name, struct pv_state *s)
{
	char path[512], *text = NULL;
	size_t len = 0;
	struct pv_error err = PV_ERROR_INIT;
	snprintf(path, sizeof(path), "%s/states/valid/%s", PV_FIXTURES, name);
	assert_int_equal(pv_file_read_all(path, 1 << 24, &text, &len, &err), 0);
	struct pv_state_opts o;
	pv_state_opts_default(&o);
	o.appengine = strstr(name, "appengine") != NULL;
	int r = pv_state_parse(text, len, &o, s, &err);
	free(text);
	if (r)
		print_message("%s: %s\n", name, pv_error_msg(&err));
	pv_error_clear(&err);
	return r;
}

static bool exports_name(const struct pv_container *c, const char *name)
{
	for (size_t i = 0; i < c->n_exports; i++)
		if (!strcmp(c->exports[i].name, name))
			return true;
	return false;
}

/* Every valid fixture: each link joins a real requirement to a real export, every requirement
 * with an exporter has one link per exporter, and emit -> parse -> emit is a fixed point. */
static void test_build_all_valid_fixtures(void **st)
{
	(void)st;
	DIR *d = opendir(PV_FIXTURES "/states/valid");
	assert_non_null(d);
	struct dirent *de;
	size_t n_files = 0, n_links = 0;
	while ((de = readdir(d))) {
		if (!strstr(de->d_name, ".json"))
			continue;
		struct pv_state s;
		if (parse_fixture(de->d_name, &s))
			fail_msg("valid fixture %s does not parse", de->d_name);
		n_files++;
		struct pv_graph g;
		assert_int_equal(pv_graph_build(&s, NULL, 0, &g, NULL), 0);
		size_t expect = 0;
		for (size_t c = 0; c < s.n_containers; c++)
			for (size_t r = 0; r < s.containers[c].n_requires; r++)
				for (size_t p = 0; p < s.n_containers; p++)
					expect += exports_name(&s.containers[p],
							       s.containers[c].requires[r].name);
		assert_int_equal(g.n_links, expect);
		for (size_t i = 0; i < g.n_links; i++) {
			const struct pv_container *prov =
			    pv_state_find_container(&s, g.links[i].provider);
			assert_non_null(prov);
			assert_true(exports_name(prov, g.links[i].name));
			assert_non_null(pv_state_find_container(&s, g.links[i].consumer));
		}
		char *j = pv_graph_emit(&g, false);
		struct pv_graph p;
		assert_int_equal(pv_graph_parse(j, strlen(j), &p, NULL), 0);
		char *j2 = pv_graph_emit(&p, false);
		assert_string_equal(j, j2);
		free(j);
		free(j2);
		n_links += g.n_links;
		pv_graph_free(&p);
		pv_graph_free(&g);
		pv_state_free(&s);
	}
	closedir(d);
	assert_true(n_files > 5);
	assert_true(n_links > 0);
}

static void test_build_fixture_optional_missing(void **st)
{
	(void)st;
	struct pv_state s;
	if (parse_fixture("optional-service-missing.json", &s))
		fail_msg("optional-service-missing.json does not parse");
	struct pv_graph g;
	assert_int_equal(pv_graph_build(&s, NULL, 0, &g, NULL), 0);
	/* "absent" is optional and exported by nobody: no link for it */
	assert_int_equal(g.n_links, 1);
	assert_string_equal(g.links[0].name, "raw-unix");
	pv_graph_free(&g);
	pv_state_free(&s);
}

/* ---- emit / parse ---- */

static void assert_links_equal(const struct pv_link *a, const struct pv_link *b)
{
	assert_true(pv_link_equal(a, b));
	assert_int_equal(a->state, b->state);
	assert_str_or_null(a->error, b->error);
}

static void test_emit_parse_round_trip(void **st)
{
	(void)st;
	struct tstate t = {0};
	struct pv_container *a = add_container(&t, "a");
	struct pv_container *b = add_container(&t, "b");
	add_req(a, "x", "unix", "r", "i", NULL, "direct", false);
	add_req(a, "y", "rest", NULL, NULL, "/tgt \"quoted\"", NULL, true);
	add_export(b, "x", "unix", "/s1", NULL);
	add_export(b, "y", "rest", "/s2", NULL);
	struct pv_pid pids[] = {{"a", 7}, {"b", -1}};
	struct pv_graph g;
	assert_int_equal(pv_graph_build(&t.s, pids, 2, &g, NULL), 0);
	g.links[0].state = PV_LINK_UP;
	g.links[1].state = PV_LINK_ERROR;
	g.links[1].error = strdup("connect: refused");

	for (int ws = 0; ws < 2; ws++) {
		char *json = pv_graph_emit(&g, ws);
		struct pv_graph p;
		struct pv_error err = PV_ERROR_INIT;
		assert_int_equal(pv_graph_parse(json, strlen(json), &p, &err), 0);
		assert_int_equal(p.n_links, g.n_links);
		for (size_t i = 0; i < g.n_links; i++) {
			assert_true(pv_link_equal(&p.links[i], &g.links[i]));
			if (ws)
				assert_links_equal(&p.links[i], &g.links[i]);
			else
				assert_int_equal(p.links[i].state, PV_LINK_UNKNOWN);
		}
		assert_int_equal(p.links[1].provider_pid, -1);
		char *again = pv_graph_emit(&p, ws);
		assert_string_equal(again, json);
		free(again);
		free(json);
		pv_graph_free(&p);
	}
	/* status omitted for a link nobody reported on */
	g.links[0].state = PV_LINK_UNKNOWN;
	char *json = pv_graph_emit(&g, true);
	assert_non_null(strstr(json, "\"state\":\"error\",\"error\":\"connect: refused\""));
	assert_null(strstr(json, "\"state\":\"unknown\""));
	free(json);

	/* deep copy survives the graph */
	struct pv_link copy;
	assert_int_equal(pv_link_copy(&copy, &g.links[1]), 0);
	pv_graph_free(&g);
	assert_string_equal(copy.error, "connect: refused");
	assert_string_equal(copy.target, "/tgt \"quoted\"");
	pv_link_free(&copy);
}

static void test_parse_upstream_form_defaults(void **st)
{
	(void)st;
	/* the minimum: upstream's members with optional ones left out, plus unknown "uid" */
	const char *json =
	    "[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"dbus\","
	    "\"uid\":1000},"
	    "{\"consumer\":\"c\",\"consumer_pid\":5,\"provider\":\"_pv_\",\"provider_"
	    "pid\":0,\"name\":\"system-bus\",\"type\":\"dbus\",\"role\":\"any\","
	    "\"interface\":\"dbus\",\"target\":null,\"socket\":\"/run/bus\"}]";
	struct pv_graph g;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_graph_parse(json, strlen(json), &g, &err), 0);
	assert_int_equal(g.n_links, 2);
	assert_string_equal(g.links[0].role, "any");
	assert_string_equal(g.links[0].interface, "dbus");
	assert_null(g.links[0].target);
	assert_null(g.links[0].socket);
	assert_null(g.links[0].mode);
	assert_int_equal(g.links[0].consumer_pid, 0);
	assert_int_equal(g.links[1].consumer_pid, 5);
	assert_string_equal(g.links[1].provider, "_pv_");
	pv_graph_free(&g);
}

static void expect_parse_error(const char *json, const char *msg)
{
	struct pv_graph g;
	struct pv_error err = PV_ERROR_INIT;
	assert_int_equal(pv_graph_parse(json, strlen(json), &g, &err), -EINVAL);
	assert_int_equal(g.n_links, 0);
	assert_null(g.links);
	if (!strstr(pv_error_msg(&err), msg))
		fail_msg("parse %s: got \"%s\", want \"%s\"", json, pv_error_msg(&err), msg);
	pv_error_clear(&err);
}

static void test_parse_errors(void **st)
{
	(void)st;
	const char *ok = "{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\"}";
	char buf[512];
	expect_parse_error("{}", "not a JSON array");
	expect_parse_error("[", "not valid JSON");
	snprintf(buf, sizeof(buf), "[%s,5]", ok);
	expect_parse_error(buf, "links[1]: not an object");
	expect_parse_error("[{\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\"}]",
			   "links[0].consumer: missing");
	snprintf(buf, sizeof(buf),
		 "[%s,{\"consumer\":1,\"name\":\"n\",\"provider\":\"p\","
		 "\"type\":\"t\"}]",
		 ok);
	expect_parse_error(buf, "links[1].consumer: not a string");
	expect_parse_error("[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\","
			   "\"consumer_pid\":\"12\"}]",
			   "links[0].consumer_pid: not an integer");
	/* found by fuzz_graph: a pid beyond int must be refused, not cast */
	expect_parse_error("[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\","
			   "\"consumer_pid\":6666666666666666666666666661}]",
			   "links[0].consumer_pid: not an integer");
	expect_parse_error("[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\","
			   "\"consumer_pid\":-1e999}]",
			   "links[0].consumer_pid: not an integer");
	expect_parse_error("[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\","
			   "\"provider_pid\":1.5}]",
			   "links[0].provider_pid: not an integer");
	expect_parse_error("[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\","
			   "\"target\":[]}]",
			   "links[0].target: not a string");
	expect_parse_error("[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\","
			   "\"state\":\"sideways\"}]",
			   "links[0].state");
	expect_parse_error("[{\"consumer\":\"c\",\"name\":\"n\",\"provider\":\"p\",\"type\":\"t\","
			   "\"role\":true}]",
			   "links[0].role: not a string");
}

/* ---- diff ---- */

static struct pv_link mk(const char *consumer, const char *name, const char *target,
			 const char *provider, int ppid)
{
	struct pv_link l = {0};
	l.consumer = (char *)consumer;
	l.name = (char *)name;
	l.target = (char *)target;
	l.provider = (char *)provider;
	l.provider_pid = ppid;
	l.type = "unix";
	l.role = "any";
	l.interface = "unix";
	l.socket = "/s";
	return l;
}

static void test_diff(void **st)
{
	(void)st;
	struct pv_link old_l[] = {
	    mk("c", "a", NULL, "p", 1), /* unchanged */
	    mk("c", "b", NULL, "p", 1), /* pid changes */
	    mk("c", "gone", NULL, "p", 1),
	    mk("c", "a", "/t1", "p", 1), /* same name, other target: another key */
	    mk("d", "a", NULL, "p", 1),	 /* socket changes */
	};
	struct pv_link new_l[] = {
	    mk("c", "a", NULL, "p", 1),	 mk("c", "b", NULL, "p", 2),   mk("c", "a", "/t1", "p", 1),
	    mk("c", "a", "/t2", "p", 1), /* added: target differs from both */
	    mk("d", "a", NULL, "p", 1),	 mk("c", "new", NULL, "p", 1),
	};
	new_l[4].socket = "/other";
	new_l[0].state = PV_LINK_ERROR; /* status is ignored by the diff */
	new_l[0].error = "x";
	struct pv_graph og = {0, old_l, 5}, ng = {1, new_l, 6};
	struct pv_graph_diff d;
	assert_int_equal(pv_graph_diff(&og, &ng, &d), 0);
	assert_int_equal(d.n_added, 2);
	assert_ptr_equal(d.added[0], &new_l[3]);
	assert_ptr_equal(d.added[1], &new_l[5]);
	assert_int_equal(d.n_removed, 1);
	assert_ptr_equal(d.removed[0], &old_l[2]);
	assert_int_equal(d.n_changed, 2);
	assert_ptr_equal(d.changed_old[0], &old_l[1]);
	assert_ptr_equal(d.changed_new[0], &new_l[1]);
	assert_ptr_equal(d.changed_old[1], &old_l[4]);
	assert_ptr_equal(d.changed_new[1], &new_l[4]);
	pv_graph_diff_free(&d);

	/* every field but the key, one at a time, is a change */
	for (int f = 0; f < 8; f++) {
		struct pv_link x = mk("c", "a", "/t", "p", 1), y = x;
		switch (f) {
		case 0:
			y.type = "rest";
			break;
		case 1:
			y.consumer_pid = 9;
			break;
		case 2:
			y.provider = "q";
			break;
		case 3:
			y.role = NULL;
			break;
		case 4:
			y.interface = "i";
			break;
		case 5:
			y.socket = NULL;
			break;
		case 6:
			y.mode = "direct";
			break;
		case 7:
			y.provider_pid = 0;
			break;
		}
		assert_true(pv_link_same_key(&x, &y));
		assert_false(pv_link_equal(&x, &y));
		struct pv_graph a = {0, &x, 1}, b = {0, &y, 1};
		assert_int_equal(pv_graph_diff(&a, &b, &d), 0);
		assert_int_equal(d.n_changed, 1);
		assert_int_equal(d.n_added + d.n_removed, 0);
		pv_graph_diff_free(&d);
	}
	/* NULL target vs "" are different keys */
	struct pv_link n1 = mk("c", "a", NULL, "p", 1), n2 = mk("c", "a", "", "p", 1);
	assert_false(pv_link_same_key(&n1, &n2));

	/* from nothing: all added; to nothing: all removed */
	assert_int_equal(pv_graph_diff(NULL, &ng, &d), 0);
	assert_int_equal(d.n_added, 6);
	assert_int_equal(d.n_removed + d.n_changed, 0);
	pv_graph_diff_free(&d);
	struct pv_graph empty = {0};
	assert_int_equal(pv_graph_diff(&og, &empty, &d), 0);
	assert_int_equal(d.n_removed, 5);
	assert_int_equal(d.n_added + d.n_changed, 0);
	pv_graph_diff_free(&d);
}

static void test_state_str(void **st)
{
	(void)st;
	assert_string_equal(pv_link_state_str(PV_LINK_UP), "up");
	assert_string_equal(pv_link_state_str(PV_LINK_PENDING), "pending");
	assert_string_equal(pv_link_state_str(PV_LINK_ERROR), "error");
	assert_string_equal(pv_link_state_str(PV_LINK_UNKNOWN), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_build_defaults_and_pids),
	    cmocka_unit_test(test_build_explicit_fields_and_mode),
	    cmocka_unit_test(test_build_several_providers_self_optional),
	    cmocka_unit_test(test_build_hosted_system_bus),
	    cmocka_unit_test(test_build_from_fixture),
	    cmocka_unit_test(test_build_all_valid_fixtures),
	    cmocka_unit_test(test_build_fixture_optional_missing),
	    cmocka_unit_test(test_emit_parse_round_trip),
	    cmocka_unit_test(test_parse_upstream_form_defaults),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_diff),
	    cmocka_unit_test(test_state_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
