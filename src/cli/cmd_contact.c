/* optsync optout | contact show|history|export|erase|set | resubscribe */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "connector/connector.h"

static int one_email(int argc, char **argv, const struct cli_opt *opts, const char **email,
                     struct err *e)
{
	char *pos[1];
	int npos;
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	if (rc == 0 && npos != 1)
		rc = err_set(e, ERR_USAGE, "an EMAIL is needed");
	if (rc == 0)
		*email = pos[0];
	return rc;
}

/* Bad input (an invalid email, a bad value) is a usage error here. */
static int usage_of(int rc)
{
	return rc == ERR_INVALID ? ERR_USAGE : rc;
}

static int run_doc(struct cli *c, int json, int rc, cJSON *doc)
{
	return usage_of(cli_print_doc(c, json, rc, doc));
}

static int exec_optout(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0;
	const char *from = NULL;
	struct conn_optout o = {0};
	const struct cli_opt opts[] = {{"source", &o.source, NULL},   {"reason", &o.reason, NULL},
	                               {"purpose", &o.purpose, NULL}, {"from", &from, NULL},
	                               {"json", NULL, &json},         {0}};
	char *pos[1];
	int npos;
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	if (rc)
		return rc;
	if (from && npos)
		return err_set(e, ERR_USAGE, "give an EMAIL or --from FILE, not both");
	if (from)
		return cli_optout_file(c, cli_operator(), from, o.source, o.reason, o.purpose, json,
		                       e);
	if (npos != 1)
		return err_set(e, ERR_USAGE, "an EMAIL (or --from FILE) is needed");
	o.email = pos[0];
	struct conn *conn;
	if ((rc = cli_conn(c, true, &conn, e)))
		return rc;
	cJSON *doc = NULL;
	rc = conn_optout(conn, cli_operator(), &o, &doc, e);
	conn_close(conn);
	return run_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_optout = {
    .name = "optout",
    .usage = "EMAIL | --from FILE [--purpose P] [--source TYPE] [--reason TEXT] [--json]",
    .summary = "record a local opt-out (pushed to Salesforce by the next sync)",
    .help = "The opt-out is durable in the ledger when the command returns, and is\n"
            "queued for every Salesforce record with that email. An email Salesforce\n"
            "does not know yet stays suppressed, and any record that appears later\n"
            "is set to opted out.\n"
            "\n"
            "Options:\n"
            "  --source TYPE   where the contact came from: crm_sync, import,\n"
            "                  manual_upload, browser_extension\n"
            "  --reason TEXT   kept in the history\n"
            "  --purpose P     out of one configured purpose only ([[purposes]]); the\n"
            "                  person stays in for the others (with --from: every row)\n"
            "  --from FILE     many: one email per line, or a CSV file with an email\n"
            "                  column and optionally a source column (- for standard\n"
            "                  input); idempotent. --source is the source of rows\n"
            "                  without one. Bad rows are listed by line and skipped,\n"
            "                  and the exit status is then 1\n"
            "  --json          print the result as JSON\n"
            "\n"
            "Exit status: 0 ok, 1 rows of the file were rejected, 2 usage or an invalid\n"
            "value, 3 config, 5 ledger.\n",
    .exec = exec_optout,
};

#define READ_CMD(fn, usecase, what, via)                                                           \
	static int fn(struct cli *c, int argc, char **argv, struct err *e)                         \
	{                                                                                          \
		int json = 0;                                                                      \
		const char *email = NULL;                                                          \
		const struct cli_opt opts[] = {{"json", NULL, &json}, {0}};                        \
		int rc = one_email(argc, argv, opts, &email, e);                                   \
		if (rc)                                                                            \
			return rc;                                                                 \
		struct conn *conn;                                                                 \
		if ((rc = cli_conn(c, false, &conn, e)))                                           \
			return rc;                                                                 \
		cJSON *doc = NULL;                                                                 \
		/* the access trail: a history read is recorded before it is shown */              \
		if (what)                                                                          \
			rc = conn_access_record(conn, cli_operator(), email, what, via, e);        \
		if (rc == 0)                                                                       \
			rc = usecase(conn, email, &doc, e);                                        \
		conn_close(conn);                                                                  \
		return run_doc(c, json, rc, doc);                                                  \
	}

READ_CMD(exec_show, conn_contact_show, NULL, NULL)
READ_CMD(exec_history, conn_contact_history, "history", "optsync contact history")

const struct cli_cmd cmd_contact_show = {
    .name = "contact show",
    .usage = "EMAIL [--json]",
    .summary = "a person's state and Salesforce records",
    .help = "Exit status 1 when optsync knows no person with that email.\n",
    .exec = exec_show,
};

const struct cli_cmd cmd_contact_history = {
    .name = "contact history",
    .usage = "EMAIL [--json]",
    .summary = "a person's events, oldest first",
    .help = "",
    .exec = exec_history,
};

static int exec_export(struct cli *c, int argc, char **argv, struct err *e)
{
	const char *email = NULL, *format = "json";
	int json = 0;
	const struct cli_opt opts[] = {{"format", &format, NULL}, {"json", NULL, &json}, {0}};
	int rc = one_email(argc, argv, opts, &email, e);
	if (rc)
		return rc;
	if (strcmp(format, "json") != 0 && strcmp(format, "csv") != 0)
		return err_set(e, ERR_USAGE, "--format must be csv or json, not '%s'", format);
	if (json && strcmp(format, "json") != 0)
		return err_set(e, ERR_USAGE, "--json and --format csv do not go together");
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	if ((rc = conn_access_record(conn, cli_operator(), email, "export",
	                             strcmp(format, "csv") == 0
	                                 ? "optsync contact export --format csv"
	                                 : "optsync contact export",
	                             e))) {
		conn_close(conn);
		return usage_of(rc);
	}
	if (strcmp(format, "csv") == 0) {
		char *csv = NULL;
		rc = conn_contact_export_csv(conn, email, &csv, e);
		if (rc == 0)
			fputs(csv, c->out);
		free(csv);
		conn_close(conn);
		return usage_of(rc);
	}
	cJSON *doc = NULL;
	rc = conn_contact_export(conn, email, &doc, e);
	conn_close(conn);
	return run_doc(c, 1, rc, doc);
}

const struct cli_cmd cmd_contact_export = {
    .name = "contact export",
    .usage = "EMAIL [--format csv|json] [--json]",
    .summary = "right of access: state, Salesforce records and full history",
    .help = "JSON (the default) holds the person's state, every Salesforce record with\n"
            "the names and company Salesforce has, and the full history. CSV has one\n"
            "row per Salesforce record with the columns of a CRM export.\n",
    .exec = exec_export,
};

static int exec_erase(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0;
	const char *email = NULL;
	const struct cli_opt opts[] = {{"json", NULL, &json}, {0}};
	int rc = one_email(argc, argv, opts, &email, e);
	if (rc)
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	struct conn_actor who;
	char name[128];
	cJSON *doc = NULL;
	rc = cli_admin(c, conn, email, &who, name, sizeof(name), e);
	if (rc == 0)
		rc = conn_contact_erase(conn, &who, email, &doc, e);
	conn_close(conn);
	return run_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_contact_erase = {
    .name = "contact erase",
    .usage = "EMAIL [--json]",
    .summary = "admin: erase a person's personal data, keep the hashed suppression",
    .help = "Removes the clear email, free texts, names from Salesforce and the personal\n"
            "part of every history event; keeps the keyed hash, the opt-out and the\n"
            "history chain (which still verifies). Needs admin credentials:\n"
            "OPTSYNC_ADMIN and OPTSYNC_ADMIN_TOKEN, or a prompt on a terminal.\n"
            "Exit status 4 when they are missing or wrong.\n",
    .exec = exec_erase,
};

static int exec_set(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, aon = 0;
	const char *date = NULL, *from = NULL;
	struct conn_facts_change ch = {0};
	const struct cli_opt opts[] = {{"authorization", &ch.authorization, NULL},
	                               {"consent-date", &date, NULL},
	                               {"purpose", &ch.purpose, NULL},
	                               {"other", &ch.other, NULL},
	                               {"source", &ch.source, NULL},
	                               {"source-other", &ch.source_other, NULL},
	                               {"from", &from, NULL},
	                               {"all-or-none", NULL, &aon},
	                               {"json", NULL, &json},
	                               {0}};
	char *pos[1];
	int npos;
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	if (rc)
		return rc;
	if (from) {
		if (npos || ch.authorization || date || ch.purpose || ch.other || ch.source ||
		    ch.source_other)
			return err_set(e, ERR_USAGE,
			               "--from FILE takes the values from the file: give no EMAIL "
			               "and no field options");
		return cli_contact_set_file(c, cli_operator(), from, aon, json, e);
	}
	if (aon)
		return err_set(e, ERR_USAGE, "--all-or-none goes with --from FILE");
	if (npos != 1)
		return err_set(e, ERR_USAGE, "an EMAIL (or --from FILE) is needed");
	const char *email = pos[0];
	if (date && (rc = cli_date("consent-date", date, &ch.consent_date, e)))
		return rc;
	/* --other goes with the source when only a source is given */
	if (ch.source && !ch.authorization && ch.other && !ch.source_other) {
		ch.source_other = ch.other;
		ch.other = NULL;
	}
	struct conn *conn;
	if ((rc = cli_conn(c, true, &conn, e)))
		return rc;
	cJSON *doc = NULL;
	rc = conn_contact_set(conn, cli_operator(), email, &ch, &doc, e);
	conn_close(conn);
	return run_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_contact_set = {
    .name = "contact set",
    .usage = "EMAIL --authorization TYPE [--consent-date D --purpose P] [--other T] "
             "[--source TYPE] [--json]\n"
             "       | --from FILE [--all-or-none] [--json]",
    .summary = "change a person's compliance fields (one, or many from a CSV file)",
    .help = "TYPE (lawful basis): consent, legitimate_interest, contract,\n"
            "legal_obligation, vital_interests, public_interest, other.\n"
            "consent needs --consent-date (RFC 3339, or a date meaning 00:00 UTC, not in\n"
            "the future) and --purpose; other needs --other TEXT.\n"
            "--source TYPE: crm_sync, import, manual_upload, browser_extension, other\n"
            "(other needs --source-other TEXT, or --other when no authorization is given).\n"
            "The change is queued for every Salesforce record of the person; values the\n"
            "person holds already change nothing.\n"
            "\n"
            "--from FILE (- for standard input): a CSV file (RFC 4180) whose first line\n"
            "names the columns: email, and any of authorization, consent_date, purpose,\n"
            "other, source, source_other (an empty cell: not given). Every row is\n"
            "checked as a single update is; the good rows are applied in ledger\n"
            "transactions of 2,000 and the bad ones listed with their line and error.\n"
            "Bad rows make the exit status 1 (the others are applied); with\n"
            "--all-or-none one bad row applies nothing (exit status 2).\n",
    .exec = exec_set,
};

static int exec_consent(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0;
	const char *email = NULL, *date = NULL, *file = NULL;
	struct conn_consent in = {0};
	const struct cli_opt opts[] = {{"purpose", &in.purpose, NULL},
	                               {"consent-date", &date, NULL},
	                               {"evidence-ref", &in.evidence_ref, NULL},
	                               {"evidence-file", &file, NULL},
	                               {"json", NULL, &json},
	                               {0}};
	int rc = one_email(argc, argv, opts, &email, e);
	if (rc)
		return rc;
	if (in.purpose == NULL)
		return err_set(e, ERR_USAGE, "consent needs --purpose");
	if (date == NULL || in.evidence_ref == NULL)
		return err_set(
		    e, ERR_EVIDENCE,
		    "an opt-in needs consent evidence: --consent-date and --evidence-ref");
	if ((rc = cli_date("consent-date", date, &in.consent_date, e)))
		return rc;
	char hex[65];
	if (file) {
		if ((rc = cli_sha256_file(file, hex, e)))
			return rc;
		in.evidence_sha256 = hex;
	}
	in.email = email;
	struct conn *conn;
	if ((rc = cli_conn(c, true, &conn, e)))
		return rc;
	struct conn_actor who = *cli_operator();
	char name[128];
	cJSON *doc = NULL;
	/* an admin acts when credentials are given (rule P2 asks for one after
	 * an opt-out) */
	if (getenv("OPTSYNC_ADMIN"))
		rc = cli_admin(c, conn, email, &who, name, sizeof(name), e);
	if (rc == 0)
		rc = conn_consent(conn, &who, &in, &doc, e);
	conn_close(conn);
	return run_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_consent = {
    .name = "consent",
    .usage = "EMAIL --purpose P --consent-date D --evidence-ref R [--evidence-file F] [--json]",
    .summary = "record an opt-in to one purpose, with its consent evidence",
    .help = "Rule P2: a first opt-in to a purpose needs the date the consent was given\n"
            "and where its evidence is kept. An opt-in after an opt-out of that purpose,\n"
            "or while the person is opted out of all email, also needs an admin\n"
            "(OPTSYNC_ADMIN and OPTSYNC_ADMIN_TOKEN) and a consent date after the\n"
            "opt-out. Without OPTSYNC_ADMIN the command acts as the CLI.\n"
            "\n"
            "Options:\n"
            "  --purpose P         a configured purpose ([[purposes]] name)\n"
            "  --consent-date D    when the consent was given (RFC 3339 or YYYY-MM-DD)\n"
            "  --evidence-ref R    where the evidence is kept (a ticket, a form id)\n"
            "  --evidence-file F   also record the SHA-256 of the evidence file\n"
            "  --json              print the result as JSON\n"
            "\n"
            "Exit status: 0 ok, 2 usage or an unknown purpose or a date in the future,\n"
            "4 refused (evidence missing or too old, admin needed), 5 ledger error.\n",
    .exec = exec_consent,
};

static int exec_resubscribe(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0;
	const char *email = NULL, *date = NULL, *file = NULL;
	struct conn_evidence ev = {0};
	const struct cli_opt opts[] = {{"consent-date", &date, NULL},
	                               {"purpose", &ev.purpose, NULL},
	                               {"evidence-ref", &ev.evidence_ref, NULL},
	                               {"evidence-file", &file, NULL},
	                               {"json", NULL, &json},
	                               {0}};
	int rc = one_email(argc, argv, opts, &email, e);
	if (rc)
		return rc;
	if (date == NULL || ev.purpose == NULL || ev.evidence_ref == NULL)
		return err_set(e, ERR_EVIDENCE,
		               "a re-subscribe needs --consent-date, --purpose and --evidence-ref");
	if ((rc = cli_date("consent-date", date, &ev.consent_date, e)))
		return rc;
	char hex[65];
	if (file) {
		if ((rc = cli_sha256_file(file, hex, e)))
			return rc;
		ev.evidence_sha256 = hex;
	}
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	struct conn_actor who;
	char name[128];
	cJSON *doc = NULL;
	rc = cli_admin(c, conn, email, &who, name, sizeof(name), e);
	if (rc == 0)
		rc = conn_resubscribe(conn, &who, email, &ev, &doc, e);
	conn_close(conn);
	return run_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_resubscribe = {
    .name = "resubscribe",
    .usage = "EMAIL --consent-date D --purpose P --evidence-ref R [--evidence-file F] [--json]",
    .summary = "admin: re-subscribe an opted-out person, with new consent evidence",
    .help = "Needs admin credentials (OPTSYNC_ADMIN, OPTSYNC_ADMIN_TOKEN, or a prompt)\n"
            "and new consent evidence: a consent date later than the opt-out and not in\n"
            "the future, the purpose, and a reference to the evidence (a form id, a\n"
            "ticket). --evidence-file records the file's SHA-256 as well.\n"
            "Exit status 4 when credentials or evidence are missing or refused.\n",
    .exec = exec_resubscribe,
};
