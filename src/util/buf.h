/* A growing byte buffer with a hard cap fixed at creation (after curl's
 * dynbuf). Everything that comes from outside is read into one of these so
 * that no input can make us allocate without bound. data is always
 * NUL-terminated; len does not count the terminator. */
#ifndef OPTSYNC_UTIL_BUF_H
#define OPTSYNC_UTIL_BUF_H

#include <stddef.h>
#include <string.h>

#include "util/err.h"

struct buf {
	char *data;
	size_t len;
	size_t cap; /* allocated bytes, > len when data != NULL */
	size_t max; /* hard cap on len */
};

void buf_init(struct buf *b, size_t max);
/* Append n bytes; ERR_LIMIT (message names the cap) when len would pass max. */
int buf_append(struct buf *b, const void *p, size_t n, struct err *e);
int buf_puts(struct buf *b, const char *s, struct err *e);
int buf_putc(struct buf *b, char c, struct err *e);
int buf_printf(struct buf *b, struct err *e, const char *fmt, ...) ERR_PRINTF(3, 4);
void buf_reset(struct buf *b);
/* Free the memory, wiping it first (buffers may hold tokens). */
void buf_free(struct buf *b);
/* Hand the data to the caller (free() it); the buffer is left empty. */
char *buf_detach(struct buf *b, size_t *len);

/* Copy the C string src into dst of capacity cap (> 0), cut to fit, always
 * NUL-terminated: snprintf(dst, cap, "%s", src) without the formatter. */
static inline void str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

#endif
