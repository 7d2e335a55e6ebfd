/* jsondoc.h: a JSON object as its members' keys and their values' exact text.
 *
 * For documents that are not (yet) a whole valid state, such as a pvrexport `json` fragment or a
 * state under a pvtx transaction: parse with the state scanner's limits (size, NUL, depth,
 * values) and cJSON's grammar, edit members, emit again with keys sorted and every value byte
 * for byte as it came in. */
#ifndef PVSTATE_JSONDOC_H
#define PVSTATE_JSONDOC_H

#include <stdbool.h>
#include <stddef.h>

#include "pvstate/error.h"

struct pv_jsondoc_member {
	char *key; /* decoded */
	char *raw; /* the value's exact JSON text */
};

struct pv_jsondoc {
	struct pv_jsondoc_member *m;
	size_t n;
};

/* Appends the members of the JSON object text to d, in text order. what names the document in
 * errors ("<what>: not a JSON object"). 0 or -errno (d keeps what was appended). */
int pv_jsondoc_parse(const char *text, size_t len, const char *what, struct pv_jsondoc *d,
		     struct pv_error *err);

/* Appends m (its strings are taken; m is emptied). 0 or -ENOMEM (m left as it was). */
int pv_jsondoc_take(struct pv_jsondoc *d, struct pv_jsondoc_member *m);

/* Appends key with a string value (JSON-encoded here). 0 or -ENOMEM. */
int pv_jsondoc_add_string(struct pv_jsondoc *d, const char *key, const char *value);

/* Removes every member whose key pred(key, arg) accepts. */
void pv_jsondoc_remove_if(struct pv_jsondoc *d, bool (*pred)(const char *key, const void *arg),
			  const void *arg);

/* The object text with members sorted by key (d is sorted in place). NULL on ENOMEM. */
char *pv_jsondoc_emit(struct pv_jsondoc *d);

void pv_jsondoc_free(struct pv_jsondoc *d);

#endif
