/* fuzz_config.c: the kernel command line and environment readers of the config on arbitrary
 * text; the JSON views must always be produced and every value read back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pvstate/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	struct pv_config *c = pv_config_new();
	if (!c)
		abort();
	pv_config_load_cmdline(c, text);
	/* the same text split at newlines as an environment */
	char *envp[64];
	size_t n = 0;
	for (char *s = text, *nl; s && n < 63; s = nl ? nl + 1 : NULL) {
		nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		envp[n++] = s;
	}
	envp[n] = NULL;
	pv_config_load_env(c, envp);
	size_t pos = 0;
	const char *k, *v;
	enum pv_config_level l;
	while (pv_config_iter(c, &pos, &k, &v, &l))
		if (pv_config_get(c, k) != v)
			abort();
	char *j = pv_config_emit(c), *j2 = pv_config_emit2(c);
	if (!j || !j2)
		abort();
	free(j);
	free(j2);
	int secs;
	bool b;
	pv_parse_seconds(text, &secs);
	pv_parse_bool(text, &b);
	pv_config_free(c);
	free(text);
	return 0;
}
