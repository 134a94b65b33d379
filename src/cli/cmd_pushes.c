/* optsync pushes retry */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli/cli.h"
#include "connector/connector.h"

static int exec_retry(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, all = 0, npos;
	char *pos[1];
	const struct cli_opt opts[] = {{"all", NULL, &all}, {"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	if (rc)
		return rc;
	if (all == (npos == 1))
		return err_set(e, ERR_USAGE, "name one RECORD_ID, or --all");
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	size_t n = 0;
	rc = conn_pushes_retry(conn, all ? NULL : pos[0], &n, e);
	conn_close(conn);
	if (rc)
		return rc;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, "released", (double)n);
	cJSON_AddStringToObject(doc, "when", "the next sync cycle (optsync run, or sync --once)");
	cli_print(c, json, doc);
	cJSON_Delete(doc);
	return 0;
}

const struct cli_cmd cmd_pushes_retry = {
    .name = "pushes retry",
    .usage = "RECORD_ID | --all [--json]",
    .summary = "put parked pushes back in the queue, to be written on the next cycle",
    .help = "A push is parked when Salesforce refuses it for good (a validation rule, a\n"
            "deleted or locked-down record). optsync tries a parked push again by itself\n"
            "after 1 h, doubling up to 24 h, and at once when its record changes in\n"
            "Salesforce. Once the cause is fixed, this command releases it now: the\n"
            "next sync cycle (optsync run, or optsync sync --once) writes it.\n"
            "optsync status lists the parked pushes with their errors.\n"
            "\n"
            "Options:\n"
            "  RECORD_ID   the Contact or Lead whose parked push to release\n"
            "  --all       release every parked push\n"
            "  --json      print the result as JSON\n"
            "\n"
            "Exit status: 0 ok, 1 no parked push for RECORD_ID, 2 usage, 5 ledger.\n",
    .exec = exec_retry,
};
