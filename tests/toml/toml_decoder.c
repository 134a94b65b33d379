/* toml-decoder: TOML on stdin, toml-test's tagged JSON on stdout; exit 1
 * (with the error on stderr) for invalid input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/toml.h"
#include "util/buf.h"

static void put_json_string(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void put_datetime(FILE *f, enum toml_type t, const struct toml_datetime *d)
{
	if (t != TOML_TIME_LOCAL)
		fprintf(f, "%04d-%02d-%02d", d->year, d->month, d->day);
	if (t == TOML_DATE_LOCAL)
		return;
	if (t != TOML_TIME_LOCAL)
		fputc('T', f);
	fprintf(f, "%02d:%02d:%02d", d->hour, d->minute, d->second);
	if (d->frac_digits > 0) {
		char frac[16];
		snprintf(frac, sizeof(frac), "%09d", d->nanosecond);
		int nd = d->frac_digits > 9 ? 9 : d->frac_digits;
		fprintf(f, ".%.*s", nd, frac);
	}
	if (t == TOML_DATETIME) {
		if (d->offset_minutes == 0) {
			fputc('Z', f);
		} else {
			int off = d->offset_minutes < 0 ? -d->offset_minutes : d->offset_minutes;
			fprintf(f, "%c%02d:%02d", d->offset_minutes < 0 ? '-' : '+', off / 60,
			        off % 60);
		}
	}
}

static void put_value(FILE *f, const struct toml_value *v)
{
	enum toml_type t = toml_type_of(v);
	switch (t) {
	case TOML_TABLE: {
		fputc('{', f);
		for (size_t i = 0; i < toml_table_len(v); i++) {
			size_t kl;
			const char *k = toml_table_key(v, i, &kl);
			if (i)
				fputc(',', f);
			put_json_string(f, k, kl);
			fputc(':', f);
			put_value(f, toml_table_value(v, i));
		}
		fputc('}', f);
		return;
	}
	case TOML_ARRAY:
		fputc('[', f);
		for (size_t i = 0; i < toml_array_len(v); i++) {
			if (i)
				fputc(',', f);
			put_value(f, toml_array_get(v, i));
		}
		fputc(']', f);
		return;
	case TOML_STRING: {
		size_t n;
		const char *s = toml_string(v, &n);
		fputs("{\"type\":\"string\",\"value\":", f);
		put_json_string(f, s, n);
		fputc('}', f);
		return;
	}
	case TOML_INTEGER:
		fprintf(f, "{\"type\":\"integer\",\"value\":\"%lld\"}", (long long)toml_integer(v));
		return;
	case TOML_FLOAT: {
		double d = toml_float(v);
		fputs("{\"type\":\"float\",\"value\":\"", f);
		if (isnan(d))
			fputs("nan", f);
		else if (isinf(d))
			fputs(d < 0 ? "-inf" : "inf", f);
		else
			fprintf(f, "%.17g", d);
		fputs("\"}", f);
		return;
	}
	case TOML_BOOL:
		fprintf(f, "{\"type\":\"bool\",\"value\":\"%s\"}", toml_bool(v) ? "true" : "false");
		return;
	default: {
		static const char *const names[] = {
		    [TOML_DATETIME] = "datetime",
		    [TOML_DATETIME_LOCAL] = "datetime-local",
		    [TOML_DATE_LOCAL] = "date-local",
		    [TOML_TIME_LOCAL] = "time-local",
		};
		fprintf(f, "{\"type\":\"%s\",\"value\":\"", names[t]);
		put_datetime(f, t, toml_datetime(v));
		fputs("\"}", f);
		return;
	}
	}
}

int main(void)
{
	struct buf in;
	struct err e = {0};
	buf_init(&in, TOML_MAX_INPUT + 1);
	char chunk[65536];
	ssize_t n;
	while ((n = read(0, chunk, sizeof(chunk))) > 0)
		if (buf_append(&in, chunk, (size_t)n, &e)) {
			fprintf(stderr, "%s\n", e.msg);
			return 1;
		}
	struct toml_value *root;
	if (toml_parse(&root, in.data ? in.data : "", in.len, "<stdin>", &e)) {
		fprintf(stderr, "%s\n", e.msg);
		buf_free(&in);
		return 1;
	}
	put_value(stdout, root);
	fputc('\n', stdout);
	toml_free(root);
	buf_free(&in);
	return 0;
}
