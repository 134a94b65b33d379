#include "util/buf.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

static int buf_reserve(struct buf *b, size_t extra, struct err *e)
{
	if (extra > b->max || b->len > b->max - extra)
		return err_set(e, ERR_LIMIT, "data exceeds the limit of %zu bytes", b->max);
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	char *p = malloc(ncap);
	if (p == NULL)
		return err_set(e, ERR_NOMEM, "out of memory (buffer of %zu bytes)", ncap);
	if (b->data) {
		memcpy(p, b->data, b->len + 1);
		OPENSSL_cleanse(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n, struct err *e)
{
	int rc = buf_reserve(b, n, e);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_puts(struct buf *b, const char *s, struct err *e)
{
	return buf_append(b, s, strlen(s), e);
}

int buf_putc(struct buf *b, char c, struct err *e)
{
	return buf_append(b, &c, 1, e);
}

int buf_printf(struct buf *b, struct err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return err_set(e, ERR_INTERNAL, "unformattable text");
	int rc = buf_reserve(b, (size_t)n, e);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
	if (b->data) {
		OPENSSL_cleanse(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = 0;
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *p = b->data;
	if (p == NULL) {
		p = calloc(1, 1);
		if (len)
			*len = 0;
	} else if (len) {
		*len = b->len;
	}
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
