/* optsync sync --once, optsync status */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "connector/connector.h"

static int exec_sync(struct cli *c, int argc, char **argv, struct err *e)
{
	int once = 0, dry = 0, full = 0, json = 0, npos;
	char *pos[1];
	const struct cli_opt opts[] = {{"once", NULL, &once},
	                               {"dry-run", NULL, &dry},
	                               {"full", NULL, &full},
	                               {"json", NULL, &json},
	                               {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	if (!once)
		return err_set(e, ERR_USAGE, "sync needs --once (the daemon is `optsync run`)");
	if ((rc = cli_config(c, e)))
		return rc;
	struct conn *conn;
	struct config scratch = *c->cfg;
	/* the throwaway ledger's directory: in $TMPDIR, or /tmp */
	const char *tmpdir = getenv("TMPDIR");
	char tmp[4096];
	char path[4096 + 8]; /* scratch.state.path: lives as long as the connector */
	int temporary = 0;
	rc = conn_open(&conn, c->cfg, !dry, NULL, e);
	if (rc == ERR_LEDGER && dry && access(c->cfg->state.path, F_OK) != 0) {
		/* nothing to read yet: a dry run against an empty, throwaway ledger,
		 * so that the real state path is not even created */
		int n = snprintf(tmp, sizeof(tmp), "%s/optsync-dry-run-XXXXXX",
		                 tmpdir && *tmpdir ? tmpdir : "/tmp");
		if (n < 0 || (size_t)n >= sizeof(tmp) || mkdtemp(tmp) == NULL)
			return err_sys(e, ERR_IO,
			               n > 0 && (size_t)n < sizeof(tmp) ? errno : ENAMETOOLONG,
			               "cannot make a temporary directory in %s (TMPDIR)",
			               tmpdir && *tmpdir ? tmpdir : "/tmp");
		snprintf(path, sizeof(path), "%s/ledger", tmp);
		scratch.state.path = path;
		temporary = 1;
		rc = conn_open(&conn, &scratch, true, NULL, e);
	}
	if (rc)
		return rc;
	struct conn_sync_opts o = {dry, full, isatty(2) && !json};
	struct conn_cycle_report *report;
	rc = conn_sync_once(conn, &o, &report, e);
	cJSON *doc = NULL;
	struct err re;
	if (report && conn_render_cycle(report, c->cfg, &doc, &re) && rc == 0) {
		*e = re;
		rc = re.code;
	}
	cli_print(c, json, doc);
	cJSON_Delete(doc);
	conn_cycle_report_free(report);
	conn_close(conn);
	if (temporary && (conn_ledger_remove(path) != 0 || rmdir(tmp) != 0))
		fprintf(stderr, "optsync: could not remove %s: %s\n", tmp, strerror(errno));
	return rc;
}

const struct cli_cmd cmd_sync = {
    .name = "sync",
    .usage = "--once [--dry-run] [--full] [--json]",
    .summary = "run one pull+push cycle with Salesforce, then exit",
    .help = "Pulls every configured object from its cursor (SystemModstamp minus\n"
            "sync.overlap), applies the sync rules, and pushes queued changes in\n"
            "collections of 200. Prints a report of what happened.\n"
            "\n"
            "Options:\n"
            "  --once      required: one cycle (the daemon is `optsync run`)\n"
            "  --dry-run   read Salesforce and report every write the real cycle would\n"
            "              make on each side, those the pull itself queues included;\n"
            "              write nothing to Salesforce or the ledger. It runs the real\n"
            "              cycle on a compacted copy of the ledger made beside it\n"
            "              (state.path.dry-run-*, removed after): that needs free space\n"
            "              for one copy (~410 bytes a person)\n"
            "  --full      read everything, not only what changed since the cursors\n"
            "  --json      print the report as JSON\n"
            "\n"
            "Exit status: 0 ok, 1 the cycle failed (the report says why), 3 config,\n"
            "5 ledger error.\n",
    .exec = exec_sync,
};

static int exec_status(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, npos;
	char *pos[1];
	const struct cli_opt opts[] = {{"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	cJSON *out = NULL;
	struct conn_status *st;
	rc = conn_status(conn, true, &st, e);
	if (rc == 0)
		rc = conn_render_status(st, &out, e);
	conn_status_free(st);
	cli_print(c, json, out);
	cJSON_Delete(out);
	conn_close(conn);
	return rc;
}

const struct cli_cmd cmd_status = {
    .name = "status",
    .usage = "[--json]",
    .summary = "cursors, last cycle, queued and parked pushes, open conflicts, API usage",
    .help = "Options:\n  --json   print as JSON\n",
    .exec = exec_status,
};
