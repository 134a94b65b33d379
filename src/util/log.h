/* Logging: one line per event on one file descriptor (stderr by default),
 * as JSON or text, filtered by level. The only mutable global of the
 * project besides signal flags is this sink.
 *
 * Redaction happens here and only here: every line, whatever its level,
 * passes through log_redact() before it is written, which masks registered
 * secret values, Authorization and admin headers, bearer tokens, OAuth
 * fields (access_token, refresh_token, client_secret, assertion, ...) and
 * PEM blocks. The libcurl debug callback calls log_redact() too. */
#ifndef OPTSYNC_UTIL_LOG_H
#define OPTSYNC_UTIL_LOG_H

#include <stddef.h>

#include "util/err.h"

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

void log_setup(enum log_level level, enum log_format format, int fd);
int log_enabled(enum log_level level);
/* event is a short stable name ("config.loaded"); fmt the human message. */
void log_write(enum log_level level, const char *event, const char *fmt, ...) ERR_PRINTF(3, 4);

#define log_error(ev, ...) log_write(LOG_ERROR, ev, __VA_ARGS__)
#define log_warn(ev, ...)                                                                          \
	do {                                                                                       \
		if (log_enabled(LOG_WARN))                                                         \
			log_write(LOG_WARN, ev, __VA_ARGS__);                                      \
	} while (0)
#define log_info(ev, ...)                                                                          \
	do {                                                                                       \
		if (log_enabled(LOG_INFO))                                                         \
			log_write(LOG_INFO, ev, __VA_ARGS__);                                      \
	} while (0)
#define log_debug(ev, ...)                                                                         \
	do {                                                                                       \
		if (log_enabled(LOG_DEBUG))                                                        \
			log_write(LOG_DEBUG, ev, __VA_ARGS__);                                     \
	} while (0)

/* Register a secret value (at least 4 bytes) to be masked wherever it
 * appears. The value is copied; log_forget_secrets() wipes the copies. */
int log_add_secret(const char *s, size_t len);
void log_forget_secrets(void);

/* Mask secrets in s[0..len) in place; the result is never longer. Returns
 * the new length. */
size_t log_redact(char *s, size_t len);

int log_level_parse(const char *s, enum log_level *out);
int log_format_parse(const char *s, enum log_format *out);
const char *log_level_name(enum log_level level);

#endif
