#include "util/log.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/timefmt.h"

#define LOG_LINE_MAX    8192
#define LOG_SECRETS_MAX 32
#define MASK            "[REDACTED]"

static struct {
	enum log_level level;
	enum log_format format;
	int fd;
	pthread_mutex_t lock; /* guards the secret table */
	size_t nsecrets;
	char *secrets[LOG_SECRETS_MAX];
	size_t secret_len[LOG_SECRETS_MAX];
} sink = {LOG_INFO, LOG_FORMAT_TEXT, 2, PTHREAD_MUTEX_INITIALIZER, 0, {0}, {0}};

void log_setup(enum log_level level, enum log_format format, int fd)
{
	sink.level = level;
	sink.format = format;
	sink.fd = fd;
}

int log_enabled(enum log_level level)
{
	return level <= sink.level;
}

int log_add_secret(const char *s, size_t len)
{
	if (len < 4)
		return 0; /* too short to mask without masking ordinary text */
	pthread_mutex_lock(&sink.lock);
	int rc = 0;
	if (sink.nsecrets == LOG_SECRETS_MAX) {
		rc = -1;
		goto out;
	}
	char *copy = malloc(len);
	if (copy == NULL) {
		rc = -1;
		goto out;
	}
	memcpy(copy, s, len);
	sink.secrets[sink.nsecrets] = copy;
	sink.secret_len[sink.nsecrets] = len;
	sink.nsecrets++;
out:
	pthread_mutex_unlock(&sink.lock);
	return rc;
}

void log_forget_secrets(void)
{
	pthread_mutex_lock(&sink.lock);
	for (size_t i = 0; i < sink.nsecrets; i++) {
		OPENSSL_cleanse(sink.secrets[i], sink.secret_len[i]);
		free(sink.secrets[i]);
	}
	sink.nsecrets = 0;
	pthread_mutex_unlock(&sink.lock);
}

/* Replace s[at..at+n) by MASK in a string of length *len, when MASK is not
 * longer than the span; otherwise overwrite the span with '*'. */
static void mask_span(char *s, size_t *len, size_t at, size_t n)
{
	size_t ml = sizeof(MASK) - 1;
	if (n >= ml) {
		memcpy(s + at, MASK, ml);
		memmove(s + at + ml, s + at + n, *len - at - n);
		*len -= n - ml;
	} else {
		memset(s + at, '*', n);
	}
}

static int ci_prefix(const char *s, size_t len, const char *word)
{
	size_t wl = strlen(word);
	if (len < wl)
		return 0;
	for (size_t i = 0; i < wl; i++)
		if (tolower((unsigned char)s[i]) != tolower((unsigned char)word[i]))
			return 0;
	return 1;
}

static int token_char(char c)
{
	return c != '\0' && c != ' ' && c != '\t' && c != '"' && c != '\'' && c != ',' &&
	       c != '&' && c != '\r' && c != '\n' && c != '}' && c != ';' && c != '\\';
}

/* Mask the value that follows position i (after skipping the given
 * separators): a run of token characters, or up to the end of line for
 * headers. Returns the index after the (masked) value. */
static size_t mask_value(char *s, size_t *len, size_t i, int to_eol)
{
	size_t j = i, end;
	if (to_eol) {
		while (j < *len && (s[j] == ' ' || s[j] == '\t'))
			j++;
		end = j;
		while (end < *len && s[end] != '\r' && s[end] != '\n')
			end++;
	} else {
		end = j;
		while (end < *len && token_char(s[end]))
			end++;
	}
	if (end > j) {
		size_t before = *len;
		mask_span(s, len, j, end - j);
		end -= before - *len;
	}
	return end;
}

/* Names whose value is a credential wherever they appear as
 * name=value, "name":"value" or name: value. */
static const char *const secret_names[] = {
    "access_token", "refresh_token", "client_secret", "assertion", "password",    "token_hash",
    "api_token",    "private_key",   "secret",        "signature", "admin_token", "token",
    NULL,
};

static const char *const header_names[] = {
    "authorization:",
    "x-optsync-admin:",
    "x-optsync-signature:",
    "cookie:",
    "set-cookie:",
    "proxy-authorization:",
    NULL,
};

size_t log_redact(char *s, size_t len)
{
	/* 1. Registered secret values. */
	pthread_mutex_lock(&sink.lock);
	for (size_t k = 0; k < sink.nsecrets; k++) {
		const char *sec = sink.secrets[k];
		size_t sl = sink.secret_len[k];
		for (size_t i = 0; i + sl <= len;) {
			if (memcmp(s + i, sec, sl) == 0) {
				mask_span(s, &len, i, sl);
				i += sl < sizeof(MASK) - 1 ? sl : sizeof(MASK) - 1;
			} else {
				i++;
			}
		}
	}
	pthread_mutex_unlock(&sink.lock);

	/* 2. Patterns: PEM blocks, headers, bearer tokens, named fields. */
	for (size_t i = 0; i < len; i++) {
		if (ci_prefix(s + i, len - i, "-----BEGIN")) {
			/* Mask through the dashes that close the END line, or to the
			 * end of the text when the block is cut off. */
			size_t end = len;
			for (size_t j = i + 10; j + 8 <= len; j++) {
				if (memcmp(s + j, "-----END", 8) != 0)
					continue;
				for (size_t k = j + 8; k + 5 <= len; k++)
					if (memcmp(s + k, "-----", 5) == 0) {
						end = k + 5;
						break;
					}
				break;
			}
			mask_span(s, &len, i, end - i);
			continue;
		}
		int matched = 0;
		for (const char *const *h = header_names; *h; h++) {
			if ((i == 0 || !isalnum((unsigned char)s[i - 1])) &&
			    ci_prefix(s + i, len - i, *h)) {
				i = mask_value(s, &len, i + strlen(*h), 1);
				matched = 1;
				break;
			}
		}
		if (matched)
			continue;
		if (ci_prefix(s + i, len - i, "bearer ") || ci_prefix(s + i, len - i, "oauth ")) {
			size_t skip = (s[i] == 'b' || s[i] == 'B') ? 7 : 6;
			if (i + skip < len && token_char(s[i + skip]) &&
			    (i == 0 || !isalnum((unsigned char)s[i - 1]))) {
				i = mask_value(s, &len, i + skip, 0);
				continue;
			}
		}
		for (const char *const *n = secret_names; *n; n++) {
			size_t nl = strlen(*n);
			if (!ci_prefix(s + i, len - i, *n))
				continue;
			/* a whole word only: "api-token: mode 644" names a file
			 * (its path ends in a secret's name), "x_token" is another
			 * name; those are not credentials to mask */
			if (i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_' ||
			              s[i - 1] == '-' || s[i - 1] == '/' || s[i - 1] == '.'))
				continue;
			size_t j = i + nl;
			if (j < len && s[j] == '"')
				j++;
			while (j < len && (s[j] == ' ' || s[j] == '\t'))
				j++;
			if (j >= len || (s[j] != '=' && s[j] != ':'))
				continue;
			j++;
			while (j < len && (s[j] == ' ' || s[j] == '\t'))
				j++;
			if (j < len && (s[j] == '"' || s[j] == '\''))
				j++;
			if (j < len && s[j] == '\\' && j + 1 < len && s[j + 1] == '"')
				j += 2;
			if (j < len && token_char(s[j]) &&
			    !(s[j] == '[' && ci_prefix(s + j, len - j, MASK)))
				i = mask_value(s, &len, j, 0);
			else
				i = j;
			break;
		}
	}
	return len;
}

static void json_escape_into(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && *o + 7 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[(*o)++] = '\\';
			out[(*o)++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			*o += (size_t)snprintf(out + *o, cap - *o, "\\u%04x", c);
		} else {
			out[(*o)++] = (char)c;
		}
	}
}

static void text_escape_into(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && *o + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n') {
			out[(*o)++] = '\\';
			out[(*o)++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			*o += (size_t)snprintf(out + *o, cap - *o, "\\x%02x", c);
		} else {
			out[(*o)++] = (char)c;
		}
	}
}

const char *log_level_name(enum log_level level)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	return level <= LOG_DEBUG ? names[level] : "?";
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int l = LOG_ERROR; l <= LOG_DEBUG; l++)
		if (strcmp(s, log_level_name((enum log_level)l)) == 0) {
			*out = (enum log_level)l;
			return 0;
		}
	return -1;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else
		return -1;
	return 0;
}

void log_write(enum log_level level, const char *event, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char *msg = malloc(LOG_LINE_MAX);
	char *line = malloc(LOG_LINE_MAX * 2);
	if (msg == NULL || line == NULL) {
		free(msg);
		free(line);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, LOG_LINE_MAX, fmt, ap);
	va_end(ap);
	size_t mlen = n < 0 ? 0 : (size_t)n >= LOG_LINE_MAX ? LOG_LINE_MAX - 1 : (size_t)n;
	mlen = log_redact(msg, mlen);

	char ts[TIME_STR_MAX];
	time_format(time_now_ms(), ts);
	size_t o = 0, cap = LOG_LINE_MAX * 2;
	if (sink.format == LOG_FORMAT_JSON) {
		o += (size_t)snprintf(line, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", ts,
		                      log_level_name(level));
		json_escape_into(line, cap, &o, event, strlen(event));
		o += (size_t)snprintf(line + o, cap - o, "\",\"msg\":\"");
		json_escape_into(line, cap, &o, msg, mlen);
		o += (size_t)snprintf(line + o, cap - o, "\"}\n");
	} else {
		o += (size_t)snprintf(line, cap, "%s %-5s %s: ", ts, log_level_name(level), event);
		text_escape_into(line, cap, &o, msg, mlen);
		line[o++] = '\n';
	}
	/* One write per line so that concurrent lines do not interleave. */
	for (size_t off = 0; off < o;) {
		ssize_t w = write(sink.fd, line + off, o - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	OPENSSL_cleanse(msg, LOG_LINE_MAX);
	free(msg);
	free(line);
}
