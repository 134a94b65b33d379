#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/internal.h"
#include "salesforce/sf.h"
#include "util/fileio.h"

static char *read_key(void)
{
	struct buf b;
	struct err e;
	if (file_read_all(RFC7515_KEY, 1 << 16, &b, &e))
		fail_msg("%s", e.msg);
	return buf_detach(&b, NULL);
}

/* RFC 7515 appendix A.2: PKCS#1 v1.5 signatures are deterministic. */
static void test_rs256_rfc7515_a2(void **state)
{
	static const char input[] =
	    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leG"
	    "FtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
	static const char want[] =
	    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_"
	    "O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIAR"
	    "NPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvh"
	    "J1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
	char *key = read_key(), *sig = NULL;
	struct err e = {0};
	assert_int_equal(sf_jwt_sign(key, input, sizeof(input) - 1, &sig, &e), 0);
	assert_string_equal(sig, want);
	free(sig);
	free(key);
}

static void test_jwt_build_claims(void **state)
{
	char *key = read_key(), *jwt = NULL;
	struct err e = {0};
	assert_int_equal(sf_jwt_build(key, "3MVG9client", "sync@example.com",
	                              "https://login.salesforce.com", 1795183680, &jwt, &e),
	                 0);
	/* header.claims.signature; header is {"alg":"RS256"} */
	assert_int_equal(strncmp(jwt, "eyJhbGciOiJSUzI1NiJ9.", 21), 0);
	char *dot2 = strchr(jwt + 21, '.');
	assert_non_null(dot2);
	/* {"iss":"3MVG9client","sub":"sync@example.com","aud":"https://login.salesforce.com",
	 *  "exp":1795183680} in base64url */
	static const char claims[] =
	    "eyJpc3MiOiIzTVZHOWNsaWVudCIsInN1YiI6InN5bmNAZXhhbXBsZS5jb20iLCJhdWQiOiJodHRwczovL2xvZ2"
	    "luLnNhbGVzZm9yY2UuY29tIiwiZXhwIjoxNzk1MTgzNjgwfQ";
	assert_int_equal((size_t)(dot2 - (jwt + 21)), sizeof(claims) - 1);
	assert_memory_equal(jwt + 21, claims, sizeof(claims) - 1);
	assert_int_equal(strlen(dot2 + 1), 342); /* 256 bytes of signature */
	free(jwt);
	free(key);
}

static void test_bad_keys(void **state)
{
	char *sig = NULL;
	struct err e = {0};
	assert_int_equal(sf_jwt_sign("not a key", "x", 1, &sig, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "not a PEM private key"));
	assert_null(sig);
}

static void quote_is(const char *in, const char *want)
{
	struct buf b;
	struct err e;
	buf_init(&b, 1024);
	assert_int_equal(sf_soql_quote(in, &b, &e), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void test_soql_quote(void **state)
{
	quote_is("ada@example.com", "'ada@example.com'");
	quote_is("o'brien@example.com", "'o\\'brien@example.com'");
	quote_is("x' OR Email != '", "'x\\' OR Email != \\''");
	quote_is("back\\slash\"q", "'back\\\\slash\\\"q'");
	quote_is("tab\there\nnl", "'tab\\there\\nnl'");
	struct buf b;
	struct err e;
	buf_init(&b, 64);
	assert_int_equal(sf_soql_quote("bell\a", &b, &e), ERR_INVALID);
	buf_free(&b);
}

static void test_classify(void **state)
{
	assert_int_equal(sf_classify(200, NULL), SF_OK);
	assert_int_equal(sf_classify(401, "INVALID_SESSION_ID"), SF_REAUTH);
	assert_int_equal(sf_classify(403, "REQUEST_LIMIT_EXCEEDED"), SF_RETRY);
	assert_int_equal(sf_classify(403, "INSUFFICIENT_ACCESS_OR_READONLY"), SF_PERMANENT);
	assert_int_equal(sf_classify(400, "UNABLE_TO_LOCK_ROW"), SF_RETRY);
	assert_int_equal(sf_classify(503, "SERVER_UNAVAILABLE"), SF_RETRY);
	assert_int_equal(sf_classify(500, "UNKNOWN_EXCEPTION"), SF_RETRY);
	assert_int_equal(sf_classify(502, NULL), SF_RETRY);
	assert_int_equal(sf_classify(400, "INVALID_FIELD"), SF_PERMANENT);
	assert_int_equal(sf_classify(400, "MALFORMED_QUERY"), SF_PERMANENT);
	assert_int_equal(sf_classify(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION"), SF_PERMANENT);
	assert_int_equal(sf_classify(404, "NOT_FOUND"), SF_PERMANENT);
	assert_int_equal(sf_classify(429, NULL), SF_RETRY);
}

static void test_backoff(void **state)
{
	for (uint32_t r = 0; r < 1000; r += 37) {
		long d1 = sf_backoff_ms(500, 30000, 1, -1, r);
		assert_true(d1 >= 250 && d1 <= 500);
		long d3 = sf_backoff_ms(500, 30000, 3, -1, r);
		assert_true(d3 >= 1000 && d3 <= 2000);
		long d20 = sf_backoff_ms(500, 30000, 20, -1, r);
		assert_true(d20 >= 15000 && d20 <= 30000);
	}
	assert_int_equal(sf_backoff_ms(500, 30000, 1, 7000, 5), 7000); /* Retry-After wins */
	assert_int_equal(sf_backoff_ms(500, 30000, 1, 99000, 5), 30000);
	/* jitter actually varies */
	assert_true(sf_backoff_ms(1000, 30000, 2, -1, 1) != sf_backoff_ms(1000, 30000, 2, -1, 999));
}

static void test_record_get(void **state)
{
	struct sf_value v[] = {{"Id", SF_STRING, "003", false, 0},
	                       {"HasOptedOutOfEmail", SF_BOOL, NULL, true, 0},
	                       {"Consent_Date__c", SF_NULL, NULL, false, 0}};
	struct sf_record r = {.type = "Contact", .id = "003", .nvalues = 3, .values = v};
	assert_ptr_equal(sf_record_get(&r, "hasoptedoutofemail"), &v[1]);
	assert_true(sf_record_get(&r, "HasOptedOutOfEmail")->b);
	assert_int_equal(sf_record_get(&r, "Consent_Date__c")->type, SF_NULL);
	assert_null(sf_record_get(&r, "Email"));
}

static void test_options_checked(void **state)
{
	struct sf_options o = {0};
	struct sf_client *c;
	struct err e = {0};
	o.login_url = "https://login.salesforce.com";
	o.api_version = "62.0";
	o.client_id = "x";
	assert_int_equal(sf_client_new(&c, &o, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "private key"));
	o.auth = SF_AUTH_CLIENT_CREDENTIALS;
	assert_int_equal(sf_client_new(&c, &o, &e), ERR_CONFIG);
	o.client_secret = "s";
	assert_int_equal(sf_client_new(&c, &o, &e), 0);
	sf_client_free(c);
}

static int page_of(const char *json, struct sf_page *pg, struct err *e)
{
	/* the parser writes into its buffer: give it a copy */
	size_t n = strlen(json);
	static char buf[1 << 16];
	memcpy(buf, json, n);
	return sf_page_parse(buf, n, pg, e);
}

static void test_page_parse(void **state)
{
	struct sf_page pg = {0};
	struct err e = {0};
	assert_int_equal(
	    page_of(
	        "{\"totalSize\":2,\"done\":false,\"nextRecordsUrl\":\"/services/data/v62.0/"
	        "query/01g-2000\",\"records\":[{\"attributes\":{\"type\":\"Contact\",\"url\":"
	        "\"/x\"},\"Id\":\"003A\",\"Email\":\"a\\u00e9\\\"b@x.org\",\"HasOptedOutOfEmail\""
	        ":true,\"Consent_Date__c\":null,\"N\":-1.5e2,\"Account\":{\"Name\":\"A\",\"L\":[1,"
	        "{}]}},{\"attributes\":{\"type\":\"Lead\"},\"Id\":\"00QB\",\"Emoji\":"
	        "\"\\ud83d\\ude00"
	        "\"}]}",
	        &pg, &e),
	    0);
	assert_int_equal(pg.done, 0);
	assert_string_equal(pg.next, "/services/data/v62.0/query/01g-2000");
	assert_int_equal(pg.nrecs, 2);
	assert_string_equal(pg.recs[0].type, "Contact");
	assert_string_equal(pg.recs[0].id, "003A");
	assert_int_equal(pg.recs[0].nvalues, 5); /* Account (a relationship) is skipped */
	assert_string_equal(sf_record_get(&pg.recs[0], "Email")->str, "a\xc3\xa9\"b@x.org");
	assert_true(sf_record_get(&pg.recs[0], "HasOptedOutOfEmail")->b);
	assert_int_equal(sf_record_get(&pg.recs[0], "Consent_Date__c")->type, SF_NULL);
	assert_true(sf_record_get(&pg.recs[0], "N")->num == -150.0);
	assert_string_equal(pg.recs[1].type, "Lead");
	assert_string_equal(sf_record_get(&pg.recs[1], "Emoji")->str, "\xf0\x9f\x98\x80");
	sf_page_free(&pg);
}

static void test_page_rejects_damage(void **state)
{
	static const char *const bad[] = {
	    "",
	    "{\"done\":true,\"records\":[{\"Id\":\"1\"}]",      /* cut off */
	    "{\"done\":true,\"records\":[{\"Id\":\"1\"},]}",    /* trailing comma */
	    "{\"done\":true,\"records\":[{\"Id\":\"1\"}]} x",   /* data after */
	    "{\"done\":tru,\"records\":[]}",                    /* bad literal */
	    "{\"done\":true,\"records\":[{\"Id\":\"a\nb\"}]}",  /* raw newline */
	    "{\"done\":true,\"records\":[{\"Id\":\"\\u00\"}]}", /* short \\u */
	    "{\"done\":true,\"next\":\"\\x\",\"records\":[]}",  /* bad escape */
	    "{\"done\":false,\"nextRecordsUrl\":\"/q\\u0000\",\"records\":[]}",
	    "{\"done\":true,\"records\":[{\"Id\":01}]}",       /* bad number */
	    "{\"done\":true}",                                 /* no records */
	    "{\"records\":[]}",                                /* no done */
	    "{\"done\":true,\"records\":[{\"Email\":\"x\"}]}", /* no Id */
	    "{\"done\":true,\"records\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
	    "]]]]]]]]]]]]]]]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sf_page pg = {0};
		struct err e = {0};
		if (page_of(bad[i], &pg, &e) == 0)
			fail_msg("accepted damaged page %zu: %s", i, bad[i]);
		sf_page_free(&pg);
	}
}

/* A quote (escaped), a backslash (escaped), an escape sequence, a raw
 * control character and bytes of multi-byte characters, whole or not, at
 * every offset of a 40-byte string: the scan goes eight bytes at a time
 * until one of them, and must find each wherever it falls. The names of
 * the second record are the first record's (one pointer each). */
static void test_page_string_offsets(void **state)
{
	(void)state;
	static const struct {
		const char *raw, *got; /* in the JSON, and unescaped */
		bool ok;
		enum sf_flaw flaw; /* of the record */
	} cases[] = {{"\\\"", "\"", true, SF_FLAW_NONE},
	             {"\\\\", "\\", true, SF_FLAW_NONE},
	             {"\\u00e9", "\xc3\xa9", true, SF_FLAW_NONE},
	             {"\x01", NULL, false, SF_FLAW_NONE},
	             {"\x1f", NULL, false, SF_FLAW_NONE},
	             {"\x7f", "\x7f", true, SF_FLAW_NONE},
	             {"\xc3\xa9", "\xc3\xa9", true, SF_FLAW_NONE},
	             {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", true, SF_FLAW_NONE},
	             {"\xff", "\xff", true, SF_FLAW_UTF8},
	             {"\xc3", "\xc3", true, SF_FLAW_UTF8},                 /* cut short */
	             {"\xed\xa0\x80", "\xed\xa0\x80", true, SF_FLAW_UTF8}, /* a surrogate */
	             {"\xc0\xaf", "\xc0\xaf", true, SF_FLAW_UTF8},         /* overlong */
	             {"\\udc00", "\xef\xbf\xbd", true, SF_FLAW_SURROGATE}};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		for (size_t at = 0; at <= 40; at++) {
			char json[256], want[64];
			char pad[41];
			memset(pad, 'x', sizeof(pad));
			snprintf(json, sizeof(json),
			         "{\"done\":true,\"records\":[{\"Id\":\"1\",\"V\":\"%.*s%s%.*s\"},"
			         "{\"Id\":\"2\",\"V\":\"y\"}]}",
			         (int)at, pad, cases[c].raw, (int)(40 - at), pad);
			struct sf_page pg = {0};
			struct err e = {0};
			int rc = page_of(json, &pg, &e);
			if (!cases[c].ok) {
				if (rc == 0)
					fail_msg("accepted case %zu at %zu: %s", c, at, json);
				sf_page_free(&pg);
				continue;
			}
			if (rc != 0)
				fail_msg("refused case %zu at %zu: %s (%s)", c, at, json, e.msg);
			snprintf(want, sizeof(want), "%.*s%s%.*s", (int)at, pad, cases[c].got,
			         (int)(40 - at), pad);
			assert_string_equal(sf_record_get(&pg.recs[0], "V")->str, want);
			if (pg.recs[0].flaw != cases[c].flaw)
				fail_msg("case %zu at %zu: flaw %d, not %d", c, at, pg.recs[0].flaw,
				         cases[c].flaw);
			if (cases[c].flaw)
				assert_string_equal(pg.recs[0].flaw_field, "V");
			assert_int_equal(pg.recs[1].flaw, SF_FLAW_NONE);
			assert_ptr_equal(pg.recs[0].values[1].name, pg.recs[1].values[1].name);
			assert_string_equal(sf_record_get(&pg.recs[1], "v")->str, "y");
			sf_page_free(&pg);
		}
}

/* Rule 8: a value that is valid JSON but no text optsync can take flags
 * its record, and the page is read on: each record is there, the others
 * unflagged and whole. */
static void test_page_flawed_values(void **state)
{
	(void)state;
	struct sf_page pg = {0};
	struct err e = {0};
	assert_int_equal(
	    page_of("{\"done\":true,\"records\":["
	            "{\"Id\":\"1\",\"LastName\":\"a\\u0000b\",\"Email\":\"x@y.org\"},"
	            "{\"Id\":\"2\",\"LastName\":\"ok\",\"Email\":\"z@y.org\"},"
	            "{\"Id\":\"3\",\"Title\":\"\\ud83d!\",\"X\":\"\\udc00\\u0000\"},"
	            "{\"Id\":\"4\",\"Company\":\"caf\xe9\",\"Account\":{\"Name\":\"\\u0000\"}},"
	            "{\"Id\":\"5\",\"Account\":{\"Name\":\"\\u0000\"},\"N\":\"fine\"},"
	            "{\"attributes\":{\"type\":\"Le\\u0000ad\"},\"Id\":\"6\"}]}",
	            &pg, &e),
	    0);
	assert_int_equal(pg.nrecs, 6);
	assert_int_equal(pg.recs[0].flaw, SF_FLAW_NUL);
	assert_string_equal(pg.recs[0].flaw_field, "LastName");
	assert_string_equal(sf_record_get(&pg.recs[0], "LastName")->str, "a"); /* ends there */
	assert_string_equal(sf_record_get(&pg.recs[0], "Email")->str, "x@y.org");
	assert_int_equal(pg.recs[1].flaw, SF_FLAW_NONE);
	assert_null(pg.recs[1].flaw_field);
	assert_string_equal(sf_record_get(&pg.recs[1], "Email")->str, "z@y.org");
	assert_int_equal(pg.recs[2].flaw, SF_FLAW_SURROGATE); /* the first flaw counts */
	assert_string_equal(pg.recs[2].flaw_field, "Title");
	assert_string_equal(sf_record_get(&pg.recs[2], "Title")->str, "\xef\xbf\xbd!");
	assert_int_equal(pg.recs[3].flaw, SF_FLAW_UTF8);
	assert_string_equal(pg.recs[3].flaw_field, "Company");
	/* a relationship field is skipped, and what it holds does not matter */
	assert_int_equal(pg.recs[4].flaw, SF_FLAW_NONE);
	assert_string_equal(sf_record_get(&pg.recs[4], "N")->str, "fine");
	assert_int_equal(pg.recs[5].flaw, SF_FLAW_NUL);
	assert_string_equal(pg.recs[5].flaw_field, "attributes.type");
	sf_page_free(&pg);
}

static void test_page_large(void **state)
{
	/* enough values to make the arrays grow several times */
	static char json[1 << 16];
	size_t o = (size_t)snprintf(json, sizeof(json), "{\"done\":true,\"records\":[");
	for (int i = 0; i < 600; i++)
		o += (size_t)snprintf(json + o, sizeof(json) - o,
		                      "%s{\"Id\":\"%d\",\"A\":1,\"B\":2,\"C\":\"c%d\",\"D\":true,"
		                      "\"E\":null,\"F\":3,\"G\":4,\"H\":5}",
		                      i ? "," : "", i, i);
	snprintf(json + o, sizeof(json) - o, "]}");
	struct sf_page pg = {0};
	struct err e = {0};
	assert_int_equal(sf_page_parse(json, strlen(json), &pg, &e), 0);
	assert_int_equal(pg.nrecs, 600);
	for (int i = 0; i < 600; i++) {
		char want[16];
		snprintf(want, sizeof(want), "c%d", i);
		assert_string_equal(sf_record_get(&pg.recs[i], "C")->str, want);
	}
	sf_page_free(&pg);
}

int main(void)
{
	/* libcurl's global state first, as optsync's main does (sf.h) */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || atexit(curl_global_cleanup) != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rs256_rfc7515_a2),   cmocka_unit_test(test_jwt_build_claims),
	    cmocka_unit_test(test_bad_keys),           cmocka_unit_test(test_soql_quote),
	    cmocka_unit_test(test_classify),           cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_record_get),         cmocka_unit_test(test_options_checked),
	    cmocka_unit_test(test_page_parse),         cmocka_unit_test(test_page_rejects_damage),
	    cmocka_unit_test(test_page_large),         cmocka_unit_test(test_page_string_offsets),
	    cmocka_unit_test(test_page_flawed_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
