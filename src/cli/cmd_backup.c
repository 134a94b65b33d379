/* optsync backup FILE, optsync restore FILE */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "util/timefmt.h"

static cJSON *render(const struct conn_backup_result *r, bool restore)
{
	cJSON *o = cJSON_CreateObject();
	char at[TIME_STR_MAX];
	cJSON_AddStringToObject(o, "file", r->file);
	cJSON_AddNumberToObject(o, "size_bytes", (double)r->bytes);
	cJSON_AddNumberToObject(o, "schema_version", r->schema_version);
	if (restore) {
		cJSON_AddNumberToObject(o, "events_verified", (double)r->events_verified);
	} else {
		time_format(r->taken_at, at);
		cJSON_AddStringToObject(o, "taken_at", at);
		cJSON_AddNumberToObject(o, "took_seconds", (double)r->took_ms / 1000.0);
		cJSON_AddBoolToObject(o, "compacted", r->compacted);
	}
	return o;
}

static int one_file(struct cli *c, int argc, char **argv, int *json, char **file, struct err *e)
{
	int npos;
	char *pos[1];
	const struct cli_opt opts[] = {{"json", NULL, json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	if (rc)
		return rc;
	if (npos != 1)
		return err_set(e, ERR_USAGE, "name the backup FILE");
	*file = pos[0];
	return cli_config(c, e);
}

static int exec_backup(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0;
	char *file = NULL;
	int rc = one_file(c, argc, argv, &json, &file, e);
	if (rc)
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	struct conn_backup_result r;
	rc = conn_backup(conn, file, &r, e);
	conn_close(conn);
	if (rc == 0) {
		cJSON *doc = render(&r, false);
		cli_print(c, json, doc);
		cJSON_Delete(doc);
	}
	return rc;
}

const struct cli_cmd cmd_backup = {
    .name = "backup",
    .usage = "FILE [--json]",
    .summary = "write a consistent, compacted copy of the ledger to FILE",
    .help = "Copies the ledger at state.path into FILE while optsync run (or any other\n"
            "optsync) goes on reading and writing it: the copy is one consistent moment\n"
            "of the ledger, compacted (free pages left out). FILE is written under a\n"
            "temporary name beside it with mode 0600, synced to disk, then renamed, so\n"
            "FILE is either the whole backup or untouched. The file ends with a trailer\n"
            "holding its length and SHA-256, which `optsync restore` checks.\n"
            "\n"
            "[state] backup_dir, backup_every and backup_keep make `optsync run` take\n"
            "backups on its own.\n"
            "\n"
            "Options:\n"
            "  --json   print the result as JSON\n"
            "\n"
            "Exit status: 0 ok, 1 the file could not be written, 3 config, 5 ledger\n"
            "error, or no room left on the disk that holds FILE (the message names\n"
            "FILE and where that disk is mounted).\n",
    .exec = exec_backup,
};

static int exec_restore(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0;
	char *file = NULL;
	int rc = one_file(c, argc, argv, &json, &file, e);
	if (rc)
		return rc;
	struct conn_backup_result r;
	rc = conn_restore(c->cfg, file, &r, e);
	if (rc == 0) {
		cJSON *doc = render(&r, true);
		cJSON_AddStringToObject(doc, "state_path", c->cfg->state.path);
		cli_print(c, json, doc);
		cJSON_Delete(doc);
	}
	return rc;
}

const struct cli_cmd cmd_restore = {
    .name = "restore",
    .usage = "FILE [--json]",
    .summary = "fill an empty state.path from a backup; never overwrites a ledger",
    .help = "Checks FILE first: it must be a whole backup made by `optsync backup` (or\n"
            "by optsync run), undamaged (its SHA-256 matches), of a schema this optsync\n"
            "reads. It is then opened in a staging folder inside state.path (an older\n"
            "ledger is migrated) and its history chain is verified, as `optsync audit\n"
            "verify` does. Only then does it become the ledger at state.path.\n"
            "\n"
            "state.path must be missing or empty: restore refuses to overwrite a ledger\n"
            "(move the old one away first). Start optsync after it; the next sync reads\n"
            "from the backup's cursors, and sync.overlap re-reads recent changes.\n"
            "\n"
            "Options:\n"
            "  --json   print the result as JSON\n"
            "\n"
            "Exit status: 0 restored, 1 the file could not be read, 3 config, 5 refused:\n"
            "state.path is not empty, or the backup is cut short, damaged, newer or\n"
            "does not verify, or there is no room left on the disk that holds\n"
            "state.path (the message says which, and names the disk).\n",
    .exec = exec_restore,
};
