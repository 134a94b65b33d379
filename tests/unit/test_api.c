/* The local API's path parsing (api_contact_path, api_conflict_path) and
 * the methods each path takes (api_allowed_methods). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/internal.h"

static void contact(const char *path, int want_rc, const char *want_email, const char *want_sub)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	const char *email = NULL, *sub = NULL;
	assert_int_equal(api_contact_path(buf, &email, &sub), want_rc);
	if (want_rc == 0) {
		assert_string_equal(email, want_email);
		assert_string_equal(sub, want_sub);
	}
}

static void test_contact_paths(void **state)
{
	(void)state;
	contact("ann@example.com", 0, "ann@example.com", "");
	contact("ann@example.com/history", 0, "ann@example.com", "/history");
	contact("ann@example.com/export", 0, "ann@example.com", "/export");
	contact("ann@example.com/authorization", 0, "ann@example.com", "/authorization");
	contact("ann@example.com/source", 0, "ann@example.com", "/source");
	contact("ann@example.com/resubscribe", 0, "ann@example.com", "/resubscribe");
	contact("ann@example.com/unknown", -1, NULL, NULL);
	contact("ann@example.com/x/history", -1, NULL, NULL);
	contact("/history", -1, NULL, NULL); /* no email */
	contact("", -1, NULL, NULL);
}

static void conflict(const char *path, int want, uint64_t want_id)
{
	uint64_t id = 99;
	assert_int_equal(api_conflict_path(path, &id), want);
	if (want >= 0)
		assert_true(id == want_id);
}

static void test_conflict_paths(void **state)
{
	(void)state;
	conflict("", API_CONFLICTS_LIST, 0);
	conflict("/7", API_CONFLICT_SHOW, 7);
	conflict("/7/resolve", API_CONFLICT_RESOLVE, 7);
	conflict("/18446744073709551615", API_CONFLICT_SHOW, UINT64_MAX);
	conflict("/18446744073709551616", -1, 0); /* overflow */
	conflict("/0", -1, 0);
	conflict("/007", -1, 0);
	conflict("/-1", -1, 0); /* strtoull would have wrapped it */
	conflict("/ 7", -1, 0);
	conflict("/+7", -1, 0);
	conflict("/7/", -1, 0);
	conflict("/7/resolved", -1, 0);
	conflict("7", -1, 0);
	conflict("/", -1, 0);
}

static void allowed(const char *url, const char *want)
{
	const char *got = api_allowed_methods(url);
	if (want == NULL)
		assert_null(got);
	else
		assert_string_equal(got, want);
}

/* Every route of the API, with the methods the router accepts; 405's Allow
 * comes from here, so a route added without a row here cannot be reached. */
static void test_allowed_methods(void **state)
{
	(void)state;
	allowed("/healthz", "GET");
	allowed("/readyz", "GET");
	allowed("/metrics", "GET");
	allowed("/v1/suppression/check", "POST");
	allowed("/v1/optouts", "POST");
	allowed("/v1/contacts:batch", "POST");
	allowed("/v1/changes", "GET");
	allowed("/v1/pushes:retry", "POST");
	allowed("/v1/status", "GET");
	allowed("/v1/conflicts", "GET");
	allowed("/v1/conflicts/7", "GET");
	allowed("/v1/conflicts/7/resolve", "POST");
	allowed("/v1/contacts/ann@example.com", "GET, DELETE");
	allowed("/v1/contacts/ann@example.com/authorization", "PUT");
	allowed("/v1/contacts/ann@example.com/source", "PUT");
	allowed("/v1/contacts/ann@example.com/resubscribe", "POST");
	allowed("/v1/contacts/ann@example.com/history", "GET");
	allowed("/v1/contacts/ann@example.com/export", "GET");
	/* unknown paths: 404, whatever the method */
	allowed("/", NULL);
	allowed("/v1", NULL);
	allowed("/v1/", NULL);
	allowed("/v1/contacts", NULL);
	allowed("/v1/contacts/", NULL);
	allowed("/v1/contacts/ann@example.com/unknown", NULL);
	allowed("/v1/conflicts/0", NULL);
	allowed("/v1/conflicts/7/undo", NULL);
	allowed("/v1/conflictsx", NULL);
	allowed("/healthz/", NULL);
}

/* The per-client failure limit: a window of one minute, keys apart. */
static void test_ratelimit(void **state)
{
	(void)state;
	struct ratelimit *r = ratelimit_new(3, 64);
	assert_non_null(r);
	const uint8_t a[4] = {127, 0, 0, 1}, b[4] = {10, 0, 0, 2};
	int64_t t = 1699999980000; /* a minute boundary: a multiple of 60,000 ms */
	assert_int_equal(ratelimit_blocked(r, a, 4, t), 0);
	for (int i = 0; i < 3; i++)
		ratelimit_hit(r, a, 4, t + i * 1000);
	assert_int_equal(ratelimit_blocked(r, a, 4, t + 3000), 57); /* seconds left */
	assert_int_equal(ratelimit_blocked(r, b, 4, t + 3000), 0);  /* another client */
	assert_int_equal(ratelimit_blocked(r, a, 4, t + 59999), 1);
	assert_int_equal(ratelimit_blocked(r, a, 4, t + 60000), 0); /* the next minute */
	ratelimit_hit(r, a, 4, t + 60000);
	assert_int_equal(ratelimit_blocked(r, a, 4, t + 60001), 0);
	/* many clients in a small table: no growth, and nobody is wrongly blocked */
	for (uint32_t i = 0; i < 10000; i++)
		ratelimit_hit(r, &i, sizeof(i), t + 61000);
	for (uint32_t i = 0; i < 10000; i++)
		assert_int_equal(ratelimit_blocked(r, &i, sizeof(i), t + 61000), 0);
	ratelimit_free(r);
	ratelimit_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_contact_paths),
	    cmocka_unit_test(test_conflict_paths),
	    cmocka_unit_test(test_allowed_methods),
	    cmocka_unit_test(test_ratelimit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
