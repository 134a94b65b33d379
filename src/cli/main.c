/* optsync [-c FILE] COMMAND ... */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/log.h"

const struct cli_cmd *const cli_commands[] = {
    &cmd_run,
    &cmd_sync,
    &cmd_status,
    &cmd_healthcheck,
    &cmd_optout,
    &cmd_contact_show,
    &cmd_contact_history,
    &cmd_contact_export,
    &cmd_contact_erase,
    &cmd_suppressions_export,
    &cmd_link,
    &cmd_contact_set,
    &cmd_resubscribe,
    &cmd_consent,
    &cmd_conflicts_list,
    &cmd_conflicts_show,
    &cmd_conflicts_resolve,
    &cmd_pushes_retry,
    &cmd_admin_hash_token,
    &cmd_audit_verify,
    &cmd_access_list,
    &cmd_retention_run,
    &cmd_backup,
    &cmd_restore,
    &cmd_config_check,
    &cmd_completion,
    NULL,
};
#define commands cli_commands

static void usage(FILE *f)
{
	fprintf(f, "usage: optsync [-c FILE] COMMAND [ARGS...]\n"
	           "       optsync --version | --help\n"
	           "\n"
	           "optsync keeps email opt-outs and the GDPR facts behind them (lawful basis,\n"
	           "consent date, purpose, source) in sync between Salesforce and the\n"
	           "application that sends email.\n"
	           "\n"
	           "Commands:\n");
	for (const struct cli_cmd *const *c = commands; *c; c++)
		fprintf(f, "  %-28s %s\n", (*c)->name, (*c)->summary);
	fprintf(f, "\n"
	           "Options:\n"
	           "  -c, --config FILE            configuration file (default: $OPTSYNC_CONFIG,\n"
	           "                               else ./optsync.toml)\n"
	           "  -h, --help                   this text; COMMAND --help for a command's\n"
	           "  --version                    print the version\n"
	           "\n"
	           "Exit status: 0 ok, 1 sync or runtime failure, 2 usage error, 3 config error,\n"
	           "4 refused (admin credentials or evidence missing), 5 ledger error.\n");
}

static void command_help(FILE *f, const struct cli_cmd *c)
{
	fprintf(f, "usage: optsync [-c FILE] %s%s%s\n\n%s\n", c->name, c->usage[0] ? " " : "",
	        c->usage, c->summary);
	if (c->help && c->help[0])
		fprintf(f, "\n%s", c->help);
}

static int exit_code(int code)
{
	switch (code) {
	case 0:
		return 0;
	case ERR_USAGE:
	case ERR_INVALID:
		return 2;
	case ERR_CONFIG:
		return 3;
	case ERR_REFUSED:
	case ERR_EVIDENCE:
		return 4;
	case ERR_LEDGER:
		return 5;
	default:
		return 1;
	}
}

/* How many leading words of argv name command c ("config", "check"). */
static int match_words(const struct cli_cmd *c, int argc, char **argv)
{
	const char *p = c->name;
	int i = 0;
	while (*p) {
		if (i >= argc)
			return -1;
		size_t wl = strcspn(p, " ");
		if (strlen(argv[i]) != wl || strncmp(argv[i], p, wl) != 0)
			return -1;
		p += wl;
		while (*p == ' ')
			p++;
		i++;
	}
	return i;
}

int cli_config(struct cli *c, struct err *e)
{
	if (c->cfg)
		return 0;
	struct config_errors all;
	int rc = config_load(&c->cfg, c->config_path, &all, e);
	if (rc) {
		for (size_t i = 0; i < all.n; i++)
			fprintf(c->errs, "optsync: %s\n", all.msg[i]);
		if (all.dropped)
			fprintf(c->errs, "optsync: (%zu more errors not shown)\n", all.dropped);
		if (all.n == 0)
			fprintf(c->errs, "optsync: %s\n", e->msg);
		if (strcmp(c->config_origin, "default") == 0 && rc == ERR_CONFIG)
			fprintf(c->errs,
			        "optsync: (no -c given and OPTSYNC_CONFIG unset: looked for "
			        "./optsync.toml)\n");
		e->msg[0] = '\0'; /* printed already */
		return rc;
	}
	/* optsync run logs as configured. A command run by hand logs warnings
	 * and errors only, as text on a terminal, unless the file says
	 * otherwise: its output is the result, not a stream of events. */
	enum log_level level = c->cfg->log.level;
	enum log_format format = c->cfg->log.format;
	if (!c->daemon && !c->cfg->log.level_set && level > LOG_WARN)
		level = LOG_WARN;
	if (!c->daemon && !c->cfg->log.format_set && isatty(2))
		format = LOG_FORMAT_TEXT;
	log_setup(level, format, 2);
	return 0;
}

/* Take -c FILE, --config FILE and --config=FILE out of argv wherever they
 * stand before "--" (optsync status -c FILE works as optsync -c FILE
 * status). Returns 0, or 2 when -c has no file name. */
static int take_config(int *argc, char **argv, struct cli *c)
{
	int o = 1;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			while (i < *argc)
				argv[o++] = argv[i++];
			break;
		}
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= *argc) {
				fprintf(stderr, "optsync: %s needs a file name\n", a);
				return 2;
			}
			c->config_path = argv[++i];
			c->config_origin = "-c";
			continue;
		}
		if (strncmp(a, "--config=", 9) == 0) {
			c->config_path = a + 9;
			c->config_origin = "-c";
			continue;
		}
		argv[o++] = argv[i];
	}
	*argc = o;
	argv[o] = NULL;
	return 0;
}

/* Edit distance of a and b (both short: command words). */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];
	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

/* The command whose name is nearest to what was typed (the words of argv
 * that could name one), when it is near enough to be a typo. */
static const struct cli_cmd *nearest(int argc, char **argv)
{
	const struct cli_cmd *best = NULL;
	size_t best_d = 3; /* at most two edits */
	for (const struct cli_cmd *const *p = commands; *p; p++) {
		char typed[128] = "";
		int words = 1 + (strchr((*p)->name, ' ') != NULL);
		for (int k = 0; k < words && k < argc; k++) {
			size_t tl = strlen(typed);
			snprintf(typed + tl, sizeof(typed) - tl, "%s%s", k ? " " : "", argv[k]);
		}
		size_t d = distance(typed, (*p)->name);
		if (d < best_d) {
			best_d = d;
			best = *p;
		}
	}
	return best;
}

/* "optsync contact": the group's commands, to out (NULL: only count them). */
static int list_group(FILE *out, const char *group)
{
	int n = 0;
	size_t gl = strlen(group);
	for (const struct cli_cmd *const *p = commands; *p; p++)
		if (strncmp((*p)->name, group, gl) == 0 && (*p)->name[gl] == ' ') {
			if (out == NULL) {
				n++;
				continue;
			}
			if (!n++)
				fprintf(out, "usage: optsync [-c FILE] %s SUBCOMMAND ...\n\n",
				        group);
			fprintf(out, "  %-28s %s\n", (*p)->name, (*p)->summary);
		}
	if (n && out)
		fprintf(out, "\noptsync %s SUBCOMMAND --help tells more.\n", group);
	return n;
}

static int run_command(int argc, char **argv)
{
	struct cli c = {.out = stdout, .errs = stderr};
	struct err e = {0};
	if (take_config(&argc, argv, &c))
		return 2;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			printf("optsync %s\n", OPTSYNC_VERSION);
			return 0;
		}
		fprintf(stderr, "optsync: unknown option '%s' (see optsync --help)\n", a);
		return 2;
	}
	if (c.config_path == NULL) {
		const char *env = getenv("OPTSYNC_CONFIG");
		if (env && *env) {
			c.config_path = env;
			c.config_origin = "OPTSYNC_CONFIG";
		} else {
			c.config_path = "./optsync.toml";
			c.config_origin = "default";
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const struct cli_cmd *cmd = NULL;
	int words = 0;
	for (const struct cli_cmd *const *p = commands; *p; p++) {
		int n = match_words(*p, argc - i, argv + i);
		if (n > words) {
			cmd = *p;
			words = n;
		}
	}
	if (cmd == NULL) {
		/* a group name: with --help (or -h) its commands, exit 0 */
		int help = i + 1 < argc &&
		           (strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0);
		if (help && list_group(stdout, argv[i]))
			return 0;
		const struct cli_cmd *near = nearest(argc - i, argv + i);
		int group = list_group(NULL, argv[i]);
		int two = near && strchr(near->name, ' ') && i + 1 < argc;
		if (group && (i + 1 >= argc || argv[i + 1][0] == '-'))
			fprintf(stderr, "optsync: '%s' needs a subcommand\n", argv[i]);
		else if (near)
			fprintf(stderr, "optsync: unknown command '%s%s%s'; did you mean '%s'?\n",
			        argv[i], two ? " " : "", two ? argv[i + 1] : "", near->name);
		else
			fprintf(stderr, "optsync: unknown command '%s' (see optsync --help)\n",
			        argv[i]);
		if (group)
			list_group(stderr, argv[i]);
		return 2;
	}
	c.daemon = cmd == &cmd_run;
	int cargc = argc - i - words;
	char **cargv = argv + i + words;
	for (int k = 0; k < cargc; k++) {
		if (strcmp(cargv[k], "--") == 0)
			break;
		if (strcmp(cargv[k], "--help") == 0 || strcmp(cargv[k], "-h") == 0) {
			command_help(stdout, cmd);
			return 0;
		}
	}
	int rc = cmd->exec(&c, cargc, cargv, &e);
	if (rc && e.msg[0]) {
		fprintf(stderr, "optsync: %s\n", e.msg);
		if (rc == ERR_USAGE)
			fprintf(stderr, "usage: optsync [-c FILE] %s %s\n", cmd->name, cmd->usage);
	}
	config_free(c.cfg);
	log_forget_secrets();
	return exit_code(rc);
}

int main(int argc, char **argv)
{
	/* libcurl's global state, once, before any thread exists: the
	 * Salesforce client, the webhook deliverer and the health probe all
	 * use curl, and curl_global_init is not safe to run while another
	 * thread uses it */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "optsync: libcurl initialisation failed\n");
		return 1;
	}
	int status = run_command(argc, argv);
	curl_global_cleanup();
	return status;
}
