/* fuzz_state.c: pv_state_parse on arbitrary bytes, with the option bits taken from the input;
 * a parse that succeeds must also free cleanly and answer lookups. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pv_state_opts o;
	struct pv_state s;
	struct pv_error err = PV_ERROR_INIT;
	pv_state_opts_default(&o);
	/* The last byte chooses the options, so both validation modes are explored. */
	if (size > 0) {
		o.appengine = data[size - 1] & 1;
		o.legacy_roles = data[size - 1] & 2;
		o.hosted_system_bus = data[size - 1] & 4;
	}
	if (pv_state_parse((const char *)data, size, &o, &s, &err) == 0) {
		for (size_t i = 0; i < s.n_containers; i++)
			if (pv_state_find_container(&s, s.containers[i].name) == NULL)
				abort();
		pv_state_free(&s);
	} else if (err.count == 0 && err.code != -ENOMEM) {
		abort(); /* a rejection must say why */
	}
	pv_error_clear(&err);
	return 0;
}
