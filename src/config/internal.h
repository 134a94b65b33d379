/* Internal to src/config: the table of keys the loader (config.c), the
 * value parsers (keys.c) and the secrets and printing (secrets.c) share. */
#ifndef OPTSYNC_CONFIG_INTERNAL_H
#define OPTSYNC_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config/config.h"

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
	K_LANG,     /* enum config_language */
	K_PATHS,    /* array of paths, a struct config_list */
	K_CIDRS,    /* array of CIDRs, a struct config_list */
	K_LINKBASE, /* https://..., or http:// for localhost only */
	K_BOOL,     /* a TOML boolean */
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

/* Every key: one row each (keys.c). */
extern const struct keyspec key_table[];
extern const size_t config_nkeys;

/* The sections a file may have, the secrets' environment overrides and the
 * names of the enum kinds (keys.c). */
extern const char *const sections[];
extern const char *const secret_env[CONFIG_SECRET_COUNT];
extern const char *const auth_names[],
    *const resub_names[], *const level_names[], *const format_names[], *const object_names[],
                                                                           *const language_names[];

/* ---- value parsers (keys.c) ---- */

/* The index of s in names (NULL-terminated), or -1. */
int cfg_enum_index(const char *const *names, const char *s);
/* "a, b or c" */
void cfg_enum_list(const char *const *names, char *out, size_t cap);
/* A Salesforce API field name. */
int cfg_valid_field(const char *s);
/* Non-empty text without control characters. */
int cfg_valid_text(const char *s, size_t len);
/* Set key k of cfg from its text form (the file's value or the default):
 * 0, or -1 with *why naming the problem. */
int cfg_apply_text(struct config *cfg, const struct keyspec *k, const char *s, size_t len,
                   const char **why);
/* The names of an enum kind, or NULL. */
const char *const *cfg_kind_enum(enum kind kd);
/* The row of section.key (its index in *idx), or NULL. */
const struct keyspec *cfg_find_key(const char *section, const char *key, size_t *idx);

/* Whether a secret has a source: its *_file key or its environment
 * override (config.c). */
int cfg_secret_configured(const struct config *cfg, enum config_secret_id id);

#endif
