/* optsync conflicts list|show|resolve */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "util/timefmt.h"

/* "3h" / "2d" / "40s": how long ago at was. */
static void age(const char *at, char *out, size_t cap)
{
	int64_t ms;
	if (at == NULL || time_parse(at, &ms)) {
		snprintf(out, cap, "-");
		return;
	}
	int64_t s = (time_now_ms() - ms) / 1000;
	if (s < 120)
		snprintf(out, cap, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(out, cap, "%lldm", (long long)(s / 60));
	else if (s < 172800)
		snprintf(out, cap, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, cap, "%lldd", (long long)(s / 86400));
}

/* One line per conflict: who and what, not a hash (conflicts show has all). */
static void print_table(struct cli *c, const cJSON *list)
{
	if (cJSON_GetArraySize(list) == 0) {
		fprintf(c->out, "(none)\n");
		return;
	}
	fprintf(c->out, "%-6s %-9s %-14s %-32s %-8s %-18s %s\n", "ID", "STATUS", "KIND", "EMAIL",
	        "OBJECT", "RECORD", "AGE");
	const cJSON *it;
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *rec = cJSON_GetObjectItem(it, "record");
		const char *obj = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "object"));
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "id"));
		char ago[32];
		age(cJSON_GetStringValue(cJSON_GetObjectItem(it, "detected_at")), ago, sizeof(ago));
		fprintf(c->out, "%-6.0f %-9s %-14s %-32s %-8s %-18s %s\n",
		        cJSON_GetNumberValue(cJSON_GetObjectItem(it, "id")),
		        cJSON_GetStringValue(cJSON_GetObjectItem(it, "status")),
		        cJSON_GetStringValue(cJSON_GetObjectItem(it, "kind")),
		        cJSON_GetStringValue(cJSON_GetObjectItem(it, "email")), obj ? obj : "-",
		        id ? id : "-", ago);
	}
}

static int exec_list(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, npos;
	const char *status = "open";
	char *pos[1];
	const struct cli_opt opts[] = {{"status", &status, NULL}, {"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	enum conn_conflict_filter f;
	if ((rc = conn_conflict_filter_parse(status, &f, e)))
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	cJSON *doc = NULL;
	rc = conn_conflicts_list(conn, f, &doc, e);
	if (rc == 0 && json)
		cli_print(c, json, doc);
	else if (rc == 0)
		print_table(c, cJSON_GetObjectItem(doc, "conflicts"));
	cJSON_Delete(doc);
	conn_close(conn);
	return rc;
}

const struct cli_cmd cmd_conflicts_list = {
    .name = "conflicts list",
    .usage = "[--status open|resolved|all] [--json]",
    .summary = "the conflict history (open ones by default)",
    .help = "",
    .exec = exec_list,
};

static int exec_show(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, npos;
	char *pos[1];
	const struct cli_opt opts[] = {{"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	uint64_t id = 0;
	if (rc == 0 && npos != 1)
		rc = err_set(e, ERR_USAGE, "a conflict ID is needed");
	if (rc == 0)
		rc = conn_conflict_id_parse(pos[0], strlen(pos[0]), &id, e);
	if (rc)
		return rc;
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	cJSON *doc = NULL;
	rc = conn_conflict_show(conn, id, &doc, e);
	conn_close(conn);
	return cli_print_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_conflicts_show = {
    .name = "conflicts show",
    .usage = "ID [--json]",
    .summary = "one conflict with both sides' values",
    .help = "",
    .exec = exec_show,
};

static int exec_resolve(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, keep = 0, resub = 0, npos;
	const char *take = NULL, *date = NULL;
	struct conn_evidence ev = {0};
	char *pos[1];
	const struct cli_opt opts[] = {
	    {"keep-optout", NULL, &keep},   {"resubscribe", NULL, &resub},
	    {"take", &take, NULL},          {"consent-date", &date, NULL},
	    {"purpose", &ev.purpose, NULL}, {"evidence-ref", &ev.evidence_ref, NULL},
	    {"json", NULL, &json},          {0}};
	int rc = cli_args(argc, argv, opts, pos, 1, &npos, e);
	uint64_t id = 0;
	if (rc == 0 && npos != 1)
		rc = err_set(e, ERR_USAGE, "a conflict ID is needed");
	if (rc == 0)
		rc = conn_conflict_id_parse(pos[0], strlen(pos[0]), &id, e);
	if (rc)
		return rc;
	if (keep + resub + (take != NULL) != 1)
		return err_set(
		    e, ERR_USAGE,
		    "give one of --keep-optout, --resubscribe or --take salesforce|local");
	/* the flags name the API's actions: one parser serves both */
	char action[64];
	snprintf(action, sizeof(action), "%s%.20s",
	         keep    ? "keep_optout"
	         : resub ? "resubscribe"
	                 : "take_",
	         take ? take : "");
	enum conn_resolution how;
	if (conn_resolution_parse(action, &how, e))
		return err_set(e, ERR_USAGE, "--take must be salesforce or local");
	if (resub) {
		if (date == NULL || ev.purpose == NULL || ev.evidence_ref == NULL)
			return err_set(e, ERR_EVIDENCE,
			               "--resubscribe needs --consent-date, --purpose "
			               "and --evidence-ref");
		if ((rc = cli_date("consent-date", date, &ev.consent_date, e)))
			return rc;
	}
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	struct conn_actor who;
	char name[128];
	cJSON *doc = NULL;
	rc = cli_admin(c, conn, NULL, &who, name, sizeof(name), e);
	if (rc == 0)
		rc = conn_conflict_resolve(conn, &who, id, how, &ev, &doc, e);
	conn_close(conn);
	return cli_print_doc(c, json, rc, doc);
}

const struct cli_cmd cmd_conflicts_resolve = {
    .name = "conflicts resolve",
    .usage = "ID --keep-optout | --resubscribe --consent-date D --purpose P --evidence-ref R | "
             "--take salesforce|local [--json]",
    .summary = "admin: resolve a conflict by hand",
    .help = "--keep-optout    a re-subscribe seen in Salesforce: the person stays opted\n"
            "                 out and Salesforce is set back (needed under\n"
            "                 resubscribe_policy = \"hold\")\n"
            "--resubscribe    accept the re-subscribe, with new consent evidence\n"
            "--take local     write optsync's value over Salesforce's\n"
            "--take salesforce keep Salesforce's value (not for a re-subscribe, which\n"
            "                 needs evidence, nor for an invalid value)\n"
            "Needs admin credentials (exit 4 without).\n",
    .exec = exec_resolve,
};
