/* The configuration's keys: one row of key_table each (section, name, kind,
 * default, flags), and the parsers of their values. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "config/internal.h"
#include "config/toml.h"
#include "util/fileio.h"

const struct keyspec key_table[] = {
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
    {"salesforce", "create_individuals", K_BOOL, OFF(salesforce.create_individuals), "false", 0,
     -1},
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
    {"state", "map_size", K_SIZE, OFF(state.map_size), "64MiB", 0, -1},
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
    {"unsubscribe", "listen", K_LISTEN, OFF(unsubscribe.listen), "0.0.0.0:8426", 0, -1},
    {"unsubscribe", "base_url", K_LINKBASE, OFF(unsubscribe.base_url), NULL, 0, -1},
    {"unsubscribe", "key_file", K_PATH, OFF(unsubscribe.key_file), NULL, 0, -1},
    {"unsubscribe", "old_key_files", K_PATHS, OFF(unsubscribe.old_key_files), NULL, 0, -1},
    {"unsubscribe", "link_lifetime", K_DURATION, OFF(unsubscribe.link_lifetime_ms), "400d", 0, -1},
    {"unsubscribe", "organization", K_STRING, OFF(unsubscribe.organization), NULL, 0, -1},
    {"unsubscribe", "privacy_url", K_URL, OFF(unsubscribe.privacy_url), NULL, 0, -1},
    {"unsubscribe", "default_language", K_LANG, OFF(unsubscribe.default_language), "en", 0, -1},
    {"unsubscribe", "invalid_per_minute", K_COUNT, OFF(unsubscribe.invalid_per_minute), "30", 0,
     -1},
    {"unsubscribe", "trusted_proxies", K_CIDRS, OFF(unsubscribe.trusted_proxies), NULL, 0, -1},
    {"log", "level", K_LOGLEVEL, OFF(log.level), "info", 0, -1},
    {"log", "format", K_LOGFMT, OFF(log.format), "json", 0, -1},
};

const size_t config_nkeys = sizeof(key_table) / sizeof(key_table[0]);

/* The sections a file may have; "admins" is the [[admins]] array. */
const char *const sections[] = {"salesforce", "sync",        "state",    "api", "webhook", "admins",
                                "retention",  "unsubscribe", "purposes", "log", NULL};

const char *const secret_env[CONFIG_SECRET_COUNT] = {
    "OPTSYNC_SALESFORCE_PRIVATE_KEY", "OPTSYNC_SALESFORCE_CLIENT_SECRET",
    "OPTSYNC_SALESFORCE_REFRESH_TOKEN", "OPTSYNC_API_TOKEN", "OPTSYNC_WEBHOOK_SECRET"};

const char *const auth_names[] = {"jwt", "client_credentials", "refresh_token", NULL};
const char *const resub_names[] = {"revert", "hold", NULL};
const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
const char *const format_names[] = {"text", "json", NULL};
const char *const object_names[] = {"Contact", "Lead", NULL};
const char *const language_names[] = {"en", "nl", "sv", NULL};

const struct keyspec *cfg_find_key(const char *section, const char *key, size_t *idx)
{
	for (size_t i = 0; i < config_nkeys; i++)
		if (strcmp(key_table[i].section, section) == 0 &&
		    strcmp(key_table[i].key, key) == 0) {
			*idx = i;
			return &key_table[i];
		}
	return NULL;
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

int cfg_enum_index(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

void cfg_enum_list(const char *const *names, char *out, size_t cap)
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

/* Links go out in email: https, or http for a local test only. */
static int valid_linkbase(const char *s)
{
	if (!valid_url(s) || s[strlen(s) - 1] == '/' || strchr(s, '?') || strchr(s, '#'))
		return 0;
	if (strncmp(s, "https://", 8) == 0)
		return 1;
	static const char *const local[] = {"http://localhost", "http://127.0.0.1", "http://[::1]"};
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		size_t n = strlen(local[i]);
		if (strncmp(s, local[i], n) == 0 && (s[n] == '\0' || s[n] == ':' || s[n] == '/'))
			return 1;
	}
	return 0;
}

int cfg_valid_field(const char *s)
{
	if (!isalpha((unsigned char)s[0]))
		return 0;
	size_t n = 0;
	for (const char *p = s; *p; p++, n++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return 0;
	return n <= 80;
}

int cfg_valid_text(const char *s, size_t len)
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
int cfg_apply_text(struct config *cfg, const struct keyspec *k, const char *s, size_t len,
                   const char **why)
{
	char *base = (char *)cfg;
	if (!cfg_valid_text(s, len)) {
		*why = len == 0 ? "must not be empty" : "contains control characters";
		return -1;
	}
	static const struct {
		enum kind kind;
		int (*valid)(const char *);
		const char *why;
	} checks[] = {
	    {K_URL, valid_url, "must be an http:// or https:// URL"},
	    {K_FIELD, cfg_valid_field,
	     "must be a Salesforce API field name (letters, digits, '_')"},
	    {K_APIVER, valid_apiver, "must look like \"62.0\""},
	    {K_LISTEN, valid_listen, "must be \"host:port\" or \"unix:/absolute/path\""},
	    {K_LINKBASE, valid_linkbase,
	     "must be an https:// URL without a trailing '/', query or fragment (http:// only "
	     "for localhost)"},
	};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		if (checks[i].kind == k->kind && !checks[i].valid(s)) {
			*why = checks[i].why;
			return -1;
		}
	switch (k->kind) {
	case K_BOOL:
		/* only defaults come here as text; the file's value is a boolean */
		if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
			*why = "must be true or false";
			return -1;
		}
		*(bool *)(base + k->off) = strcmp(s, "true") == 0;
		return 0;
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
	case K_LOGFMT:
	case K_LANG: {
		const char *const *names = cfg_kind_enum(k->kind);
		int idx = cfg_enum_index(names, s);
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

const char *const *cfg_kind_enum(enum kind kd)
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
	case K_LANG:
		return language_names;
	default:
		return NULL;
	}
}

const char *config_language_name(enum config_language l)
{
	return l < CONFIG_LANG_COUNT ? language_names[l] : "en";
}

int config_parse_cidr(const char *s, struct config_cidr *out)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, host, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -1;
	unsigned max = out->family == AF_INET ? 32 : 128;
	out->bits = max;
	if (slash) {
		char *end;
		errno = 0;
		unsigned long b = strtoul(slash + 1, &end, 10);
		if (!isdigit((unsigned char)slash[1]) || *end || errno || b > max)
			return -1;
		out->bits = (unsigned)b;
	}
	return 0;
}

bool config_cidr_match(const struct config_cidr *c, int family, const unsigned char *addr)
{
	unsigned char mapped[16];
	if (family == AF_INET6 && c->family == AF_INET) {
		/* an IPv4 peer on a dual-stack socket: ::ffff:a.b.c.d */
		static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(addr, prefix, 12) != 0)
			return false;
		memcpy(mapped, addr + 12, 4);
		addr = mapped;
		family = AF_INET;
	}
	if (family != c->family)
		return false;
	unsigned full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(addr, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (addr[full] & mask) == (c->addr[full] & mask);
}
