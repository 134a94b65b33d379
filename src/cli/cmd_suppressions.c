/* optsync suppressions export */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "util/timefmt.h"

struct out {
	FILE *f;
	int json;
	uint64_t n;
};

/* RFC 4180: quoted when it holds a comma, a quote or a line break. No
 * formula escaping here: the file is for loading, and a ' before an
 * address would change it. */
static void csv_email(FILE *f, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static int one(const char *email, int64_t at, void *ctx)
{
	struct out *o = ctx;
	char t[TIME_STR_MAX];
	time_format(at, t);
	if (o->json) {
		fputs(o->n ? ",\n    {\"email\": " : "\n    {\"email\": ", o->f);
		json_string(o->f, email);
		fprintf(o->f, ", \"opted_out_at\": \"%s\"}", at ? t : "");
	} else {
		csv_email(o->f, email);
		fprintf(o->f, ",%s\n", at ? t : "");
	}
	o->n++;
	return ferror(o->f) ? ERR_IO : 0;
}

static int exec_export(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, npos;
	const char *format = "csv";
	char *pos[1];
	const struct cli_opt opts[] = {{"format", &format, NULL}, {"json", NULL, &json}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	if (strcmp(format, "json") == 0)
		json = 1;
	else if (strcmp(format, "csv") != 0)
		return err_set(e, ERR_USAGE, "--format must be csv or json");
	struct conn *conn;
	if ((rc = cli_conn(c, false, &conn, e)))
		return rc;
	struct out o = {c->out, json, 0};
	struct conn_suppressions_stats st;
	fputs(json ? "{\n  \"suppressions\": [" : "email,opted_out_at\n", c->out);
	rc = conn_suppressions_each(conn, one, &o, &st, e);
	conn_close(conn);
	if (rc == 0 && json)
		fprintf(c->out, "%s],\n  \"listed\": %llu,\n  \"erased\": %llu\n}\n",
		        o.n ? "\n  " : "", (unsigned long long)st.listed,
		        (unsigned long long)st.erased);
	if (rc == 0 && fflush(c->out) != 0)
		rc = err_set(e, ERR_IO, "cannot write the export");
	if (rc == ERR_IO && e->msg[0] == '\0')
		err_set(e, ERR_IO, "cannot write the export");
	if (rc == 0 && !json)
		fprintf(c->errs,
		        "optsync: %llu suppressed emails listed; %llu erased persons are "
		        "suppressed by their key only and cannot be listed\n",
		        (unsigned long long)st.listed, (unsigned long long)st.erased);
	return rc;
}

const struct cli_cmd cmd_suppressions_export = {
    .name = "suppressions export",
    .usage = "[--format csv|json]",
    .summary = "every opted-out email, for an email service's suppression list",
    .help = "Prints every opted-out person's email (normalized) and when the opt-out\n"
            "took effect, from one consistent read of the ledger: as CSV (the default:\n"
            "email,opted_out_at) or as JSON ({\"suppressions\": [...], \"listed\",\n"
            "\"erased\"}). Load it into the email service that sends for you, so that it\n"
            "suppresses the same people.\n"
            "\n"
            "Erased persons stay suppressed by the keyed hash of their email, but their\n"
            "address is gone: they are counted (on standard error for CSV), not listed.\n"
            "An email service that still holds their address must keep its own opt-out.\n"
            "\n"
            "Options:\n"
            "  --format csv|json   the output (default csv; --json is --format json)\n",
    .exec = exec_export,
};
