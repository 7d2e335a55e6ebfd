/* test_wlfilter.c: pv-xconnect/wlfilter.c on hand-made Wayland wire messages: hidden globals and
 * their global_remove dropped, everything else byte-identical and in order, messages split at
 * every byte boundary across reads, a bind of a hidden name refused, registries forgotten on
 * delete_id, malformed sizes refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../pv-xconnect/wlfilter.c"

struct buf {
	char b[4096];
	size_t n;
};

static void put32(struct buf *b, uint32_t v)
{
	memcpy(b->b + b->n, &v, 4);
	b->n += 4;
}

static void header(struct buf *b, uint32_t obj, uint32_t op, size_t size)
{
	put32(b, obj);
	put32(b, (uint32_t)(size << 16) | op);
}

static void msg_u32(struct buf *b, uint32_t obj, uint32_t op, uint32_t a)
{
	header(b, obj, op, 12);
	put32(b, a);
}

static void global(struct buf *b, uint32_t reg, uint32_t name, const char *iface, uint32_t ver)
{
	size_t sl = strlen(iface) + 1, padded = (sl + 3) & ~(size_t)3;
	header(b, reg, 0, 8 + 4 + 4 + padded + 4);
	put32(b, name);
	put32(b, (uint32_t)sl);
	memset(b->b + b->n, 0, padded);
	memcpy(b->b + b->n, iface, sl);
	b->n += padded;
	put32(b, ver);
}

static const char *HIDE[] = {"zwlr_screencopy_manager_v1", "zwp_input_method_manager_v2"};

/* Feeds in `step`-byte reads; returns the concatenated output (or NULL on an error, *rc set). */
static char *feed_all(struct pvx_wlfilter *f, int dir, const struct buf *in, size_t step,
		      size_t *out_n, int *rc)
{
	char *all = malloc(in->n + 1), *out = malloc(in->n + PVX_WL_MAX_MSG);
	size_t n = 0;
	*rc = 0;
	for (size_t off = 0; off < in->n; off += step) {
		size_t len = in->n - off < step ? in->n - off : step, o = 0;
		*rc = pvx_wlfilter_feed(f, dir, in->b + off, len, out, &o);
		if (*rc < 0)
			break;
		memcpy(all + n, out, o);
		n += o;
	}
	free(out);
	*out_n = n;
	return all;
}

static void test_hidden_globals_dropped_at_every_split(void **state)
{
	struct buf req = {0}, ev = {0}, want = {0};
	msg_u32(&req, 1, 1, 2); /* wl_display.get_registry(new_id 2) */
	global(&ev, 2, 1, "wl_compositor", 6);
	global(&ev, 2, 2, "zwlr_screencopy_manager_v1", 3);
	global(&ev, 2, 3, "wl_shm", 1);
	msg_u32(&ev, 2, 1, 2);	/* global_remove of the hidden one */
	msg_u32(&ev, 2, 1, 3);	/* global_remove of wl_shm */
	msg_u32(&ev, 7, 0, 99); /* some other object's event */
	global(&want, 2, 1, "wl_compositor", 6);
	global(&want, 2, 3, "wl_shm", 1);
	msg_u32(&want, 2, 1, 3);
	msg_u32(&want, 7, 0, 99);
	for (size_t step = 1; step <= ev.n; step++) {
		struct pvx_wlfilter *f = pvx_wlfilter_new(HIDE, 2);
		size_t n;
		int rc;
		char *o = feed_all(f, 0, &req, step, &n, &rc);
		assert_int_equal(rc, 0);
		assert_int_equal(n, req.n); /* requests pass unchanged */
		free(o);
		o = feed_all(f, 1, &ev, step, &n, &rc);
		assert_int_equal(rc, 0);
		assert_int_equal(n, want.n);
		assert_memory_equal(o, want.b, want.n);
		assert_int_equal(pvx_wlfilter_hidden(f), 1);
		free(o);
		pvx_wlfilter_free(f);
	}
}

static void test_bind_of_hidden_name_cuts_off(void **state)
{
	struct pvx_wlfilter *f = pvx_wlfilter_new(HIDE, 2);
	struct buf req = {0}, ev = {0}, bind_ok = {0}, bind_bad = {0};
	msg_u32(&req, 1, 1, 2);
	global(&ev, 2, 5, "zwp_input_method_manager_v2", 1);
	global(&ev, 2, 6, "wl_seat", 7);
	msg_u32(&bind_ok, 2, 0, 6);
	msg_u32(&bind_bad, 2, 0, 5);
	size_t n;
	int rc;
	free(feed_all(f, 0, &req, req.n, &n, &rc));
	free(feed_all(f, 1, &ev, ev.n, &n, &rc));
	char *o = feed_all(f, 0, &bind_ok, bind_ok.n, &n, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(n, 12);
	free(o);
	free(feed_all(f, 0, &bind_bad, bind_bad.n, &n, &rc));
	assert_int_equal(rc, -EPROTO);
	pvx_wlfilter_free(f);
}

static void test_registry_forgotten_on_delete_id(void **state)
{
	struct pvx_wlfilter *f = pvx_wlfilter_new(HIDE, 2);
	struct buf req = {0}, ev = {0};
	msg_u32(&req, 1, 1, 2);
	msg_u32(&ev, 1, 1, 2); /* wl_display.delete_id(2): id 2 may now be anything */
	global(&ev, 2, 1, "zwlr_screencopy_manager_v1", 3);
	size_t n;
	int rc;
	free(feed_all(f, 0, &req, req.n, &n, &rc));
	char *o = feed_all(f, 1, &ev, 5, &n, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(n, ev.n); /* not a registry any more: nothing dropped */
	free(o);
	pvx_wlfilter_free(f);
}

static void test_malformed_sizes_refused(void **state)
{
	for (uint32_t size = 0; size < 16; size++) {
		if (size >= 8 && size % 4 == 0)
			continue;
		struct pvx_wlfilter *f = pvx_wlfilter_new(HIDE, 2);
		struct buf b = {0};
		header(&b, 3, 0, size);
		put32(&b, 0);
		put32(&b, 0);
		size_t n;
		int rc;
		free(feed_all(f, 1, &b, 3, &n, &rc));
		assert_int_equal(rc, -EPROTO);
		pvx_wlfilter_free(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hidden_globals_dropped_at_every_split),
	    cmocka_unit_test(test_bind_of_hidden_name_cuts_off),
	    cmocka_unit_test(test_registry_forgotten_on_delete_id),
	    cmocka_unit_test(test_malformed_sizes_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
