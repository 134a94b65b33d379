/* A TOML 1.0.0 parser (https://toml.io/en/v1.0.0) producing a read-only
 * tree. Every value remembers the line and column where it was defined, so
 * that the configuration layer can name file:line in its errors.
 *
 * Ownership: toml_parse() returns a tree the caller frees with toml_free();
 * every pointer obtained from the tree (values, keys, strings) stays valid
 * until then. */
#ifndef OPTSYNC_CONFIG_TOML_H
#define OPTSYNC_CONFIG_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum toml_type {
	TOML_TABLE,
	TOML_ARRAY,
	TOML_STRING,
	TOML_INTEGER,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,       /* offset date-time */
	TOML_DATETIME_LOCAL, /* local date-time */
	TOML_DATE_LOCAL,
	TOML_TIME_LOCAL,
};

struct toml_datetime {
	int year, month, day;     /* date part, when the type has one */
	int hour, minute, second; /* time part, when the type has one */
	int nanosecond;           /* fractional seconds, truncated to ns */
	int frac_digits;          /* digits written after the '.', 0 if none */
	int offset_minutes;       /* TOML_DATETIME only; 0 for Z */
};

struct toml_value;

/* Limits every parse enforces; exceeding one is a parse error. */
#define TOML_MAX_INPUT (16u << 20) /* bytes */
#define TOML_MAX_DEPTH 128         /* nesting of arrays and inline tables */

/* Parse len bytes of data. name (a file name) prefixes error messages:
 * "name:LINE:COL: what". On failure *out is NULL and e says why
 * (ERR_INVALID, or ERR_NOMEM). */
int toml_parse(struct toml_value **out, const char *data, size_t len, const char *name,
               struct err *e);
void toml_free(struct toml_value *v);

enum toml_type toml_type_of(const struct toml_value *v);
const char *toml_type_name(enum toml_type t);
int toml_line(const struct toml_value *v);
int toml_col(const struct toml_value *v);

/* Tables keep their keys in definition order. Keys may contain NUL bytes
 * (quoted keys with \u0000); klen gives the length. */
size_t toml_table_len(const struct toml_value *t);
const char *toml_table_key(const struct toml_value *t, size_t i, size_t *klen);
const struct toml_value *toml_table_value(const struct toml_value *t, size_t i);
/* Line of the key itself (for "unknown key" errors). */
int toml_table_key_line(const struct toml_value *t, size_t i);
const struct toml_value *toml_table_get(const struct toml_value *t, const char *key);

size_t toml_array_len(const struct toml_value *a);
const struct toml_value *toml_array_get(const struct toml_value *a, size_t i);

const char *toml_string(const struct toml_value *v, size_t *len);
int64_t toml_integer(const struct toml_value *v);
double toml_float(const struct toml_value *v);
bool toml_bool(const struct toml_value *v);
const struct toml_datetime *toml_datetime(const struct toml_value *v);

#endif
