/* pvstate/error.h: how libpvstate (and every program built on it) reports failures.
 * A function returns 0 or -errno; when a person must learn *what* failed it also records
 * one message per problem in a struct pv_error, formed where the facts are known. */
#ifndef PVSTATE_ERROR_H
#define PVSTATE_ERROR_H

#include <stddef.h>

/* Validation collects every problem; this cap bounds memory on hostile input. */
#define PV_ERROR_MAX_MSGS 256

struct pv_error {
	int code;	/* -errno of the first failure recorded, 0 when none */
	size_t count;	/* messages recorded (<= PV_ERROR_MAX_MSGS) */
	size_t dropped; /* messages not kept because of the cap */
	char **msgs;
};

#define PV_ERROR_INIT                                                                              \
	{                                                                                          \
		0, 0, 0, NULL                                                                      \
	}

void pv_error_init(struct pv_error *e);
/* Records "fmt..." with code (negative errno). Returns code so callers can
 * `return pv_error_set(err, -EINVAL, "...")`. err may be NULL (then only returns code). */
int pv_error_set(struct pv_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes every message recorded since index `from` with "prefix: ". */
void pv_error_prefix(struct pv_error *e, size_t from, const char *prefix);
/* First message, or "" when none. */
const char *pv_error_msg(const struct pv_error *e);
/* Frees messages and resets to the empty state. */
void pv_error_clear(struct pv_error *e);

#endif
