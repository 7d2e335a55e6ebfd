/* state_scan.c: the string-aware pre-scan of a state's bytes: size, NUL and depth limits, and
 * the byte span of every top-level value (cJSON keeps no offsets; storage needs the raw text). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

static size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* i is at the opening quote; returns the index after the closing quote, or 0 on error. */
static size_t skip_string(const char *t, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (t[i] == '\\') {
			i++;
			continue;
		}
		if (t[i] == '"')
			return i + 1;
	}
	return 0;
}

/* One value starting at i (depth = nesting of the enclosing container). Returns the end
 * index or 0 after recording an error. Iterative, so hostile nesting cannot grow the stack. */
/* Counts values (containers and separators) against PV_STATE_MAX_VALUES. */
static bool too_many(size_t *values, struct pv_error *err)
{
	if (++*values <= PV_STATE_MAX_VALUES)
		return false;
	pv_error_set(err, -E2BIG, "state: more than %u JSON values", PV_STATE_MAX_VALUES);
	return true;
}

static size_t skip_value(const char *t, size_t len, size_t i, int depth, size_t *values,
			 struct pv_error *err)
{
	if (i >= len) {
		pv_error_set(err, -EINVAL, "state: truncated JSON at byte %zu", i);
		return 0;
	}
	if (t[i] == '"') {
		size_t e = skip_string(t, len, i);
		if (!e)
			pv_error_set(err, -EINVAL, "state: unterminated string at byte %zu", i);
		return e;
	}
	if (t[i] != '{' && t[i] != '[') {
		/* scalar: cJSON checks its grammar; we only need where it ends */
		size_t s = i;
		while (i < len && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' &&
		       t[i] != '\t' && t[i] != '\n' && t[i] != '\r' && t[i] != '"' && t[i] != '{' &&
		       t[i] != '[')
			i++;
		if (i == s) {
			pv_error_set(err, -EINVAL, "state: unexpected '%c' at byte %zu", t[i], i);
			return 0;
		}
		return i;
	}
	int d = depth;
	while (i < len) {
		char ch = t[i];
		if (ch == '"') {
			size_t e = skip_string(t, len, i);
			if (!e) {
				pv_error_set(err, -EINVAL, "state: unterminated string at byte %zu",
					     i);
				return 0;
			}
			i = e;
			continue;
		}
		if ((ch == '{' || ch == '[' || ch == ',') && too_many(values, err))
			return 0;
		if (ch == '{' || ch == '[') {
			if (++d > PV_STATE_MAX_DEPTH) {
				pv_error_set(
				    err, -EINVAL,
				    "state: JSON nesting deeper than %d levels at byte %zu",
				    PV_STATE_MAX_DEPTH, i);
				return 0;
			}
		} else if (ch == '}' || ch == ']') {
			if (--d == depth)
				return i + 1;
		}
		i++;
	}
	pv_error_set(err, -EINVAL, "state: truncated JSON at byte %zu", len);
	return 0;
}

int pv_state_scan(const char *t, size_t len, struct pv_span **spans, size_t *n,
		  struct pv_error *err)
{
	*spans = NULL;
	*n = 0;
	if (memchr(t, '\0', len))
		return pv_error_set(err, -EINVAL, "state: contains a NUL byte at byte %zu",
				    (size_t)((const char *)memchr(t, '\0', len) - t));
	size_t i = skip_ws(t, len, 0);
	if (i >= len || t[i] != '{')
		return pv_error_set(err, -EINVAL, "state: not a JSON object");
	i++;
	size_t cap = 0, values = 0;
	struct pv_span *v = NULL;
	for (;;) {
		i = skip_ws(t, len, i);
		if (i < len && t[i] == '}' && *n == 0) {
			i++;
			break;
		}
		if (i >= len || t[i] != '"')
			goto bad;
		i = skip_string(t, len, i);
		if (!i)
			goto bad;
		i = skip_ws(t, len, i);
		if (i >= len || t[i] != ':')
			goto bad;
		i = skip_ws(t, len, i + 1);
		size_t s = i;
		if (too_many(&values, err)) {
			free(v);
			return -E2BIG;
		}
		i = skip_value(t, len, i, 1, &values, err);
		if (!i) {
			free(v);
			return values > PV_STATE_MAX_VALUES ? -E2BIG : -EINVAL;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			struct pv_span *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return pv_error_set(err, -ENOMEM, "state: out of memory");
			}
			v = nv;
		}
		v[*n].val_off = s;
		v[*n].val_len = i - s;
		(*n)++;
		i = skip_ws(t, len, i);
		if (i < len && t[i] == ',') {
			i++;
			continue;
		}
		if (i < len && t[i] == '}') {
			i++;
			break;
		}
		goto bad;
	}
	i = skip_ws(t, len, i);
	if (i != len) {
		free(v);
		*n = 0;
		return pv_error_set(err, -EINVAL,
				    "state: trailing data after the object at byte %zu", i);
	}
	*spans = v;
	return 0;
bad:
	free(v);
	*n = 0;
	if (i >= len)
		return pv_error_set(err, -EINVAL, "state: truncated JSON at byte %zu", len);
	return pv_error_set(err, -EINVAL, "state: invalid JSON at byte %zu", i);
}
