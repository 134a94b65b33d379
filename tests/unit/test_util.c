#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/csv.h"
#include "util/err.h"
#include "util/fileio.h"
#include "util/timefmt.h"

static void test_buf_cap(void **state)
{
	struct buf b;
	struct err e;
	buf_init(&b, 10);
	assert_int_equal(buf_puts(&b, "12345", &e), 0);
	assert_int_equal(buf_printf(&b, &e, "%d", 6789), 0);
	assert_string_equal(b.data, "123456789");
	assert_int_equal(buf_puts(&b, "ab", &e), ERR_LIMIT);
	assert_non_null(strstr(e.msg, "10 bytes"));
	assert_int_equal(b.len, 9);
	assert_int_equal(buf_putc(&b, 'x', &e), 0);
	assert_int_equal(b.len, 10);
	buf_free(&b);
	assert_null(b.data);
}

static void test_err_truncation(void **state)
{
	struct err e;
	char big[2000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(err_set(&e, ERR_IO, "%s", big), ERR_IO);
	assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
	assert_string_equal(e.msg + ERR_MSG_MAX - 4, "...");
	err_set(&e, ERR_CONFIG, "key x");
	err_prefix(&e, "%s:%d: ", "f.toml", 3);
	assert_string_equal(e.msg, "f.toml:3: key x");
}

static void test_time_parse(void **state)
{
	int64_t ms;
	assert_int_equal(time_parse("2026-11-20T14:05:00Z", &ms), 0);
	assert_true(ms == 1795183500000LL);
	assert_int_equal(time_parse("2026-11-20T15:05:00+01:00", &ms), 0);
	assert_true(ms == 1795183500000LL);
	assert_int_equal(time_parse("2026-11-20T14:05:00.250+0000", &ms), 0);
	assert_true(ms == 1795183500250LL);
	assert_int_equal(time_parse("2026-11-20", &ms), 0);
	assert_true(ms == 1795132800000LL);
	assert_int_equal(time_parse("2024-02-29", &ms), 0);
	assert_int_equal(time_parse("2026-02-29", &ms), -1);
	assert_int_equal(time_parse("2026-11-20T14:05:00", &ms), -1);
	assert_int_equal(time_parse("2026-11-20T24:00:00Z", &ms), -1);
	assert_int_equal(time_parse("2026-11-20Z", &ms), -1);
	assert_int_equal(time_parse("2026-11-20T14:05:00Zjunk", &ms), -1);
	assert_int_equal(time_parse("yesterday", &ms), -1);
}

static void test_time_format(void **state)
{
	char out[TIME_STR_MAX];
	time_format(1795183500000LL, out);
	assert_string_equal(out, "2026-11-20T14:05:00Z");
	time_format(1795183500250LL, out);
	assert_string_equal(out, "2026-11-20T14:05:00.250Z");
	time_format_sf(1795183500000LL, out);
	assert_string_equal(out, "2026-11-20T14:05:00.000+0000");
	time_format(-1, out);
	assert_string_equal(out, "1969-12-31T23:59:59.999Z");
	for (int64_t t = -86400000LL * 800; t < 86400000LL * 800; t += 86400000LL * 7 + 12345) {
		int64_t back;
		time_format(t, out);
		assert_int_equal(time_parse(out, &back), 0);
		assert_true(back == t);
	}
}

static void test_atomic_write(void **state)
{
	char dir[] = "/tmp/optsync-test-util-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/f", dir);
	struct err e;
	assert_int_equal(file_write_atomic(path, "one", 3, 0600, &e), 0);
	assert_int_equal(file_write_atomic(path, "two!", 4, 0600, &e), 0);
	struct buf b;
	assert_int_equal(file_read_all(path, 100, &b, &e), 0);
	assert_string_equal(b.data, "two!");
	buf_free(&b);
	assert_int_equal(file_read_all(path, 2, &b, &e), ERR_LIMIT);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	unlink(path);
	rmdir(dir);
}

struct rows {
	char out[1024];
	size_t len, lines[8], nrec;
};

static int collect(char **f, size_t n, size_t line, void *ctx)
{
	struct rows *r = ctx;
	if (r->nrec < 8)
		r->lines[r->nrec] = line;
	r->nrec++;
	for (size_t i = 0; i < n; i++)
		r->len += (size_t)snprintf(r->out + r->len, sizeof(r->out) - r->len, "%s[%s]",
		                           i ? "" : "|", f[i]);
	return 0;
}

static int parse(const char *in, struct rows *r, struct err *e)
{
	memset(r, 0, sizeof(*r));
	return csv_parse_buffer(in, strlen(in), collect, r, e);
}

static void test_csv(void **state)
{
	(void)state;
	struct rows r;
	struct err e = {0};
	assert_int_equal(parse("email,source\r\na@x.org,import\n", &r, &e), 0);
	assert_string_equal(r.out, "|[email][source]|[a@x.org][import]");
	assert_int_equal(r.nrec, 2);
	assert_int_equal(r.lines[1], 2);
	/* quotes: commas, doubled quotes, line breaks inside; empty fields */
	assert_int_equal(parse("\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\n,,\nlast", &r, &e), 0);
	assert_string_equal(r.out, "|[a,b][say \"hi\"][two\nlines]|[][][]|[last]");
	assert_int_equal(r.lines[1], 3); /* the record after a quoted line break */
	assert_int_equal(r.lines[2], 4);
	/* a byte order mark is skipped; a lone quote inside a field is data */
	assert_int_equal(parse("\xEF\xBB\xBF"
	                       "email\nab\"c\n",
	                       &r, &e),
	                 0);
	assert_string_equal(r.out, "|[email]|[ab\"c]");
	/* a first character in U+FXXX is text, not a broken byte order mark */
	assert_int_equal(parse("\xEF\xBC\x81"
	                       "a,b\n\xEF",
	                       &r, &e),
	                 0);
	assert_string_equal(r.out, "|[\xEF\xBC\x81"
	                           "a][b]|[\xEF]");
	/* errors name the line */
	assert_int_equal(parse("a\nb\n\"open,\n", &r, &e), ERR_INVALID);
	assert_string_equal(e.msg, "input:3: a quoted field is not closed");
	assert_int_equal(parse("a\n\"x\"y,z\n", &r, &e), ERR_INVALID);
	assert_string_equal(e.msg, "input:2: text after a closing quote");
	assert_int_equal(parse("", &r, &e), 0);
	assert_int_equal(r.nrec, 0);
}

static void csv_is(const char *in, int last, const char *want)
{
	struct buf b;
	struct err e;
	buf_init(&b, 1024);
	assert_int_equal(csv_write_field(&b, in, last, &e), 0);
	assert_int_equal(buf_putc(&b, '\0', &e), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

/* CSV cells: quoted when needed, and never a formula in a spreadsheet. */
static void test_csv_write(void **state)
{
	(void)state;
	csv_is("plain", 0, "plain,");
	csv_is("plain", 1, "plain\n");
	csv_is("", 0, ",");
	csv_is("a,b", 0, "\"a,b\",");
	csv_is("say \"hi\"", 0, "\"say \"\"hi\"\"\",");
	csv_is("two\nlines", 1, "\"two\nlines\"\n");
	/* formulas: = + - @ at the start are shown as text */
	csv_is("=HYPERLINK(\"http://x\")", 0, "\"'=HYPERLINK(\"\"http://x\"\")\",");
	csv_is("+47 22 00 00 00", 0, "\"'+47 22 00 00 00\",");
	csv_is("-2+3", 0, "\"'-2+3\",");
	csv_is("@SUM(A1)", 0, "\"'@SUM(A1)\",");
	csv_is("a=b", 0, "a=b,"); /* not at the start: as it is */
	/* a cap reached is an error, never a silent cut */
	struct buf b;
	struct err e;
	buf_init(&b, 8);
	assert_int_equal(csv_write_field(&b, "1234567", 0, &e), 0);
	assert_int_equal(csv_write_field(&b, "more", 1, &e), ERR_LIMIT);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_csv_write),
	    cmocka_unit_test(test_buf_cap),
	    cmocka_unit_test(test_err_truncation),
	    cmocka_unit_test(test_time_parse),
	    cmocka_unit_test(test_time_format),
	    cmocka_unit_test(test_atomic_write),
	    cmocka_unit_test(test_csv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
