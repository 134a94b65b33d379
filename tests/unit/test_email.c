/* Email normalization (util/email.c, docs/sync-rules.md, "What a person is"): one person per
 * address however it is spelled, and a clear refusal naming the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "connector/internal.h"
#include "util/email.h"

/* in normalizes to want, and want to itself. */
static void norm_is(const char *in, const char *want)
{
	char out[EMAIL_MAX + 1], again[EMAIL_MAX + 1];
	struct err e = {0};
	if (conn_email_normalize(in, out, &e))
		fail_msg("'%s' refused: %s", in, e.msg);
	assert_string_equal(out, want);
	if (conn_email_normalize(out, again, &e))
		fail_msg("'%s' (normalized) refused: %s", out, e.msg);
	assert_string_equal(again, out);
}

/* A message is valid UTF-8 without control characters: it goes into JSON
 * error bodies, logs and reports as it is. */
static void assert_clean_text(const char *s)
{
	char q[ERR_MSG_MAX * 4];
	email_quote(s, strlen(s), strlen(s), q, sizeof(q));
	assert_string_equal(q, s);
}

/* in is refused with ERR_INVALID, the message naming the input as
 * named and saying why. */
static void norm_bad(const char *in, const char *named, const char *why)
{
	char out[EMAIL_MAX + 1] = "x";
	struct err e = {0};
	if (conn_email_normalize(in, out, &e) == 0)
		fail_msg("'%s' accepted as %s", in, out);
	assert_int_equal(e.code, ERR_INVALID);
	assert_string_equal(out, "");
	char want[400];
	snprintf(want, sizeof(want), "'%s' is not an email address", named);
	if (strstr(e.msg, want) == NULL)
		fail_msg("message '%s' does not name the input as %s", e.msg, want);
	if (why && strstr(e.msg, why) == NULL)
		fail_msg("message '%s' does not say '%s'", e.msg, why);
	assert_clean_text(e.msg);
}

static void test_spec_domains(void **state)
{
	/* docs/sync-rules.md, "What a person is": one domain in its A-label form, lower-cased */
	const char *want = "jane.doe+news@xn--bcher-kva.example";
	norm_is("Jane.Doe+News@BÜCHER.Example", want);
	norm_is("jane.doe+news@bücher.example", want);
	norm_is("jane.doe+news@xn--bcher-kva.example", want);
	norm_is("Jane.Doe+News@XN--BCHER-KVA.EXAMPLE", want);
	/* the domain's NFC: a combining diaeresis is the same domain */
	norm_is("jane.doe+news@bu\xcc\x88"
	        "cher.example",
	        want);
	/* UTS #46 mapping: full-width letters, the ideographic full stop */
	norm_is("ada@ｅｘａｍｐｌｅ.com", "ada@example.com");
	norm_is("ada@bücher\xe3\x80\x82"
	        "example",
	        "ada@xn--bcher-kva.example");
	/* non-transitional: ß stays ß (not ss) */
	norm_is("ada@straße.de", "ada@xn--strae-oqa.de");
	norm_is("info@例え.テスト", "info@xn--r8jz45g.xn--zckzah");
	/* an ASCII address is what optsync always made of it */
	norm_is("  Ada@Example.COM\t", "ada@example.com");
	norm_is("o'brien+tag@sub.example.org", "o'brien+tag@sub.example.org");
	norm_is("a@ab--c.example", "a@ab--c.example");
	norm_is("\"Quoted\"@Example.com", "\"quoted\"@example.com");
}

static void test_spec_local_parts(void **state)
{
	/* docs/sync-rules.md, "What a person is": NFC, lower-cased */
	norm_is("ÅSA@x.example", "åsa@x.example");
	norm_is("åsa@x.example", "åsa@x.example");
	norm_is("A\xcc\x8aSA@x.example", "åsa@x.example"); /* A + combining ring */
	/* a precomposed é (U+00E9) and e + U+0301 are one person */
	norm_is("ren\xc3\xa9@x.example", "ren\xc3\xa9@x.example");
	norm_is("rene\xcc\x81@x.example", "ren\xc3\xa9@x.example");
	norm_is("RENE\xcc\x81@x.example", "ren\xc3\xa9@x.example");
	norm_is("ΣΑΣ@x.example", "σας@x.example");
	norm_is("Straße@x.example", "straße@x.example"); /* lower-cased, not case-folded */
	norm_is("STRASSE@x.example", "strasse@x.example");
	norm_is("\"Åsa Ö\"@x.example", "\"åsa ö\"@x.example");
}

static void test_trim(void **state)
{
	norm_is("\xc2\xa0 Ada@Example.com\xe3\x80\x80", "ada@example.com");
	norm_is("\xef\xbb\xbf"
	        "ada@example.com",
	        "ada@example.com"); /* a CSV's BOM */
	norm_is("user@example.com\n", "user@example.com");
	norm_is(" ÅSA@bücher.example\r\n", "åsa@xn--bcher-kva.example");
}

static void test_invalid_utf8(void **state)
{
	/* Latin-1 bytes: named with the byte escaped, and where it is */
	norm_bad("jane@b\xfc"
	         "cher.example",
	         "jane@b\\xfccher.example", "not valid UTF-8: byte 0xfc at offset 6");
	norm_bad("\xc5sa@x.example", "\\xc5sa@x.example", "not valid UTF-8");
	norm_bad("a\xc0\xaf@x.example", "a\\xc0\\xaf@x.example", "not valid UTF-8"); /* overlong */
	norm_bad("a\xed\xa0\x80@x.example", "a\\xed\\xa0\\x80@x.example", "not valid UTF-8");
	norm_bad("a\xf4\x90\x80\x80@x.example", "a\\xf4\\x90\\x80\\x80@x.example",
	         "not valid UTF-8");                                          /* above U+10FFFF */
	norm_bad("ab@x.example\xc3", "ab@x.example\\xc3", "not valid UTF-8"); /* cut short */
}

static void test_control_characters(void **state)
{
	norm_bad("a\tb@x.example", "a\\x09b@x.example", "control character U+0009 at offset 1");
	norm_bad("user@exam\nple.com", "user@exam\\x0aple.com", "control character U+000A");
	norm_bad("a\x7f@x.example", "a\\x7f@x.example", "control character U+007F");
	norm_bad("a\xc2\x85z@x.example", "a\\xc2\\x85z@x.example", "control character U+0085");
	norm_bad("a@x.exa\x01mple", "a@x.exa\\x01mple", "control character U+0001");
}

static void test_refused(void **state)
{
	norm_bad("", "", "empty");
	norm_bad("   ", "   ", "empty");
	norm_bad("no-at-sign.example.com", "no-at-sign.example.com", "no '@'");
	norm_bad("a@b@example.com", "a@b@example.com", "two '@'");
	norm_bad("@example.com", "@example.com", NULL);
	norm_bad("user@localhost", "user@localhost", "no dot");
	norm_bad("user@.example.com", "user@.example.com", NULL);
	norm_bad("user@example..com", "user@example..com", NULL);
	norm_bad("us er@example.com", "us er@example.com", "character 0x20");
	/* invalid internationalized domains, named */
	norm_bad("a@-bücher.example", "a@-bücher.example", "its domain is not a valid");
	norm_bad("a@xn--zz.example", "a@xn--zz.example", "its domain is not a valid");
	/* a mapping must not smuggle in what an ASCII domain may not hold */
	norm_bad("a@exa＜mple.com", "a@exa＜mple.com", "0x3c");
	/* the normalized form is limited, not the input's bytes: 128 é in
	 * NFD are 384 bytes, 256 in NFC */
	char big[600] = "";
	for (int i = 0; i < 128; i++)
		strcat(big, "e\xcc\x81");
	strcat(big, "@x.example");
	char out[EMAIL_MAX + 1];
	struct err e = {0};
	assert_int_equal(email_normalize(big, out, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "longer than 254 bytes"));
	big[3 * 80] = '\0';
	strcat(big, "@x.example"); /* 80 é: 160 bytes + the domain */
	assert_int_equal(email_normalize(big, out, &e), 0);
	assert_int_equal(strlen(out), 160 + 10);
}

static void test_quote(void **state)
{
	char q[64];
	email_quote("åsa\x01\xff", 6, 100, q, sizeof(q));
	assert_string_equal(q, "åsa\\x01\\xff");
	email_quote("abcdefgh", 8, 4, q, sizeof(q));
	assert_string_equal(q, "abcd...");
	email_quote("ååå", 6, 3, q, sizeof(q)); /* cut on a character */
	assert_string_equal(q, "åå...");
	email_quote("\xff\xff\xff\xff", 4, 100, q, 10); /* a small buffer: whole escapes */
	assert_string_equal(q, "\\xff\\xff");
}

/* What a response echoes of an input: itself when it is UTF-8. */
static void test_echo(void **state)
{
	char q[EMAIL_ECHO_MAX];
	const char *ok = "not an email, but UTF-8: åsa\t";
	assert_ptr_equal(email_echo(ok, q), ok);
	assert_string_equal(email_echo("b\xe4"
	                               "d@x.example",
	                               q),
	                    "b\\xe4d@x.example");
	assert_true(email_utf8_valid("åsa"));
	assert_false(email_utf8_valid("\xe4"));
}

/* The cycle's way in: a record's Email, or why the record is parked. */
static void test_record_email(void **state)
{
	char email[LEDGER_EMAIL_MAX + 1];
	struct err e = {0};
	struct sf_value v[1] = {{"Email", SF_STRING, "Jane.Doe+News@BÜCHER.Example", false, 0}};
	struct sf_record r = {
	    .type = "Contact", .id = "003000000000001AAA", .nvalues = 1, .values = v};
	assert_int_equal(conn_record_email(LEDGER_OBJ_CONTACT, &r, email, &e), 0);
	assert_string_equal(email, "jane.doe+news@xn--bcher-kva.example");
	v[0].str = "jane@b\xfc"
	           "cher.example";
	assert_int_equal(conn_record_email(LEDGER_OBJ_LEAD, &r, email, &e), ERR_INVALID);
	assert_string_equal(e.msg,
	                    "Lead 003000000000001AAA: Email: 'jane@b\\xfccher.example' is not an "
	                    "email address (not valid UTF-8: byte 0xfc at offset 6)");
	v[0].str = "";
	assert_int_equal(conn_record_email(LEDGER_OBJ_CONTACT, &r, email, &e), ERR_NOTFOUND);
	v[0].type = SF_NULL;
	assert_int_equal(conn_record_email(LEDGER_OBJ_CONTACT, &r, email, &e), ERR_NOTFOUND);
	r.nvalues = 0;
	assert_int_equal(conn_record_email(LEDGER_OBJ_CONTACT, &r, email, &e), ERR_NOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_domains),
	    cmocka_unit_test(test_spec_local_parts),
	    cmocka_unit_test(test_trim),
	    cmocka_unit_test(test_invalid_utf8),
	    cmocka_unit_test(test_control_characters),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_quote),
	    cmocka_unit_test(test_record_email),
	    cmocka_unit_test(test_echo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
