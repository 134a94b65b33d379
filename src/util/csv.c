#include "util/csv.h"

#include <stdlib.h>
#include <string.h>

struct csv {
	FILE *f;             /* or the buffer below */
	const char *p, *end; /* buffer mode */
	const char *name;    /* for messages */
	char *buf;           /* the record's fields, each NUL-terminated */
	size_t len, cap;
	size_t *offs;  /* where each field starts in buf */
	char **fields; /* offs turned into pointers for the caller */
	size_t nf, fcap;
	size_t line;        /* the line of the next character */
	int started;        /* the byte order mark check is done */
	int pend[3], npend; /* bytes read ahead, handed out first (a stack) */
};

static int get(struct csv *r)
{
	if (r->npend)
		return r->pend[--r->npend];
	if (r->f)
		return getc_unlocked(r->f);
	return r->p < r->end ? (unsigned char)*r->p++ : EOF;
}

static void unget(struct csv *r, int c)
{
	if (c != EOF && r->npend < 3)
		r->pend[r->npend++] = c;
}

struct csv *csv_new(FILE *f, const char *name)
{
	struct csv *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->f = f;
	r->name = name;
	r->line = 1;
	return r;
}

void csv_free(struct csv *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->offs);
	free(r->fields);
	free(r);
}

static int put(struct csv *r, char ch, size_t start, struct err *e)
{
	if (r->len + 1 >= CSV_RECORD_MAX)
		return err_set(e, ERR_INVALID, "%s:%zu: a record longer than %u bytes", r->name,
		               start, CSV_RECORD_MAX);
	if (r->len + 1 >= r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		char *b = realloc(r->buf, cap);
		if (b == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		r->buf = b;
		r->cap = cap;
	}
	r->buf[r->len++] = ch;
	return 0;
}

static int new_field(struct csv *r, struct err *e)
{
	if (r->nf == r->fcap) {
		size_t cap = r->fcap ? r->fcap * 2 : 16;
		size_t *o = realloc(r->offs, cap * sizeof(*o));
		if (o == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		r->offs = o;
		char **fs = realloc(r->fields, cap * sizeof(*fs));
		if (fs == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		r->fields = fs;
		r->fcap = cap;
	}
	r->offs[r->nf++] = r->len;
	return 0;
}

int csv_next(struct csv *r, char ***fields, size_t *n, size_t *line, struct err *e)
{
	int c = get(r), rc;
	if (!r->started) {
		r->started = 1;
		if (c == 0xEF) {
			int c2 = get(r), c3 = c2 == 0xBB ? get(r) : EOF;
			if (c2 == 0xBB && c3 == 0xBF) {
				c = get(r); /* a byte order mark: skipped */
			} else {            /* text that starts with U+Fxxx: keep it */
				unget(r, c3);
				unget(r, c2);
			}
		}
	}
	if (c == EOF)
		return 0;
	size_t start = r->line;
	r->len = r->nf = 0;
	if ((rc = new_field(r, e)))
		return rc;
	for (;;) {
		if (c == '"' && r->offs[r->nf - 1] == r->len) {
			/* a quoted field: to the closing quote */
			for (;;) {
				c = get(r);
				if (c == EOF)
					return err_set(e, ERR_INVALID,
					               "%s:%zu: a quoted field is not closed",
					               r->name, start);
				if (c == '"') {
					c = get(r);
					if (c != '"')
						break;
				} else if (c == '\n') {
					r->line++;
				}
				if ((rc = put(r, (char)c, start, e)))
					return rc;
			}
			if (c == '\r') {
				int d = get(r);
				if (d != '\n') {
					unget(r, d);
					return err_set(e, ERR_INVALID,
					               "%s:%zu: text after a closing quote",
					               r->name, r->line);
				}
				c = '\n';
			}
			if (c != ',' && c != '\n' && c != EOF)
				return err_set(e, ERR_INVALID, "%s:%zu: text after a closing quote",
				               r->name, r->line);
		}
		if (c == '\r') {
			int d = get(r);
			if (d == '\n')
				c = '\n';
			else
				unget(r, d);
		}
		if (c == ',' || c == '\n' || c == EOF) {
			if ((rc = put(r, '\0', start, e)))
				return rc;
			if (c == ',') {
				if ((rc = new_field(r, e)))
					return rc;
				c = get(r);
				continue;
			}
			if (c == '\n')
				r->line++;
			break;
		}
		if ((rc = put(r, (char)c, start, e)))
			return rc;
		c = get(r);
	}
	for (size_t i = 0; i < r->nf; i++)
		r->fields[i] = r->buf + r->offs[i];
	*fields = r->fields;
	*n = r->nf;
	*line = start;
	return 1;
}

int csv_parse_buffer(const char *data, size_t len,
                     int (*fn)(char **fields, size_t n, size_t line, void *ctx), void *ctx,
                     struct err *e)
{
	struct csv *r = csv_new(NULL, "input");
	if (r == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	r->p = data;
	r->end = data + len;
	char **f;
	size_t n, line;
	int rc;
	while ((rc = csv_next(r, &f, &n, &line, e)) == 1)
		if (fn(f, n, line, ctx))
			break;
	csv_free(r);
	return rc < 0 ? rc : 0;
}

int csv_write_field(struct buf *b, const char *s, int last, struct err *e)
{
	int quote = strpbrk(s, ",\"\r\n") != NULL;
	/* a leading = + - @ would run as a formula in a spreadsheet */
	int formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@';
	int rc = 0;
	if (quote || formula)
		rc = buf_putc(b, '"', e);
	if (rc == 0 && formula)
		rc = buf_putc(b, '\'', e);
	for (const char *p = s; rc == 0 && *p; p++) {
		if (*p == '"')
			rc = buf_putc(b, '"', e);
		if (rc == 0)
			rc = buf_putc(b, *p, e);
	}
	if (rc == 0 && (quote || formula))
		rc = buf_putc(b, '"', e);
	if (rc == 0)
		rc = buf_putc(b, last ? '\n' : ',', e);
	return rc;
}
