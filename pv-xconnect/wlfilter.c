/* wlfilter.c: see wlfilter.h. Wire format: each message is a 32-bit object id, then a 32-bit
 * word with the message size in bytes (header included, a multiple of 4) in the high 16 bits
 * and the opcode in the low 16, then the arguments; strings are a 32-bit length (with the NUL)
 * and the bytes padded to 4. Host byte order. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wlfilter.h"

#define DISPLAY_ID	  1u
#define DISPLAY_GET_REG	  1u /* request: new_id */
#define DISPLAY_DELETE_ID 1u /* event: uint id */
#define REG_BIND	  0u /* request: uint name, ... */
#define REG_GLOBAL	  0u /* event: uint name, string interface, uint version */
#define REG_GLOBAL_REMOVE 1u /* event: uint name */

struct idset {
	uint32_t *v;
	size_t n, cap;
};

struct pvx_wlfilter {
	char **hide;
	size_t n_hide;
	struct idset registries, hidden; /* registry object ids; names of hidden globals */
	size_t hidden_total;
	char carry[2][PVX_WL_MAX_MSG]; /* an incomplete message per direction */
	size_t carry_len[2];
};

static bool id_has(const struct idset *s, uint32_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return true;
	return false;
}

static int id_add(struct idset *s, uint32_t id)
{
	if (id_has(s, id))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		uint32_t *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = id;
	return 0;
}

static void id_del(struct idset *s, uint32_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id) {
			s->v[i] = s->v[--s->n];
			return;
		}
}

struct pvx_wlfilter *pvx_wlfilter_new(const char *const *hide, size_t n)
{
	struct pvx_wlfilter *f = calloc(1, sizeof(*f));
	if (!f || !(f->hide = calloc(n ? n : 1, sizeof(*f->hide)))) {
		free(f);
		return NULL;
	}
	for (; f->n_hide < n; f->n_hide++)
		if (!(f->hide[f->n_hide] = strdup(hide[f->n_hide]))) {
			pvx_wlfilter_free(f);
			return NULL;
		}
	return f;
}

void pvx_wlfilter_free(struct pvx_wlfilter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_hide; i++)
		free(f->hide[i]);
	free(f->hide);
	free(f->registries.v);
	free(f->hidden.v);
	free(f);
}

size_t pvx_wlfilter_hidden(const struct pvx_wlfilter *f)
{
	return f->hidden_total;
}

static uint32_t word(const char *m, size_t i)
{
	uint32_t w;
	memcpy(&w, m + 4 * i, 4);
	return w;
}

/* The interface argument of a global event (m, size bytes) matches a hidden name. */
static bool global_hidden(const struct pvx_wlfilter *f, const char *m, size_t size)
{
	if (size < 16)
		return false;
	uint32_t slen = word(m, 3); /* with its NUL */
	if (slen == 0 || slen > size - 16)
		return false;
	const char *iface = m + 16;
	if (iface[slen - 1] != '\0')
		return false;
	for (size_t i = 0; i < f->n_hide; i++)
		if (!strcmp(f->hide[i], iface))
			return true;
	return false;
}

/* One complete message: 1 forward, 0 drop, <0 cut the connection off. */
static int judge(struct pvx_wlfilter *f, int dir, const char *m, size_t size)
{
	uint32_t obj = word(m, 0), op = word(m, 1) & 0xffff;
	if (dir == 0) {
		if (obj == DISPLAY_ID && op == DISPLAY_GET_REG && size >= 12)
			return id_add(&f->registries, word(m, 2)) < 0 ? -ENOMEM : 1;
		if (op == REG_BIND && size >= 12 && id_has(&f->registries, obj) &&
		    id_has(&f->hidden, word(m, 2)))
			return -EPROTO;
		return 1;
	}
	if (obj == DISPLAY_ID && op == DISPLAY_DELETE_ID && size >= 12) {
		id_del(&f->registries, word(m, 2));
		return 1;
	}
	if (!id_has(&f->registries, obj) || size < 12)
		return 1;
	if (op == REG_GLOBAL && global_hidden(f, m, size)) {
		f->hidden_total++;
		return id_add(&f->hidden, word(m, 2)) < 0 ? -ENOMEM : 0;
	}
	if (op == REG_GLOBAL_REMOVE && id_has(&f->hidden, word(m, 2))) {
		id_del(&f->hidden, word(m, 2));
		return 0;
	}
	return 1;
}

static size_t msg_size(const char *m)
{
	return word(m, 1) >> 16;
}

static bool size_ok(size_t size)
{
	return size >= 8 && size % 4 == 0;
}

int pvx_wlfilter_feed(struct pvx_wlfilter *f, int dir, const char *in, size_t len, char *out,
		      size_t *out_len)
{
	char *carry = f->carry[dir];
	size_t *cl = &f->carry_len[dir], o = 0, take;
	int r;
	*out_len = 0;
	/* 1. complete the message held back from the previous read */
	if (*cl) {
		if (*cl < 8) {
			take = 8 - *cl < len ? 8 - *cl : len;
			memcpy(carry + *cl, in, take);
			*cl += take, in += take, len -= take;
			if (*cl < 8)
				return 0;
		}
		size_t size = msg_size(carry);
		if (!size_ok(size))
			return -EPROTO;
		take = size - *cl < len ? size - *cl : len;
		memcpy(carry + *cl, in, take);
		*cl += take, in += take, len -= take;
		if (*cl < size)
			return 0;
		if ((r = judge(f, dir, carry, size)) < 0)
			return r;
		if (r)
			memcpy(out, carry, size), o = size;
		*cl = 0;
	}
	/* 2. the whole messages of this read, judged in place */
	while (len >= 8) {
		size_t size = msg_size(in);
		if (!size_ok(size))
			return -EPROTO;
		if (len < size)
			break;
		if ((r = judge(f, dir, in, size)) < 0)
			return r;
		if (r)
			memcpy(out + o, in, size), o += size;
		in += size, len -= size;
	}
	/* 3. an incomplete tail waits for the next read */
	memcpy(carry, in, len);
	*cl = len;
	*out_len = o;
	return 0;
}
