/* CSV as RFC 4180 writes it: fields separated by commas, records by CRLF
 * or LF, a field in double quotes may hold commas, line breaks and "" for
 * a quote. A UTF-8 byte order mark before the first record is skipped
 * (spreadsheet exports carry one). */
#ifndef OPTSYNC_UTIL_CSV_H
#define OPTSYNC_UTIL_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"
#include "util/err.h"

#define CSV_RECORD_MAX (1u << 20) /* bytes in one record */

struct csv;

/* name is the file's name for error messages. */
struct csv *csv_new(FILE *f, const char *name);
void csv_free(struct csv *r);

/* The next record: 1 with (*fields)[0..*n), valid until the next call, and
 * *line the line it starts on; 0 at the end of the file; ERR_INVALID for
 * an unterminated quote, text after a closing quote or a record over
 * CSV_RECORD_MAX (the message names the file and line). */
int csv_next(struct csv *r, char ***fields, size_t *n, size_t *line, struct err *e);

/* Parse a whole buffer the same way (fuzzing and tests): calls fn for each
 * record; stops at the first error or when fn returns non-zero. */
int csv_parse_buffer(const char *data, size_t len,
                     int (*fn)(char **fields, size_t n, size_t line, void *ctx), void *ctx,
                     struct err *e);

/* Append s to b as one CSV field, followed by "," or, when last, "\n":
 * quoted when it holds a comma, a quote or a line break (quotes doubled),
 * and, when it starts with = + - or @, quoted with a ' before it, so that
 * a spreadsheet shows it as text instead of running it as a formula.
 * ERR_LIMIT when b's cap is reached (b then holds a cut record: the caller
 * must not hand it out). */
int csv_write_field(struct buf *b, const char *s, int last, struct err *e);

#endif
