/* The local API's path parsing (api_contact_path, api_conflict_path), the
 * methods each path takes (api_allowed_methods), the failure limit, the
 * webhook's signature, and /metrics rendered on many threads at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/http.h"
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

/* The webhook's signature covers "TS." and the body (vectors from Python:
 * hmac.new(secret, b"1700000000." + body, hashlib.sha256).hexdigest()). */
static void test_webhook_signature(void **state)
{
	(void)state;
	char hex[WEBHOOK_SIG_HEX + 1];
	struct err e = {0};
	const char *secret = "webhook-secret-for-tests", *body = "{\"seq\":1}";
	assert_int_equal(
	    webhook_signature(secret, strlen(secret), 1700000000, body, strlen(body), hex, &e), 0);
	assert_string_equal(hex,
	                    "f8b4c523e539814fb815043405bb1527efc4f7b2b5b6b0282ed3c63d16608e6d");
	/* an empty body at time 0: "0." alone */
	assert_int_equal(webhook_signature("key", 3, 0, "", 0, hex, &e), 0);
	assert_string_equal(hex,
	                    "85841b4efc3cd7776c3c8f9b7cca9e281c550e5d19889d78e9e669c6337f000d");
	/* another second, another signature: a replay carries a stale one */
	char later[WEBHOOK_SIG_HEX + 1];
	assert_int_equal(
	    webhook_signature(secret, strlen(secret), 1700000001, body, strlen(body), later, &e),
	    0);
	assert_string_not_equal(hex, later);
}

/* ---- /metrics on many threads ---- */

#define SCRAPERS 8
#define SCRAPES  20
#define ROUNDS   16

struct scraper {
	struct sidecar *s;
	pthread_barrier_t *go;
	int wrong; /* scrapes whose status labels were not all right */
};

/* Every status slot of the contact route counted once: each has its line,
 * labelled as http_statuses says (the last slot "other"). */
static int labels_right(const char *text)
{
	char line[128];
	for (int k = 0; k < N_STATUS; k++) {
		char label[8] = "other";
		if (k < N_STATUS - 1)
			snprintf(label, sizeof(label), "%u", http_statuses[k]);
		snprintf(line, sizeof(line),
		         "\noptsync_http_requests_total{route=\"contact\",status=\"%s\"} 1\n",
		         label);
		if (strstr(text, line) == NULL)
			return 0;
	}
	return 1;
}

static void *scrape(void *arg)
{
	struct scraper *sc = arg;
	pthread_barrier_wait(sc->go);
	for (int i = 0; i < SCRAPES; i++) {
		size_t len;
		char *text = http_metrics_text(sc->s, &len);
		if (text == NULL || strlen(text) != len || !labels_right(text))
			sc->wrong++;
		free(text);
	}
	return NULL;
}

/* One process's first scrapes, SCRAPERS of them at once; the count of
 * wrong ones, or -1 when the ledger does not open. */
static int scrape_round(const struct config *cfg)
{
	struct sidecar s = {0};
	struct err e = {0};
	s.cfg = cfg;
	pthread_mutex_init(&s.mu, NULL);
	if (conn_open(&s.conn, cfg, true, NULL, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	for (int k = 0; k < N_STATUS; k++)
		s.m.requests[R_CONTACT][k] = 1;
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, SCRAPERS);
	pthread_t t[SCRAPERS];
	struct scraper sc[SCRAPERS];
	int n = 0, wrong = 0;
	for (; n < SCRAPERS; n++) {
		sc[n] = (struct scraper){&s, &go, 0};
		if (pthread_create(&t[n], NULL, scrape, &sc[n]) != 0)
			break;
	}
	if (n < SCRAPERS)
		abort(); /* the others wait at the barrier for ever */
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		wrong += sc[i].wrong;
	}
	pthread_barrier_destroy(&go);
	conn_close(s.conn);
	pthread_mutex_destroy(&s.mu);
	return wrong;
}

/* The HTTP server answers on a thread per connection, so /metrics is
 * rendered by many at once. Each round is a new process (fork) whose first
 * scrapes start together: a label cached in static memory, as one was, is
 * written there by one thread while others read it. ThreadSanitizer
 * reports that as a race, and its report makes the child exit 66, when
 * the first scrapes overlap on the cores (not every round: other locks on
 * the way can order them); without it, a half-written label shows as a
 * wrong line now and then. */
static void test_metrics_concurrent(void **state)
{
	(void)state;
	char dir[] = "/tmp/optsync-test-api-XXXXXX", path[128], text[512];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/optsync.toml", dir);
	snprintf(text, sizeof(text),
	         "[salesforce]\nclient_id = \"x\"\nauth = \"client_credentials\"\n"
	         "client_secret_file = \"/nonexistent\"\n[state]\npath = \"%s/state\"\n"
	         "map_size = \"16MiB\"\n",
	         dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	struct config *cfg;
	struct err e = {0};
	if (config_load(&cfg, path, NULL, &e))
		fail_msg("%s", e.msg);
	for (int round = 0; round < ROUNDS; round++) {
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			exit(scrape_round(cfg) == 0 ? 0 : 1);
		int st = 0;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("round %d: the scrapes' child ended with status %#x (1: a wrong "
			         "label; 66: ThreadSanitizer found a race)",
			         round, (unsigned)st);
	}
	config_free(cfg);
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_contact_paths),     cmocka_unit_test(test_conflict_paths),
	    cmocka_unit_test(test_allowed_methods),   cmocka_unit_test(test_ratelimit),
	    cmocka_unit_test(test_webhook_signature), cmocka_unit_test(test_metrics_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
