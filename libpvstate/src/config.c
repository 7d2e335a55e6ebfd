/* config.c: KEY=value configuration with upstream's levels (spec §7.1): defaults, files,
 * kernel command line, environment; legacy dotted aliases; bool/duration parsing; JSON views. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "pvstate/config.h"
#include "pvstate/fileio.h"

/* Where a known key may be set (upstream's per-key level table). Default and args are always
 * allowed; ph.conf covers the Hub client level too; env covers both command lines. */
enum {
	L_PV = 1 << 0,	 /* pv.conf */
	L_PH = 1 << 1,	 /* ph.conf, ph-client */
	L_ENV = 1 << 2,	 /* env, pv/ph cmdline */
	L_POL = 1 << 3,	 /* policy */
	L_OEM = 1 << 4,	 /* oem */
	L_META = 1 << 5, /* user-meta */
	L_CMD = 1 << 6,	 /* command */
	/* the common shapes */
	L_BOOT = L_PV | L_ENV | L_POL,			/* fixed at boot by the image */
	L_RUN = L_PV | L_ENV | L_POL | L_OEM,		/* also per revision */
	L_TUNE = L_PV | L_ENV | L_POL | L_OEM | L_META, /* also at run time */
	L_HUB = L_PH | L_ENV | L_POL | L_OEM,
	L_HUBTUNE = L_PH | L_ENV | L_POL | L_OEM | L_META,
	L_ANY = 0x7f,
};

/* Known keys, code defaults (NULL = unset until some level sets it) and allowed levels. */
static const struct {
	const char *key;
	const char *def;
	unsigned levels;
} known[] = {
    {"PH_CREDS_HOST", "api.pantahub.com", L_HUB},
    {"PH_CREDS_PORT", "443", L_HUB},
    {"PH_CREDS_TYPE", "builtin", L_HUB},
    {"PH_UPDATER_INTERVAL", "5", L_HUBTUNE},
    {"PH_UPDATER_NETWORK_TIMEOUT", "120", L_HUBTUNE},
    {"PH_UPDATER_TRANSFER_MAX_COUNT", "5", L_HUBTUNE},
    {"PV_BOOTLOADER_TYPE", "uboot", L_BOOT},
    {"PV_CONTROL_LEGACY_ROLES", "0", L_RUN},
    {"PV_CONTROL_REMOTE", "1", L_RUN},
    {"PV_CONTROL_REMOTE_ALWAYS", "0", L_RUN},
    {"PV_DEBUG_SHELL", "1", L_BOOT},
    {"PV_DEBUG_SSH", "1", L_ANY & ~L_PH},
    {"PV_DISK_EXPORTSDIR", "/exports", L_BOOT},
    {"PV_DISK_VOLDIR", "/volumes", L_BOOT},
    {"PV_DISK_WRITABLEDIR", "/writable", L_BOOT},
    {"PV_ENGINE_SOCKET", "", L_BOOT}, /* empty = <dirname of PV_SYSTEM_RUNDIR>/engine.sock */
    {"PV_LOG_CAPTURE", "1", L_RUN},
    {"PV_LOG_DIR", "/storage/logs/", L_BOOT},
    {"PV_LOG_DIR_MAXSIZE", "0", L_TUNE},
    {"PV_LOG_LEVEL", "0", L_TUNE},
    {"PV_LXC_LOG_LEVEL", "2", L_RUN},
    {"PV_LXC_PATH", "/run/pantavisor/lxc", L_BOOT},
    {"PV_OEM_NAME", NULL, L_BOOT},
    {"PV_POLICY", NULL, L_PV | L_ENV},
    {"PV_REMOUNT_POLICY", NULL, L_ENV},
    {"PV_REVISION_RETRIES", "10", L_TUNE},
    {"PV_SECUREBOOT_CHECKSUM", "1", L_BOOT},
    {"PV_SECUREBOOT_MODE", "lenient", L_BOOT},
    {"PV_STORAGE_DEVICE", NULL, L_BOOT},
    {"PV_STORAGE_FSTYPE", NULL, L_BOOT},
    {"PV_STORAGE_GC_KEEP_FACTORY", "1", L_TUNE},
    {"PV_STORAGE_GC_RESERVED", "5", L_TUNE},
    {"PV_STORAGE_GC_THRESHOLD", "0", L_TUNE},
    {"PV_STORAGE_GC_THRESHOLD_DEFERTIME", "600", L_TUNE},
    {"PV_STORAGE_MNTPOINT", "/storage", L_BOOT},
    {"PV_STORAGE_MNTTYPE", NULL, L_BOOT},
    {"PV_STORAGE_WAIT", "5", L_BOOT},
    {"PV_SYSTEM_CONFDIR", "/run/pantavisor/configs", L_BOOT},
    {"PV_SYSTEM_INIT_MODE", "embedded", L_BOOT},
    {"PV_SYSTEM_RUNDIR", "/run/pantavisor/pv", L_BOOT},
    {"PV_UPDATER_COMMIT_DELAY", "25", L_TUNE},
    {"PV_UPDATER_GOALS_TIMEOUT", "120", L_RUN},
    {"PV_WDT_MODE", "shutdown", L_BOOT},
    {"PV_WDT_TIMEOUT", "15", L_BOOT | L_PH},
    {"PV_XCONNECT_DBUS_SYSTEMBUS_ENABLED", "1", L_RUN},
};

static unsigned level_bit(enum pv_config_level l)
{
	switch (l) {
	case PV_CFG_PV_CONF:
		return L_PV;
	case PV_CFG_PH_CONF:
	case PV_CFG_PH_CLIENT:
		return L_PH;
	case PV_CFG_PV_CMDLINE:
	case PV_CFG_PH_CMDLINE:
	case PV_CFG_ENV:
		return L_ENV;
	case PV_CFG_POLICY:
		return L_POL;
	case PV_CFG_OEM:
		return L_OEM;
	case PV_CFG_USER_META:
		return L_META;
	case PV_CFG_COMMAND:
		return L_CMD;
	default:
		return L_ANY; /* default, args: the program itself */
	}
}

/* True when the canonical key may be set at level l; unknown keys may be set anywhere. */
static bool level_allowed(const char *key, enum pv_config_level l)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(known[i].key, key))
			return (known[i].levels & level_bit(l)) != 0;
	return true;
}

/* Legacy dotted names (upstream's pantavisor.config / pv_ cmdline spelling). A dotted name not
 * listed maps to PV_ + upper-case with '.' -> '_' (see canon_key). */
static const struct {
	const char *alias;
	const char *key;
} aliases[] = {
    {"bootloader.type", "PV_BOOTLOADER_TYPE"},
    {"control.remote", "PV_CONTROL_REMOTE"},
    {"creds.host", "PH_CREDS_HOST"},
    {"creds.port", "PH_CREDS_PORT"},
    {"creds.type", "PH_CREDS_TYPE"},
    {"debug.shell", "PV_DEBUG_SHELL"},
    {"debug.ssh", "PV_DEBUG_SSH"},
    {"disk.voldir", "PV_DISK_VOLDIR"},
    {"log.capture", "PV_LOG_CAPTURE"},
    {"log.dir", "PV_LOG_DIR"},
    {"log.level", "PV_LOG_LEVEL"},
    {"log.maxsize", "PV_LOG_DIR_MAXSIZE"},
    {"lxc.log.level", "PV_LXC_LOG_LEVEL"},
    {"revision.retries", "PV_REVISION_RETRIES"},
    {"secureboot.checksum", "PV_SECUREBOOT_CHECKSUM"},
    {"secureboot.mode", "PV_SECUREBOOT_MODE"},
    {"storage.device", "PV_STORAGE_DEVICE"},
    {"storage.fstype", "PV_STORAGE_FSTYPE"},
    {"storage.gc.keep_factory", "PV_STORAGE_GC_KEEP_FACTORY"},
    {"storage.gc.reserved", "PV_STORAGE_GC_RESERVED"},
    {"storage.gc.threshold", "PV_STORAGE_GC_THRESHOLD"},
    {"storage.gc.threshold.defertime", "PV_STORAGE_GC_THRESHOLD_DEFERTIME"},
    {"storage.mntpoint", "PV_STORAGE_MNTPOINT"},
    {"storage.mnttype", "PV_STORAGE_MNTTYPE"},
    {"storage.wait", "PV_STORAGE_WAIT"},
    {"system.init.mode", "PV_SYSTEM_INIT_MODE"},
    {"system.rundir", "PV_SYSTEM_RUNDIR"},
    {"updater.commit.delay", "PV_UPDATER_COMMIT_DELAY"},
    {"updater.goals.timeout", "PV_UPDATER_GOALS_TIMEOUT"},
    {"updater.interval", "PH_UPDATER_INTERVAL"},
    {"updater.network_timeout", "PH_UPDATER_NETWORK_TIMEOUT"},
    {"wdt.mode", "PV_WDT_MODE"},
    {"wdt.timeout", "PV_WDT_TIMEOUT"},
};

static const char *const level_names[PV_CFG_N_LEVELS] = {
    "default", "args",	     "pv.conf",	   "ph.conf", "ph-client", "policy",
    "oem",     "pv-cmdline", "ph-cmdline", "env",     "user-meta", "command",
};

const char *pv_config_level_str(enum pv_config_level l)
{
	return (unsigned)l < PV_CFG_N_LEVELS ? level_names[l] : "unknown";
}

struct cfg_entry {
	char *key; /* canonical: upper case */
	char *value;
	enum pv_config_level level;
};

struct pv_config {
	struct cfg_entry *v; /* sorted by key */
	size_t n, cap;
};

#define KEY_MAX 128

/* Canonical key: alias resolved, upper case. -EINVAL for empty keys or keys with blanks. */
static int canon_key(const char *in, char out[KEY_MAX])
{
	size_t l = strlen(in);
	if (l == 0 || l >= KEY_MAX)
		return -EINVAL;
	for (size_t i = 0; i < l; i++)
		if (isspace((unsigned char)in[i]) || in[i] == '=')
			return -EINVAL;
	if (strchr(in, '.')) {
		for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
			if (!strcasecmp(aliases[i].alias, in)) {
				snprintf(out, KEY_MAX, "%s", aliases[i].key);
				return 0;
			}
		if (l + 3 >= KEY_MAX)
			return -EINVAL;
		strcpy(out, "PV_");
		for (size_t i = 0; i <= l; i++)
			out[3 + i] = in[i] == '.' ? '_' : (char)toupper((unsigned char)in[i]);
		return 0;
	}
	for (size_t i = 0; i <= l; i++)
		out[i] = (char)toupper((unsigned char)in[i]);
	return 0;
}

static struct cfg_entry *find(const struct pv_config *c, const char *key, size_t *pos)
{
	size_t lo = 0, hi = c->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = strcmp(c->v[mid].key, key);
		if (!r)
			return &c->v[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

static int put(struct pv_config *c, const char *key, const char *value, enum pv_config_level l)
{
	size_t pos = 0;
	struct cfg_entry *e = find(c, key, &pos);
	if (e) {
		/* Same level overwrites (a later line of the same file wins); lower never does. */
		if (e->level > l)
			return 1;
		char *nv = value ? strdup(value) : NULL;
		if (value && !nv)
			return -ENOMEM;
		free(e->value);
		e->value = nv;
		e->level = l;
		return 0;
	}
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		struct cfg_entry *nv = realloc(c->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = nc;
	}
	struct cfg_entry ne = {strdup(key), value ? strdup(value) : NULL, l};
	if (!ne.key || (value && !ne.value)) {
		free(ne.key);
		free(ne.value);
		return -ENOMEM;
	}
	memmove(&c->v[pos + 1], &c->v[pos], (c->n - pos) * sizeof(*c->v));
	c->v[pos] = ne;
	c->n++;
	return 0;
}

struct pv_config *pv_config_new(void)
{
	struct pv_config *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (put(c, known[i].key, known[i].def, PV_CFG_DEFAULT) < 0) {
			pv_config_free(c);
			return NULL;
		}
	return c;
}

void pv_config_free(struct pv_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].key);
		free(c->v[i].value);
	}
	free(c->v);
	free(c);
}

int pv_config_set(struct pv_config *c, const char *key, const char *value,
		  enum pv_config_level level)
{
	char k[KEY_MAX];
	if (!c || !key || (unsigned)level >= PV_CFG_N_LEVELS)
		return -EINVAL;
	if (canon_key(key, k) < 0)
		return -EINVAL;
	if (!level_allowed(k, level))
		return -EPERM;
	return put(c, k, value, level);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t l = strlen(s);
	while (l && isspace((unsigned char)s[l - 1]))
		s[--l] = '\0';
	return s;
}

int pv_config_load_file(struct pv_config *c, const char *path, enum pv_config_level level,
			struct pv_error *err)
{
	char *text = NULL;
	int r = pv_file_read_all(path, 1u << 20, &text, NULL, NULL);
	if (r == -ENOENT)
		return r; /* a missing config file is normal: no message */
	if (r < 0)
		return pv_error_set(err, r, "%s: %s", path, strerror(-r));
	size_t lineno = 0;
	char *save = NULL;
	/* strtok_r would merge empty lines and shift numbers: split by hand. */
	for (char *line = text; line; line = save) {
		char *nl = strchr(line, '\n');
		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		char *s = trim(line); /* also drops the '\r' of CRLF files */
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			pv_error_set(err, -EINVAL, "%s:%zu: no '=' in \"%.60s\"", path, lineno, s);
			continue;
		}
		*eq = '\0';
		char *key = trim(s), *value = trim(eq + 1);
		int sr = pv_config_set(c, key, value, level);
		if (sr == -EINVAL)
			pv_error_set(err, -EINVAL, "%s:%zu: bad key \"%.60s\"", path, lineno, key);
		else if (sr == -EPERM)
			pv_error_set(err, -EPERM, "%s:%zu: %s cannot be set from %s (ignored)",
				     path, lineno, key, pv_config_level_str(level));
		else if (sr < 0) {
			free(text);
			return pv_error_set(err, sr, "%s:%zu: %s", path, lineno, strerror(-sr));
		}
	}
	free(text);
	return 0;
}

int pv_config_load_cmdline(struct pv_config *c, const char *cmdline)
{
	if (!cmdline)
		return 0;
	char *dup = strdup(cmdline);
	if (!dup)
		return -ENOMEM;
	int r = 0;
	char *save = NULL;
	for (char *w = strtok_r(dup, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		enum pv_config_level lvl;
		const char *prefix;
		if (!strncmp(w, "pv_", 3)) {
			lvl = PV_CFG_PV_CMDLINE;
			prefix = "PV_";
		} else if (!strncmp(w, "ph_", 3)) {
			lvl = PV_CFG_PH_CMDLINE;
			prefix = "PH_";
		} else {
			continue;
		}
		char *eq = strchr(w + 3, '=');
		if (!eq || eq == w + 3)
			continue;
		*eq = '\0';
		const char *name = w + 3;
		char key[KEY_MAX];
		/* pv_log.level=5 (legacy alias), pv_PV_LOG_LEVEL=5 (a key) or pv_log_level=5. */
		if (strchr(name, '.') || !strncasecmp(name, prefix, 3))
			snprintf(key, sizeof(key), "%s", name);
		else if (snprintf(key, sizeof(key), "%s%s", prefix, name) >= (int)sizeof(key))
			continue;
		int sr = pv_config_set(c, key, eq + 1, lvl);
		if (sr == -ENOMEM) {
			r = sr;
			break;
		}
	}
	free(dup);
	return r;
}

int pv_config_load_env(struct pv_config *c, char *const *envp)
{
	for (size_t i = 0; envp && envp[i]; i++) {
		const char *e = envp[i];
		if (strncmp(e, "PV_", 3) && strncmp(e, "PH_", 3))
			continue;
		const char *eq = strchr(e, '=');
		if (!eq || (size_t)(eq - e) >= KEY_MAX)
			continue;
		char key[KEY_MAX];
		memcpy(key, e, (size_t)(eq - e));
		key[eq - e] = '\0';
		if (pv_config_set(c, key, eq + 1, PV_CFG_ENV) == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

static const struct cfg_entry *lookup(const struct pv_config *c, const char *key)
{
	char k[KEY_MAX];
	if (!c || !key || canon_key(key, k) < 0)
		return NULL;
	return find(c, k, NULL);
}

const char *pv_config_get(const struct pv_config *c, const char *key)
{
	const struct cfg_entry *e = lookup(c, key);
	return e ? e->value : NULL;
}

enum pv_config_level pv_config_get_level(const struct pv_config *c, const char *key)
{
	const struct cfg_entry *e = lookup(c, key);
	return e ? e->level : PV_CFG_DEFAULT;
}

int pv_config_get_int(const struct pv_config *c, const char *key, int fallback)
{
	const char *v = pv_config_get(c, key);
	if (!v || !*v)
		return fallback;
	char *end;
	errno = 0;
	long n = strtol(v, &end, 0);
	if (errno || *end || n < INT_MIN || n > INT_MAX)
		return fallback;
	return (int)n;
}

bool pv_config_get_bool(const struct pv_config *c, const char *key, bool fallback)
{
	bool b;
	const char *v = pv_config_get(c, key);
	return v && pv_parse_bool(v, &b) == 0 ? b : fallback;
}

int pv_config_get_seconds(const struct pv_config *c, const char *key, int fallback)
{
	int s;
	const char *v = pv_config_get(c, key);
	return v && pv_parse_seconds(v, &s) == 0 ? s : fallback;
}

bool pv_config_iter(const struct pv_config *c, size_t *pos, const char **key, const char **value,
		    enum pv_config_level *level)
{
	if (!c || *pos >= c->n)
		return false;
	const struct cfg_entry *e = &c->v[(*pos)++];
	if (key)
		*key = e->key;
	if (value)
		*value = e->value;
	if (level)
		*level = e->level;
	return true;
}

static char *print_and_free(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

char *pv_config_emit(const struct pv_config *c)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; o && i < c->n; i++) {
		if (!c->v[i].value)
			continue; /* known key without default, never set */
		if (!cJSON_AddStringToObject(o, c->v[i].key, c->v[i].value)) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return print_and_free(o);
}

char *pv_config_emit2(const struct pv_config *c)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < c->n; i++) {
		if (!c->v[i].value)
			continue;
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddStringToObject(o, "key", c->v[i].key) ||
		    !cJSON_AddStringToObject(o, "value", c->v[i].value) ||
		    !cJSON_AddStringToObject(o, "modified", pv_config_level_str(c->v[i].level)) ||
		    !cJSON_AddItemToArray(a, o)) {
			cJSON_Delete(o);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return print_and_free(a);
}

int pv_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int pv_parse_seconds(const char *s, int *out)
{
	static const struct {
		const char *suffix;
		long mult;
	} units[] = {{"", 1}, {"s", 1}, {"min", 60}, {"h", 3600}, {"d", 86400}};
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	long n = strtol(s, &end, 10);
	if (errno)
		return -ERANGE;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix))
			continue;
		if (n > INT_MAX / units[i].mult)
			return -ERANGE;
		*out = (int)(n * units[i].mult);
		return 0;
	}
	return -EINVAL;
}

int pv_config_load_layers(struct pv_config *c, const char *file, const char *cmdline,
			  char *const *envp, struct pv_error *err)
{
	int r = 0;
	if (file) {
		r = pv_config_load_file(c, file, PV_CFG_PV_CONF, err);
		if (r == -ENOENT)
			r = 0;
	}
	if (cmdline)
		pv_config_load_cmdline(c, cmdline);
	if (envp)
		pv_config_load_env(c, envp);
	return r;
}

char *pv_config_engine_socket(const struct pv_config *c, const char *rundir)
{
	const char *v = pv_config_get(c, "PV_ENGINE_SOCKET");
	if (v && *v)
		return strdup(v);
	if (!rundir || !*rundir)
		rundir = pv_config_get(c, "PV_SYSTEM_RUNDIR");
	if (!rundir || !*rundir)
		rundir = "/run/pantavisor/pv";
	const char *slash = strrchr(rundir, '/');
	/* dirname without modifying or copying the caller's string */
	size_t n = slash ? (size_t)(slash - rundir) : 0;
	while (n > 1 && rundir[n - 1] == '/')
		n--;
	char *out = NULL;
	if (!slash)
		return strdup("./engine.sock");
	if (asprintf(&out, "%.*s/engine.sock", (int)(n ? n : 0), n ? rundir : "") < 0)
		return NULL;
	return out;
}
