/* The command line: a thin adapter that parses arguments, calls the use
 * cases and prints their results. One file per command group; each command
 * is one const table entry (after tmux's cmd-*.c). */
#ifndef OPTSYNC_CLI_CLI_H
#define OPTSYNC_CLI_CLI_H

#include <stdio.h>

#include "config/config.h"
#include "util/err.h"

struct cli {
	const char *config_path;   /* resolved: -c, $OPTSYNC_CONFIG, ./optsync.toml */
	const char *config_origin; /* "-c", "OPTSYNC_CONFIG" or "default" */
	struct config *cfg;        /* loaded on demand by cli_config() */
	FILE *out;                 /* data goes here */
	FILE *errs;                /* messages go here */
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

extern const struct cli_cmd cmd_config_check;

#endif
