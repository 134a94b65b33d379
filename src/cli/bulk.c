/* optout --from FILE: a suppression list from another tool. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "state/ledger.h"

/* The index of the "email" column in a CSV header line, or -1. */
static int email_column(const char *line)
{
	const char *p = line;
	for (int i = 0; p; i++) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		if ((l == 5 && strncasecmp(p, "email", 5) == 0) ||
		    (l == 7 && strncasecmp(p, "\"email\"", 7) == 0))
			return i;
		p = comma ? comma + 1 : NULL;
	}
	return -1;
}

/* Field col of a simple CSV line (quotes around a field are dropped). */
static char *field_of(char *line, int col)
{
	char *f = line;
	for (int i = 0; i < col && f; i++) {
		f = strchr(f, ',');
		if (f)
			f++;
	}
	if (f == NULL)
		return NULL;
	f[strcspn(f, ",")] = '\0';
	if (f[0] == '"') {
		f++;
		f[strcspn(f, "\"")] = '\0';
	}
	return f;
}

int cli_optout_file(struct cli *c, const struct conn_actor *who, const char *path,
                    const char *reason, int json, struct err *e)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (f == NULL)
		return err_set(e, ERR_USAGE, "--from %s: cannot open", path);
	size_t n = 0, cap = 1024;
	char **emails = malloc(cap * sizeof(*emails));
	char line[4096];
	int col = 0, rc = emails ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (int first = 1; rc == 0 && fgets(line, sizeof(line), f); first = 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (first && (col = email_column(line)) >= 0)
			continue; /* a CSV header */
		if (col < 0)
			col = 0;
		char *email = field_of(line, col);
		if (email == NULL || (email[0] == '\0' && line[0] == '\0'))
			continue; /* a blank line */
		if (n == cap) {
			char **g = realloc(emails, cap * 2 * sizeof(*emails));
			if (g == NULL) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			emails = g;
			cap *= 2;
		}
		if ((emails[n] = strdup(email)) == NULL)
			rc = err_set(e, ERR_NOMEM, "out of memory");
		else
			n++;
	}
	if (f != stdin)
		fclose(f);
	struct conn *conn = NULL;
	struct conn_bulk_result res = {0};
	if (rc == 0)
		rc = cli_conn(c, true, &conn, e);
	if (rc == 0)
		rc = conn_optout_many(conn, who, (const char *const *)emails, n, reason, &res, e);
	conn_close(conn);
	for (size_t i = 0; i < n; i++)
		free(emails[i]);
	free(emails);
	if (rc == 0) {
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddNumberToObject(doc, "rows", (double)n);
		cJSON_AddNumberToObject(doc, "opted_out", (double)res.applied);
		cJSON_AddNumberToObject(doc, "already_opted_out", (double)res.already);
		cJSON_AddNumberToObject(doc, "invalid", (double)res.invalid);
		cJSON_AddItemToObject(doc, "invalid_rows", res.bad);
		res.bad = NULL;
		cli_print(c, json, doc);
		cJSON_Delete(doc);
	}
	cJSON_Delete(res.bad);
	return rc;
}
