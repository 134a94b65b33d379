/* The command line: a thin adapter that parses arguments, calls the use
 * cases and prints their results. One file per command group; each command
 * is one const table entry (after tmux's cmd-*.c). */
#ifndef OPTSYNC_CLI_CLI_H
#define OPTSYNC_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "util/err.h"

struct cli {
	const char *config_path;   /* resolved: -c, $OPTSYNC_CONFIG, ./optsync.toml */
	const char *config_origin; /* "-c", "OPTSYNC_CONFIG" or "default" */
	struct config *cfg;        /* loaded on demand by cli_config() */
	FILE *out;                 /* data goes here */
	FILE *errs;                /* messages go here */
	bool daemon;               /* optsync run: logs as configured */
};

struct cli_cmd {
	const char *name;    /* "config check" */
	const char *usage;   /* arguments after the name */
	const char *summary; /* one line for the command list */
	const char *help;    /* the rest of --help */
	int (*exec)(struct cli *c, int argc, char **argv, struct err *e);
};

/* Options of one command. A flag has value == NULL and sets *set; an
 * option with a value stores it in *value. */
struct cli_opt {
	const char *name; /* without the leading "--" */
	const char **value;
	int *set;
};

/* Parse argv against opts; positional arguments are gathered in pos
 * (at most maxpos). ERR_USAGE names the offending argument. */
int cli_args(int argc, char **argv, const struct cli_opt *opts, char **pos, int maxpos, int *npos,
             struct err *e);

/* Load the configuration once (ERR_CONFIG with every error printed). */
int cli_config(struct cli *c, struct err *e);

struct conn;
struct conn_actor;
typedef struct cJSON cJSON;

/* Open the connector over the configured ledger (created when create). */
int cli_conn(struct cli *c, bool create, struct conn **out, struct err *e);
/* Print doc as JSON (--json) or as indented "key: value" text. */
void cli_print(struct cli *c, int json, const cJSON *doc);
/* A use case's answer: doc printed when rc is 0, freed either way; rc. */
int cli_print_doc(struct cli *c, int json, int rc, cJSON *doc);
/* Admin credentials from OPTSYNC_ADMIN / OPTSYNC_ADMIN_TOKEN, or a no-echo
 * prompt on a terminal, checked against [[admins]]; fills *who. email, when
 * given, is where a refusal is recorded. */
/* The operator as the actor of a CLI change: OPTSYNC_OPERATOR, else the OS
 * user, so that "who changed this" always has an answer. */
const struct conn_actor *cli_operator(void);
int cli_admin(struct cli *c, struct conn *conn, const char *email, struct conn_actor *who,
              char *namebuf, size_t cap, struct err *e);
/* optout --from FILE and contact set --from FILE (bulk.c). */
int cli_optout_file(struct cli *c, const struct conn_actor *who, const char *path,
                    const char *source, const char *reason, const char *purpose, int json,
                    struct err *e);
int cli_contact_set_file(struct cli *c, const struct conn_actor *who, const char *path,
                         int all_or_none, int json, struct err *e);
/* The SHA-256 of a file, as 64 hex digits. */
int cli_sha256_file(const char *path, char out[65], struct err *e);
/* An RFC 3339 date-time or a plain date; ERR_USAGE naming the option. */
int cli_date(const char *opt, const char *s, int64_t *ms, struct err *e);

extern const struct cli_cmd cmd_config_check;
extern const struct cli_cmd cmd_run, cmd_sync, cmd_status, cmd_healthcheck;
extern const struct cli_cmd cmd_optout, cmd_contact_show, cmd_contact_history, cmd_contact_export,
    cmd_contact_erase, cmd_contact_set, cmd_resubscribe;
extern const struct cli_cmd cmd_conflicts_list, cmd_conflicts_show, cmd_conflicts_resolve;
extern const struct cli_cmd cmd_admin_hash_token, cmd_audit_verify, cmd_retention_run,
    cmd_access_list;
extern const struct cli_cmd cmd_backup, cmd_restore, cmd_pushes_retry, cmd_suppressions_export;
extern const struct cli_cmd cmd_completion, cmd_link, cmd_consent;
/* Every command, NULL-terminated (main.c). */
extern const struct cli_cmd *const cli_commands[];

#endif
