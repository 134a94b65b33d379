/* Loading and validating optsync.toml. Every key is one row of key_table:
 * its section, name, kind, default and flags; loading, defaults, the
 * unknown-key check and `config check` output all walk that table. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/toml.h"
#include "util/fileio.h"

#define CONFIG_FILE_MAX (1u << 20)
#define SECRET_MAX      (64u << 10)

enum kind {
	K_STRING,   /* any non-empty string */
	K_URL,      /* http:// or https:// */
	K_FIELD,    /* a Salesforce API name */
	K_PICKLIST, /* a picklist value: non-empty, no control characters */
	K_PATH,     /* a file or directory path */
	K_APIVER,   /* "62.0" */
	K_LISTEN,   /* "host:port" or "unix:/path" */
	K_DURATION, /* int64 ms */
	K_SIZE,     /* uint64 bytes */
	K_AUTH,     /* enum config_auth */
	K_RESUB,    /* enum config_resubscribe */
	K_LOGLEVEL, /* enum log_level */
	K_LOGFMT,   /* enum log_format */
	K_OBJECTS,  /* array of "Contact" | "Lead" */
	K_COUNT,    /* a TOML integer, 1 to COUNT_MAX, stored as uint32_t */
};

#define COUNT_MAX 1000

#define F_SECRET 1u /* a *_file key with an environment override */

struct keyspec {
	const char *section;
	const char *key;
	enum kind kind;
	size_t off;
	const char *def; /* default, in the same text form as the file; NULL: none */
	unsigned flags;
	int secret_id; /* for F_SECRET */
};

#define OFF(m) offsetof(struct config, m)

static const struct keyspec key_table[] = {
    {"salesforce", "login_url", K_URL, OFF(salesforce.login_url), "https://login.salesforce.com", 0,
     -1},
    {"salesforce", "audience", K_URL, OFF(salesforce.audience), NULL, 0, -1},
    {"salesforce", "api_version", K_APIVER, OFF(salesforce.api_version), "62.0", 0, -1},
    {"salesforce", "auth", K_AUTH, OFF(salesforce.auth), "jwt", 0, -1},
    {"salesforce", "client_id", K_STRING, OFF(salesforce.client_id), NULL, 0, -1},
    {"salesforce", "username", K_STRING, OFF(salesforce.username), NULL, 0, -1},
    {"salesforce", "private_key_file", K_PATH, OFF(salesforce.private_key_file), NULL, F_SECRET,
     CONFIG_SECRET_PRIVATE_KEY},
    {"salesforce", "client_secret_file", K_PATH, OFF(salesforce.client_secret_file), NULL, F_SECRET,
     CONFIG_SECRET_CLIENT_SECRET},
    {"salesforce", "refresh_token_file", K_PATH, OFF(salesforce.refresh_token_file), NULL, F_SECRET,
     CONFIG_SECRET_REFRESH_TOKEN},
    {"salesforce", "ca_file", K_PATH, OFF(salesforce.ca_file), NULL, 0, -1},
    {"salesforce", "connect_timeout", K_DURATION, OFF(salesforce.connect_timeout_ms), "10s", 0, -1},
    {"salesforce", "timeout", K_DURATION, OFF(salesforce.timeout_ms), "120s", 0, -1},
    {"salesforce", "objects", K_OBJECTS, 0, NULL, 0, -1},
    {"salesforce.fields", "opted_out", K_FIELD, OFF(salesforce.fields.opted_out),
     "HasOptedOutOfEmail", 0, -1},
    {"salesforce.fields", "authorization_type", K_FIELD, OFF(salesforce.fields.authorization_type),
     "Authorization_Type__c", 0, -1},
    {"salesforce.fields", "authorization_other", K_FIELD,
     OFF(salesforce.fields.authorization_other), "Authorization_Other__c", 0, -1},
    {"salesforce.fields", "consent_date", K_FIELD, OFF(salesforce.fields.consent_date),
     "Consent_Date__c", 0, -1},
    {"salesforce.fields", "purpose", K_FIELD, OFF(salesforce.fields.purpose),
     "Processing_Purpose__c", 0, -1},
    {"salesforce.fields", "source_type", K_FIELD, OFF(salesforce.fields.source_type),
     "Source_Type__c", 0, -1},
    {"salesforce.fields", "source_other", K_FIELD, OFF(salesforce.fields.source_other),
     "Source_Other__c", 0, -1},
    {"salesforce.values", "consent", K_PICKLIST, OFF(salesforce.values.consent), "Consent", 0, -1},
    {"salesforce.values", "legitimate_interest", K_PICKLIST,
     OFF(salesforce.values.legitimate_interest), "Legitimate Interest", 0, -1},
    {"salesforce.values", "contract", K_PICKLIST, OFF(salesforce.values.contract),
     "Performance of a Contract", 0, -1},
    {"salesforce.values", "legal_obligation", K_PICKLIST, OFF(salesforce.values.legal_obligation),
     "Legal Obligation", 0, -1},
    {"salesforce.values", "vital_interests", K_PICKLIST, OFF(salesforce.values.vital_interests),
     "Vital Interests", 0, -1},
    {"salesforce.values", "public_interest", K_PICKLIST, OFF(salesforce.values.public_interest),
     "Public Interest", 0, -1},
    {"salesforce.values", "other", K_PICKLIST, OFF(salesforce.values.other), "Other", 0, -1},
    {"salesforce.values", "crm_sync", K_PICKLIST, OFF(salesforce.values.crm_sync), "CRM Sync", 0,
     -1},
    {"salesforce.values", "import", K_PICKLIST, OFF(salesforce.values.import), "Import", 0, -1},
    {"salesforce.values", "manual_upload", K_PICKLIST, OFF(salesforce.values.manual_upload),
     "Manual Upload", 0, -1},
    {"salesforce.values", "browser_extension", K_PICKLIST, OFF(salesforce.values.browser_extension),
     "Browser Extension", 0, -1},
    {"sync", "interval", K_DURATION, OFF(sync.interval_ms), "60s", 0, -1},
    {"sync", "overlap", K_DURATION, OFF(sync.overlap_ms), "5m", 0, -1},
    {"sync", "resubscribe_policy", K_RESUB, OFF(sync.resubscribe_policy), "revert", 0, -1},
    {"sync", "unready_after", K_DURATION, OFF(sync.unready_after_ms), "10m", 0, -1},
    {"state", "path", K_PATH, OFF(state.path), "./optsync-state", 0, -1},
    {"state", "map_size", K_SIZE, OFF(state.map_size), "1GiB", 0, -1},
    {"state", "max_map_size", K_SIZE, OFF(state.max_map_size), "64GiB", 0, -1},
    {"state", "backup_dir", K_PATH, OFF(state.backup_dir), NULL, 0, -1},
    {"state", "backup_every", K_DURATION, OFF(state.backup_every_ms), "24h", 0, -1},
    {"state", "backup_keep", K_COUNT, OFF(state.backup_keep), "7", 0, -1},
    {"api", "listen", K_LISTEN, OFF(api.listen), "127.0.0.1:8425", 0, -1},
    {"api", "token_file", K_PATH, OFF(api.token_file), NULL, F_SECRET, CONFIG_SECRET_API_TOKEN},
    {"webhook", "url", K_URL, OFF(webhook.url), NULL, 0, -1},
    {"webhook", "secret_file", K_PATH, OFF(webhook.secret_file), NULL, F_SECRET,
     CONFIG_SECRET_WEBHOOK_SECRET},
    {"retention", "resolved_conflicts", K_DURATION, OFF(retention.resolved_conflicts_ms), "0s", 0,
     -1},
    {"retention", "history", K_DURATION, OFF(retention.history_ms), "0s", 0, -1},
    {"retention", "stale_persons", K_DURATION, OFF(retention.stale_persons_ms), "0s", 0, -1},
    {"retention", "every", K_DURATION, OFF(retention.every_ms), "1h", 0, -1},
    {"log", "level", K_LOGLEVEL, OFF(log.level), "info", 0, -1},
    {"log", "format", K_LOGFMT, OFF(log.format), "json", 0, -1},
};

#define NKEYS (sizeof(key_table) / sizeof(key_table[0]))

/* The sections a file may have; "admins" is the [[admins]] array. */
static const char *const sections[] = {"salesforce", "sync",      "state", "api", "webhook",
                                       "admins",     "retention", "log",   NULL};

static const char *const secret_env[CONFIG_SECRET_COUNT] = {
    "OPTSYNC_SALESFORCE_PRIVATE_KEY", "OPTSYNC_SALESFORCE_CLIENT_SECRET",
    "OPTSYNC_SALESFORCE_REFRESH_TOKEN", "OPTSYNC_API_TOKEN", "OPTSYNC_WEBHOOK_SECRET"};

static const char *const auth_names[] = {"jwt", "client_credentials", "refresh_token", NULL};
static const char *const resub_names[] = {"revert", "hold", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const format_names[] = {"text", "json", NULL};
static const char *const object_names[] = {"Contact", "Lead", NULL};

struct loader {
	struct config *cfg;
	const char *path;
	struct config_errors *all;
	struct err *e;
	int nerr;
	unsigned char set[NKEYS]; /* keys given in the file */
};

static int cfg_error(struct loader *L, int line, const char *fmt, ...) ERR_PRINTF(3, 4);
static int cfg_error(struct loader *L, int line, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX], full[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	if (line > 0)
		n = snprintf(full, sizeof(full), "%s:%d: %s", L->path, line, msg);
	else
		n = snprintf(full, sizeof(full), "%s: %s", L->path, msg);
	if (n < 0 || (size_t)n >= sizeof(full))
		memcpy(full + sizeof(full) - 4, "...", 4);
	if (L->nerr == 0)
		err_set(L->e, ERR_CONFIG, "%s", full);
	if (L->all) {
		if (L->all->n < CONFIG_ERRORS_MAX)
			memcpy(L->all->msg[L->all->n++], full, sizeof(full));
		else
			L->all->dropped++;
	}
	L->nerr++;
	return ERR_CONFIG;
}

/* ---- value parsers ---- */

int config_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	int64_t total = 0;
	const char *p = s;
	if (*p == '\0')
		return -1;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -1;
		int64_t n = 0;
		while (isdigit((unsigned char)*p)) {
			if (n > (INT64_MAX - 9) / 10)
				return -1;
			n = n * 10 + (*p++ - '0');
		}
		size_t ul = 0;
		while (isalpha((unsigned char)p[ul]))
			ul++;
		int found = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (strlen(units[i].unit) == ul && strncmp(p, units[i].unit, ul) == 0) {
				if (n > INT64_MAX / units[i].mult ||
				    total > INT64_MAX - n * units[i].mult)
					return -1;
				total += n * units[i].mult;
				found = 1;
				break;
			}
		}
		if (!found)
			return -1;
		p += ul;
	}
	*ms = total;
	return 0;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {{"", 1},
	             {"B", 1},
	             {"KiB", 1ull << 10},
	             {"MiB", 1ull << 20},
	             {"GiB", 1ull << 30},
	             {"TiB", 1ull << 40},
	             {"KB", 1000ull},
	             {"MB", 1000000ull},
	             {"GB", 1000000000ull},
	             {"TB", 1000000000000ull}};
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -1;
	uint64_t n = 0;
	while (isdigit((unsigned char)*p)) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p++ - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) == 0) {
			if (n > UINT64_MAX / units[i].mult)
				return -1;
			*bytes = n * units[i].mult;
			return 0;
		}
	}
	return -1;
}

static int enum_index(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

static void enum_list(const char *const *names, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; names[i] && o < cap; i++) {
		int n = snprintf(out + o, cap - o, "%s\"%s\"", i ? ", " : "", names[i]);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

static int valid_url(const char *s)
{
	const char *rest;
	if (strncmp(s, "https://", 8) == 0)
		rest = s + 8;
	else if (strncmp(s, "http://", 7) == 0)
		rest = s + 7;
	else
		return 0;
	if (*rest == '\0' || *rest == '/')
		return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '<' || *p == '>' || *p == '\\')
			return 0;
	return 1;
}

static int valid_field(const char *s)
{
	if (!isalpha((unsigned char)s[0]))
		return 0;
	size_t n = 0;
	for (const char *p = s; *p; p++, n++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return 0;
	return n <= 80;
}

static int valid_text(const char *s, size_t len)
{
	if (len == 0 || strlen(s) != len)
		return 0; /* empty, or an embedded NUL */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int valid_listen(const char *s)
{
	if (strncmp(s, "unix:", 5) == 0)
		return s[5] == '/' && strlen(s) < 5 + 108;
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon == s)
		return 0;
	if (s[0] == '[' && colon[-1] != ']')
		return 0;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	return colon[1] != '\0' && *end == '\0' && errno == 0 && port >= 1 && port <= 65535;
}

static int valid_apiver(const char *s)
{
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p++ != '.' || !isdigit((unsigned char)*p))
		return 0;
	while (isdigit((unsigned char)*p))
		p++;
	return *p == '\0' && p - s <= 8;
}

/* Set one key from its text form (file value or default). Returns 0, or -1
 * with *why naming the problem. */
static int apply_text(struct config *cfg, const struct keyspec *k, const char *s, size_t len,
                      const char **why)
{
	char *base = (char *)cfg;
	if (!valid_text(s, len)) {
		*why = len == 0 ? "must not be empty" : "contains control characters";
		return -1;
	}
	static const struct {
		enum kind kind;
		int (*valid)(const char *);
		const char *why;
	} checks[] = {
	    {K_URL, valid_url, "must be an http:// or https:// URL"},
	    {K_FIELD, valid_field, "must be a Salesforce API field name (letters, digits, '_')"},
	    {K_APIVER, valid_apiver, "must look like \"62.0\""},
	    {K_LISTEN, valid_listen, "must be \"host:port\" or \"unix:/absolute/path\""},
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (checks[i].kind == k->kind && !checks[i].valid(s)) {
			*why = checks[i].why;
			return -1;
		}
	switch (k->kind) {
	case K_COUNT: {
		/* only defaults come here as text; the file's value is an integer */
		char *end;
		unsigned long n = strtoul(s, &end, 10);
		if (*end || n < 1 || n > COUNT_MAX) {
			*why = "must be a count";
			return -1;
		}
		*(uint32_t *)(base + k->off) = (uint32_t)n;
		return 0;
	}
	case K_DURATION: {
		int64_t ms;
		if (config_parse_duration(s, &ms)) {
			*why = "must be a duration such as \"500ms\", \"60s\", \"5m\" or \"1h30m\"";
			return -1;
		}
		*(int64_t *)(base + k->off) = ms;
		return 0;
	}
	case K_SIZE: {
		uint64_t b;
		if (config_parse_size(s, &b)) {
			*why = "must be a size such as \"1GiB\" or \"512MiB\"";
			return -1;
		}
		*(uint64_t *)(base + k->off) = b;
		return 0;
	}
	case K_AUTH:
	case K_RESUB:
	case K_LOGLEVEL:
	case K_LOGFMT: {
		const char *const *names = k->kind == K_AUTH       ? auth_names
		                           : k->kind == K_RESUB    ? resub_names
		                           : k->kind == K_LOGLEVEL ? level_names
		                                                   : format_names;
		int idx = enum_index(names, s);
		if (idx < 0) {
			*why = "is not one of the allowed values";
			return -1;
		}
		if (k->kind == K_LOGFMT)
			*(int *)(base + k->off) = idx == 0 ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
		else
			*(int *)(base + k->off) = idx;
		return 0;
	}
	default:
		break;
	}
	char *copy = strdup(s);
	if (copy == NULL) {
		*why = "out of memory";
		return -1;
	}
	char **slot = (char **)(base + k->off);
	free(*slot);
	*slot = copy;
	return 0;
}

static const char *const *kind_enum(enum kind kd)
{
	switch (kd) {
	case K_AUTH:
		return auth_names;
	case K_RESUB:
		return resub_names;
	case K_LOGLEVEL:
		return level_names;
	case K_LOGFMT:
		return format_names;
	default:
		return NULL;
	}
}

static void load_objects(struct loader *L, const struct toml_value *v)
{
	struct config *cfg = L->cfg;
	if (toml_type_of(v) != TOML_ARRAY) {
		cfg_error(L, toml_line(v),
		          "salesforce.objects: expected an array of strings, got %s",
		          toml_type_name(toml_type_of(v)));
		return;
	}
	size_t n = toml_array_len(v);
	if (n == 0) {
		cfg_error(L, toml_line(v), "salesforce.objects: must name at least one object");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *it = toml_array_get(v, i);
		if (toml_type_of(it) != TOML_STRING) {
			cfg_error(L, toml_line(it), "salesforce.objects: expected strings, got %s",
			          toml_type_name(toml_type_of(it)));
			continue;
		}
		const char *s = toml_string(it, NULL);
		if (enum_index(object_names, s) < 0) {
			cfg_error(L, toml_line(it),
			          "salesforce.objects: unsupported object \"%s\" (supported: "
			          "\"Contact\", \"Lead\")",
			          s);
			continue;
		}
		int dup = 0;
		for (size_t j = 0; j < cfg->salesforce.nobjects; j++)
			dup |= strcmp(cfg->salesforce.objects[j], s) == 0;
		if (dup) {
			cfg_error(L, toml_line(it), "salesforce.objects: \"%s\" is listed twice",
			          s);
			continue;
		}
		char *copy = strdup(s);
		if (copy == NULL) {
			cfg_error(L, 0, "out of memory");
			return;
		}
		cfg->salesforce.objects[cfg->salesforce.nobjects++] = copy;
	}
}

static const struct keyspec *find_key(const char *section, const char *key, size_t *idx)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(key_table[i].section, section) == 0 &&
		    strcmp(key_table[i].key, key) == 0) {
			*idx = i;
			return &key_table[i];
		}
	return NULL;
}

static int section_has_subtable(const char *section, const char *key)
{
	if (strcmp(section, "salesforce") != 0)
		return 0;
	return strcmp(key, "fields") == 0 || strcmp(key, "values") == 0;
}

static void load_section(struct loader *L, const char *section, const struct toml_value *tab)
{
	for (size_t i = 0; i < toml_table_len(tab); i++) {
		size_t klen;
		const char *key = toml_table_key(tab, i, &klen);
		const struct toml_value *v = toml_table_value(tab, i);
		int line = toml_table_key_line(tab, i);
		if (strlen(key) != klen) {
			cfg_error(L, line, "%s: key with a NUL byte", section);
			continue;
		}
		if (section_has_subtable(section, key)) {
			char sub[64];
			snprintf(sub, sizeof(sub), "%s.%s", section, key);
			if (toml_type_of(v) != TOML_TABLE) {
				cfg_error(L, line, "%s: expected a table, got %s", sub,
				          toml_type_name(toml_type_of(v)));
				continue;
			}
			load_section(L, sub, v);
			continue;
		}
		size_t idx;
		const struct keyspec *k = find_key(section, key, &idx);
		if (k == NULL) {
			cfg_error(L, line, "unknown key '%s' in [%s]", key, section);
			continue;
		}
		L->set[idx] = 1;
		if (k->kind == K_OBJECTS) {
			load_objects(L, v);
			continue;
		}
		if (k->kind == K_COUNT) {
			if (toml_type_of(v) != TOML_INTEGER) {
				cfg_error(L, line, "%s.%s: expected an integer, got %s", section,
				          key, toml_type_name(toml_type_of(v)));
				continue;
			}
			int64_t n = toml_integer(v);
			if (n < 1 || n > COUNT_MAX)
				cfg_error(L, line, "%s.%s: must be 1 to %d, got %lld", section, key,
				          COUNT_MAX, (long long)n);
			else
				*(uint32_t *)((char *)L->cfg + k->off) = (uint32_t)n;
			continue;
		}
		if (toml_type_of(v) != TOML_STRING) {
			cfg_error(L, line, "%s.%s: expected a string, got %s", section, key,
			          toml_type_name(toml_type_of(v)));
			continue;
		}
		size_t slen;
		const char *s = toml_string(v, &slen);
		const char *why = NULL;
		if (apply_text(L->cfg, k, s, slen, &why)) {
			const char *const *names = kind_enum(k->kind);
			if (names) {
				char list[256];
				enum_list(names, list, sizeof(list));
				cfg_error(L, line, "%s.%s: \"%s\" is not one of %s", section, key,
				          s, list);
			} else {
				cfg_error(L, line, "%s.%s: %s", section, key, why);
			}
		}
	}
}

static void load_admins(struct loader *L, const struct toml_value *v, int line)
{
	struct config *cfg = L->cfg;
	if (toml_type_of(v) != TOML_ARRAY) {
		cfg_error(L, line, "admins: expected [[admins]] entries, got %s",
		          toml_type_name(toml_type_of(v)));
		return;
	}
	size_t n = toml_array_len(v);
	cfg->admins = calloc(n ? n : 1, sizeof(*cfg->admins));
	if (cfg->admins == NULL) {
		cfg_error(L, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *t = toml_array_get(v, i);
		if (toml_type_of(t) != TOML_TABLE) {
			cfg_error(L, toml_line(t), "admins: expected a table, got %s",
			          toml_type_name(toml_type_of(t)));
			continue;
		}
		struct config_admin *a = &cfg->admins[cfg->nadmins++];
		a->line = toml_line(t);
		for (size_t j = 0; j < toml_table_len(t); j++) {
			const char *key = toml_table_key(t, j, NULL);
			const struct toml_value *kv = toml_table_value(t, j);
			int kline = toml_table_key_line(t, j);
			char **slot = strcmp(key, "name") == 0         ? &a->name
			              : strcmp(key, "token_hash") == 0 ? &a->token_hash
			                                               : NULL;
			if (slot == NULL) {
				cfg_error(L, kline, "unknown key '%s' in [[admins]]", key);
				continue;
			}
			size_t slen;
			if (toml_type_of(kv) != TOML_STRING) {
				cfg_error(L, kline, "admins.%s: expected a string, got %s", key,
				          toml_type_name(toml_type_of(kv)));
				continue;
			}
			const char *s = toml_string(kv, &slen);
			if (!valid_text(s, slen)) {
				cfg_error(L, kline, "admins.%s: must be non-empty text", key);
				continue;
			}
			if (slot == &a->name) {
				for (const char *c = s; *c; c++)
					if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' &&
					    *c != '.' && *c != '@') {
						cfg_error(
						    L, kline,
						    "admins.name: \"%s\": use letters, digits "
						    "and _ - . @ only",
						    s);
						break;
					}
			}
			*slot = strdup(s);
			if (*slot == NULL)
				cfg_error(L, 0, "out of memory");
		}
		if (a->name == NULL)
			cfg_error(L, a->line, "[[admins]]: missing required key 'name'");
		if (a->token_hash == NULL)
			cfg_error(L, a->line,
			          "[[admins]]: missing required key 'token_hash' (make one with "
			          "`optsync admin hash-token`)");
		for (size_t j = 0; a->name && j + 1 < cfg->nadmins; j++)
			if (cfg->admins[j].name && strcmp(cfg->admins[j].name, a->name) == 0)
				cfg_error(L, a->line, "[[admins]]: name \"%s\" is used twice",
				          a->name);
	}
}

static int secret_configured(const struct config *cfg, enum config_secret_id id)
{
	const char *env = getenv(secret_env[id]);
	if (env && *env)
		return 1;
	for (size_t i = 0; i < NKEYS; i++)
		if ((key_table[i].flags & F_SECRET) && key_table[i].secret_id == (int)id)
			return *(char *const *)((const char *)cfg + key_table[i].off) != NULL;
	return 0;
}

static int section_line(const struct toml_value *root, const char *name)
{
	const struct toml_value *t = toml_table_get(root, name);
	return t ? toml_line(t) : 0;
}

/* Keys that are required only in some combinations. */
static void check_required(struct loader *L, const struct toml_value *root)
{
	struct config *cfg = L->cfg;
	int sf_line = section_line(root, "salesforce");
	if (cfg->salesforce.client_id == NULL)
		cfg_error(L, sf_line, "[salesforce]: missing required key 'client_id'");
	switch (cfg->salesforce.auth) {
	case CONFIG_AUTH_JWT:
		if (cfg->salesforce.username == NULL)
			cfg_error(L, sf_line,
			          "[salesforce]: missing required key 'username' (auth = \"jwt\")");
		if (!secret_configured(cfg, CONFIG_SECRET_PRIVATE_KEY))
			cfg_error(L, sf_line,
			          "[salesforce]: missing required key 'private_key_file' (auth = "
			          "\"jwt\"; or set OPTSYNC_SALESFORCE_PRIVATE_KEY)");
		break;
	case CONFIG_AUTH_CLIENT_CREDENTIALS:
		if (!secret_configured(cfg, CONFIG_SECRET_CLIENT_SECRET))
			cfg_error(
			    L, sf_line,
			    "[salesforce]: missing required key 'client_secret_file' (auth = "
			    "\"client_credentials\"; or set OPTSYNC_SALESFORCE_CLIENT_SECRET)");
		break;
	case CONFIG_AUTH_REFRESH_TOKEN:
		if (!secret_configured(cfg, CONFIG_SECRET_REFRESH_TOKEN))
			cfg_error(L, sf_line,
			          "[salesforce]: missing required key 'refresh_token_file' (auth = "
			          "\"refresh_token\"; or set OPTSYNC_SALESFORCE_REFRESH_TOKEN)");
		break;
	}
	if (cfg->webhook.enabled) {
		int wl = section_line(root, "webhook");
		if (cfg->webhook.url == NULL)
			cfg_error(L, wl, "[webhook]: missing required key 'url'");
		if (!secret_configured(cfg, CONFIG_SECRET_WEBHOOK_SECRET))
			cfg_error(L, wl,
			          "[webhook]: missing required key 'secret_file' (or set "
			          "OPTSYNC_WEBHOOK_SECRET)");
	}
	int sync_line = section_line(root, "sync"), state_line = section_line(root, "state");
	if (cfg->sync.interval_ms < 1000)
		cfg_error(L, sync_line, "sync.interval: must be at least 1s");
	if (cfg->sync.overlap_ms > 86400000)
		cfg_error(L, sync_line, "sync.overlap: must be at most 24h");
	if (cfg->state.map_size < (1u << 20))
		cfg_error(L, state_line, "state.map_size: must be at least 1MiB");
	if (cfg->state.max_map_size < cfg->state.map_size)
		cfg_error(L, state_line, "state.max_map_size: must be at least state.map_size");
	if (cfg->state.backup_every_ms < 60000)
		cfg_error(L, state_line, "state.backup_every: must be at least 1m");
	if (cfg->retention.every_ms < 60000)
		cfg_error(L, section_line(root, "retention"),
		          "retention.every: must be at least 1m");
	if (cfg->salesforce.connect_timeout_ms < 1000 || cfg->salesforce.timeout_ms < 1000)
		cfg_error(L, sf_line, "salesforce.connect_timeout and timeout: at least 1s each");

	/* Picklist values must tell the enum members apart. */
	const struct config_values *pv = &cfg->salesforce.values;
	const char *auth[] = {
	    pv->consent,         pv->legitimate_interest, pv->contract, pv->legal_obligation,
	    pv->vital_interests, pv->public_interest,     pv->other};
	const char *src[] = {pv->crm_sync, pv->import, pv->manual_upload, pv->browser_extension,
	                     pv->other};
	for (size_t i = 0; i < 7; i++)
		for (size_t j = i + 1; j < 7; j++)
			if (auth[i] && auth[j] && strcmp(auth[i], auth[j]) == 0)
				cfg_error(
				    L, section_line(toml_table_get(root, "salesforce"), "values"),
				    "salesforce.values: \"%s\" stands for two authorization types",
				    auth[i]);
	for (size_t i = 0; i < 5; i++)
		for (size_t j = i + 1; j < 5; j++)
			if (src[i] && src[j] && strcmp(src[i], src[j]) == 0)
				cfg_error(
				    L, section_line(toml_table_get(root, "salesforce"), "values"),
				    "salesforce.values: \"%s\" stands for two source types",
				    src[i]);
}

static void apply_defaults(struct loader *L)
{
	struct config *cfg = L->cfg;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct keyspec *k = &key_table[i];
		if (L->set[i] && k->off == OFF(log.level))
			cfg->log.level_set = true;
		if (L->set[i] && k->off == OFF(log.format))
			cfg->log.format_set = true;
		if (L->set[i] || k->def == NULL)
			continue;
		const char *why;
		if (apply_text(cfg, k, k->def, strlen(k->def), &why))
			cfg_error(L, 0, "default of %s.%s: %s", k->section, k->key, why);
	}
	if (cfg->salesforce.nobjects == 0 && L->nerr == 0) {
		for (size_t i = 0; object_names[i] && i < CONFIG_MAX_OBJECTS; i++) {
			cfg->salesforce.objects[i] = strdup(object_names[i]);
			if (cfg->salesforce.objects[i] == NULL) {
				cfg_error(L, 0, "out of memory");
				return;
			}
			cfg->salesforce.nobjects++;
		}
	}
	if (cfg->salesforce.audience == NULL && cfg->salesforce.login_url) {
		cfg->salesforce.audience = strdup(cfg->salesforce.login_url);
		if (cfg->salesforce.audience == NULL)
			cfg_error(L, 0, "out of memory");
	}
}

int config_load(struct config **out, const char *path, struct config_errors *all, struct err *e)
{
	*out = NULL;
	if (all) {
		all->n = 0;
		all->dropped = 0;
	}
	struct loader L = {.path = path, .all = all, .e = e};
	struct buf text;
	struct toml_value *root = NULL;
	int rc = file_read_all(path, CONFIG_FILE_MAX, &text, e);
	if (rc) {
		if (rc != ERR_NOMEM)
			rc = e ? (e->code = ERR_CONFIG) : ERR_CONFIG;
		if (all && e) {
			memcpy(all->msg[0], e->msg, sizeof(all->msg[0]));
			all->n = 1;
		}
		return rc;
	}
	rc = toml_parse(&root, text.data, text.len, path, e);
	buf_free(&text);
	if (rc) {
		if (rc != ERR_NOMEM)
			rc = e ? (e->code = ERR_CONFIG) : ERR_CONFIG;
		if (all && e) {
			memcpy(all->msg[0], e->msg, sizeof(all->msg[0]));
			all->n = 1;
		}
		return rc;
	}
	L.cfg = calloc(1, sizeof(*L.cfg));
	if (L.cfg == NULL || (L.cfg->path = strdup(path)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory loading %s", path);
		goto out;
	}
	for (size_t i = 0; i < toml_table_len(root); i++) {
		const char *name = toml_table_key(root, i, NULL);
		const struct toml_value *v = toml_table_value(root, i);
		int line = toml_table_key_line(root, i);
		if (enum_index(sections, name) < 0) {
			if (toml_type_of(v) == TOML_TABLE)
				cfg_error(&L, toml_line(v), "unknown section [%s]", name);
			else
				cfg_error(&L, line, "unknown key '%s' outside any section", name);
			continue;
		}
		if (strcmp(name, "admins") == 0) {
			load_admins(&L, v, line);
			continue;
		}
		if (toml_type_of(v) != TOML_TABLE) {
			cfg_error(&L, line, "%s: expected a [%s] table, got %s", name, name,
			          toml_type_name(toml_type_of(v)));
			continue;
		}
		if (strcmp(name, "webhook") == 0)
			L.cfg->webhook.enabled = true;
		load_section(&L, name, v);
	}
	apply_defaults(&L);
	if (L.nerr == 0)
		check_required(&L, root);
	rc = L.nerr ? ERR_CONFIG : 0;
out:
	toml_free(root);
	if (rc) {
		config_free(L.cfg);
		return rc;
	}
	*out = L.cfg;
	return 0;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct keyspec *k = &key_table[i];
		switch (k->kind) {
		case K_STRING:
		case K_URL:
		case K_FIELD:
		case K_PICKLIST:
		case K_PATH:
		case K_APIVER:
		case K_LISTEN:
			free(*(char **)((char *)cfg + k->off));
			break;
		default:
			break;
		}
	}
	for (size_t i = 0; i < cfg->salesforce.nobjects; i++)
		free(cfg->salesforce.objects[i]);
	for (size_t i = 0; i < cfg->nadmins; i++) {
		free(cfg->admins[i].name);
		free(cfg->admins[i].token_hash);
	}
	free(cfg->admins);
	free(cfg->path);
	free(cfg);
}

/* ---- secrets ---- */

static const struct keyspec *secret_spec(enum config_secret_id id)
{
	for (size_t i = 0; i < NKEYS; i++)
		if ((key_table[i].flags & F_SECRET) && key_table[i].secret_id == (int)id)
			return &key_table[i];
	return NULL;
}

const char *config_secret_key(enum config_secret_id id)
{
	static const char *const names[CONFIG_SECRET_COUNT] = {
	    "salesforce.private_key_file", "salesforce.client_secret_file",
	    "salesforce.refresh_token_file", "api.token_file", "webhook.secret_file"};
	return (unsigned)id < CONFIG_SECRET_COUNT ? names[id] : "?";
}

const char *config_secret_source(const struct config *cfg, enum config_secret_id id, char *buf,
                                 size_t cap)
{
	if ((unsigned)id >= CONFIG_SECRET_COUNT)
		return NULL;
	const char *env = getenv(secret_env[id]);
	if (env && *env) {
		snprintf(buf, cap, "env %s", secret_env[id]);
		return buf;
	}
	const struct keyspec *k = secret_spec(id);
	const char *path = *(char *const *)((const char *)cfg + k->off);
	if (path == NULL)
		return NULL;
	int n = snprintf(buf, cap, "file %s", path);
	if (n < 0 || (size_t)n >= cap)
		return NULL;
	return buf;
}

int config_secret(const struct config *cfg, enum config_secret_id id, char **out, size_t *len,
                  struct err *e)
{
	*out = NULL;
	*len = 0;
	if ((unsigned)id >= CONFIG_SECRET_COUNT)
		return err_set(e, ERR_INTERNAL, "unknown secret %d", (int)id);
	const char *env = getenv(secret_env[id]);
	if (env && *env) {
		size_t n = strlen(env);
		if (n > SECRET_MAX)
			return err_set(e, ERR_CONFIG, "%s: longer than %u bytes", secret_env[id],
			               SECRET_MAX);
		*out = malloc(n + 1);
		if (*out == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		memcpy(*out, env, n + 1);
		*len = n;
	} else {
		const struct keyspec *k = secret_spec(id);
		const char *path = *(char *const *)((const char *)cfg + k->off);
		if (path == NULL)
			return err_set(e, ERR_CONFIG, "%s: %s is not set (nor %s)", cfg->path,
			               config_secret_key(id), secret_env[id]);
		int rc = file_read_secret(path, SECRET_MAX, out, len, e);
		if (rc) {
			err_prefix(e, "%s: %s: ", cfg->path, config_secret_key(id));
			return rc;
		}
	}
	log_add_secret(*out, *len);
	return 0;
}

/* ---- printing ---- */

static void toml_quote(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	if (cap < 3) {
		out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (const char *p = s; *p && o + 8 < cap; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04X", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

static void format_duration(int64_t ms, char *out, size_t cap)
{
	if (ms % 86400000 == 0 && ms)
		snprintf(out, cap, "\"%lldd\"", (long long)(ms / 86400000));
	else if (ms % 3600000 == 0 && ms)
		snprintf(out, cap, "\"%lldh\"", (long long)(ms / 3600000));
	else if (ms % 60000 == 0 && ms)
		snprintf(out, cap, "\"%lldm\"", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, cap, "\"%llds\"", (long long)(ms / 1000));
	else
		snprintf(out, cap, "\"%lldms\"", (long long)ms);
}

static void format_size(uint64_t b, char *out, size_t cap)
{
	static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
	for (int i = 0; i < 4; i++) {
		uint64_t m = 1ull << (10 * (4 - i));
		if (b && b % m == 0) {
			snprintf(out, cap, "\"%llu%s\"", (unsigned long long)(b / m), units[i]);
			return;
		}
	}
	snprintf(out, cap, "\"%lluB\"", (unsigned long long)b);
}

void config_visit(const struct config *cfg, config_visit_fn fn, void *ctx)
{
	char val[1024];
	const char *base = (const char *)cfg;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct keyspec *k = &key_table[i];
		if (strcmp(k->section, "webhook") == 0 && !cfg->webhook.enabled)
			continue;
		switch (k->kind) {
		case K_DURATION:
			format_duration(*(const int64_t *)(base + k->off), val, sizeof(val));
			break;
		case K_SIZE:
			format_size(*(const uint64_t *)(base + k->off), val, sizeof(val));
			break;
		case K_COUNT:
			snprintf(val, sizeof(val), "%u", *(const uint32_t *)(base + k->off));
			break;
		case K_AUTH:
		case K_RESUB:
		case K_LOGLEVEL: {
			int idx = *(const int *)(base + k->off);
			toml_quote(kind_enum(k->kind)[idx], val, sizeof(val));
			break;
		}
		case K_LOGFMT:
			toml_quote(*(const int *)(base + k->off) == LOG_FORMAT_JSON ? "json"
			                                                            : "text",
			           val, sizeof(val));
			break;
		case K_OBJECTS: {
			size_t o = 0;
			val[o++] = '[';
			for (size_t j = 0; j < cfg->salesforce.nobjects; j++) {
				char q[64];
				toml_quote(cfg->salesforce.objects[j], q, sizeof(q));
				int n =
				    snprintf(val + o, sizeof(val) - o, "%s%s", j ? ", " : "", q);
				if (n > 0)
					o += (size_t)n;
			}
			snprintf(val + o, sizeof(val) - o, "]");
			break;
		}
		default: {
			const char *s = *(char *const *)(base + k->off);
			if (s == NULL)
				continue; /* not set, no default */
			toml_quote(s, val, sizeof(val));
			break;
		}
		}
		fn(ctx, k->section, k->key, val, -1);
	}
	for (size_t i = 0; i < cfg->nadmins; i++) {
		toml_quote(cfg->admins[i].name ? cfg->admins[i].name : "", val, sizeof(val));
		fn(ctx, "admins", "name", val, (int)i);
		fn(ctx, "admins", "token_hash", NULL, (int)i);
	}
}

const char *config_auth_name(enum config_auth a)
{
	return (unsigned)a < 3 ? auth_names[a] : "?";
}
