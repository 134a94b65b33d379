/* Unsubscribe link tokens: sealing, opening, tampering, keys, lifetime. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "links/links.h"

#define DAY_MS (86400000LL)

static const uint8_t key_a[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t key_b[40] = "another key, forty bytes long, for tests";
static const int64_t now = 1790000000000LL; /* 2026-09 */

static struct link_keys *keys_of(const uint8_t *cur, size_t cl, const uint8_t *old, size_t ol,
                                 int64_t lifetime)
{
	const uint8_t *k[2] = {cur, old};
	size_t l[2] = {cl, ol};
	struct link_keys *out;
	struct err e = {0};
	assert_int_equal(link_keys_new(&out, k, l, old ? 2 : 1, lifetime, &e), 0);
	return out;
}

static struct link_claims claims(const char *email, const char *purpose, const char *campaign)
{
	struct link_claims c;
	memset(&c, 0, sizeof(c));
	snprintf(c.email, sizeof(c.email), "%s", email);
	snprintf(c.purpose, sizeof(c.purpose), "%s", purpose);
	snprintf(c.campaign, sizeof(c.campaign), "%s", campaign);
	c.minted_at = now;
	return c;
}

static void test_round_trip(void **state)
{
	(void)state;
	struct link_keys *k = keys_of(key_a, sizeof(key_a), NULL, 0, 400 * DAY_MS);
	struct link_claims c = claims("o'brien+x@example.com", "newsletter", "2026-spring"), got;
	char tok[LINK_TOKEN_MAX], tok2[LINK_TOKEN_MAX];
	struct err e = {0};
	assert_int_equal(link_seal(k, &c, tok, &e), 0);
	assert_int_equal(link_open(k, tok, strlen(tok), now + 1000, &got), LINK_OK);
	assert_string_equal(got.email, c.email);
	assert_string_equal(got.purpose, "newsletter");
	assert_string_equal(got.campaign, "2026-spring");
	assert_int_equal(got.minted_at, now);
	/* URL-safe, and the email is not in it */
	for (const char *p = tok; *p; p++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                       "0123456789-_",
		                       *p));
	assert_null(strstr(tok, "brien"));
	/* a fresh nonce: the same claims seal differently */
	assert_int_equal(link_seal(k, &c, tok2, &e), 0);
	assert_string_not_equal(tok, tok2);
	/* no purpose, no campaign */
	c = claims("a@b.co", "", "");
	assert_int_equal(link_seal(k, &c, tok, &e), 0);
	assert_int_equal(link_open(k, tok, strlen(tok), now, &got), LINK_OK);
	assert_string_equal(got.email, "a@b.co");
	assert_string_equal(got.purpose, "");
	assert_string_equal(got.campaign, "");
	link_keys_free(k);
}

/* Every single-byte change (every other character at every position, and
 * each cut) is rejected. */
static void test_every_change_rejected(void **state)
{
	(void)state;
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ ";
	struct link_keys *k = keys_of(key_a, sizeof(key_a), NULL, 0, 400 * DAY_MS);
	struct link_claims c = claims("ada@example.com", "events", "c1"), got;
	char tok[LINK_TOKEN_MAX];
	struct err e = {0};
	assert_int_equal(link_seal(k, &c, tok, &e), 0);
	size_t n = strlen(tok), tried = 0;
	for (size_t i = 0; i < n; i++) {
		char orig = tok[i];
		for (const char *a = alphabet; *a; a++) {
			if (*a == orig)
				continue;
			tok[i] = *a;
			enum link_verdict v = link_open(k, tok, n, now, &got);
			if (v == LINK_OK)
				fail_msg("changing byte %zu to '%c' was accepted", i, *a);
			tried++;
		}
		tok[i] = orig;
		/* cut after byte i */
		assert_int_not_equal(link_open(k, tok, i, now, &got), LINK_OK);
	}
	/* one byte more */
	tok[n] = 'A';
	tok[n + 1] = '\0';
	assert_int_not_equal(link_open(k, tok, n + 1, now, &got), LINK_OK);
	assert_true(tried > n * 60);
	link_keys_free(k);
}

static void test_keys(void **state)
{
	(void)state;
	struct link_keys *a = keys_of(key_a, sizeof(key_a), NULL, 0, 400 * DAY_MS);
	struct link_keys *b = keys_of(key_b, sizeof(key_b), NULL, 0, 400 * DAY_MS);
	struct link_keys *rotated =
	    keys_of(key_b, sizeof(key_b), key_a, sizeof(key_a), 400 * DAY_MS);
	struct link_claims c = claims("ada@example.com", "", ""), got;
	char tok[LINK_TOKEN_MAX];
	struct err e = {0};
	assert_int_equal(link_seal(a, &c, tok, &e), 0);
	/* a key that is not configured */
	assert_int_equal(link_open(b, tok, strlen(tok), now, &got), LINK_UNKNOWN_KEY);
	/* an old key still opens what it sealed */
	assert_int_equal(link_open(rotated, tok, strlen(tok), now, &got), LINK_OK);
	assert_string_equal(got.email, "ada@example.com");
	/* new links use the current key: the old keyring alone does not open them */
	assert_int_equal(link_seal(rotated, &c, tok, &e), 0);
	assert_int_equal(link_open(a, tok, strlen(tok), now, &got), LINK_UNKNOWN_KEY);
	assert_int_equal(link_open(b, tok, strlen(tok), now, &got), LINK_OK);
	/* a key shorter than 32 bytes is refused */
	const uint8_t *k[1] = {key_a};
	size_t l[1] = {31};
	struct link_keys *shortk;
	assert_int_equal(link_keys_new(&shortk, k, l, 1, DAY_MS, &e), ERR_CONFIG);
	assert_null(shortk);
	assert_non_null(strstr(e.msg, "31 bytes"));
	link_keys_free(a);
	link_keys_free(b);
	link_keys_free(rotated);
}

/* A token sealed under a wrong key with the right key id (a forger who
 * knows the id) fails authentication. */
static void test_wrong_key_same_id(void **state)
{
	(void)state;
	struct link_keys *a = keys_of(key_a, sizeof(key_a), NULL, 0, 400 * DAY_MS);
	struct link_keys *b = keys_of(key_b, sizeof(key_b), NULL, 0, 400 * DAY_MS);
	struct link_claims c = claims("ada@example.com", "", ""), got;
	char ta[LINK_TOKEN_MAX], tb[LINK_TOKEN_MAX];
	struct err e = {0};
	assert_int_equal(link_seal(a, &c, ta, &e), 0);
	assert_int_equal(link_seal(b, &c, tb, &e), 0);
	/* the first 4 characters hold version and key id (3 bytes): graft a's
	 * header onto b's sealed body */
	memcpy(tb, ta, 4);
	assert_int_equal(link_open(a, tb, strlen(tb), now, &got), LINK_MALFORMED);
	link_keys_free(a);
	link_keys_free(b);
}

static void test_lifetime(void **state)
{
	(void)state;
	struct link_keys *k = keys_of(key_a, sizeof(key_a), NULL, 0, 30 * DAY_MS);
	struct link_claims c = claims("ada@example.com", "", ""), got;
	char tok[LINK_TOKEN_MAX];
	struct err e = {0};
	assert_int_equal(link_seal(k, &c, tok, &e), 0);
	assert_int_equal(link_open(k, tok, strlen(tok), now + 30 * DAY_MS, &got), LINK_OK);
	assert_int_equal(link_open(k, tok, strlen(tok), now + 31 * DAY_MS, &got), LINK_EXPIRED);
	/* minted in the future (beyond clock skew): not accepted */
	assert_int_equal(link_open(k, tok, strlen(tok), now - 3600 * 1000, &got), LINK_MALFORMED);
	link_keys_free(k);
}

static void test_url_length(void **state)
{
	(void)state;
	struct link_keys *k = keys_of(key_a, sizeof(key_a), NULL, 0, 400 * DAY_MS);
	/* 40 bytes */
	struct link_claims c = claims("firstname.lastname-1234@example-corp.com", "", ""), got;
	assert_int_equal(strlen(c.email), 40);
	char tok[LINK_TOKEN_MAX], url[LINK_TOKEN_MAX + 64];
	struct err e = {0};
	assert_int_equal(link_seal(k, &c, tok, &e), 0);
	int n = snprintf(url, sizeof(url), "https://unsubscribe.example.com/u/%s", tok);
	printf("URL for a 40-byte email: %d characters\n", n);
	assert_true(n <= 160);
	/* with a purpose and a campaign of 10 bytes each it still fits */
	c = claims("firstname.lastname-1234@example-corp.com", "newsletter", "2026-04-07");
	assert_int_equal(link_seal(k, &c, tok, &e), 0);
	n = snprintf(url, sizeof(url), "https://unsubscribe.example.com/u/%s", tok);
	printf("... with purpose and campaign: %d characters\n", n);
	assert_int_equal(link_open(k, tok, strlen(tok), now, &got), LINK_OK);
	link_keys_free(k);
}

static void test_bad_claims(void **state)
{
	(void)state;
	struct link_keys *k = keys_of(key_a, sizeof(key_a), NULL, 0, 400 * DAY_MS);
	char tok[LINK_TOKEN_MAX];
	struct err e = {0};
	struct link_claims c = claims("", "", "");
	assert_int_equal(link_seal(k, &c, tok, &e), ERR_INVALID);
	c = claims("a@b.co", "", "tab\there");
	assert_int_equal(link_seal(k, &c, tok, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "campaign"));
	/* garbage of every length is refused, without a crash */
	char junk[LINK_TOKEN_MAX + 8];
	memset(junk, 'A', sizeof(junk));
	struct link_claims got;
	for (size_t n = 0; n < sizeof(junk); n++)
		assert_int_not_equal(link_open(k, junk, n, now, &got), LINK_OK);
	link_keys_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip), cmocka_unit_test(test_every_change_rejected),
	    cmocka_unit_test(test_keys),       cmocka_unit_test(test_wrong_key_same_id),
	    cmocka_unit_test(test_lifetime),   cmocka_unit_test(test_url_length),
	    cmocka_unit_test(test_bad_claims),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
