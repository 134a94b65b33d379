/* Loading and validating optsync.toml. Every key is one row of key_table:
 * its section, name, kind, default and flags; loading, defaults, the
 * unknown-key check and `config check` output all walk that table. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "config/internal.h"
#include "config/toml.h"
#include "util/fileio.h"

struct loader {
	struct config *cfg;
	const char *path;
	struct config_errors *all;
	struct err *e;
	int nerr;
	unsigned char *set;
	/* per key of key_table: given in the file */ /* keys given in the file */
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
		if (cfg_enum_index(object_names, s) < 0) {
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

/* An array of strings (old_key_files, trusted_proxies). */
static void load_list(struct loader *L, const char *section, const char *key,
                      const struct keyspec *k, const struct toml_value *v)
{
	struct config_list *l = (struct config_list *)((char *)L->cfg + k->off);
	if (toml_type_of(v) != TOML_ARRAY) {
		cfg_error(L, toml_line(v), "%s.%s: expected an array of strings, got %s", section,
		          key, toml_type_name(toml_type_of(v)));
		return;
	}
	size_t n = toml_array_len(v);
	l->v = calloc(n ? n : 1, sizeof(char *));
	if (l->v == NULL) {
		cfg_error(L, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *it = toml_array_get(v, i);
		size_t slen = 0;
		const char *s = toml_type_of(it) == TOML_STRING ? toml_string(it, &slen) : NULL;
		struct config_cidr cidr;
		if (s == NULL || !cfg_valid_text(s, slen))
			cfg_error(L, toml_line(it), "%s.%s: expected non-empty strings", section,
			          key);
		else if (k->kind == K_CIDRS && config_parse_cidr(s, &cidr))
			cfg_error(L, toml_line(it),
			          "%s.%s: \"%s\" is not an address or a range such as "
			          "\"10.0.0.0/8\" or \"fd00::/8\"",
			          section, key, s);
		else if ((l->v[l->n] = strdup(s)) == NULL)
			cfg_error(L, 0, "out of memory");
		else
			l->n++;
	}
}

static int section_has_subtable(const char *section, const char *key)
{
	if (strcmp(section, "salesforce") != 0)
		return 0;
	return strcmp(key, "fields") == 0 || strcmp(key, "values") == 0;
}

static const char *const scope_names[] = {"check", "optout", "write", "read", "export", NULL};

const char *config_scope_name(unsigned scope)
{
	for (unsigned i = 0; scope_names[i]; i++)
		if (scope == 1u << i)
			return scope_names[i];
	return NULL;
}

unsigned config_scope_parse(const char *name)
{
	for (unsigned i = 0; scope_names[i]; i++)
		if (strcmp(name, scope_names[i]) == 0)
			return 1u << i;
	return 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void load_client(struct loader *L, const struct toml_value *t, struct config_client *c)
{
	c->line = toml_line(t);
	bool have_scopes = false;
	for (size_t j = 0; j < toml_table_len(t); j++) {
		const char *key = toml_table_key(t, j, NULL);
		const struct toml_value *kv = toml_table_value(t, j);
		int kline = toml_table_key_line(t, j);
		if (strcmp(key, "scopes") == 0) {
			have_scopes = true;
			if (toml_type_of(kv) != TOML_ARRAY) {
				cfg_error(L, kline,
				          "api.clients.scopes: expected a list such as "
				          "[\"check\", \"optout\"]");
				continue;
			}
			for (size_t k = 0; k < toml_array_len(kv); k++) {
				const struct toml_value *sv = toml_array_get(kv, k);
				size_t sl;
				const char *sc =
				    toml_type_of(sv) == TOML_STRING ? toml_string(sv, &sl) : NULL;
				unsigned bit = sc ? config_scope_parse(sc) : 0;
				if (bit == 0)
					cfg_error(
					    L, kline,
					    "api.clients.scopes: \"%s\" is not one of \"check\", "
					    "\"optout\", \"write\", \"read\", \"export\"",
					    sc ? sc : "(not a string)");
				c->scopes |= bit;
			}
			continue;
		}
		char **slot = strcmp(key, "name") == 0         ? &c->name
		              : strcmp(key, "token_hash") == 0 ? &c->token_hash
		                                               : NULL;
		if (slot == NULL) {
			cfg_error(L, kline, "unknown key '%s' in [[api.clients]]", key);
			continue;
		}
		size_t slen;
		const char *sv = toml_type_of(kv) == TOML_STRING ? toml_string(kv, &slen) : NULL;
		if (sv == NULL || !cfg_valid_text(sv, slen)) {
			cfg_error(L, kline, "api.clients.%s: must be non-empty text", key);
			continue;
		}
		if (slot == &c->name)
			for (const char *q = sv; *q; q++)
				if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-' &&
				    *q != '.') {
					cfg_error(
					    L, kline,
					    "api.clients.name: \"%s\": use letters, digits and "
					    "_ - . only",
					    sv);
					break;
				}
		if (slot == &c->token_hash) {
			bool ok = slen == 7 + 64 && strncmp(sv, "sha256:", 7) == 0;
			for (size_t k = 0; ok && k < 32; k++) {
				int hi = hexval(sv[7 + 2 * k]), lo = hexval(sv[8 + 2 * k]);
				ok = hi >= 0 && lo >= 0;
				c->sha256[k] = (uint8_t)(hi << 4 | lo);
			}
			if (!ok) {
				cfg_error(L, kline,
				          "api.clients.token_hash: expected \"sha256:\" and 64 "
				          "lowercase hex digits (make the line with `optsync admin "
				          "hash-token --client`)");
				continue;
			}
		}
		*slot = strdup(sv);
		if (*slot == NULL)
			cfg_error(L, 0, "out of memory");
	}
	if (c->name == NULL)
		cfg_error(L, c->line, "[[api.clients]]: missing required key 'name'");
	if (c->token_hash == NULL)
		cfg_error(L, c->line,
		          "[[api.clients]]: missing required key 'token_hash' (make it with "
		          "`optsync admin hash-token --client`)");
	if (!have_scopes)
		cfg_error(L, c->line,
		          "[[api.clients]]: missing required key 'scopes' (any of \"check\", "
		          "\"optout\", \"write\", \"read\", \"export\")");
}

static void load_clients(struct loader *L, const struct toml_value *v, int line)
{
	struct config *cfg = L->cfg;
	if (toml_type_of(v) != TOML_ARRAY) {
		cfg_error(L, line, "api.clients: expected [[api.clients]] entries");
		return;
	}
	size_t n = toml_array_len(v);
	if (n > CONFIG_CLIENTS_MAX) {
		cfg_error(L, line, "api.clients: at most %d, got %zu", CONFIG_CLIENTS_MAX, n);
		return;
	}
	cfg->api.clients = calloc(n ? n : 1, sizeof(*cfg->api.clients));
	if (cfg->api.clients == NULL) {
		cfg_error(L, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *t = toml_array_get(v, i);
		if (toml_type_of(t) != TOML_TABLE) {
			cfg_error(L, toml_line(t), "api.clients: expected a table");
			continue;
		}
		struct config_client *c = &cfg->api.clients[cfg->api.nclients++];
		load_client(L, t, c);
		for (size_t j = 0; j + 1 < cfg->api.nclients; j++) {
			const struct config_client *o = &cfg->api.clients[j];
			if (c->name && o->name && strcmp(c->name, o->name) == 0)
				cfg_error(L, c->line, "[[api.clients]]: name \"%s\" is used twice",
				          c->name);
			if (c->token_hash && o->token_hash &&
			    strcmp(c->token_hash, o->token_hash) == 0)
				cfg_error(
				    L, c->line,
				    "[[api.clients]]: \"%s\" has the token of \"%s\": give each "
				    "client its own",
				    c->name ? c->name : "?", o->name ? o->name : "?");
		}
	}
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
		if (strcmp(section, "api") == 0 && strcmp(key, "clients") == 0) {
			load_clients(L, v, line);
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
		const struct keyspec *k = cfg_find_key(section, key, &idx);
		if (k == NULL) {
			cfg_error(L, line, "unknown key '%s' in [%s]", key, section);
			continue;
		}
		L->set[idx] = 1;
		if (k->kind == K_OBJECTS) {
			load_objects(L, v);
			continue;
		}
		if (k->kind == K_PATHS || k->kind == K_CIDRS) {
			load_list(L, section, key, k, v);
			continue;
		}
		if (k->kind == K_BOOL) {
			if (toml_type_of(v) != TOML_BOOL)
				cfg_error(L, line, "%s.%s: expected true or false, got %s", section,
				          key, toml_type_name(toml_type_of(v)));
			else
				*(bool *)((char *)L->cfg + k->off) = toml_bool(v);
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
		if (cfg_apply_text(L->cfg, k, s, slen, &why)) {
			const char *const *names = cfg_kind_enum(k->kind);
			if (names) {
				char list[256];
				cfg_enum_list(names, list, sizeof(list));
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
			if (!cfg_valid_text(s, slen)) {
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

/* ---- [[purposes]] ---- */

static int purpose_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

/* A string value of key in table t (its line in *line), or NULL with an
 * error when it is not a non-empty string. */
static char *dup_string(struct loader *L, const struct toml_value *v, int line, const char *what)
{
	size_t slen;
	if (toml_type_of(v) != TOML_STRING) {
		cfg_error(L, line, "%s: expected a string, got %s", what,
		          toml_type_name(toml_type_of(v)));
		return NULL;
	}
	const char *s = toml_string(v, &slen);
	if (!cfg_valid_text(s, slen)) {
		cfg_error(L, line, "%s: must be non-empty text", what);
		return NULL;
	}
	char *d = strdup(s);
	if (d == NULL)
		cfg_error(L, 0, "out of memory");
	return d;
}

static void load_purpose_labels(struct loader *L, struct config_purpose *p,
                                const struct toml_value *v, int line)
{
	if (toml_type_of(v) != TOML_TABLE) {
		cfg_error(L, line,
		          "purposes.label: expected a table such as { en = \"Newsletter\", "
		          "nl = \"Nieuwsbrief\" }, got %s",
		          toml_type_name(toml_type_of(v)));
		return;
	}
	for (size_t j = 0; j < toml_table_len(v); j++) {
		const char *lang = toml_table_key(v, j, NULL);
		int kline = toml_table_key_line(v, j);
		int idx = cfg_enum_index(language_names, lang);
		if (idx < 0) {
			cfg_error(L, kline,
			          "purposes.label: \"%s\" is not one of \"en\", \"nl\", "
			          "\"sv\"",
			          lang);
			continue;
		}
		free(p->label[idx]);
		p->label[idx] = dup_string(L, toml_table_value(v, j), kline, "purposes.label");
	}
}

/* One key of a purpose's salesforce = { ... } mapping: its slot in p, its
 * full name for errors, whether it names a field of Contact and Lead. */
struct mapping_key {
	const char *key, *what;
	size_t off;
	bool field;
};

static const struct mapping_key mapping_keys[] = {
    {"field", "purposes.salesforce.field", offsetof(struct config_purpose, sf_field), true},
    {"data_use_purpose", "purposes.salesforce.data_use_purpose",
     offsetof(struct config_purpose, sf_data_use_purpose), false},
    {"opt_in_field", "purposes.salesforce.opt_in_field",
     offsetof(struct config_purpose, sf_opt_in_field), true},
    {"consent_date_field", "purposes.salesforce.consent_date_field",
     offsetof(struct config_purpose, sf_consent_date_field), true},
};
#define MAPPING_KEYS (sizeof(mapping_keys) / sizeof(mapping_keys[0]))

static void load_purpose_mapping(struct loader *L, struct config_purpose *p,
                                 const struct toml_value *v, int line)
{
	if (toml_type_of(v) != TOML_TABLE) {
		cfg_error(L, line,
		          "purposes.salesforce: expected { field = \"...\" }, { opt_in_field = "
		          "\"...\", consent_date_field = \"...\" } or { data_use_purpose = "
		          "\"...\" }, got %s",
		          toml_type_name(toml_type_of(v)));
		return;
	}
	bool given[MAPPING_KEYS] = {false}, bad = false;
	for (size_t j = 0; j < toml_table_len(v); j++) {
		const char *key = toml_table_key(v, j, NULL);
		int kline = toml_table_key_line(v, j);
		size_t k = 0;
		while (k < MAPPING_KEYS && strcmp(key, mapping_keys[k].key) != 0)
			k++;
		if (k == MAPPING_KEYS) {
			cfg_error(L, kline,
			          "purposes.salesforce: unknown key '%s' (field, opt_in_field and "
			          "consent_date_field, or data_use_purpose)",
			          key);
			bad = true;
			continue;
		}
		char **slot = (char **)((char *)p + mapping_keys[k].off);
		free(*slot);
		*slot = dup_string(L, toml_table_value(v, j), kline, mapping_keys[k].what);
		given[k] = true;
		bad |= *slot == NULL;
	}
	if (bad)
		return; /* said above */
	bool opt_in = given[2] || given[3];
	if ((int)given[0] + (int)given[1] + (int)opt_in != 1) {
		cfg_error(
		    L, line,
		    "purposes.salesforce: give exactly one of field (a checkbox on Contact "
		    "and Lead, true = out), opt_in_field with consent_date_field (a checkbox, "
		    "true = in, and the date of the consent) or data_use_purpose "
		    "(Salesforce's consent objects)");
		return;
	}
	if (opt_in && !given[3]) {
		cfg_error(L, line,
		          "purposes.salesforce.consent_date_field: required with opt_in_field "
		          "(the field with the date the consent was given: a ticked box without "
		          "it is not evidence)");
		return;
	}
	if (opt_in && !given[2]) {
		cfg_error(L, line,
		          "purposes.salesforce.opt_in_field: required with consent_date_field "
		          "(the checkbox, true = in)");
		return;
	}
	for (size_t k = 0; k < MAPPING_KEYS; k++) {
		const char *f = *(char **)((char *)p + mapping_keys[k].off);
		if (mapping_keys[k].field && f && !cfg_valid_field(f))
			cfg_error(L, line, "%s: \"%s\" is not a Salesforce API field name",
			          mapping_keys[k].what, f);
	}
	if (opt_in && strcasecmp(p->sf_opt_in_field, p->sf_consent_date_field) == 0)
		cfg_error(L, line,
		          "purposes.salesforce: opt_in_field and consent_date_field name the same "
		          "field, %s: the checkbox and the date are two fields",
		          p->sf_opt_in_field);
}

/* The fields of Contact and Lead that purpose p maps ("" at the end). */
static void purpose_fields(const struct config_purpose *p, const char *out[4])
{
	size_t n = 0;
	if (p->sf_field)
		out[n++] = p->sf_field;
	if (p->sf_opt_in_field)
		out[n++] = p->sf_opt_in_field;
	if (p->sf_consent_date_field)
		out[n++] = p->sf_consent_date_field;
	out[n] = NULL;
}

static void load_purposes(struct loader *L, const struct toml_value *v, int line)
{
	struct config *cfg = L->cfg;
	if (toml_type_of(v) != TOML_ARRAY) {
		cfg_error(L, line, "purposes: expected [[purposes]] entries, got %s",
		          toml_type_name(toml_type_of(v)));
		return;
	}
	size_t n = toml_array_len(v);
	if (n > CONFIG_PURPOSES_MAX) {
		cfg_error(L, line, "purposes: at most %d, got %zu", CONFIG_PURPOSES_MAX, n);
		return;
	}
	cfg->purposes = calloc(n ? n : 1, sizeof(*cfg->purposes));
	if (cfg->purposes == NULL) {
		cfg_error(L, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct toml_value *t = toml_array_get(v, i);
		if (toml_type_of(t) != TOML_TABLE) {
			cfg_error(L, toml_line(t), "purposes: expected a table, got %s",
			          toml_type_name(toml_type_of(t)));
			continue;
		}
		struct config_purpose *p = &cfg->purposes[cfg->npurposes++];
		p->line = toml_line(t);
		int basis_set = 0;
		bool mapped = false; /* salesforce given (its errors said where it is) */
		for (size_t j = 0; j < toml_table_len(t); j++) {
			const char *key = toml_table_key(t, j, NULL);
			const struct toml_value *kv = toml_table_value(t, j);
			int kline = toml_table_key_line(t, j);
			if (strcmp(key, "name") == 0) {
				free(p->name);
				p->name = dup_string(L, kv, kline, "purposes.name");
				if (p->name && !purpose_name_ok(p->name))
					cfg_error(L, kline,
					          "purposes.name: \"%s\": use 1 to 32 of a-z, "
					          "0-9 and _",
					          p->name);
			} else if (strcmp(key, "label") == 0) {
				load_purpose_labels(L, p, kv, kline);
			} else if (strcmp(key, "basis") == 0) {
				char *b = dup_string(L, kv, kline, "purposes.basis");
				if (b && strcmp(b, "consent") == 0)
					p->basis = CONFIG_BASIS_CONSENT;
				else if (b && strcmp(b, "soft_opt_in") == 0)
					p->basis = CONFIG_BASIS_SOFT_OPT_IN;
				else if (b)
					cfg_error(L, kline,
					          "purposes.basis: \"%s\" is not one of "
					          "\"consent\", \"soft_opt_in\"",
					          b);
				basis_set = b != NULL;
				free(b);
			} else if (strcmp(key, "salesforce") == 0) {
				load_purpose_mapping(L, p, kv, kline);
				mapped = true;
			} else {
				cfg_error(L, kline, "unknown key '%s' in [[purposes]]", key);
			}
		}
		if (p->name == NULL)
			cfg_error(L, p->line, "[[purposes]]: missing required key 'name'");
		if (!basis_set)
			cfg_error(L, p->line,
			          "[[purposes]]: missing required key 'basis' (\"consent\" or "
			          "\"soft_opt_in\")");
		if (!mapped)
			cfg_error(L, p->line, "[[purposes]]: missing required key 'salesforce'");
		const char *mine[4], *theirs[4];
		purpose_fields(p, mine);
		for (size_t j = 0; p->name && j + 1 < cfg->npurposes; j++) {
			const struct config_purpose *q = &cfg->purposes[j];
			if (q->name && strcmp(q->name, p->name) == 0)
				cfg_error(L, p->line, "[[purposes]]: name \"%s\" is used twice",
				          p->name);
			purpose_fields(q, theirs);
			for (size_t a = 0; mine[a]; a++)
				for (size_t b = 0; theirs[b]; b++)
					if (strcasecmp(mine[a], theirs[b]) == 0)
						cfg_error(L, p->line,
						          "[[purposes]]: field %s is mapped by two "
						          "purposes",
						          mine[a]);
		}
	}
}

const struct config_purpose *config_purpose_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; name && i < cfg->npurposes; i++)
		if (cfg->purposes[i].name && strcmp(cfg->purposes[i].name, name) == 0)
			return &cfg->purposes[i];
	return NULL;
}

const char *config_basis_name(enum config_basis b)
{
	return b == CONFIG_BASIS_SOFT_OPT_IN ? "soft_opt_in" : "consent";
}

int cfg_secret_configured(const struct config *cfg, enum config_secret_id id)
{
	const char *env = getenv(secret_env[id]);
	if (env && *env)
		return 1;
	for (size_t i = 0; i < config_nkeys; i++)
		if ((key_table[i].flags & F_SECRET) && key_table[i].secret_id == (int)id)
			return *(char *const *)((const char *)cfg + key_table[i].off) != NULL;
	return 0;
}

static int section_line(const struct toml_value *root, const char *name)
{
	const struct toml_value *t = toml_table_get(root, name);
	return t ? toml_line(t) : 0;
}

static void check_unsubscribe(struct loader *L, int line)
{
	const struct config *cfg = L->cfg;
	static const char *const need[] = {"base_url", "key_file", "organization", "privacy_url"};
	const char *have[] = {cfg->unsubscribe.base_url, cfg->unsubscribe.key_file,
	                      cfg->unsubscribe.organization, cfg->unsubscribe.privacy_url};
	for (size_t i = 0; i < 4; i++)
		if (have[i] == NULL)
			cfg_error(L, line, "[unsubscribe]: missing required key '%s'", need[i]);
	if (cfg->unsubscribe.link_lifetime_ms < 86400000)
		cfg_error(L, line, "unsubscribe.link_lifetime: must be at least 1d");
	if (cfg->unsubscribe.listen && cfg->api.listen &&
	    strcmp(cfg->unsubscribe.listen, cfg->api.listen) == 0)
		cfg_error(L, line,
		          "unsubscribe.listen: \"%s\" is the local API's address; the public "
		          "listener needs its own",
		          cfg->unsubscribe.listen);
}

/* Keys that are required only in some combinations. */
static void check_required(struct loader *L, const struct toml_value *root)
{
	struct config *cfg = L->cfg;
	if (cfg->api.nclients && cfg->api.token_file)
		cfg_error(L, section_line(root, "api"),
		          "[api]: token_file and [[api.clients]] both given; the clients replace "
		          "the single token: give the program that used it a client of its own "
		          "(or name it \"default\" with every scope)");
	int sf_line = section_line(root, "salesforce");
	if (cfg->salesforce.client_id == NULL)
		cfg_error(L, sf_line, "[salesforce]: missing required key 'client_id'");
	switch (cfg->salesforce.auth) {
	case CONFIG_AUTH_JWT:
		if (cfg->salesforce.username == NULL)
			cfg_error(L, sf_line,
			          "[salesforce]: missing required key 'username' (auth = \"jwt\")");
		if (!cfg_secret_configured(cfg, CONFIG_SECRET_PRIVATE_KEY))
			cfg_error(L, sf_line,
			          "[salesforce]: missing required key 'private_key_file' (auth = "
			          "\"jwt\"; or set OPTSYNC_SALESFORCE_PRIVATE_KEY)");
		break;
	case CONFIG_AUTH_CLIENT_CREDENTIALS:
		if (!cfg_secret_configured(cfg, CONFIG_SECRET_CLIENT_SECRET))
			cfg_error(
			    L, sf_line,
			    "[salesforce]: missing required key 'client_secret_file' (auth = "
			    "\"client_credentials\"; or set OPTSYNC_SALESFORCE_CLIENT_SECRET)");
		break;
	case CONFIG_AUTH_REFRESH_TOKEN:
		if (!cfg_secret_configured(cfg, CONFIG_SECRET_REFRESH_TOKEN))
			cfg_error(L, sf_line,
			          "[salesforce]: missing required key 'refresh_token_file' (auth = "
			          "\"refresh_token\"; or set OPTSYNC_SALESFORCE_REFRESH_TOKEN)");
		break;
	}
	if (cfg->webhook.enabled) {
		int wl = section_line(root, "webhook");
		if (cfg->webhook.url == NULL)
			cfg_error(L, wl, "[webhook]: missing required key 'url'");
		if (!cfg_secret_configured(cfg, CONFIG_SECRET_WEBHOOK_SECRET))
			cfg_error(L, wl,
			          "[webhook]: missing required key 'secret_file' (or set "
			          "OPTSYNC_WEBHOOK_SECRET)");
	}
	if (cfg->unsubscribe.enabled)
		check_unsubscribe(L, section_line(root, "unsubscribe"));
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
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct keyspec *k = &key_table[i];
		if (L->set[i] && k->off == OFF(log.level))
			cfg->log.level_set = true;
		if (L->set[i] && k->off == OFF(log.format))
			cfg->log.format_set = true;
		if (L->set[i] || k->def == NULL)
			continue;
		const char *why;
		if (cfg_apply_text(cfg, k, k->def, strlen(k->def), &why))
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
	L.set = calloc(config_nkeys, 1);
	if (L.cfg == NULL || L.set == NULL || (L.cfg->path = strdup(path)) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory loading %s", path);
		goto out;
	}
	for (size_t i = 0; i < toml_table_len(root); i++) {
		const char *name = toml_table_key(root, i, NULL);
		const struct toml_value *v = toml_table_value(root, i);
		int line = toml_table_key_line(root, i);
		if (cfg_enum_index(sections, name) < 0) {
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
		if (strcmp(name, "purposes") == 0) {
			load_purposes(&L, v, line);
			continue;
		}
		if (toml_type_of(v) != TOML_TABLE) {
			cfg_error(&L, line, "%s: expected a [%s] table, got %s", name, name,
			          toml_type_name(toml_type_of(v)));
			continue;
		}
		if (strcmp(name, "webhook") == 0)
			L.cfg->webhook.enabled = true;
		if (strcmp(name, "unsubscribe") == 0)
			L.cfg->unsubscribe.enabled = true;
		load_section(&L, name, v);
	}
	apply_defaults(&L);
	if (L.nerr == 0)
		check_required(&L, root);
	rc = L.nerr ? ERR_CONFIG : 0;
out:
	toml_free(root);
	free(L.set);
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
	for (size_t i = 0; i < config_nkeys; i++) {
		const struct keyspec *k = &key_table[i];
		switch (k->kind) {
		case K_STRING:
		case K_URL:
		case K_FIELD:
		case K_PICKLIST:
		case K_PATH:
		case K_APIVER:
		case K_LISTEN:
		case K_LINKBASE:
			free(*(char **)((char *)cfg + k->off));
			break;
		case K_PATHS:
		case K_CIDRS: {
			struct config_list *l = (struct config_list *)((char *)cfg + k->off);
			for (size_t j = 0; j < l->n; j++)
				free(l->v[j]);
			free(l->v);
			break;
		}
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
	for (size_t i = 0; i < cfg->npurposes; i++) {
		struct config_purpose *p = &cfg->purposes[i];
		free(p->name);
		for (int l = 0; l < CONFIG_LANG_COUNT; l++)
			free(p->label[l]);
		free(p->sf_field);
		free(p->sf_data_use_purpose);
		free(p->sf_opt_in_field);
		free(p->sf_consent_date_field);
	}
	free(cfg->purposes);
	for (size_t i = 0; i < cfg->api.nclients; i++) {
		free(cfg->api.clients[i].name);
		free(cfg->api.clients[i].token_hash);
	}
	free(cfg->api.clients);
	free(cfg->path);
	free(cfg);
}

int config_link_key_check(const char *path, struct err *e)
{
	struct stat st;
	int rc = file_check_secret(path, &st, e);
	if (rc)
		return rc;
	if (st.st_size < CONFIG_LINK_KEY_MIN)
		return err_set(
		    e, ERR_INVALID,
		    "the link key %s holds %lld bytes; a link key needs at least %d random "
		    "bytes (make one with: head -c 32 /dev/urandom > FILE)",
		    path, (long long)st.st_size, CONFIG_LINK_KEY_MIN);
	return 0;
}
