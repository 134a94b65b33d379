/* optsync's configuration (README, "Configuration"), loaded from TOML and validated.
 *
 * struct config is plain data, read-only after config_load(); it is public
 * so that every module can read its own section without an accessor per
 * key. Secrets are not in it: config_secret() reads a secret when it is
 * needed, from its OPTSYNC_<SECTION>_<KEY> environment override or its
 * *_file, and registers it with the log redactor. */
#ifndef OPTSYNC_CONFIG_CONFIG_H
#define OPTSYNC_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/log.h"

enum config_auth { CONFIG_AUTH_JWT = 0, CONFIG_AUTH_CLIENT_CREDENTIALS, CONFIG_AUTH_REFRESH_TOKEN };
enum config_resubscribe { CONFIG_RESUB_REVERT = 0, CONFIG_RESUB_HOLD };

/* Salesforce field names of the compliance facts ([salesforce.fields]). */
struct config_fields {
	char *opted_out, *authorization_type, *authorization_other, *consent_date, *purpose,
	    *source_type, *source_other;
};

/* Picklist values in Salesforce for each enum ([salesforce.values]). */
struct config_values {
	char *consent, *legitimate_interest, *contract, *legal_obligation, *vital_interests,
	    *public_interest, *other, *crm_sync, *import, *manual_upload, *browser_extension;
};

struct config_admin {
	char *name;
	char *token_hash;
	int line; /* where the entry starts, for later errors */
};

/* [[api.clients]]: a program that calls the local API, with the scopes
 * it may use (enum config_scope bits). */
enum config_scope {
	CONFIG_SCOPE_CHECK = 1,   /* suppression checks, a person's state */
	CONFIG_SCOPE_OPTOUT = 2,  /* opt-outs, minting unsubscribe links */
	CONFIG_SCOPE_WRITE = 4,   /* compliance fields, consents, batches */
	CONFIG_SCOPE_READ = 8,    /* history, conflicts, the change feed, status */
	CONFIG_SCOPE_EXPORT = 16, /* a person's export, the suppression list */
	CONFIG_SCOPE_ALL = 31,
};
#define CONFIG_CLIENTS_MAX 64
struct config_client {
	char *name;
	char *token_hash;   /* "sha256:" and 64 hex digits, as written */
	uint8_t sha256[32]; /* its digest */
	unsigned scopes;    /* enum config_scope bits */
	int line;
};
/* A scope's name ("check"), or NULL; and back (0 for an unknown name). */
const char *config_scope_name(unsigned scope);
unsigned config_scope_parse(const char *name);

#define CONFIG_MAX_OBJECTS 2

/* [[purposes]]: the uses of an email a person opts in and out of one by
 * one. */
#define CONFIG_PURPOSES_MAX 16
enum config_basis {
	CONFIG_BASIS_CONSENT,     /* suppressed until an opt-in with evidence */
	CONFIG_BASIS_SOFT_OPT_IN, /* existing customers: in until they object */
};

/* An array of strings from the file. */
struct config_list {
	char **v;
	size_t n;
};

#define CONFIG_LINK_KEY_MIN 32 /* bytes of an unsubscribe link key */

/* The languages the unsubscribe pages speak. */
enum config_language { CONFIG_LANG_EN, CONFIG_LANG_NL, CONFIG_LANG_SV, CONFIG_LANG_COUNT };

struct config_purpose {
	char *name;                     /* [a-z0-9_]{1,32} */
	char *label[CONFIG_LANG_COUNT]; /* by enum config_language; NULL: the name */
	enum config_basis basis;
	char *sf_field;            /* a checkbox on Contact and Lead, true = out */
	char *sf_data_use_purpose; /* or: a DataUsePurpose's Name */
	/* or: a checkbox on Contact and Lead, true = in, and the date-time field
	 * of the consent's date (both set, or neither) */
	char *sf_opt_in_field, *sf_consent_date_field;
	int line;
};

struct config {
	char *path; /* the file the configuration came from */
	struct {
		char *login_url;
		char *audience; /* JWT aud; defaults to login_url */
		char *api_version;
		enum config_auth auth;
		char *client_id;
		char *username;
		char *private_key_file, *client_secret_file, *refresh_token_file;
		char *ca_file; /* optional CA bundle; verification is always on */
		int64_t connect_timeout_ms, timeout_ms;
		char *objects[CONFIG_MAX_OBJECTS];
		size_t nobjects;
		struct config_fields fields;
		struct config_values values;
		bool create_individuals; /* create a missing Individual (consent objects) */
	} salesforce;
	struct {
		int64_t interval_ms, overlap_ms;
		int64_t unready_after_ms; /* /readyz says 503 once cycles fail this long */
		enum config_resubscribe resubscribe_policy;
	} sync;
	struct {
		char *path;
		uint64_t map_size, max_map_size;
		char *backup_dir;        /* NULL: run takes no backups of its own */
		int64_t backup_every_ms; /* how often run takes one */
		uint32_t backup_keep;    /* how many of run's backups to keep */
	} state;
	struct {
		char *listen;
		char *token_file; /* one all-scope client named "default" */
		struct config_client *clients;
		size_t nclients;
	} api;
	struct {
		bool enabled;
		char *url;
		char *secret_file;
	} webhook;
	struct {
		/* how long to keep; 0: forever (the rule is off) */
		int64_t resolved_conflicts_ms, history_ms, stale_persons_ms;
		int64_t every_ms; /* how often a sync cycle runs retention */
	} retention;
	struct {
		bool enabled;   /* the file has an [unsubscribe] section */
		char *listen;   /* the public listener */
		char *base_url; /* links are {base_url}/u/{token} */
		char *key_file; /* >= 32 random bytes: the key new links are sealed with */
		struct config_list old_key_files; /* keys still accepted */
		int64_t link_lifetime_ms;
		char *organization, *privacy_url;
		enum config_language default_language;
		uint32_t invalid_per_minute;        /* per client address */
		struct config_list trusted_proxies; /* CIDRs */
	} unsubscribe;
	struct config_admin *admins;
	size_t nadmins;
	struct config_purpose *purposes;
	size_t npurposes;
	struct {
		enum log_level level;
		enum log_format format;
		bool level_set, format_set; /* given in the file, not defaults */
	} log;
};

/* Every error found in one load, each "file:line: key: what". */
#define CONFIG_ERRORS_MAX 32
struct config_errors {
	size_t n;       /* errors kept */
	size_t dropped; /* errors past CONFIG_ERRORS_MAX */
	char msg[CONFIG_ERRORS_MAX][ERR_MSG_MAX];
};

/* Load and validate path. On failure (ERR_CONFIG, ERR_IO as ERR_CONFIG,
 * ERR_NOMEM) e holds the first error and all, when given, every error. */
int config_load(struct config **out, const char *path, struct config_errors *all, struct err *e);
void config_free(struct config *cfg);

enum config_secret_id {
	CONFIG_SECRET_PRIVATE_KEY = 0, /* salesforce.private_key_file */
	CONFIG_SECRET_CLIENT_SECRET,   /* salesforce.client_secret_file */
	CONFIG_SECRET_REFRESH_TOKEN,   /* salesforce.refresh_token_file */
	CONFIG_SECRET_API_TOKEN,       /* api.token_file */
	CONFIG_SECRET_WEBHOOK_SECRET,  /* webhook.secret_file */
	CONFIG_SECRET_COUNT
};

/* Where a secret comes from, without reading it: "env OPTSYNC_API_TOKEN",
 * "file /run/secrets/x", or NULL when it is not configured. */
const char *config_secret_source(const struct config *cfg, enum config_secret_id id, char *buf,
                                 size_t cap);
/* Read a secret; ERR_CONFIG naming the key when it is not configured or
 * cannot be read. The value is registered with the log redactor. The
 * caller frees it with secret_free(). */
int config_secret(const struct config *cfg, enum config_secret_id id, char **out, size_t *len,
                  struct err *e);
const char *config_secret_key(enum config_secret_id id); /* "salesforce.private_key_file" */

/* Walk the effective configuration key by key, for `config check`.
 * value is a TOML literal (quoted string, array, ...); sensitive values
 * come as NULL. */
typedef void (*config_visit_fn)(void *ctx, const char *section, const char *key, const char *value,
                                int index);
void config_visit(const struct config *cfg, config_visit_fn fn, void *ctx);

/* Parsers shared with the command line. Durations: "500ms", "60s", "5m",
 * "1h30m", "2d". Sizes: "1GiB", "512MiB", "4096" (bytes), KB/MB/GB too. */
int config_parse_duration(const char *s, int64_t *ms);
int config_parse_size(const char *s, uint64_t *bytes);

const char *config_auth_name(enum config_auth a);
const char *config_language_name(enum config_language l); /* "en" */
/* The purpose named name, or NULL. */
const struct config_purpose *config_purpose_find(const struct config *cfg, const char *name);
const char *config_basis_name(enum config_basis b); /* "consent" */

/* An address range of trusted_proxies: "10.0.0.0/8", "::1/128" or one
 * address. 0, or -1 when s is not one. */
struct config_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};
int config_parse_cidr(const char *s, struct config_cidr *out);
/* An unsubscribe link key file, as `config check` looks at it: ERR_CONFIG
 * when it is refused as every secret file is (it cannot be opened here, a
 * secret not mounted; or its mode lets others or the group at it: the rule
 * of file_read_secret), ERR_INVALID when it holds fewer than
 * CONFIG_LINK_KEY_MIN bytes, wrong wherever it is read. Start-up and
 * `optsync link` read the keys themselves and fail on either. */
int config_link_key_check(const char *path, struct err *e);
/* Whether the address (4 or 16 bytes of family) is in the range. */
bool config_cidr_match(const struct config_cidr *c, int family, const unsigned char *addr);

#endif
