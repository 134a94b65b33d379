/* optsync admin hash-token, optsync audit verify, optsync retention run, optsync access list */
#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "connector/connector.h"

/* An API client's token_hash: "sha256:" and the token's SHA-256 in hex. A
 * fast hash is enough for a token of 32 random bytes, and a memory-hard one
 * per request would cost too much at tens of thousands of checks a second. */
static int client_hash(const char *tok, char *out, size_t cap, struct err *e)
{
	size_t n = strlen(tok);
	if (n < 32)
		return err_set(e, ERR_USAGE,
		               "an API client's token is at least 32 random bytes (got %zu "
		               "characters); make one with: head -c 32 /dev/urandom | base64",
		               n);
	uint8_t d[32];
	SHA256((const unsigned char *)tok, n, d);
	int o = snprintf(out, cap, "sha256:");
	for (int i = 0; i < 32 && (size_t)o + 2 < cap; i++)
		o += snprintf(out + o, cap - (size_t)o, "%02x", d[i]);
	return 0;
}

static int exec_hash(struct cli *c, int argc, char **argv, struct err *e)
{
	int npos, client = 0;
	char *pos[1];
	const struct cli_opt opts[] = {{"client", NULL, &client}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	char tok[1024];
	if (isatty(0))
		fprintf(stderr, "admin token (not echoed... type it and press Enter): ");
	if (fgets(tok, sizeof(tok), stdin) == NULL)
		return err_set(e, ERR_USAGE, "no token on standard input");
	tok[strcspn(tok, "\r\n")] = '\0';
	char line[256];
	rc = client ? client_hash(tok, line, sizeof(line), e)
	            : conn_admin_hash(tok, strlen(tok), line, sizeof(line), e);
	OPENSSL_cleanse(tok, sizeof(tok));
	if (rc == ERR_INVALID)
		rc = ERR_USAGE;
	if (rc == 0)
		fprintf(c->out, "token_hash = \"%s\"\n", line);
	return rc;
}

const struct cli_cmd cmd_admin_hash_token = {
    .name = "admin hash-token",
    .usage = "[--client]",
    .summary = "read a token on stdin, print its token_hash line for [[admins]] or [[api.clients]]",
    .help = "Reads one line (the token) from standard input and prints the token_hash\n"
            "line to put in an [[admins]] entry: scrypt (N=2^15, r=8, p=1) with a random\n"
            "salt (the token at least 16 characters). The token itself is never stored.\n"
            "\n"
            "  head -c 32 /dev/urandom | base64 > admin-token\n"
            "  optsync admin hash-token < admin-token\n"
            "\n"
            "Options:\n"
            "  --client   the line for an [[api.clients]] entry instead: \"sha256:\" and\n"
            "             the token's SHA-256 (the token at least 32 characters: make it\n"
            "             from 32 random bytes, as above)\n",
    .exec = exec_hash,
};

static int exec_verify(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, npos;
	const char *expect = NULL;
	char *pos[1];
	const struct cli_opt opts[] = {{"json", NULL, &json}, {"expect", &expect, NULL}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	cJSON *out = NULL;
	rc = conn_audit_verify(conn, expect, &out, e);
	cli_print(c, json, out);
	cJSON_Delete(out);
	conn_close(conn);
	/* ERR_LEDGER, exit 5: the chain was altered (or holds a newer optsync's
	 * events); ERR_NOMEM, exit 1: it could not be checked, no verdict */
	return rc;
}

const struct cli_cmd cmd_audit_verify = {
    .name = "audit verify",
    .usage = "[--expect SEQ:HASH] [--json]",
    .summary = "check the ledger's history chain; non-zero exit if it was altered",
    .help = "Recomputes the SHA-256 chain over every history event and prints its head:\n"
            "the last event's sequence number and hash. Record the head somewhere the\n"
            "ledger's host cannot write (a ticket, a log service): a ledger rewritten\n"
            "from the start would verify on its own, but not against a recorded head.\n"
            "\n"
            "Options:\n"
            "  --expect SEQ:HASH   also check that event SEQ is still in the chain with\n"
            "                      that hash (head.expect of an earlier run)\n"
            "  --json              print as JSON\n"
            "\n"
            "Exit status 0 when it holds, 5 when an event was altered, removed or\n"
            "reordered, or the expected head is not in the chain (the output says\n"
            "which), or an event was written by a newer optsync (upgrade to check\n"
            "it); 1 when it could not be checked (out of memory), 2 for a malformed\n"
            "--expect.\n",
    .exec = exec_verify,
};

static int exec_retention(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, dry = 0, npos;
	char *pos[1];
	const struct cli_opt opts[] = {{"dry-run", NULL, &dry}, {"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	cJSON *out = NULL;
	rc = conn_retention_run(conn, cli_operator(), dry != 0, &out, e);
	conn_close(conn);
	if (rc == 0)
		cli_print(c, json, out);
	cJSON_Delete(out);
	return rc;
}

const struct cli_cmd cmd_retention_run = {
    .name = "retention run",
    .usage = "[--dry-run] [--json]",
    .summary = "purge what [retention] allows; never an opt-out",
    .help = "Removes resolved conflicts older than retention.resolved_conflicts, history\n"
            "events older than retention.history of persons who are not opted out, and\n"
            "persons with no Salesforce record and no opt-out not updated for\n"
            "retention.stale_persons (with their events). A removed event leaves a stub\n"
            "that keeps the history chain verifiable, and the run records one history\n"
            "event with the counts. Opted-out persons, their events and the hashed\n"
            "suppression are never removed. A sync cycle runs this every retention.every.\n"
            "\n"
            "  --dry-run   count what would go; change nothing\n",
    .exec = exec_retention,
};

static int exec_access_list(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, npos;
	const char *after_s = NULL;
	char *pos[1];
	const struct cli_opt opts[] = {{"after", &after_s, NULL}, {"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	uint64_t after = 0;
	if (after_s && (rc = conn_seq_parse(after_s, &after, e)))
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	struct conn_actor who;
	char name[128];
	cJSON *doc = NULL;
	rc = cli_admin(c, conn, NULL, &who, name, sizeof(name), e);
	if (rc == 0)
		rc = conn_access_list(conn, after, 0, &doc, e);
	conn_close(conn);
	return cli_print_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_access_list = {
    .name = "access list",
    .usage = "[--after SEQ] [--json]",
    .summary = "admin: the access trail, each read of a person's history or export",
    .help = "Lists the access events (oldest first, up to 1,000): who read whose history\n"
            "or export, when, and through which route or command. Reads through the\n"
            "local API's read and export scopes and the CLI's contact history and\n"
            "contact export are recorded; suppression checks are not. Needs admin\n"
            "credentials (OPTSYNC_ADMIN and OPTSYNC_ADMIN_TOKEN, or a prompt).\n"
            "\n"
            "Options:\n"
            "  --after SEQ   only events after history seq SEQ (next_after of an earlier\n"
            "                page, while more is true)\n"
            "  --json        print as JSON\n",
    .exec = exec_access_list,
};
