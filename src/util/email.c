/* Email normalization (email.h): one function, one set of rules. */
#include <errno.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <uninorm.h>

#include "util/email.h"

/* The most input bytes looked at (after trimming): a local part in NFD or
 * a domain of U-labels can be longer than its normalized form, but not
 * four times longer than the 254 bytes that form may have. */
#define IN_MAX (4 * EMAIL_MAX)

/* One UTF-8 sequence at s (n > 0 bytes left): its length and code point;
 * 0 when it is not a valid one (RFC 3629: shortest form, no surrogate,
 * at most U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1fu, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0fu, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3fu);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* C0, DEL and C1: Unicode's control characters (general category Cc). */
static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* What trimming removes: ASCII white space, Unicode's spaces (no-break,
 * the typographic ones, ideographic) and a byte order mark, which a CSV
 * saved by a spreadsheet starts with. */
static bool is_space(uint32_t cp)
{
	return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0xa0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
	       cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

void email_quote(const char *in, size_t len, size_t max, char *out, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0;
	if (cap == 0)
		return;
	for (size_t i = 0; i < len;) {
		if (i >= max) {
			if (o + 3 < cap)
				memcpy(out + o, "...", 3), o += 3;
			break;
		}
		uint32_t cp = 0;
		size_t k = utf8_seq(s + i, len - i, &cp);
		bool esc = k == 0 || is_control(cp);
		if (k == 0)
			k = 1;
		if (o + (esc ? 4 * k : k) >= cap)
			break;
		for (size_t j = 0; j < k; j++) {
			if (esc) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[s[i + j] >> 4];
				out[o++] = hex[s[i + j] & 15];
			} else {
				out[o++] = (char)s[i + j];
			}
		}
		i += k;
	}
	out[o] = '\0';
}

int email_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), k;
	uint32_t cp;
	for (size_t i = 0; i < n; i += k)
		if ((k = utf8_seq(p + i, n - i, &cp)) == 0)
			return 0;
	return 1;
}

const char *email_echo(const char *s, char buf[EMAIL_ECHO_MAX])
{
	if (email_utf8_valid(s))
		return s;
	email_quote(s, strlen(s), EMAIL_MAX, buf, EMAIL_ECHO_MAX);
	return buf;
}

/* The specials that only a quoted local part may hold (RFC 5321). */
static const bool special[256] = {
    [' '] = true, ['"'] = true, ['\\'] = true, [','] = true, [';'] = true, ['<'] = true,
    ['>'] = true, ['('] = true, [')'] = true,  ['['] = true, [']'] = true, [':'] = true,
};

/* The refusal of in, quoted, for why (a printf format and its arguments). */
static int refuse(struct err *e, char *out, const char *in, const char *why, ...) ERR_PRINTF(4, 5);
static int refuse(struct err *e, char *out, const char *in, const char *why, ...)
{
	char q[4 * 80 + 4], reason[200];
	va_list ap;
	va_start(ap, why);
	vsnprintf(reason, sizeof(reason), why, ap);
	va_end(ap);
	email_quote(in, strlen(in), 80, q, sizeof(q));
	out[0] = '\0';
	return err_set(e, ERR_INVALID, "'%s' is not an email address (%s)", q, reason);
}

static void ascii_lower(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
	}
}

/* Some label of d[0..n) starts with "xn--" in any case: an A-label, which
 * is checked and lower-cased by IDNA like a U-label. */
static bool has_alabel(const char *d, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if ((i == 0 || d[i - 1] == '.') && (d[i] | 0x20) == 'x' &&
		    (d[i + 1] | 0x20) == 'n' && d[i + 2] == '-' && d[i + 3] == '-')
			return true;
	return false;
}

/* The local part s[0..n) into out (cap bytes): NFC, lower-cased. */
static int local_part(const char *in, const char *s, size_t n, bool ascii, char *out, size_t cap,
                      size_t *outlen, char *res, struct err *e)
{
	if (ascii) {
		ascii_lower(out, s, n);
		*outlen = n;
		return 0;
	}
	uint8_t buf[IN_MAX * 3];
	size_t len = sizeof(buf);
	uint8_t *r = u8_tolower((const uint8_t *)s, n, NULL, UNINORM_NFC, buf, &len);
	if (r == NULL)
		return errno == ENOMEM ? err_set(e, ERR_NOMEM, "out of memory")
		                       : refuse(e, res, in, "its local part cannot be normalized");
	int rc = 0;
	if (len >= cap)
		rc = refuse(e, res, in, "longer than %d bytes", EMAIL_MAX);
	else
		memcpy(out, r, len);
	*outlen = len;
	if (r != buf)
		free(r);
	return rc;
}

/* The domain s[0..n) into out (cap bytes): its A-label form, lower-cased. */
static int domain_part(const char *in, const char *s, size_t n, bool ascii, char *out, size_t cap,
                       size_t *outlen, char *res, struct err *e)
{
	if (ascii && !has_alabel(s, n)) {
		if (n >= cap)
			return refuse(e, res, in, "longer than %d bytes", EMAIL_MAX);
		ascii_lower(out, s, n);
		*outlen = n;
		return 0;
	}
	char z[IN_MAX + 1];
	memcpy(z, s, n);
	z[n] = '\0';
	char *a = NULL;
	int rc = idn2_to_ascii_8z(z, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc == IDN2_MALLOC)
		return err_set(e, ERR_NOMEM, "out of memory");
	if (rc != IDN2_OK)
		return refuse(e, res, in,
		              "its domain is not a valid internationalized domain name: %s",
		              idn2_strerror(rc));
	size_t len = strlen(a);
	/* the mapping may give ASCII that a domain cannot hold (a full-width
	 * '<' is '<'): the same rules as for a domain typed in ASCII */
	for (size_t i = 0; rc == 0 && i < len; i++) {
		unsigned char ch = (unsigned char)a[i];
		if (special[ch] || ch == '@' || is_control(ch) || ch >= 0x80)
			rc = refuse(e, res, in, "its domain maps to character 0x%02x", ch);
	}
	if (rc == 0 && len >= cap)
		rc = refuse(e, res, in, "longer than %d bytes", EMAIL_MAX);
	if (rc == 0)
		ascii_lower(out, a, len);
	*outlen = len;
	idn2_free(a);
	return rc;
}

int email_normalize(const char *in, char out[EMAIL_MAX + 1], struct err *e)
{
	const unsigned char *s = (const unsigned char *)in, *end = s + strlen(in);
	uint32_t cp;
	size_t k;
	out[0] = '\0';
	/* trim, a whole character at a time */
	while (s < end && (k = utf8_seq(s, (size_t)(end - s), &cp)) && is_space(cp))
		s += k;
	while (end > s) {
		const unsigned char *p = end - 1;
		while (p > s && end - p < 4 && (*p & 0xc0) == 0x80)
			p--;
		if (!(k = utf8_seq(p, (size_t)(end - p), &cp)) || p + k != end || !is_space(cp))
			break;
		end = p;
	}
	size_t n = (size_t)(end - s);
	if (n == 0)
		return refuse(e, out, in, "empty");
	if (n > IN_MAX)
		return refuse(e, out, in, "longer than %d bytes", EMAIL_MAX);
	/* every character valid UTF-8 and none a control character */
	bool ascii = true;
	for (size_t i = 0; i < n; i += k) {
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			k = 1;
			continue;
		}
		if ((k = utf8_seq(s + i, n - i, &cp)) == 0)
			return refuse(e, out, in, "not valid UTF-8: byte 0x%02x at offset %zu",
			              s[i], (size_t)(s + i - (const unsigned char *)in));
		if (is_control(cp))
			return refuse(e, out, in, "control character U+%04X at offset %zu",
			              (unsigned)cp, (size_t)(s + i - (const unsigned char *)in));
		ascii = false;
	}
	if (ascii && n > EMAIL_MAX)
		return refuse(e, out, in, "longer than %d bytes", EMAIL_MAX);
	/* RFC 5321: a local part is a dot-atom, or a quoted string that may
	 * hold specials ("a<b"@example.com); a domain holds none */
	enum { LOCAL, QUOTED, CLOSED, DOMAIN } st = s[0] == '"' ? QUOTED : LOCAL;
	size_t at = 0;
	bool found = false, local_ascii = true;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = s[i];
		bool bad = false;
		if (st == QUOTED && i > 0) {
			if (ch == '"')
				st = CLOSED;
			bad = ch == '\\';
		} else if (st == CLOSED) {
			bad = ch != '@';
			at = i, found = true;
			st = DOMAIN;
		} else if (!(st == QUOTED && i == 0)) {
			if (ch == '@' && st == DOMAIN)
				return refuse(e, out, in, "two '@'");
			if (ch == '@') {
				at = i, found = true;
				st = DOMAIN;
			}
			bad = special[ch];
		}
		if (bad)
			return refuse(e, out, in, "character 0x%02x", ch);
		if (ch >= 0x80 && st != DOMAIN)
			local_ascii = false;
	}
	if (st == QUOTED || st == CLOSED || (s[0] == '"' && found && at < 3))
		return refuse(e, out, in,
		              "a quoted local part must be closed, not empty, and followed by '@'");
	if (!found || at == 0 || at == n - 1)
		return refuse(e, out, in, "%s", found ? "an empty local part or domain" : "no '@'");
	size_t ll, dl;
	int rc = local_part(in, (const char *)s, at, local_ascii, out, EMAIL_MAX + 1, &ll, out, e);
	if (rc)
		return rc;
	out[ll] = '@';
	bool domain_ascii = true;
	for (size_t i = at + 1; !ascii && i < n; i++)
		domain_ascii &= s[i] < 0x80;
	rc = domain_part(in, (const char *)s + at + 1, n - at - 1, domain_ascii, out + ll + 1,
	                 EMAIL_MAX + 1 - (ll + 1), &dl, out, e);
	if (rc)
		return rc;
	out[ll + 1 + dl] = '\0';
	const char *d = out + ll + 1;
	if (dl == 0 || strchr(d, '.') == NULL || d[0] == '.' || d[dl - 1] == '.' ||
	    strstr(out, "..")) {
		out[0] = '\0';
		return refuse(e, out, in, "%s",
		              dl && strchr(d, '.') == NULL ? "its domain has no dot"
		                                           : "an empty label or two dots in a row");
	}
	return 0;
}

/* Windows-1252's 0x80-0x9f (0: undefined there, kept as the C1 control,
 * which normalizing then refuses); 0xa0-0xff are Latin-1's, U+00A0-U+00FF. */
static const uint16_t cp1252[32] = {0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
                                    0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017d, 0,
                                    0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
                                    0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178};

int email_normalize_stored(const char *stored, char out[EMAIL_MAX + 1], int *recoded, struct err *e)
{
	const unsigned char *s = (const unsigned char *)stored;
	size_t n = strlen(stored), k;
	uint32_t cp;
	*recoded = 0;
	bool valid = true;
	for (size_t i = 0; valid && i < n; i += k)
		valid = (k = utf8_seq(s + i, n - i, &cp)) != 0;
	if (valid)
		return email_normalize(stored, out, e);
	char u[IN_MAX + 1];
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = s[i];
		if (c >= 0x80 && c < 0xa0 && cp1252[c - 0x80])
			c = cp1252[c - 0x80];
		if (o + 4 > IN_MAX)
			return refuse(e, out, stored, "longer than %d bytes", EMAIL_MAX);
		if (c < 0x80) {
			u[o++] = (char)c;
		} else if (c < 0x800) {
			u[o++] = (char)(0xc0 | c >> 6);
			u[o++] = (char)(0x80 | (c & 0x3f));
		} else {
			u[o++] = (char)(0xe0 | c >> 12);
			u[o++] = (char)(0x80 | (c >> 6 & 0x3f));
			u[o++] = (char)(0x80 | (c & 0x3f));
		}
	}
	u[o] = '\0';
	*recoded = 1;
	return email_normalize(u, out, e);
}
