#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/toml.h"

static struct toml_value *parse_ok(const char *text)
{
	struct toml_value *root = NULL;
	struct err e = {0};
	int rc = toml_parse(&root, text, strlen(text), "t.toml", &e);
	if (rc)
		fail_msg("unexpected error: %s", e.msg);
	return root;
}

static void expect_error(const char *text, const char *where, const char *what)
{
	struct toml_value *root = NULL;
	struct err e = {0};
	int rc = toml_parse(&root, text, strlen(text), "t.toml", &e);
	assert_int_equal(rc, ERR_INVALID);
	assert_null(root);
	if (strstr(e.msg, where) == NULL || strstr(e.msg, what) == NULL)
		fail_msg("error '%s' lacks '%s' or '%s'", e.msg, where, what);
}

static void test_scalars_and_positions(void **state)
{
	struct toml_value *r =
	    parse_ok("# c\n[server]\nport = 8080\nname = \"x\"\n"
	             "ratio = 0.5\non = true\nwhen = 2026-11-20T14:05:00+01:00\n");
	const struct toml_value *s = toml_table_get(r, "server");
	assert_non_null(s);
	assert_int_equal(toml_line(s), 2);
	const struct toml_value *port = toml_table_get(s, "port");
	assert_int_equal(toml_type_of(port), TOML_INTEGER);
	assert_int_equal(toml_integer(port), 8080);
	assert_int_equal(toml_line(port), 3);
	assert_int_equal(toml_col(port), 8);
	assert_string_equal(toml_string(toml_table_get(s, "name"), NULL), "x");
	assert_true(toml_float(toml_table_get(s, "ratio")) == 0.5);
	assert_true(toml_bool(toml_table_get(s, "on")));
	const struct toml_datetime *dt = toml_datetime(toml_table_get(s, "when"));
	assert_int_equal(dt->year, 2026);
	assert_int_equal(dt->hour, 14);
	assert_int_equal(dt->offset_minutes, 60);
	assert_int_equal(toml_table_key_line(s, 1), 4);
	toml_free(r);
}

static void test_error_positions(void **state)
{
	expect_error("a = 1\nb = \n", "t.toml:2:5", "expected a value");
	expect_error("a = 1\na = 2\n", "t.toml:2:1", "duplicate key 'a'");
	expect_error("x = \"abc\n", "t.toml:1:5", "unterminated string");
	expect_error("[a]\n[a]\n", "t.toml:2:1", "already defined");
	expect_error("n = 0123\n", "t.toml:1:5", "leading zeros");
	expect_error("n = 9223372036854775808\n", "t.toml:1:5", "64 bits");
	expect_error("s = \"\\q\"\n", "t.toml:1:6", "invalid escape");
	expect_error("a = 1 b = 2\n", "t.toml:1:7", "end of the line");
	expect_error("d = 2026-02-30\n", "t.toml:1:5", "invalid date");
	expect_error("t = {a = 1,}\n", "t.toml:1", "trailing comma");
	expect_error("bad\x01 = 1\n", "t.toml:1:4", "control character");
	expect_error("k = \"\xff\"\n", "t.toml:1:6", "UTF-8");
}

static void test_redefinition_rules(void **state)
{
	expect_error("a.b = 1\n[a]\n", "t.toml:2", "already defined");
	expect_error("[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", "t.toml:4", "cannot be extended");
	expect_error("a = {x = 1}\n[a.y]\n", "t.toml:2", "inline table");
	expect_error("a = [1]\n[[a]]\n", "t.toml:2", "already defined as an array");
	struct toml_value *r = parse_ok("[a.b]\nx = 1\n[a]\ny = 2\n[[t]]\n[t.s]\nz = 1\n[[t]]\n");
	assert_int_equal(toml_array_len(toml_table_get(r, "t")), 2);
	toml_free(r);
}

static void test_limits(void **state)
{
	char deep[TOML_MAX_DEPTH * 2 + 16];
	size_t n = 0;
	n += (size_t)snprintf(deep, sizeof(deep), "x = ");
	for (int i = 0; i < TOML_MAX_DEPTH + 1; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	expect_error(deep, "t.toml:1", "nested deeper");
	struct toml_value *root;
	struct err e;
	assert_int_equal(toml_parse(&root, "", TOML_MAX_INPUT + 1u, "big", &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "larger than"));
}

static void test_nul_in_key(void **state)
{
	struct toml_value *r = parse_ok("\"a\\u0000b\" = 1\n");
	size_t kl;
	const char *k = toml_table_key(r, 0, &kl);
	assert_int_equal(kl, 3);
	assert_memory_equal(k, "a\0b", 3);
	assert_null(toml_table_get(r, "a")); /* lookups by C string never match past NUL */
	toml_free(r);
}

static void test_multiline_strings(void **state)
{
	struct toml_value *r =
	    parse_ok("s = \"\"\"\n  one \\\n   two\"\"\"\"\nl = '''\nx\r\ny'''\n");
	assert_string_equal(toml_string(toml_table_get(r, "s"), NULL), "  one two\"");
	assert_string_equal(toml_string(toml_table_get(r, "l"), NULL), "x\ny");
	toml_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scalars_and_positions),
	    cmocka_unit_test(test_error_positions),
	    cmocka_unit_test(test_redefinition_rules),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_nul_in_key),
	    cmocka_unit_test(test_multiline_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
