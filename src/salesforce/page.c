/* A strict JSON parser for query result pages, working in place.
 *
 * A page is {"totalSize":N,"done":B,"nextRecordsUrl":S?,"records":[{...}]}.
 * Strings are unescaped inside the response buffer and NUL-terminated
 * there, so no value is copied and nothing is allocated per record; the
 * record and value arrays are reused from page to page. It accepts exactly
 * RFC 8259 JSON (no trailing commas, no comments, no control characters in
 * strings) and refuses anything else, so that a cut-off or damaged page is
 * never taken for a whole one. Nested objects and arrays inside a record
 * (relationship fields) are checked and skipped.
 *
 * A value that is well-formed JSON but no text optsync can take (an
 * escaped NUL, an unpaired surrogate, bytes that are not UTF-8) is no
 * damage to the page: it is decoded as far as it goes and the record is
 * flagged (sf_record.flaw), so that the caller refuses that record alone
 * and reads the rest of the page (rule 8). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/internal.h"

#define MAX_DEPTH 64

struct pp {
	char *p, *end;
	struct sf_page *pg;
	struct err *e;
	enum sf_flaw flaw; /* the first flaw of the strings read since it was cleared */
};

static int bad(struct pp *s, const char *what)
{
	return err_set(s->e, ERR_RETRY, "Salesforce query page is not valid JSON: %s at byte %zu",
	               what, (size_t)(s->p - (s->end - s->pg->len)));
}

static void ws(struct pp *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static int expect(struct pp *s, char c)
{
	ws(s);
	if (s->p >= s->end || *s->p != c)
		return -1;
	s->p++;
	return 0;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* The length of the UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when the bytes before end are
 * not one. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static void flaw(struct pp *s, enum sf_flaw f)
{
	if (s->flaw == SF_FLAW_NONE)
		s->flaw = f;
}

/* A string at s->p (the opening quote); *out points at its unescaped,
 * NUL-terminated bytes inside the buffer. A flaw (a NUL, an unpaired
 * surrogate, bytes that are not UTF-8) is noted in s->flaw: a NUL ends the
 * C string there, a lone surrogate becomes U+FFFD, other bytes are kept. */
static int string(struct pp *s, char **out)
{
	ws(s);
	if (s->p >= s->end || *s->p != '"')
		return bad(s, "expected a string");
	char *r = ++s->p, *w;
	*out = r;
	/* until the first escape the string stays where it is: nothing moves.
	 * Eight bytes at a time while none is a quote, a backslash, a control
	 * character or a byte of a multi-byte character (each test flags every
	 * such byte; a flag may also fall on a byte that is none, and the
	 * bytewise loop then decides) */
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	while (s->end - r >= 8) {
		uint64_t x, q, b;
		memcpy(&x, r, 8);
		q = x ^ (ones * '"');
		b = x ^ (ones * '\\');
		if ((((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x) & highs)
			break;
		r += 8;
	}
	while (r < s->end && *r != '"' && *r != '\\' && (unsigned char)*r >= 0x20 &&
	       (unsigned char)*r < 0x80)
		r++;
	w = r;
	while (r < s->end) {
		unsigned char c = (unsigned char)*r;
		if (c == '"') {
			*w = '\0'; /* w <= r: the closing quote's place at the latest */
			s->p = r + 1;
			return 0;
		}
		if (c < 0x20) {
			s->p = r;
			return bad(s, "control character in a string");
		}
		if (c >= 0x80) {
			/* a whole character, or a byte that starts none (kept, noted) */
			size_t n =
			    utf8_seq((const unsigned char *)r, (const unsigned char *)s->end);
			if (n == 0) {
				flaw(s, SF_FLAW_UTF8);
				n = 1;
			}
			while (n--)
				*w++ = *r++;
			continue;
		}
		if (c != '\\') {
			*w++ = (char)c;
			r++;
			continue;
		}
		if (r + 1 >= s->end)
			break;
		char esc = r[1];
		r += 2;
		switch (esc) {
		case '"':
			*w++ = '"';
			break;
		case '\\':
			*w++ = '\\';
			break;
		case '/':
			*w++ = '/';
			break;
		case 'b':
			*w++ = '\b';
			break;
		case 'f':
			*w++ = '\f';
			break;
		case 'n':
			*w++ = '\n';
			break;
		case 'r':
			*w++ = '\r';
			break;
		case 't':
			*w++ = '\t';
			break;
		case 'u': {
			unsigned cp, lo;
			if (s->end - r < 4 || hex4(r, &cp)) {
				s->p = r;
				return bad(s, "bad \\u escape");
			}
			r += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && s->end - r >= 6 && r[0] == '\\' &&
			    r[1] == 'u' && hex4(r + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
				r += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				/* valid JSON, but no character: U+FFFD in its place */
				flaw(s, SF_FLAW_SURROGATE);
				cp = 0xfffd;
			}
			if (cp == 0) {
				/* decoded: the C string ends here, and the record is refused */
				flaw(s, SF_FLAW_NUL);
				*w++ = '\0';
				break;
			}
			/* UTF-8 is never longer than the escape it replaces */
			if (cp < 0x80) {
				*w++ = (char)cp;
			} else if (cp < 0x800) {
				*w++ = (char)(0xc0 | cp >> 6);
				*w++ = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				*w++ = (char)(0xe0 | cp >> 12);
				*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
				*w++ = (char)(0x80 | (cp & 0x3f));
			} else {
				*w++ = (char)(0xf0 | cp >> 18);
				*w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
				*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
				*w++ = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			s->p = r - 1;
			return bad(s, "bad escape");
		}
	}
	s->p = s->end;
	return bad(s, "unterminated string");
}

static int literal_n(struct pp *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return bad(s, "bad literal");
	s->p += n;
	return 0;
}

#define literal(s, word) literal_n(s, word, sizeof(word) - 1)

static int number(struct pp *s, double *out)
{
	char *start = s->p, *q = s->p;
	if (q < s->end && *q == '-')
		q++;
	if (q >= s->end || *q < '0' || *q > '9')
		return bad(s, "bad number");
	if (*q == '0')
		q++;
	else
		while (q < s->end && *q >= '0' && *q <= '9')
			q++;
	if (q < s->end && *q == '.') {
		q++;
		if (q >= s->end || *q < '0' || *q > '9')
			return bad(s, "bad number");
		while (q < s->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < s->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < s->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= s->end || *q < '0' || *q > '9')
			return bad(s, "bad number");
		while (q < s->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q >= s->end)
		return bad(s, "number at the end of the page");
	char saved = *q; /* a delimiter: borrow its byte to terminate */
	*q = '\0';
	*out = strtod(start, NULL);
	*q = saved;
	s->p = q;
	return 0;
}

/* Any value, checked and dropped. */
static int skip_value(struct pp *s, int depth)
{
	ws(s);
	if (s->p >= s->end)
		return bad(s, "unexpected end");
	if (depth > MAX_DEPTH)
		return bad(s, "nested too deeply");
	char *str;
	double d;
	switch (*s->p) {
	case '"':
		return string(s, &str);
	case 't':
		return literal(s, "true");
	case 'f':
		return literal(s, "false");
	case 'n':
		return literal(s, "null");
	case '{':
	case '[': {
		char close = *s->p == '{' ? '}' : ']';
		int obj = close == '}';
		s->p++;
		ws(s);
		if (s->p < s->end && *s->p == close) {
			s->p++;
			return 0;
		}
		for (;;) {
			int rc;
			if (obj) {
				if ((rc = string(s, &str)))
					return rc;
				if (expect(s, ':'))
					return bad(s, "expected ':'");
			}
			if ((rc = skip_value(s, depth + 1)))
				return rc;
			ws(s);
			if (s->p < s->end && *s->p == ',') {
				s->p++;
				continue;
			}
			if (s->p < s->end && *s->p == close) {
				s->p++;
				return 0;
			}
			return bad(s, "expected ',' or a closing bracket");
		}
	}
	default:
		return number(s, &d);
	}
}

static int grow(struct sf_page *pg, size_t recs, size_t vals, struct err *e)
{
	if (recs > pg->rcap) {
		size_t n = pg->rcap ? pg->rcap : 256;
		while (n < recs)
			n *= 2;
		struct sf_record *r = realloc(pg->recs, n * sizeof(*r));
		if (r == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		pg->recs = r;
		pg->rcap = n;
	}
	if (vals > pg->vcap) {
		size_t n = pg->vcap ? pg->vcap : 4096;
		while (n < vals)
			n *= 2;
		struct sf_value *v = realloc(pg->vals, n * sizeof(*v));
		if (v == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		pg->vals = v; /* records get their values pointers at the end */
		pg->vcap = n;
	}
	return 0;
}

static int record(struct pp *s)
{
	struct sf_page *pg = s->pg;
	int rc = grow(pg, pg->nrecs + 1, 0, s->e);
	if (rc)
		return rc;
	struct sf_record *rec = &pg->recs[pg->nrecs];
	/* the previous record's values: a name it has at the same place is
	 * shared (one pointer), as the records of a page name the same fields */
	size_t start = pg->nvals, prev_n = pg->nrecs ? pg->recs[pg->nrecs - 1].nvalues : 0;
	rec->type = "";
	rec->id = NULL;
	rec->nvalues = 0;
	rec->values = NULL;
	rec->flaw = SF_FLAW_NONE;
	rec->flaw_field = NULL;
	if (expect(s, '{'))
		return bad(s, "a record is not an object");
	ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return bad(s, "a record has no Id");
	}
	for (;;) {
		char *name;
		s->flaw = SF_FLAW_NONE;
		if ((rc = string(s, &name)))
			return rc;
		if (expect(s, ':'))
			return bad(s, "expected ':'");
		ws(s);
		if (s->p >= s->end)
			return bad(s, "unexpected end");
		if (*s->p == '{' && strcmp(name, "attributes") == 0) {
			/* {"type":"Contact","url":"..."} */
			s->p++;
			for (;;) {
				char *k, *v;
				if ((rc = string(s, &k)))
					return rc;
				if (expect(s, ':'))
					return bad(s, "expected ':'");
				ws(s);
				s->flaw = SF_FLAW_NONE;
				if (s->p < s->end && *s->p == '"') {
					if ((rc = string(s, &v)))
						return rc;
					if (strcmp(k, "type") == 0) {
						rec->type = v;
						if (s->flaw && rec->flaw == SF_FLAW_NONE) {
							rec->flaw = s->flaw;
							rec->flaw_field = "attributes.type";
						}
					}
				} else if ((rc = skip_value(s, 2))) {
					return rc;
				}
				ws(s);
				if (s->p < s->end && *s->p == ',') {
					s->p++;
					continue;
				}
				if (expect(s, '}'))
					return bad(s, "expected ',' or '}' in attributes");
				break;
			}
		} else if (*s->p == '{' || *s->p == '[') {
			if ((rc = skip_value(s, 2))) /* relationship fields: not used */
				return rc;
		} else {
			if ((rc = grow(pg, 0, pg->nvals + 1, s->e)))
				return rc;
			rec = &pg->recs[pg->nrecs];
			struct sf_value *v = &pg->vals[pg->nvals];
			if (rec->nvalues < prev_n) {
				const char *pn = pg->vals[start - prev_n + rec->nvalues].name;
				if (pn[0] == name[0] && strcmp(pn, name) == 0)
					name = (char *)pn;
			}
			v->name = name;
			v->str = NULL;
			v->b = false;
			v->num = 0;
			switch (*s->p) {
			case '"':
				v->type = SF_STRING;
				rc = string(s, (char **)&v->str);
				break;
			case 't':
				v->type = SF_BOOL;
				v->b = true;
				rc = literal(s, "true");
				break;
			case 'f':
				v->type = SF_BOOL;
				rc = literal(s, "false");
				break;
			case 'n':
				v->type = SF_NULL;
				rc = literal(s, "null");
				break;
			default:
				v->type = SF_NUMBER;
				rc = number(s, &v->num);
			}
			if (rc)
				return rc;
			if (s->flaw && rec->flaw == SF_FLAW_NONE) {
				rec->flaw = s->flaw; /* in the name or the value */
				rec->flaw_field = name;
			}
			if (v->type == SF_STRING && name[0] == 'I' && strcmp(name, "Id") == 0)
				rec->id = v->str;
			pg->nvals++;
			rec->nvalues++;
		}
		ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (expect(s, '}'))
			return bad(s, "expected ',' or '}' in a record");
		break;
	}
	if (rec->id == NULL)
		return err_set(s->e, ERR_REMOTE,
		               "Salesforce query page: a record has no Id (select Id)");
	pg->nrecs++;
	return 0;
}

int sf_page_parse(char *buf, size_t len, struct sf_page *pg, struct err *e)
{
	struct pp s = {buf, buf + len, pg, e, SF_FLAW_NONE};
	pg->len = len;
	pg->nrecs = pg->nvals = 0;
	pg->next = NULL;
	pg->done = -1;
	int have_records = 0, rc;
	if (expect(&s, '{'))
		return bad(&s, "a page is not an object");
	ws(&s);
	if (s.p < s.end && *s.p == '}')
		return bad(&s, "empty page");
	for (;;) {
		char *key;
		if ((rc = string(&s, &key)))
			return rc;
		if (expect(&s, ':'))
			return bad(&s, "expected ':'");
		ws(&s);
		if (strcmp(key, "records") == 0) {
			if (expect(&s, '['))
				return bad(&s, "records is not an array");
			have_records = 1;
			ws(&s);
			if (s.p < s.end && *s.p == ']') {
				s.p++;
			} else {
				for (;;) {
					if ((rc = record(&s)))
						return rc;
					ws(&s);
					if (s.p < s.end && *s.p == ',') {
						s.p++;
						continue;
					}
					if (expect(&s, ']'))
						return bad(&s, "expected ',' or ']' in records");
					break;
				}
			}
		} else if (strcmp(key, "done") == 0 && s.p < s.end &&
		           (*s.p == 't' || *s.p == 'f')) {
			pg->done = *s.p == 't';
			if ((rc = pg->done ? literal(&s, "true") : literal(&s, "false")))
				return rc;
		} else if (strcmp(key, "nextRecordsUrl") == 0 && s.p < s.end && *s.p == '"') {
			s.flaw = SF_FLAW_NONE;
			if ((rc = string(&s, &pg->next)))
				return rc;
			if (s.flaw)
				return bad(&s, "nextRecordsUrl is not a URL");
		} else if ((rc = skip_value(&s, 1))) {
			return rc;
		}
		ws(&s);
		if (s.p < s.end && *s.p == ',') {
			s.p++;
			continue;
		}
		if (expect(&s, '}'))
			return bad(&s, "expected ',' or '}'");
		break;
	}
	ws(&s);
	if (s.p != s.end)
		return bad(&s, "data after the page");
	if (!have_records || pg->done < 0)
		return err_set(e, ERR_RETRY, "Salesforce query page lacks records or done");
	/* each record's values follow the previous record's */
	struct sf_value *v = pg->vals;
	for (size_t i = 0; i < pg->nrecs; i++) {
		pg->recs[i].values = v;
		v += pg->recs[i].nvalues;
	}
	return 0;
}

void sf_page_free(struct sf_page *pg)
{
	free(pg->recs);
	free(pg->vals);
	memset(pg, 0, sizeof(*pg));
}
