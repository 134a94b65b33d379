/* libFuzzer target: the CSV reader of the bulk commands. Every record it
 * returns is written back as RFC 4180 CSV and read again: the second read
 * must give the same fields (so quoting round-trips). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

struct acc {
	struct buf out; /* re-encoded */
	size_t fields;
};

static int write_back(char **f, size_t n, size_t line, void *ctx)
{
	struct acc *a = ctx;
	(void)line;
	struct err e;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = buf_puts(&a->out, i ? ",\"" : "\"", &e);
		for (const char *p = f[i]; *p && rc == 0; p++)
			rc = *p == '"' ? buf_puts(&a->out, "\"\"", &e) : buf_putc(&a->out, *p, &e);
		if (rc == 0)
			rc = buf_putc(&a->out, '"', &e);
	}
	if (rc == 0)
		rc = buf_putc(&a->out, '\n', &e);
	a->fields += n;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 3 && data[0] == 0xEF)
		return 0; /* a byte order mark is dropped: no round trip */
	struct acc a = {0}, b = {0};
	buf_init(&a.out, (size_t)1 << 26);
	buf_init(&b.out, (size_t)1 << 26);
	struct err e;
	int rc = csv_parse_buffer((const char *)data, size, write_back, &a, &e);
	if (rc == 0 && a.out.len > 0) {
		if (csv_parse_buffer(a.out.data, a.out.len, write_back, &b, &e) != 0)
			abort(); /* our own quoting must parse */
		if (a.fields != b.fields || a.out.len != b.out.len ||
		    memcmp(a.out.data, b.out.data, a.out.len) != 0)
			abort();
	}
	buf_free(&a.out);
	buf_free(&b.out);
	return 0;
}

static int count(char **f, size_t n, size_t line, void *ctx)
{
	(void)f;
	(void)n;
	(void)line;
	(void)ctx;
	return 0;
}

/* The oracle: whether the text parses as CSV. */
int fuzz_accepts(const uint8_t *data, size_t size)
{
	struct err e;
	return csv_parse_buffer((const char *)data, size, count, NULL, &e) == 0;
}
