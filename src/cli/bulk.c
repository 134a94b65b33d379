/* The bulk commands: optout --from FILE (a suppression list from another
 * tool) and contact set --from FILE (compliance fields for many contacts).
 * Both read CSV (RFC 4180; a plain list of emails is a one-column CSV),
 * report bad rows by their line in the file, and show progress on a
 * terminal. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "util/csv.h"
#include "util/timefmt.h"

/* A CSV file in memory: for each row, the cells of the wanted columns. */
struct table {
	char *text; /* every kept cell, NUL-terminated */
	size_t len, cap;
	size_t *cells;       /* ncols offsets per row into text; NONE when absent */
	size_t *lines;       /* the line each row starts on */
	const char **errors; /* per row: why it cannot be used, or NULL */
	size_t nrows, rcap, ncols;
};

#define NONE ((size_t)-1)

static void table_free(struct table *t)
{
	free(t->text);
	free(t->cells);
	free(t->lines);
	free(t->errors);
}

static int keep(struct table *t, const char *s, size_t *off, struct err *e)
{
	size_t n = strlen(s) + 1;
	if (t->len + n > t->cap) {
		size_t cap = t->cap ? t->cap : 1 << 16;
		while (cap < t->len + n)
			cap *= 2;
		char *g = realloc(t->text, cap);
		if (g == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		t->text = g;
		t->cap = cap;
	}
	memcpy(t->text + t->len, s, n);
	*off = t->len;
	t->len += n;
	return 0;
}

static int add_row(struct table *t, size_t line, struct err *e)
{
	if (t->nrows == t->rcap) {
		size_t cap = t->rcap ? t->rcap * 2 : 1024;
		size_t *c = realloc(t->cells, cap * t->ncols * sizeof(*c));
		if (c)
			t->cells = c;
		size_t *l = realloc(t->lines, cap * sizeof(*l));
		if (l)
			t->lines = l;
		const char **er = realloc(t->errors, cap * sizeof(*er));
		if (er)
			t->errors = er;
		if (c == NULL || l == NULL || er == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		t->rcap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = NONE;
	t->lines[t->nrows] = line;
	t->errors[t->nrows] = NULL;
	t->nrows++;
	return 0;
}

static const char *cell(const struct table *t, size_t row, size_t col)
{
	size_t off = t->cells[row * t->ncols + col];
	return off == NONE || t->text[off] == '\0' ? NULL : t->text + off;
}

/* The column of a header name: names match case-insensitively, with '-'
 * and '_' alike; -1 when not one of names. */
static int column_of(const char *h, const char *const *names)
{
	for (int i = 0; names[i]; i++) {
		const char *a = h, *b = names[i];
		while (*a && *b && ((*a == '-' ? '_' : (char)tolower((unsigned char)*a)) == *b))
			a++, b++;
		if (*a == '\0' && *b == '\0')
			return i;
	}
	return -1;
}

/* Read path ("-": standard input) into t with the columns names (names[0]
 * is the email). header_required: the first line must be a header naming
 * only known columns; else a first line with an "email" cell is a header
 * (other columns ignored), and without one the email is the first column. */
static int read_table(const char *path, const char *const *names, int header_required,
                      struct table *t, struct err *e)
{
	memset(t, 0, sizeof(*t));
	while (names[t->ncols])
		t->ncols++;
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (f == NULL)
		return err_set(e, ERR_USAGE, "--from %s: cannot open", path);
	struct csv *r = csv_new(f, path);
	int *map = NULL; /* file column -> our column, or -1 */
	size_t nmap = 0;
	char **fields;
	size_t n, line;
	int rc = r ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	int first = 1;
	while (rc == 0 && (rc = csv_next(r, &fields, &n, &line, e)) == 1) {
		rc = 0;
		if (first) {
			first = 0;
			int is_header = 0;
			for (size_t i = 0; i < n; i++)
				is_header |= column_of(fields[i], names) == 0;
			if (is_header) {
				map = malloc(n * sizeof(*map));
				if (map == NULL) {
					rc = err_set(e, ERR_NOMEM, "out of memory");
					break;
				}
				nmap = n;
				for (size_t i = 0; i < n && rc == 0; i++) {
					map[i] = column_of(fields[i], names);
					for (size_t j = 0; j < i && map[i] >= 0; j++)
						if (map[j] == map[i])
							rc = err_set(
							    e, ERR_USAGE,
							    "%s:%zu: column '%s' appears twice",
							    path, line, fields[i]);
					if (map[i] < 0 && rc == 0 && header_required)
						rc = err_set(
						    e, ERR_USAGE,
						    "%s:%zu: unknown column '%.80s' (known: "
						    "email%s)",
						    path, line, fields[i],
						    t->ncols > 1 ? ", authorization, "
						                   "consent_date, purpose, other, "
						                   "source, source_other"
						                 : "");
				}
				continue;
			}
			if (header_required) {
				rc = err_set(e, ERR_USAGE,
				             "%s:%zu: the first line must name the columns, one of "
				             "them 'email'",
				             path, line);
				break;
			}
		}
		if (n == 1 && fields[0][0] == '\0')
			continue; /* a blank line */
		if ((rc = add_row(t, line, e)))
			break;
		size_t row = t->nrows - 1;
		if (map && n != nmap && header_required) {
			t->errors[row] = "the row's number of fields differs from the header's";
			continue;
		}
		for (size_t i = 0; i < n && rc == 0; i++) {
			int col = map ? (i < nmap ? map[i] : -1) : (i == 0 ? 0 : -1);
			if (col >= 0)
				rc = keep(t, fields[i], &t->cells[row * t->ncols + (size_t)col], e);
		}
	}
	free(map);
	csv_free(r);
	if (f != stdin)
		fclose(f);
	if (rc == 0 && map == NULL && header_required && first)
		rc = err_set(e, ERR_USAGE, "%s is empty: it needs a header line", path);
	if (rc)
		table_free(t);
	return rc;
}

/* Progress on a terminal: "ROWS/TOTAL rows" rewritten in place. */
static void progress(size_t done, size_t total, void *arg)
{
	const char *what = arg;
	fprintf(stderr, "\r%s: %zu/%zu rows", what, done, total);
	if (done == total)
		fputc('\n', stderr);
}

/* What a bulk command did; takes *bad (the invalid rows). */
static void report(struct cli *c, int json, size_t rows, const char *k1, size_t v1, const char *k2,
                   size_t v2, size_t invalid, cJSON **bad)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, "rows", (double)rows);
	cJSON_AddNumberToObject(doc, k1, (double)v1);
	cJSON_AddNumberToObject(doc, k2, (double)v2);
	cJSON_AddNumberToObject(doc, "invalid", (double)invalid);
	cJSON_AddItemToObject(doc, "invalid_rows", *bad);
	*bad = NULL;
	cli_print(c, json, doc);
	cJSON_Delete(doc);
}

/* Exit 1 when rows were rejected: the valid ones are in, the report
 * printed above lists the others. */
static int rejected(size_t invalid, size_t rows, struct err *e)
{
	return err_set(e, ERR_PARTIAL,
	               "%zu of %zu rows were rejected (listed above by line); the others were "
	               "applied",
	               invalid, rows);
}

static int show_progress(size_t n)
{
	return n >= 2000 && isatty(2);
}

int cli_optout_file(struct cli *c, const struct conn_actor *who, const char *path,
                    const char *source, const char *reason, const char *purpose, int json,
                    struct err *e)
{
	static const char *const names[] = {"email", "source", NULL};
	struct table t;
	int rc = read_table(path, names, 0, &t, e);
	if (rc)
		return rc;
	const char **emails = malloc((t.nrows ? t.nrows : 1) * sizeof(*emails));
	const char **sources = malloc((t.nrows ? t.nrows : 1) * sizeof(*sources));
	struct conn *conn = NULL;
	struct conn_bulk_result res = {0};
	rc = emails && sources ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < t.nrows; i++) {
		const char *em = cell(&t, i, 0);
		emails[i] = em ? em : ""; /* no email: reported as invalid */
		sources[i] = cell(&t, i, 1) ? cell(&t, i, 1) : source; /* --source: the default */
	}
	if (rc == 0)
		rc = cli_conn(c, true, &conn, e);
	if (rc == 0) {
		struct conn_bulk_opts o = {false, show_progress(t.nrows) ? progress : NULL,
		                           (void *)"optout"};
		rc = conn_optout_many(conn, who, emails, sources, t.lines, t.nrows, reason, purpose,
		                      &o, &res, e);
	}
	conn_close(conn);
	if (rc == 0)
		report(c, json, t.nrows, "opted_out", res.applied, "already_opted_out",
		       res.unchanged, res.invalid, &res.bad);
	if (rc == 0 && res.invalid)
		rc = rejected(res.invalid, t.nrows, e);
	conn_bulk_result_free(&res);
	free(emails);
	free(sources);
	table_free(&t);
	return rc;
}

enum { C_EMAIL, C_AUTH, C_DATE, C_PURPOSE, C_OTHER, C_SOURCE, C_SOURCE_OTHER };

int cli_contact_set_file(struct cli *c, const struct conn_actor *who, const char *path,
                         int all_or_none, int json, struct err *e)
{
	static const char *const names[] = {"email", "authorization", "consent_date", "purpose",
	                                    "other", "source",        "source_other", NULL};
	struct table t;
	int rc = read_table(path, names, 1, &t, e);
	if (rc)
		return rc;
	struct conn_set_row *rows = calloc(t.nrows ? t.nrows : 1, sizeof(*rows));
	char(*msgs)[160] = calloc(t.nrows ? t.nrows : 1, sizeof(*msgs));
	rc = rows && msgs ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < t.nrows; i++) {
		struct conn_set_row *r = &rows[i];
		r->row = t.lines[i];
		r->email = cell(&t, i, C_EMAIL);
		r->error = t.errors[i];
		r->ch.authorization = cell(&t, i, C_AUTH);
		r->ch.purpose = cell(&t, i, C_PURPOSE);
		r->ch.other = cell(&t, i, C_OTHER);
		r->ch.source = cell(&t, i, C_SOURCE);
		r->ch.source_other = cell(&t, i, C_SOURCE_OTHER);
		const char *date = cell(&t, i, C_DATE);
		if (r->error == NULL && date && time_parse(date, &r->ch.consent_date)) {
			snprintf(msgs[i], sizeof(msgs[i]),
			         "consent_date '%.60s' is not an RFC 3339 date-time or a date",
			         date);
			r->error = msgs[i];
		}
	}
	struct conn *conn = NULL;
	struct conn_bulk_result res = {0};
	if (rc == 0)
		rc = cli_conn(c, true, &conn, e);
	if (rc == 0) {
		struct conn_bulk_opts o = {all_or_none != 0,
		                           show_progress(t.nrows) ? progress : NULL,
		                           (void *)"contact set"};
		rc = conn_contact_set_many(conn, who, rows, t.nrows, &o, &res, e);
	}
	conn_close(conn);
	if (rc == 0 || (rc == ERR_INVALID && res.bad))
		report(c, json, t.nrows, "changed", res.applied, "unchanged", res.unchanged,
		       res.invalid, &res.bad);
	if (rc == 0 && res.invalid)
		rc = rejected(res.invalid, t.nrows, e);
	conn_bulk_result_free(&res);
	free(rows);
	free(msgs);
	table_free(&t);
	return rc; /* ERR_INVALID (exit 2) when all or none refused */
}
