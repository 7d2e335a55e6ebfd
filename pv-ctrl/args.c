/* pv-ctrl/args.c: op args for the engine and the fields of the HTTP request bodies; the JSON of
 * both is libpvstate's (pvstate/proto.h, pvstate/ctrl.h): pv-ctrl has no JSON code. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pvstate/ctrl.h"
#include "pvstate/proto.h"

#include "ctrl.h"

/* Op args are built by libpvstate (pv_msg_args_str); our handlers pass at most 3 pairs. */
char *pv_ctrl_args_kv(const char *const *kv)
{
	size_t n = 0;
	while (kv[2 * n] && kv[2 * n + 1])
		n++;
	switch (n) {
	case 1:
		return pv_msg_args_str(1, kv[0], kv[1]);
	case 2:
		return pv_msg_args_str(2, kv[0], kv[1], kv[2], kv[3]);
	case 3:
		return pv_msg_args_str(3, kv[0], kv[1], kv[2], kv[3], kv[4], kv[5]);
	}
	return NULL;
}

char *pv_ctrl_args_pid(int pid)
{
	/* pv_msg_args_str builds strings only and whois wants an integer; a decimal int needs
	 * no escaping */
	char *s = NULL;
	return asprintf(&s, "{\"pid\":%d}", pid) < 0 ? NULL : s;
}

/* The JSON itself is read by libpvstate (pvstate/ctrl.h); these keep the handlers' msg buffers. */
static int msg_of(int r, struct pv_error *err, char *msg, size_t msg_len)
{
	if (r < 0)
		snprintf(msg, msg_len, "%s", pv_error_msg(err));
	pv_error_clear(err);
	return r;
}

int pv_ctrl_body_check_json(const char *body, size_t len, char *msg, size_t msg_len)
{
	struct pv_error err = PV_ERROR_INIT;
	return msg_of(pv_ctrl_json_check_object(body, len, &err), &err, msg, msg_len);
}

int pv_ctrl_body_field(const char *body, size_t len, const char *field, bool required, char *out,
		       size_t out_len, char *msg, size_t msg_len)
{
	struct pv_error err = PV_ERROR_INIT;
	return msg_of(pv_ctrl_json_field(body, len, field, required, out, out_len, &err), &err, msg,
		      msg_len);
}

int pv_ctrl_whois_parse(const char *body, char *container, size_t len, bool *mgmt)
{
	return pv_ctrl_json_whois(body, container, len, mgmt);
}
