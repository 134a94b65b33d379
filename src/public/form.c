/* Form bodies (form.h): urlencoded (the HTML form encoding) and
 * multipart/form-data (RFC 7578), as RFC 8058 allows both. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "public/form.h"

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode one urlencoded component into out (cap bytes, NUL-terminated);
 * -1 for a broken escape or one too long. */
static int url_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static void take(struct form *f, const char *name, const char *value)
{
	if (strcmp(name, "List-Unsubscribe") == 0 && strcmp(value, "One-Click") == 0)
		f->one_click = true;
	else if (strcmp(name, "action") == 0 && strcmp(value, "unsubscribe") == 0)
		f->unsubscribe = true;
	else if (strcmp(name, "action") == 0 && strcmp(value, "purposes") == 0)
		f->leave_purposes = true;
	else if (strcmp(name, "purpose") == 0 && value[0] && strlen(value) <= 64 &&
	         f->npurposes < FORM_PURPOSE_MAX) {
		for (size_t i = 0; i < f->npurposes; i++)
			if (strcmp(f->purposes[i], value) == 0)
				return;
		memcpy(f->purposes[f->npurposes++], value, strlen(value) + 1);
	}
}

static int parse_urlencoded(const char *body, size_t len, struct form *f)
{
	size_t i = 0;
	while (i < len) {
		size_t end = i;
		while (end < len && body[end] != '&')
			end++;
		const char *eq = memchr(body + i, '=', end - i);
		char name[72], value[72];
		size_t nl = eq ? (size_t)(eq - (body + i)) : end - i;
		/* fields too long to be ours are skipped, not an error */
		if (url_decode(body + i, nl, name, sizeof(name)) == 0) {
			if (eq == NULL)
				value[0] = '\0';
			else if (url_decode(eq + 1, (size_t)(body + end - eq - 1), value,
			                    sizeof(value)) != 0)
				value[0] = '\0';
			take(f, name, value);
		} else if (memchr(body + i, '%', nl) && nl < sizeof(name)) {
			return -1; /* a broken escape */
		}
		i = end + 1;
	}
	return 0;
}

/* The value of parameter key in a header value such as
 * 'multipart/form-data; boundary="x"' into out; -1 when absent. */
static int header_param(const char *h, size_t hl, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	for (size_t i = 0; i + kl < hl; i++) {
		if (h[i] != ';')
			continue;
		size_t j = i + 1;
		while (j < hl && (h[j] == ' ' || h[j] == '\t'))
			j++;
		if (j + kl >= hl || strncasecmp(h + j, key, kl) != 0 || h[j + kl] != '=')
			continue;
		j += kl + 1;
		size_t o = 0;
		if (j < hl && h[j] == '"') {
			j++;
			while (j < hl && h[j] != '"') {
				if (h[j] == '\\' && j + 1 < hl)
					j++;
				if (o + 1 >= cap)
					return -1;
				out[o++] = h[j++];
			}
			if (j >= hl)
				return -1;
		} else {
			while (j < hl && h[j] != ';' && h[j] != ' ' && h[j] != '\t' &&
			       h[j] != '\r' && h[j] != '\n') {
				if (o + 1 >= cap)
					return -1;
				out[o++] = h[j++];
			}
		}
		out[o] = '\0';
		return o ? 0 : -1;
	}
	return -1;
}

static const char *find(const char *h, size_t hl, const char *needle, size_t nl)
{
	if (nl == 0 || hl < nl)
		return NULL;
	for (size_t i = 0; i + nl <= hl; i++)
		if (h[i] == needle[0] && memcmp(h + i, needle, nl) == 0)
			return h + i;
	return NULL;
}

static int parse_multipart(const char *ctype, const char *body, size_t len, struct form *f)
{
	char boundary[80], delim[84];
	if (header_param(ctype, strlen(ctype), "boundary", boundary, sizeof(boundary)))
		return -1;
	size_t bl = strlen(boundary);
	if (bl > 70) /* RFC 2046 */
		return -1;
	delim[0] = '-';
	delim[1] = '-';
	memcpy(delim + 2, boundary, bl + 1);
	size_t dl = bl + 2;
	const char *end = body + len;
	const char *p = find(body, len, delim, dl);
	if (p == NULL)
		return -1;
	for (;;) {
		p += dl;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return 0; /* the closing delimiter */
		/* the rest of the delimiter line */
		while (p < end && *p != '\n')
			p++;
		if (p >= end)
			return -1;
		p++;
		/* part headers up to an empty line */
		const char *hdr = p;
		const char *blank = NULL;
		for (const char *q = p; q < end; q++) {
			if (*q == '\n' && q + 1 < end && q[1] == '\n') {
				blank = q;
				p = q + 2;
				break;
			}
			if (*q == '\n' && q + 2 < end && q[1] == '\r' && q[2] == '\n') {
				blank = q;
				p = q + 3;
				break;
			}
		}
		if (blank == NULL)
			return -1;
		size_t hl = (size_t)(blank - hdr);
		/* the part's body ends at CRLF (or LF) before the next delimiter */
		const char *next = find(p, (size_t)(end - p), delim, dl);
		if (next == NULL)
			return -1;
		const char *vend = next;
		if (vend > p && vend[-1] == '\n')
			vend--;
		if (vend > p && vend[-1] == '\r')
			vend--;
		char name[72];
		const char *cd = NULL;
		for (const char *q = hdr; q + 20 <= hdr + hl; q++)
			if ((q == hdr || q[-1] == '\n') &&
			    strncasecmp(q, "Content-Disposition:", 20) == 0) {
				cd = q;
				break;
			}
		if (cd) {
			const char *cdend = memchr(cd, '\n', (size_t)(hdr + hl - cd));
			size_t cl = cdend ? (size_t)(cdend - cd) : (size_t)(hdr + hl - cd);
			size_t vl = (size_t)(vend - p);
			if (header_param(cd, cl, "name", name, sizeof(name)) == 0 && vl < 72) {
				char value[72];
				memcpy(value, p, vl);
				value[vl] = '\0';
				if (strlen(value) == vl)
					take(f, name, value);
			}
		}
		p = next;
	}
}

int form_parse(const char *ctype, const char *body, size_t len, struct form *out)
{
	memset(out, 0, sizeof(*out));
	if (len > FORM_BODY_MAX || ctype == NULL)
		return -1;
	size_t tl = strcspn(ctype, "; \t");
	if (tl == 33 && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)
		return parse_urlencoded(body, len, out);
	if (tl == 19 && strncasecmp(ctype, "multipart/form-data", 19) == 0)
		return parse_multipart(ctype, body, len, out);
	return -1;
}
