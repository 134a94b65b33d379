/* TOML 1.0.0 parser. A recursive-descent parser over the raw bytes; the
 * grammar follows the ABNF of toml.io/en/v1.0.0. */
#include "config/toml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/timefmt.h"

/* How a table or array came to be; drives the redefinition rules. */
#define F_IMPLICIT 1u  /* table made by a [header] path, not yet defined itself */
#define F_DEFINED  2u  /* table defined by its own [header] or [[header]] */
#define F_DOTTED   4u  /* table made by a dotted key */
#define F_INLINE   8u  /* inline table or array value, and all inside: frozen */
#define F_AOT      16u /* array of tables made by [[header]] */

struct tkey {
	char *s;
	size_t len;
	int line, col;
};

struct toml_value {
	enum toml_type type;
	int line, col;
	unsigned flags;
	union {
		struct {
			char *s;
			size_t len;
		} str;
		int64_t i;
		double f;
		bool b;
		struct toml_datetime dt;
		struct {
			struct tkey *keys;
			struct toml_value **vals;
			size_t n, cap;
		} tab;
		struct {
			struct toml_value **items;
			size_t n, cap;
		} arr;
	} u;
};

struct parser {
	const char *s;
	size_t len, pos;
	int line;
	size_t line_start;
	const char *name;
	struct err *e;
	int depth;
};

/* ---- errors and position ---- */

static int perr_at(struct parser *p, int line, int col, const char *fmt, ...) ERR_PRINTF(4, 5);
static int perr_at(struct parser *p, int line, int col, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	return err_set(p->e, ERR_INVALID, "%s:%d:%d: %s", p->name, line, col, msg);
}

static int col_of(const struct parser *p)
{
	return (int)(p->pos - p->line_start) + 1;
}

#define perr(p, ...) perr_at((p), (p)->line, col_of(p), __VA_ARGS__)

static int nomem(struct parser *p)
{
	return err_set(p->e, ERR_NOMEM, "%s: out of memory", p->name);
}

static int at_end(const struct parser *p)
{
	return p->pos >= p->len;
}

static int peek(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(const struct parser *p, size_t off)
{
	return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

static void advance(struct parser *p)
{
	if (p->s[p->pos] == '\n') {
		p->line++;
		p->line_start = p->pos + 1;
	}
	p->pos++;
}

static int at_newline(const struct parser *p)
{
	return peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n');
}

static void skip_newline(struct parser *p)
{
	if (peek(p) == '\r')
		advance(p);
	advance(p);
}

static void skip_ws(struct parser *p)
{
	while (peek(p) == ' ' || peek(p) == '\t')
		advance(p);
}

static void skip_comment(struct parser *p)
{
	if (peek(p) != '#')
		return;
	while (!at_end(p) && !at_newline(p))
		advance(p);
}

/* Whitespace, newlines and comments, as allowed inside arrays. */
static void skip_ws_nl_comments(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		skip_comment(p);
		if (at_newline(p))
			skip_newline(p);
		else
			return;
	}
}

/* After a key/value pair or a header: whitespace, a comment, then the end
 * of the line or of the input. */
static int expect_eol(struct parser *p)
{
	skip_ws(p);
	skip_comment(p);
	if (at_end(p))
		return 0;
	if (at_newline(p)) {
		skip_newline(p);
		return 0;
	}
	return perr(p, "expected the end of the line, found '%c'", p->s[p->pos]);
}

/* ---- the whole-input check: UTF-8 and control characters ---- */

static int check_input(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	int line = 1;
	size_t ls = 0;
	for (size_t i = 0; i < p->len;) {
		unsigned c = s[i];
		int col = (int)(i - ls) + 1;
		if (c < 0x80) {
			if (c == '\n') {
				line++;
				ls = i + 1;
			} else if (c == '\r') {
				if (i + 1 >= p->len || s[i + 1] != '\n')
					return perr_at(
					    p, line, col,
					    "carriage return not followed by a line feed");
			} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
				return perr_at(p, line, col,
				               "control character U+%04X is not allowed", c);
			}
			i++;
			continue;
		}
		size_t n;
		unsigned cp, min;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 2, cp = c & 0x1f, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 3, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return perr_at(p, line, col, "invalid UTF-8 byte 0x%02X", c);
		}
		if (i + n > p->len)
			return perr_at(p, line, col, "truncated UTF-8 sequence");
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return perr_at(p, line, col, "invalid UTF-8 sequence");
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return perr_at(p, line, col, "invalid UTF-8 sequence (U+%04X)", cp);
		i += n;
	}
	return 0;
}

/* ---- values ---- */

static struct toml_value *value_new(struct parser *p, enum toml_type t, int line, int col)
{
	struct toml_value *v = calloc(1, sizeof(*v));
	if (v == NULL) {
		nomem(p);
		return NULL;
	}
	v->type = t;
	v->line = line;
	v->col = col;
	return v;
}

void toml_free(struct toml_value *v)
{
	if (v == NULL)
		return;
	switch (v->type) {
	case TOML_STRING:
		free(v->u.str.s);
		break;
	case TOML_TABLE:
		for (size_t i = 0; i < v->u.tab.n; i++) {
			free(v->u.tab.keys[i].s);
			toml_free(v->u.tab.vals[i]);
		}
		free(v->u.tab.keys);
		free(v->u.tab.vals);
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.arr.n; i++)
			toml_free(v->u.arr.items[i]);
		free(v->u.arr.items);
		break;
	default:
		break;
	}
	free(v);
}

static struct toml_value *table_find(const struct toml_value *t, const char *k, size_t kl)
{
	for (size_t i = 0; i < t->u.tab.n; i++)
		if (t->u.tab.keys[i].len == kl && memcmp(t->u.tab.keys[i].s, k, kl) == 0)
			return t->u.tab.vals[i];
	return NULL;
}

/* Add key -> v to t; takes ownership of v and of key.s on success. */
static int table_add(struct parser *p, struct toml_value *t, struct tkey *key, struct toml_value *v)
{
	if (t->u.tab.n == t->u.tab.cap) {
		size_t ncap = t->u.tab.cap ? t->u.tab.cap * 2 : 8;
		struct tkey *nk = realloc(t->u.tab.keys, ncap * sizeof(*nk));
		if (nk == NULL)
			return nomem(p);
		t->u.tab.keys = nk;
		struct toml_value **nv = realloc(t->u.tab.vals, ncap * sizeof(*nv));
		if (nv == NULL)
			return nomem(p);
		t->u.tab.vals = nv;
		t->u.tab.cap = ncap;
	}
	t->u.tab.keys[t->u.tab.n] = *key;
	t->u.tab.vals[t->u.tab.n] = v;
	t->u.tab.n++;
	key->s = NULL;
	return 0;
}

static int array_add(struct parser *p, struct toml_value *a, struct toml_value *v)
{
	if (a->u.arr.n == a->u.arr.cap) {
		size_t ncap = a->u.arr.cap ? a->u.arr.cap * 2 : 8;
		struct toml_value **ni = realloc(a->u.arr.items, ncap * sizeof(*ni));
		if (ni == NULL)
			return nomem(p);
		a->u.arr.items = ni;
		a->u.arr.cap = ncap;
	}
	a->u.arr.items[a->u.arr.n++] = v;
	return 0;
}

/* A new table or array under key in t; NULL with the error set on failure
 * (the key is then still owned by the caller). */
static struct toml_value *table_add_new(struct parser *p, struct toml_value *t, struct tkey *key,
                                        enum toml_type type, unsigned flags, int line, int col)
{
	struct toml_value *v = value_new(p, type, line, col);
	if (v == NULL)
		return NULL;
	v->flags = flags;
	if (table_add(p, t, key, v)) {
		toml_free(v);
		return NULL;
	}
	return v;
}

static void freeze(struct toml_value *v)
{
	if (v->type == TOML_TABLE) {
		v->flags |= F_INLINE;
		for (size_t i = 0; i < v->u.tab.n; i++)
			freeze(v->u.tab.vals[i]);
	} else if (v->type == TOML_ARRAY) {
		v->flags |= F_INLINE;
		for (size_t i = 0; i < v->u.arr.n; i++)
			freeze(v->u.arr.items[i]);
	}
}

/* ---- strings ---- */

static int utf8_put(struct parser *p, struct buf *b, unsigned long cp)
{
	char out[4];
	size_t n;
	if (cp < 0x80) {
		out[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		out[0] = (char)(0xf0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return buf_append(b, out, n, p->e) ? nomem(p) : 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* An escape sequence after the backslash (p at the character after '\'). */
static int parse_escape(struct parser *p, struct buf *b)
{
	int line = p->line, col = col_of(p) - 1;
	int c = peek(p);
	char out;
	switch (c) {
	case 'b':
		out = '\b';
		break;
	case 't':
		out = '\t';
		break;
	case 'n':
		out = '\n';
		break;
	case 'f':
		out = '\f';
		break;
	case 'r':
		out = '\r';
		break;
	case '"':
		out = '"';
		break;
	case '\\':
		out = '\\';
		break;
	case 'u':
	case 'U': {
		int nd = c == 'u' ? 4 : 8;
		unsigned long cp = 0;
		advance(p);
		for (int i = 0; i < nd; i++) {
			int h = hexval(peek(p));
			if (h < 0)
				return perr_at(p, line, col, "\\%c escape needs %d hex digits", c,
				               nd);
			cp = cp * 16 + (unsigned long)h;
			advance(p);
		}
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return perr_at(p, line, col, "\\%c%0*lX is not a Unicode scalar value", c,
			               nd, cp);
		return utf8_put(p, b, cp);
	}
	default:
		if (c < 0)
			return perr(p, "unterminated string");
		return perr_at(p, line, col, "invalid escape sequence '\\%c'", c);
	}
	advance(p);
	return buf_putc(b, out, p->e) ? nomem(p) : 0;
}

/* A string of either kind; on return *out owns the bytes. */
static int parse_string(struct parser *p, char **out, size_t *olen, int allow_multiline)
{
	int line = p->line, col = col_of(p);
	char q = p->s[p->pos];
	int literal = q == '\'';
	int ml = peek_at(p, 1) == q && peek_at(p, 2) == q;
	struct buf b;
	buf_init(&b, TOML_MAX_INPUT);
	int rc = 0;

	if (ml && !allow_multiline)
		return perr(p, "a multi-line string cannot be a key");
	advance(p);
	if (ml) {
		advance(p);
		advance(p);
		if (at_newline(p))
			skip_newline(p); /* a newline right after the opening is trimmed */
	}
	for (;;) {
		int c = peek(p);
		if (c < 0) {
			rc = perr_at(p, line, col, "unterminated string");
			goto out;
		}
		if (c == q) {
			if (!ml) {
				advance(p);
				break;
			}
			size_t run = 0;
			while (peek_at(p, run) == q)
				run++;
			if (run >= 3) {
				if (run > 5) {
					rc = perr(
					    p, "too many quotes at the end of a multi-line string");
					goto out;
				}
				for (size_t i = 0; i < run - 3; i++)
					if (buf_putc(&b, q, p->e)) {
						rc = nomem(p);
						goto out;
					}
				for (size_t i = 0; i < run; i++)
					advance(p);
				break;
			}
			for (size_t i = 0; i < run; i++) {
				if (buf_putc(&b, q, p->e)) {
					rc = nomem(p);
					goto out;
				}
				advance(p);
			}
			continue;
		}
		if (c == '\n' || c == '\r') {
			if (!ml) {
				rc = perr_at(p, line, col, "unterminated string (newline inside)");
				goto out;
			}
			if (c == '\r')
				advance(p); /* CRLF becomes LF */
			if (buf_putc(&b, '\n', p->e)) {
				rc = nomem(p);
				goto out;
			}
			advance(p);
			continue;
		}
		if (c == '\\' && !literal) {
			advance(p);
			if (ml) {
				/* Line-ending backslash: trim whitespace and newlines. */
				size_t k = 0;
				while (peek_at(p, k) == ' ' || peek_at(p, k) == '\t')
					k++;
				if (peek_at(p, k) == '\n' ||
				    (peek_at(p, k) == '\r' && peek_at(p, k + 1) == '\n')) {
					while (peek(p) == ' ' || peek(p) == '\t' || at_newline(p)) {
						if (at_newline(p))
							skip_newline(p);
						else
							advance(p);
					}
					continue;
				}
			}
			rc = parse_escape(p, &b);
			if (rc)
				goto out;
			continue;
		}
		if (buf_putc(&b, (char)c, p->e)) {
			rc = nomem(p);
			goto out;
		}
		advance(p);
	}
	if (b.data == NULL && buf_append(&b, "", 0, p->e)) {
		rc = nomem(p);
		goto out;
	}
	*out = buf_detach(&b, olen);
out:
	if (rc)
		buf_free(&b);
	return rc;
}

/* ---- keys ---- */

static int is_bare(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static void keys_free(struct tkey *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(k[i].s);
}

/* A dotted key: simple keys separated by dots, whitespace around dots. */
static int parse_key(struct parser *p, struct tkey *keys, size_t *nkeys)
{
	*nkeys = 0;
	for (;;) {
		if (*nkeys == TOML_MAX_DEPTH) {
			keys_free(keys, *nkeys);
			return perr(p, "dotted key has more than %d parts", TOML_MAX_DEPTH);
		}
		struct tkey *k = &keys[*nkeys];
		k->line = p->line;
		k->col = col_of(p);
		int c = peek(p);
		if (c == '"' || c == '\'') {
			int rc = parse_string(p, &k->s, &k->len, 0);
			if (rc) {
				keys_free(keys, *nkeys);
				return rc;
			}
		} else if (is_bare(c)) {
			size_t start = p->pos;
			while (is_bare(peek(p)))
				advance(p);
			k->len = p->pos - start;
			k->s = malloc(k->len + 1);
			if (k->s == NULL) {
				keys_free(keys, *nkeys);
				return nomem(p);
			}
			memcpy(k->s, p->s + start, k->len);
			k->s[k->len] = '\0';
		} else {
			keys_free(keys, *nkeys);
			if (c < 0 || c == '\n' || c == '\r')
				return perr(p, "expected a key");
			return perr(p, "invalid character '%c' in key", c);
		}
		(*nkeys)++;
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		advance(p);
		skip_ws(p);
	}
}

/* ---- numbers and dates ---- */

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Digits with single underscores between them; returns count of digits, or
 * -1 on a misplaced underscore. Appends the digits to out. */
static int scan_digits(const char *s, size_t n, size_t *i, int (*ok)(int), char *out, size_t *olen)
{
	int count = 0;
	int last_us = 1; /* an underscore may not come first */
	while (*i < n) {
		int c = (unsigned char)s[*i];
		if (c == '_') {
			if (last_us)
				return -1;
			last_us = 1;
			(*i)++;
			continue;
		}
		if (!ok(c))
			break;
		out[(*olen)++] = (char)c;
		count++;
		last_us = 0;
		(*i)++;
	}
	if (count > 0 && last_us)
		return -1; /* trailing underscore */
	return count;
}

static int is_hex(int c)
{
	return hexval(c) >= 0;
}

static int is_oct(int c)
{
	return c >= '0' && c <= '7';
}

static int is_bin(int c)
{
	return c == '0' || c == '1';
}

static int parse_number(struct parser *p, const char *tok, size_t n, struct toml_value *v)
{
	char digits[512];
	size_t dl = 0, i = 0;
	if (n >= sizeof(digits) - 8)
		return perr(p, "number too long");
	int neg = 0, sign = 0;
	if (tok[0] == '+' || tok[0] == '-') {
		neg = tok[0] == '-';
		sign = 1;
		i++;
	}
	const char *rest = tok + i;
	size_t rn = n - i;
	if (rn == 3 && (memcmp(rest, "inf", 3) == 0 || memcmp(rest, "nan", 3) == 0)) {
		v->type = TOML_FLOAT;
		v->u.f = rest[0] == 'i' ? (neg ? -INFINITY : INFINITY) : (neg ? -NAN : NAN);
		return 0;
	}
	if (rn > 2 && rest[0] == '0' && (rest[1] == 'x' || rest[1] == 'o' || rest[1] == 'b')) {
		if (sign)
			return perr(p, "a sign is not allowed on hex, octal or binary integers");
		int base = rest[1] == 'x' ? 16 : rest[1] == 'o' ? 8 : 2;
		int (*ok)(int) = base == 16 ? is_hex : base == 8 ? is_oct : is_bin;
		size_t j = 2;
		int nd = scan_digits(rest, rn, &j, ok, digits, &dl);
		if (nd <= 0 || j != rn)
			return perr(p, "invalid base-%d integer '%.*s'", base, (int)n, tok);
		uint64_t u = 0;
		for (size_t k = 0; k < dl; k++) {
			uint64_t d = (uint64_t)hexval(digits[k]);
			if (u > (UINT64_MAX - d) / (uint64_t)base ||
			    u * (uint64_t)base + d > INT64_MAX)
				return perr(p, "integer '%.*s' does not fit in 64 bits", (int)n,
				            tok);
			u = u * (uint64_t)base + d;
		}
		v->type = TOML_INTEGER;
		v->u.i = (int64_t)u;
		return 0;
	}
	/* decimal integer or float */
	if (sign)
		digits[dl++] = tok[0];
	size_t int_start = dl;
	int nd = scan_digits(tok, n, &i, is_digit, digits, &dl);
	if (nd <= 0)
		return perr(p, "invalid value '%.*s'", (int)n, tok);
	if (nd > 1 && digits[int_start] == '0')
		return perr(p, "leading zeros are not allowed in '%.*s'", (int)n, tok);
	int is_float = 0;
	if (i < n && tok[i] == '.') {
		is_float = 1;
		digits[dl++] = '.';
		i++;
		nd = scan_digits(tok, n, &i, is_digit, digits, &dl);
		if (nd <= 0)
			return perr(p, "a decimal point must be followed by digits in '%.*s'",
			            (int)n, tok);
	}
	if (i < n && (tok[i] == 'e' || tok[i] == 'E')) {
		is_float = 1;
		digits[dl++] = 'e';
		i++;
		if (i < n && (tok[i] == '+' || tok[i] == '-'))
			digits[dl++] = tok[i++];
		nd = scan_digits(tok, n, &i, is_digit, digits, &dl);
		if (nd <= 0)
			return perr(p, "invalid exponent in '%.*s'", (int)n, tok);
	}
	if (i != n)
		return perr(p, "invalid value '%.*s'", (int)n, tok);
	digits[dl] = '\0';
	errno = 0;
	if (is_float) {
		char *end;
		double d = strtod(digits, &end);
		if (*end != '\0')
			return perr(p, "invalid float '%.*s'", (int)n, tok);
		v->type = TOML_FLOAT;
		v->u.f = d;
		return 0;
	}
	char *end;
	long long ll = strtoll(digits, &end, 10);
	if (errno == ERANGE || *end != '\0')
		return perr(p, "integer '%.*s' does not fit in 64 bits", (int)n, tok);
	v->type = TOML_INTEGER;
	v->u.i = ll;
	return 0;
}

static int two(const char *s, int *out)
{
	if (!is_digit(s[0]) || !is_digit(s[1]))
		return -1;
	*out = (s[0] - '0') * 10 + (s[1] - '0');
	return 0;
}

/* HH:MM:SS[.frac] at s[0..n); returns bytes used or -1. */
static int parse_time_part(const char *s, size_t n, struct toml_datetime *dt)
{
	if (n < 8 || two(s, &dt->hour) || s[2] != ':' || two(s + 3, &dt->minute) || s[5] != ':' ||
	    two(s + 6, &dt->second))
		return -1;
	if (dt->hour > 23 || dt->minute > 59 || dt->second > 60)
		return -1;
	size_t i = 8;
	if (i < n && s[i] == '.') {
		i++;
		int nd = 0;
		long ns = 0;
		while (i < n && is_digit(s[i])) {
			if (nd < 9)
				ns = ns * 10 + (s[i] - '0');
			nd++;
			i++;
		}
		if (nd == 0)
			return -1;
		for (int k = nd; k < 9; k++)
			ns *= 10;
		dt->nanosecond = (int)ns;
		dt->frac_digits = nd;
	}
	return (int)i;
}

static int parse_datetime(struct parser *p, const char *tok, size_t n, struct toml_value *v)
{
	struct toml_datetime *dt = &v->u.dt;
	memset(dt, 0, sizeof(*dt));
	int y1, y2;
	if (n >= 10 && two(tok, &y1) == 0 && two(tok + 2, &y2) == 0 && tok[4] == '-' &&
	    tok[7] == '-' && two(tok + 5, &dt->month) == 0 && two(tok + 8, &dt->day) == 0) {
		dt->year = y1 * 100 + y2;
		if (dt->month < 1 || dt->month > 12 || dt->day < 1 ||
		    dt->day > time_days_in_month(dt->year, (unsigned)dt->month))
			return perr(p, "invalid date '%.*s'", (int)n, tok);
		if (n == 10) {
			v->type = TOML_DATE_LOCAL;
			return 0;
		}
		if (tok[10] != 'T' && tok[10] != 't' && tok[10] != ' ')
			return perr(p, "invalid date-time '%.*s'", (int)n, tok);
		int used = parse_time_part(tok + 11, n - 11, dt);
		if (used < 0)
			return perr(p, "invalid time in '%.*s'", (int)n, tok);
		size_t i = 11 + (size_t)used;
		if (i == n) {
			v->type = TOML_DATETIME_LOCAL;
			return 0;
		}
		if ((tok[i] == 'Z' || tok[i] == 'z') && i + 1 == n) {
			v->type = TOML_DATETIME;
			return 0;
		}
		int oh, om;
		if ((tok[i] == '+' || tok[i] == '-') && i + 6 == n && two(tok + i + 1, &oh) == 0 &&
		    tok[i + 3] == ':' && two(tok + i + 4, &om) == 0 && oh <= 23 && om <= 59) {
			dt->offset_minutes = (tok[i] == '-' ? -1 : 1) * (oh * 60 + om);
			v->type = TOML_DATETIME;
			return 0;
		}
		return perr(p, "invalid offset in '%.*s'", (int)n, tok);
	}
	int used = parse_time_part(tok, n, dt);
	if (used < 0 || (size_t)used != n)
		return perr(p, "invalid time '%.*s'", (int)n, tok);
	v->type = TOML_TIME_LOCAL;
	return 0;
}

static int is_value_end(int c)
{
	return c < 0 || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ']' ||
	       c == '}' || c == '#';
}

/* Numbers, dates, times, booleans, inf and nan: a run of characters up to
 * a delimiter, classified afterwards. */
static int parse_scalar(struct parser *p, struct toml_value *v)
{
	size_t start = p->pos;
	while (!is_value_end(peek(p)))
		advance(p);
	/* A date followed by a space and a time is one date-time. */
	if (p->pos - start == 10 && peek(p) == ' ' && is_digit(peek_at(p, 1)) &&
	    is_digit(peek_at(p, 2)) && peek_at(p, 3) == ':' && p->s[start + 4] == '-') {
		advance(p);
		while (!is_value_end(peek(p)))
			advance(p);
	}
	const char *tok = p->s + start;
	size_t n = p->pos - start;
	p->pos = start; /* report errors at the start of the value */
	int rc;
	if (n == 0) {
		rc = at_end(p) || at_newline(p) ? perr(p, "expected a value")
		                                : perr(p, "unexpected character '%c'", peek(p));
	} else if ((n == 4 && memcmp(tok, "true", 4) == 0) ||
	           (n == 5 && memcmp(tok, "false", 5) == 0)) {
		v->type = TOML_BOOL;
		v->u.b = tok[0] == 't';
		rc = 0;
	} else if ((n >= 10 && tok[4] == '-' && is_digit(tok[0])) ||
	           (n >= 5 && tok[2] == ':' && is_digit(tok[0]))) {
		rc = parse_datetime(p, tok, n, v);
	} else if (is_digit(tok[0]) || tok[0] == '+' || tok[0] == '-' || tok[0] == 'i' ||
	           tok[0] == 'n') {
		rc = parse_number(p, tok, n, v);
	} else {
		rc = perr(p, "invalid value '%.*s'", (int)(n > 40 ? 40 : n), tok);
	}
	p->pos = start + n;
	return rc;
}

static int parse_value(struct parser *p, struct toml_value **out);

static int parse_array(struct parser *p, struct toml_value *a)
{
	advance(p); /* [ */
	for (;;) {
		skip_ws_nl_comments(p);
		if (peek(p) == ']') {
			advance(p);
			return 0;
		}
		struct toml_value *item;
		int rc = parse_value(p, &item);
		if (rc)
			return rc;
		if (array_add(p, a, item)) {
			toml_free(item);
			return ERR_NOMEM;
		}
		skip_ws_nl_comments(p);
		if (peek(p) == ',') {
			advance(p);
			continue;
		}
		if (peek(p) == ']') {
			advance(p);
			return 0;
		}
		if (at_end(p))
			return perr_at(p, a->line, a->col, "unterminated array");
		return perr(p, "expected ',' or ']' in array, found '%c'", peek(p));
	}
}

static int insert_keyval(struct parser *p, struct toml_value *t, struct tkey *keys, size_t nkeys,
                         struct toml_value *v);

static int parse_inline_table(struct parser *p, struct toml_value *t)
{
	advance(p); /* { */
	skip_ws(p);
	if (peek(p) == '}') {
		advance(p);
		return 0;
	}
	for (;;) {
		skip_ws(p);
		struct tkey keys[TOML_MAX_DEPTH];
		size_t nkeys;
		int rc = parse_key(p, keys, &nkeys);
		if (rc)
			return rc;
		skip_ws(p);
		if (peek(p) != '=') {
			keys_free(keys, nkeys);
			return perr(p, "expected '=' after key in inline table");
		}
		advance(p);
		skip_ws(p);
		struct toml_value *v;
		rc = parse_value(p, &v);
		if (rc) {
			keys_free(keys, nkeys);
			return rc;
		}
		rc = insert_keyval(p, t, keys, nkeys, v);
		if (rc)
			return rc;
		skip_ws(p);
		if (peek(p) == ',') {
			advance(p);
			skip_ws(p);
			if (peek(p) == '}')
				return perr(p, "trailing comma in inline table");
			continue;
		}
		if (peek(p) == '}') {
			advance(p);
			return 0;
		}
		if (at_end(p) || at_newline(p))
			return perr(p,
			            "inline table must end on the line it starts ('}' expected)");
		return perr(p, "expected ',' or '}' in inline table, found '%c'", peek(p));
	}
}

static int parse_value(struct parser *p, struct toml_value **out)
{
	*out = NULL;
	if (++p->depth > TOML_MAX_DEPTH)
		return perr(p, "values nested deeper than %d", TOML_MAX_DEPTH);
	int c = peek(p);
	int rc = 0;
	struct toml_value *v = value_new(p, TOML_STRING, p->line, col_of(p));
	if (v == NULL)
		return ERR_NOMEM;
	if (c == '"' || c == '\'') {
		rc = parse_string(p, &v->u.str.s, &v->u.str.len, 1);
	} else if (c == '[') {
		v->type = TOML_ARRAY;
		rc = parse_array(p, v);
		if (rc == 0)
			freeze(v);
	} else if (c == '{') {
		v->type = TOML_TABLE;
		rc = parse_inline_table(p, v);
		if (rc == 0)
			freeze(v);
	} else {
		v->type = TOML_BOOL;
		rc = parse_scalar(p, v);
	}
	p->depth--;
	if (rc) {
		toml_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

/* ---- tables ---- */

static const char *describe(const struct toml_value *v)
{
	if (v->type == TOML_TABLE)
		return v->flags & F_INLINE ? "an inline table" : "a table";
	if (v->type == TOML_ARRAY)
		return v->flags & F_AOT ? "an array of tables" : "an array";
	return "a value";
}

static int insert_keyval(struct parser *p, struct toml_value *t, struct tkey *keys, size_t nkeys,
                         struct toml_value *v)
{
	int rc = 0;
	size_t i;
	for (i = 0; i + 1 < nkeys; i++) {
		struct toml_value *child = table_find(t, keys[i].s, keys[i].len);
		if (child == NULL) {
			child = table_add_new(p, t, &keys[i], TOML_TABLE, F_DOTTED, keys[i].line,
			                      keys[i].col);
			if (child == NULL) {
				rc = ERR_NOMEM;
				goto out;
			}
		} else if (child->type != TOML_TABLE || !(child->flags & F_DOTTED) ||
		           (child->flags & F_INLINE)) {
			rc = perr_at(p, keys[i].line, keys[i].col,
			             "key '%s' is already defined as %s and cannot be extended",
			             keys[i].s, describe(child));
			goto out;
		}
		t = child;
	}
	if (table_find(t, keys[i].s, keys[i].len)) {
		rc = perr_at(p, keys[i].line, keys[i].col, "duplicate key '%s'", keys[i].s);
		goto out;
	}
	rc = table_add(p, t, &keys[i], v);
	if (rc == 0)
		v = NULL;
out:
	keys_free(keys, nkeys);
	toml_free(v);
	return rc;
}

/* [a.b.c] or [[a.b.c]]; on success *cur is the table that follows. */
static int parse_header(struct parser *p, struct toml_value *root, struct toml_value **cur)
{
	int line = p->line, col = col_of(p);
	int aot = peek_at(p, 1) == '[';
	advance(p);
	if (aot)
		advance(p);
	skip_ws(p);
	struct tkey keys[TOML_MAX_DEPTH];
	size_t nkeys;
	int rc = parse_key(p, keys, &nkeys);
	if (rc)
		return rc;
	if (peek(p) != ']' || (aot && peek_at(p, 1) != ']')) {
		keys_free(keys, nkeys);
		return perr(p, aot ? "expected ']]' to close the array of tables header"
		                   : "expected ']' to close the table header");
	}
	advance(p);
	if (aot)
		advance(p);

	struct toml_value *t = root, *nt = NULL;
	size_t i;
	for (i = 0; i + 1 < nkeys; i++) {
		struct toml_value *child = table_find(t, keys[i].s, keys[i].len);
		if (child == NULL) {
			child = table_add_new(p, t, &keys[i], TOML_TABLE, F_IMPLICIT, line, col);
			if (child == NULL) {
				rc = ERR_NOMEM;
				goto out;
			}
		} else if (child->type == TOML_ARRAY && (child->flags & F_AOT) &&
		           child->u.arr.n > 0) {
			child = child->u.arr.items[child->u.arr.n - 1];
		} else if (child->type != TOML_TABLE || (child->flags & F_INLINE)) {
			rc = perr_at(p, line, col, "key '%s' is already defined as %s", keys[i].s,
			             describe(child));
			goto out;
		}
		t = child;
	}
	struct toml_value *last = table_find(t, keys[i].s, keys[i].len);
	if (aot) {
		if (last == NULL) {
			last = table_add_new(p, t, &keys[i], TOML_ARRAY, F_AOT, line, col);
			if (last == NULL) {
				rc = ERR_NOMEM;
				goto out;
			}
		} else if (last->type != TOML_ARRAY || !(last->flags & F_AOT)) {
			rc = perr_at(p, line, col, "key '%s' is already defined as %s", keys[i].s,
			             describe(last));
			goto out;
		}
		nt = value_new(p, TOML_TABLE, line, col);
		if (nt == NULL) {
			rc = ERR_NOMEM;
			goto out;
		}
		nt->flags = F_DEFINED;
		if ((rc = array_add(p, last, nt))) {
			toml_free(nt);
			goto out;
		}
		*cur = nt;
	} else {
		if (last == NULL) {
			nt = table_add_new(p, t, &keys[i], TOML_TABLE, F_DEFINED, line, col);
			if (nt == NULL) {
				rc = ERR_NOMEM;
				goto out;
			}
			*cur = nt;
		} else if (last->type == TOML_TABLE && last->flags == F_IMPLICIT) {
			last->flags = F_DEFINED;
			last->line = line;
			last->col = col;
			*cur = last;
		} else {
			rc = perr_at(p, line, col, "table '%s' is already defined (as %s)",
			             keys[i].s, describe(last));
			goto out;
		}
	}
out:
	keys_free(keys, nkeys);
	if (rc)
		return rc;
	return expect_eol(p);
}

int toml_parse(struct toml_value **out, const char *data, size_t len, const char *name,
               struct err *e)
{
	*out = NULL;
	struct parser p = {
	    .s = data, .len = len, .line = 1, .name = name ? name : "<input>", .e = e};
	if (len > TOML_MAX_INPUT)
		return err_set(e, ERR_INVALID, "%s: larger than %u bytes", p.name, TOML_MAX_INPUT);
	int rc = check_input(&p);
	if (rc)
		return rc;
	/* A UTF-8 byte order mark is allowed at the start. */
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		p.pos = 3, p.line_start = 3;
	struct toml_value *root = value_new(&p, TOML_TABLE, 1, 1);
	if (root == NULL)
		return ERR_NOMEM;
	root->flags = F_DEFINED;
	struct toml_value *cur = root;
	while (!at_end(&p)) {
		skip_ws(&p);
		int c = peek(&p);
		if (c < 0)
			break;
		if (c == '#') {
			skip_comment(&p);
			rc = expect_eol(&p);
		} else if (c == '\n' || c == '\r') {
			rc = expect_eol(&p);
		} else if (c == '[') {
			rc = parse_header(&p, root, &cur);
		} else {
			struct tkey keys[TOML_MAX_DEPTH];
			size_t nkeys;
			rc = parse_key(&p, keys, &nkeys);
			if (rc)
				break;
			skip_ws(&p);
			if (peek(&p) != '=') {
				rc = perr(&p, "expected '=' after key '%s'", keys[nkeys - 1].s);
				keys_free(keys, nkeys);
				break;
			}
			advance(&p);
			skip_ws(&p);
			struct toml_value *v;
			rc = parse_value(&p, &v);
			if (rc) {
				keys_free(keys, nkeys);
				break;
			}
			rc = insert_keyval(&p, cur, keys, nkeys, v);
			if (rc == 0)
				rc = expect_eol(&p);
		}
		if (rc)
			break;
	}
	if (rc) {
		toml_free(root);
		return rc;
	}
	*out = root;
	return 0;
}

/* ---- accessors ---- */

enum toml_type toml_type_of(const struct toml_value *v)
{
	return v->type;
}

const char *toml_type_name(enum toml_type t)
{
	switch (t) {
	case TOML_TABLE:
		return "table";
	case TOML_ARRAY:
		return "array";
	case TOML_STRING:
		return "string";
	case TOML_INTEGER:
		return "integer";
	case TOML_FLOAT:
		return "float";
	case TOML_BOOL:
		return "boolean";
	case TOML_DATETIME:
		return "offset date-time";
	case TOML_DATETIME_LOCAL:
		return "local date-time";
	case TOML_DATE_LOCAL:
		return "local date";
	case TOML_TIME_LOCAL:
		return "local time";
	}
	return "?";
}

int toml_line(const struct toml_value *v)
{
	return v->line;
}

int toml_col(const struct toml_value *v)
{
	return v->col;
}

size_t toml_table_len(const struct toml_value *t)
{
	return t->type == TOML_TABLE ? t->u.tab.n : 0;
}

const char *toml_table_key(const struct toml_value *t, size_t i, size_t *klen)
{
	if (klen)
		*klen = t->u.tab.keys[i].len;
	return t->u.tab.keys[i].s;
}

int toml_table_key_line(const struct toml_value *t, size_t i)
{
	return t->u.tab.keys[i].line;
}

const struct toml_value *toml_table_value(const struct toml_value *t, size_t i)
{
	return t->u.tab.vals[i];
}

const struct toml_value *toml_table_get(const struct toml_value *t, const char *key)
{
	if (t == NULL || t->type != TOML_TABLE)
		return NULL;
	return table_find(t, key, strlen(key));
}

size_t toml_array_len(const struct toml_value *a)
{
	return a->type == TOML_ARRAY ? a->u.arr.n : 0;
}

const struct toml_value *toml_array_get(const struct toml_value *a, size_t i)
{
	return a->u.arr.items[i];
}

const char *toml_string(const struct toml_value *v, size_t *len)
{
	if (len)
		*len = v->u.str.len;
	return v->u.str.s;
}

int64_t toml_integer(const struct toml_value *v)
{
	return v->u.i;
}

double toml_float(const struct toml_value *v)
{
	return v->u.f;
}

bool toml_bool(const struct toml_value *v)
{
	return v->u.b;
}

const struct toml_datetime *toml_datetime(const struct toml_value *v)
{
	return &v->u.dt;
}
