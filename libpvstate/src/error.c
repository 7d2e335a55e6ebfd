/* error.c: struct pv_error, the message list carried from where a failure is understood up to
 * where it is printed. Bounded: at most PV_ERROR_MAX_MSGS messages are kept. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/error.h"

void pv_error_init(struct pv_error *e)
{
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
}

int pv_error_set(struct pv_error *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	if (!e->code)
		e->code = code ? code : -EINVAL;
	if (e->count >= PV_ERROR_MAX_MSGS) {
		e->dropped++;
		return code;
	}
	if (!e->msgs) {
		e->msgs = calloc(PV_ERROR_MAX_MSGS, sizeof(char *));
		if (!e->msgs)
			return code;
	}
	va_list ap;
	va_start(ap, fmt);
	char *m = NULL;
	int n = vasprintf(&m, fmt, ap);
	va_end(ap);
	if (n < 0)
		return code;
	e->msgs[e->count++] = m;
	return code;
}

void pv_error_prefix(struct pv_error *e, size_t from, const char *prefix)
{
	if (!e || !prefix)
		return;
	for (size_t i = from; i < e->count; i++) {
		char *m = NULL;
		if (asprintf(&m, "%s: %s", prefix, e->msgs[i]) < 0)
			continue;
		free(e->msgs[i]);
		e->msgs[i] = m;
	}
}

const char *pv_error_msg(const struct pv_error *e)
{
	if (!e || !e->count)
		return "";
	return e->msgs[0];
}

void pv_error_clear(struct pv_error *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->count; i++)
		free(e->msgs[i]);
	free(e->msgs);
	memset(e, 0, sizeof(*e));
}
