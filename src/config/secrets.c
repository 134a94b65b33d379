/* The secrets (*_file keys and their environment overrides) and the
 * printing of the effective configuration. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"
#include "config/toml.h"
#include "util/fileio.h"

/* ---- secrets ---- */

static const struct keyspec *secret_spec(enum config_secret_id id)
{
	for (size_t i = 0; i < config_nkeys; i++)
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
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct keyspec *k = &key_table[i];
		if (strcmp(k->section, "webhook") == 0 && !cfg->webhook.enabled)
			continue;
		if (strcmp(k->section, "unsubscribe") == 0 && !cfg->unsubscribe.enabled)
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
		case K_BOOL:
			snprintf(val, sizeof(val), "%s",
			         *(const bool *)(base + k->off) ? "true" : "false");
			break;
		case K_AUTH:
		case K_RESUB:
		case K_LOGLEVEL: {
			int idx = *(const int *)(base + k->off);
			toml_quote(cfg_kind_enum(k->kind)[idx], val, sizeof(val));
			break;
		}
		case K_LANG:
			toml_quote(config_language_name(*(const int *)(base + k->off)), val,
			           sizeof(val));
			break;
		case K_PATHS:
		case K_CIDRS: {
			const struct config_list *l = (const struct config_list *)(base + k->off);
			size_t o = 0;
			val[o++] = '[';
			for (size_t j = 0; j < l->n && o < sizeof(val); j++) {
				char q[512];
				toml_quote(l->v[j], q, sizeof(q));
				int n =
				    snprintf(val + o, sizeof(val) - o, "%s%s", j ? ", " : "", q);
				if (n > 0)
					o += (size_t)n;
			}
			if (o < sizeof(val))
				snprintf(val + o, sizeof(val) - o, "]");
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
	for (size_t i = 0; i < cfg->api.nclients; i++) {
		const struct config_client *cl = &cfg->api.clients[i];
		toml_quote(cl->name ? cl->name : "", val, sizeof(val));
		fn(ctx, "api.clients", "name", val, (int)i);
		fn(ctx, "api.clients", "token_hash", NULL, (int)i);
		size_t o = (size_t)snprintf(val, sizeof(val), "[");
		for (unsigned b = 1; b < CONFIG_SCOPE_ALL && o < sizeof(val); b <<= 1)
			if (cl->scopes & b)
				o += (size_t)snprintf(val + o, sizeof(val) - o, "%s\"%s\"",
				                      o > 1 ? ", " : "", config_scope_name(b));
		if (o < sizeof(val))
			snprintf(val + o, sizeof(val) - o, "]");
		fn(ctx, "api.clients", "scopes", val, (int)i);
	}
	for (size_t i = 0; i < cfg->nadmins; i++) {
		toml_quote(cfg->admins[i].name ? cfg->admins[i].name : "", val, sizeof(val));
		fn(ctx, "admins", "name", val, (int)i);
		fn(ctx, "admins", "token_hash", NULL, (int)i);
	}
	for (size_t i = 0; i < cfg->npurposes; i++) {
		const struct config_purpose *p = &cfg->purposes[i];
		char q[256];
		toml_quote(p->name ? p->name : "", val, sizeof(val));
		fn(ctx, "purposes", "name", val, (int)i);
		toml_quote(config_basis_name(p->basis), val, sizeof(val));
		fn(ctx, "purposes", "basis", val, (int)i);
		size_t o = 0;
		o += (size_t)snprintf(val, sizeof(val), "{");
		for (int l = 0; l < CONFIG_LANG_COUNT; l++) {
			if (p->label[l] == NULL || o >= sizeof(val))
				continue;
			toml_quote(p->label[l], q, sizeof(q));
			o += (size_t)snprintf(val + o, sizeof(val) - o, "%s %s = %s",
			                      o > 1 ? "," : "", config_language_name(l), q);
		}
		if (o < sizeof(val))
			snprintf(val + o, sizeof(val) - o, " }");
		fn(ctx, "purposes", "label", val, (int)i);
		if (p->sf_opt_in_field) {
			char d[256];
			toml_quote(p->sf_opt_in_field, q, sizeof(q));
			toml_quote(p->sf_consent_date_field ? p->sf_consent_date_field : "", d,
			           sizeof(d));
			snprintf(val, sizeof(val), "{ opt_in_field = %s, consent_date_field = %s }",
			         q, d);
		} else {
			toml_quote(p->sf_field              ? p->sf_field
			           : p->sf_data_use_purpose ? p->sf_data_use_purpose
			                                    : "",
			           q, sizeof(q));
			snprintf(val, sizeof(val), "{ %s = %s }",
			         p->sf_field ? "field" : "data_use_purpose", q);
		}
		fn(ctx, "purposes", "salesforce", val, (int)i);
	}
}

const char *config_auth_name(enum config_auth a)
{
	return (unsigned)a < 3 ? auth_names[a] : "?";
}
