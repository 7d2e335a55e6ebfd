/* state_util.c: enum names and the typed field readers every state*.c parser uses, so each
 * message has the same "<key>: <field>: <problem>" shape; also the auto_recovery object. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"

const char *const pv_goal_names[] = {"MOUNTED", "STARTED", "READY", NULL};
const char *const pv_restart_names[] = {"system", "container", NULL};
const char *const pv_persist_names[] = {"permanent", "revision", "boot", NULL};
const char *const pv_recovery_names[] = {"no", "always", "on-failure", "unless-stopped", NULL};
const char *const pv_service_type_names[] = {"rest",	"dbus",	 "unix", "drm",
					     "wayland", "input", NULL};
const char *const pv_mode_names[] = {"direct", "mediated", NULL};

static const char *name_at(const char *const *names, int n, int i)
{
	return (i >= 0 && i < n) ? names[i] : "?";
}

const char *pv_status_goal_str(enum pv_status_goal g)
{
	return name_at(pv_goal_names, 3, (int)g);
}

const char *pv_restart_policy_str(enum pv_restart_policy p)
{
	return name_at(pv_restart_names, 2, (int)p);
}

const char *pv_persistence_str(enum pv_persistence p)
{
	return name_at(pv_persist_names, 3, (int)p);
}

const char *pv_recovery_policy_str(enum pv_recovery_policy p)
{
	return name_at(pv_recovery_names, 4, (int)p);
}

bool pv_is_sha256_hex(const char *s, size_t len)
{
	if (!s || len != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int pv_st_fail(struct pv_sctx *c, const char *key, const char *field, const char *fmt, ...)
{
	char *m = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&m, fmt, ap);
	va_end(ap);
	c->nerr++;
	/* keys come from the input: bound them so hostile keys cannot blow up the messages */
	if (n < 0)
		return pv_error_set(c->err, -EINVAL, "%.256s: out of memory", key);
	if (field)
		pv_error_set(c->err, -EINVAL, "%.256s: %s: %s", key, field, m);
	else
		pv_error_set(c->err, -EINVAL, "%.256s: %s", key, m);
	free(m);
	return -EINVAL;
}

const char *pv_st_type(const cJSON *item)
{
	if (cJSON_IsString(item))
		return "a string";
	if (cJSON_IsNumber(item))
		return "a number";
	if (cJSON_IsBool(item))
		return "a boolean";
	if (cJSON_IsNull(item))
		return "null";
	if (cJSON_IsArray(item))
		return "an array";
	if (cJSON_IsObject(item))
		return "an object";
	return "invalid";
}

int pv_st_str(struct pv_sctx *c, const char *key, const char *field, const cJSON *item, char **out)
{
	if (!item)
		return 0;
	if (!cJSON_IsString(item) || !item->valuestring)
		return pv_st_fail(c, key, field, "must be a string, not %s", pv_st_type(item));
	size_t l = strlen(item->valuestring);
	if (l > PV_STATE_MAX_STRING)
		return pv_st_fail(c, key, field, "string of %zu bytes is longer than %d", l,
				  PV_STATE_MAX_STRING);
	char *d = strdup(item->valuestring);
	if (!d)
		return pv_st_fail(c, key, field, "out of memory");
	free(*out);
	*out = d;
	return 0;
}

int pv_st_int(struct pv_sctx *c, const char *key, const char *field, const cJSON *item, int *out)
{
	if (!item)
		return 0;
	if (!cJSON_IsNumber(item))
		return pv_st_fail(c, key, field, "must be a number, not %s", pv_st_type(item));
	double d = item->valuedouble;
	if (!isfinite(d) || d < -2147483648.0 || d > 2147483647.0 || d != (double)(long)d)
		return pv_st_fail(c, key, field, "%g is not an integer", d);
	*out = (int)d;
	return 0;
}

int pv_st_bool(struct pv_sctx *c, const char *key, const char *field, const cJSON *item, bool *out)
{
	if (!item)
		return 0;
	if (!cJSON_IsBool(item))
		return pv_st_fail(c, key, field, "must be true or false, not %s", pv_st_type(item));
	*out = cJSON_IsTrue(item);
	return 0;
}

void pv_st_strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int pv_st_strarr(struct pv_sctx *c, const char *key, const char *field, const cJSON *item,
		 char ***out, size_t *n)
{
	if (!item)
		return 0;
	if (!cJSON_IsArray(item))
		return pv_st_fail(c, key, field, "must be an array of strings, not %s",
				  pv_st_type(item));
	size_t cnt = (size_t)cJSON_GetArraySize(item);
	char **v = calloc(cnt + 1, sizeof(char *));
	if (!v)
		return pv_st_fail(c, key, field, "out of memory");
	size_t i = 0;
	int rc = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, item)
	{
		char f[128];
		snprintf(f, sizeof(f), "%s[%zu]", field, i);
		if (pv_st_str(c, key, f, e, &v[i]) < 0)
			rc = -EINVAL;
		else
			i++;
	}
	if (rc < 0) {
		pv_st_strv_free(v, i);
		return rc;
	}
	pv_st_strv_free(*out, *n);
	*out = v;
	*n = i;
	return 0;
}

int pv_st_enum(struct pv_sctx *c, const char *key, const char *field, const cJSON *item,
	       const char *const *names, int *out)
{
	if (!item)
		return 0;
	char list[256] = "";
	for (int i = 0; names[i]; i++) {
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", names[i]);
	}
	if (!cJSON_IsString(item))
		return pv_st_fail(c, key, field, "must be one of %s, not %s", list,
				  pv_st_type(item));
	for (int i = 0; names[i]; i++)
		if (!strcmp(item->valuestring, names[i])) {
			*out = i;
			return 0;
		}
	return pv_st_fail(c, key, field, "\"%.64s\" is not one of %s", item->valuestring, list);
}

/* "30s", "10min", "1h", "90" (seconds) -> seconds; -1 when not a duration. */
static long parse_duration(const char *s)
{
	char *end = NULL;
	if (*s < '0' || *s > '9')
		return -1;
	long v = strtol(s, &end, 10);
	if (v < 0 || v > 100000000)
		return -1;
	if (!*end || !strcmp(end, "s"))
		return v;
	if (!strcmp(end, "m") || !strcmp(end, "min"))
		return v * 60;
	if (!strcmp(end, "h"))
		return v * 3600;
	return -1;
}

static int nonneg(struct pv_sctx *c, const char *key, const char *field, const cJSON *obj,
		  const char *name, int *out)
{
	char f[128];
	snprintf(f, sizeof(f), "%s.%s", field, name);
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	int v = *out;
	if (pv_st_int(c, key, f, it, &v) < 0)
		return -EINVAL;
	if (v < 0)
		return pv_st_fail(c, key, f, "%d is negative", v);
	*out = v;
	return 0;
}

int pv_st_auto_recovery(struct pv_sctx *c, const char *key, const char *field, const cJSON *item,
			struct pv_auto_recovery *ar)
{
	if (!item)
		return 0;
	if (!cJSON_IsObject(item))
		return pv_st_fail(c, key, field, "must be an object, not %s", pv_st_type(item));
	int rc = 0;
	memset(ar, 0, sizeof(*ar));
	ar->set = true;
	ar->backoff_factor = 1.0;
	ar->backoff = PV_BACKOFF_REBOOT;
	snprintf(ar->backoff_str, sizeof(ar->backoff_str), "reboot");
	char f[128];
	int p = 0;
	snprintf(f, sizeof(f), "%s.policy", field);
	if (pv_st_enum(c, key, f, cJSON_GetObjectItemCaseSensitive(item, "policy"),
		       pv_recovery_names, &p) < 0)
		rc = -EINVAL;
	ar->policy = (enum pv_recovery_policy)p;
	rc |= nonneg(c, key, field, item, "max_retries", &ar->max_retries);
	rc |= nonneg(c, key, field, item, "retry_delay", &ar->retry_delay);
	rc |= nonneg(c, key, field, item, "reset_window", &ar->reset_window);
	rc |= nonneg(c, key, field, item, "stable_timeout", &ar->stable_timeout);
	const cJSON *bf = cJSON_GetObjectItemCaseSensitive(item, "backoff_factor");
	snprintf(f, sizeof(f), "%s.backoff_factor", field);
	if (bf && !cJSON_IsNumber(bf))
		rc = pv_st_fail(c, key, f, "must be a number, not %s", pv_st_type(bf));
	else if (bf && (!isfinite(bf->valuedouble) || bf->valuedouble < 1.0))
		rc = pv_st_fail(c, key, f, "%g is less than 1", bf->valuedouble);
	else if (bf)
		ar->backoff_factor = bf->valuedouble;
	const cJSON *bp = cJSON_GetObjectItemCaseSensitive(item, "backoff_policy");
	snprintf(f, sizeof(f), "%s.backoff_policy", field);
	if (bp && !cJSON_IsString(bp)) {
		rc = pv_st_fail(c, key, f, "must be a string, not %s", pv_st_type(bp));
	} else if (bp) {
		const char *v = bp->valuestring;
		long secs;
		if (!strcmp(v, "reboot")) {
			ar->backoff = PV_BACKOFF_REBOOT;
		} else if (!strcmp(v, "never")) {
			ar->backoff = PV_BACKOFF_NEVER;
		} else if ((secs = parse_duration(v)) >= 0) {
			ar->backoff = PV_BACKOFF_WAIT;
			ar->backoff_wait = (int)secs;
		} else {
			rc = pv_st_fail(c, key, f,
					"\"%.64s\" is not reboot, never or a duration like 30s, "
					"10min, 1h",
					v);
		}
		if (rc == 0)
			snprintf(ar->backoff_str, sizeof(ar->backoff_str), "%.31s", v);
	}
	return rc ? -EINVAL : 0;
}
