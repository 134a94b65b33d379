#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/internal.h"
#include "util/timefmt.h"

static void norm_is(const char *in, const char *want)
{
	char out[LEDGER_EMAIL_MAX + 1];
	struct err e = {0};
	if (conn_email_normalize(in, out, &e))
		fail_msg("'%s' refused: %s", in, e.msg);
	assert_string_equal(out, want);
}

static void norm_bad(const char *in)
{
	char out[LEDGER_EMAIL_MAX + 1];
	struct err e = {0};
	if (conn_email_normalize(in, out, &e) == 0)
		fail_msg("'%s' accepted as %s", in, out);
	assert_int_equal(e.code, ERR_INVALID);
}

static void test_email_normalize(void **state)
{
	norm_is("  Ada@Example.COM\t", "ada@example.com");
	norm_is("o'brien+tag@sub.example.org", "o'brien+tag@sub.example.org");
	norm_bad("");
	norm_bad("   ");
	norm_bad("no-at-sign.example.com");
	norm_bad("two@@example.com");
	norm_bad("a@b@example.com");
	norm_bad("@example.com");
	norm_bad("user@");
	norm_bad("user@localhost");
	norm_bad("user@.example.com");
	norm_bad("user@example..com");
	norm_bad("us er@example.com");
	norm_bad("user@exam\nple.com");
	norm_is("user@example.com\n", "user@example.com"); /* trimmed */
	/* a quoted local part may hold specials (RFC 5321); an unquoted one not */
	norm_is("\"Quoted\"@Example.com", "\"quoted\"@example.com");
	norm_is("\"a<b>&c d\"@example.com", "\"a<b>&c d\"@example.com");
	norm_is("\"a@b\"@example.com", "\"a@b\"@example.com");
	norm_bad("<script>x@example.com");
	norm_bad("a\"b@example.com");
	norm_bad("\"open@example.com");
	norm_bad("\"a\"b\"@example.com");
	norm_bad("\"\"@example.com");
	norm_bad("user@exa<mple.com");
	norm_bad("user@\"example.com\"");
	char long_email[300];
	memset(long_email, 'a', 290);
	memcpy(long_email + 250, "@example.com", 13);
	norm_bad(long_email);
}

static void test_admin_hash_format(void **state)
{
	char line[256];
	struct err e = {0};
	assert_int_equal(conn_admin_hash("short", 5, line, sizeof(line), &e), ERR_INVALID);
	assert_int_equal(conn_admin_hash("a-long-enough-admin-token", 25, line, sizeof(line), &e),
	                 0);
	assert_int_equal(strncmp(line, "$scrypt$ln=15,r=8,p=1$", 22), 0);
	char again[256];
	assert_int_equal(conn_admin_hash("a-long-enough-admin-token", 25, again, sizeof(again), &e),
	                 0);
	assert_string_not_equal(line, again); /* salted */
}

/* A configuration in dir (no Salesforce calls are made) with a small
 * ledger map (valgrind checks msync'ed ranges slowly) and extra lines. */
static struct config *test_config(const char *dir, const char *extra)
{
	char path[128], text[1024];
	struct err e = {0};
	snprintf(path, sizeof(path), "%s/optsync.toml", dir);
	snprintf(text, sizeof(text),
	         "[salesforce]\nclient_id = \"x\"\nauth = \"client_credentials\"\n"
	         "client_secret_file = \"/nonexistent\"\n[state]\npath = \"%s/state\"\n"
	         "map_size = \"16MiB\"\n%s",
	         dir, extra);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	struct config *cfg;
	if (config_load(&cfg, path, NULL, &e))
		fail_msg("%s", e.msg);
	return cfg;
}

static void test_admin_check(void **state)
{
	char dir[] = "/tmp/optsync-test-conn-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char line[256], text[512];
	struct err e = {0};
	assert_int_equal(conn_admin_hash("alice-token-0123456789", 22, line, sizeof(line), &e), 0);
	snprintf(text, sizeof(text), "[[admins]]\nname = \"alice\"\ntoken_hash = \"%s\"\n", line);
	struct config *cfg = test_config(dir, text);
	struct conn *c;
	assert_int_equal(conn_open(&c, cfg, true, NULL, &e), 0);
	assert_int_equal(conn_admin_check(c, "alice", "alice-token-0123456789", NULL, &e), 0);
	assert_int_equal(conn_admin_check(c, "alice", "alice-token-0123456788", NULL, &e),
	                 ERR_REFUSED);
	assert_int_equal(conn_admin_check(c, "mallory", "alice-token-0123456789", NULL, &e),
	                 ERR_REFUSED);
	assert_int_equal(conn_admin_check(c, NULL, NULL, "x@example.com", &e), ERR_REFUSED);
	assert_non_null(strstr(e.msg, "OPTSYNC_ADMIN"));
	conn_close(c);
	config_free(cfg);
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

static void test_facts_valid(void **state)
{
	struct ledger_facts f;
	char why[200];
	int64_t now = time_now_ms();
	ledger_facts_init(&f);
	f.mask = LEDGER_F_AUTH_TYPE;
	f.auth_type = LEDGER_AUTH_CONSENT;
	assert_false(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)));
	f.mask |= LEDGER_F_CONSENT_DATE | LEDGER_F_PURPOSE;
	f.consent_date = now - 1000;
	snprintf(f.purpose, sizeof(f.purpose), "Newsletter");
	assert_true(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)));
	f.consent_date = now + 86400000;
	assert_false(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)));
	assert_non_null(strstr(why, "future"));
	f.auth_type = LEDGER_AUTH_CONTRACT;
	f.consent_date = now - 1000;
	assert_false(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)));
	ledger_facts_init(&f);
	f.mask = LEDGER_F_SOURCE_TYPE;
	f.source_type = LEDGER_SOURCE_OTHER;
	assert_false(facts_valid(&f, LEDGER_F_SOURCE_TYPE, now, why, sizeof(why)));
	f.mask |= LEDGER_F_SOURCE_OTHER;
	snprintf(f.source_other, sizeof(f.source_other), "a trade fair");
	assert_true(facts_valid(&f, LEDGER_F_SOURCE_TYPE, now, why, sizeof(why)));
}

/* The suppression check answers from its in-memory index: it must agree
 * with the ledger through opt-outs, re-subscribes and opt-outs again, also
 * when another process (here: another connector) writes them. */
static void check_all(struct conn *c, char (*emails)[40], size_t n, const bool *want)
{
	const char **list = malloc(n * sizeof(*list));
	bool *got = malloc(n * sizeof(*got));
	struct err e = {0};
	for (size_t i = 0; i < n; i++)
		list[i] = emails[i];
	if (conn_suppressed(c, list, n, NULL, got, NULL, &e))
		fail_msg("%s", e.msg);
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i])
			fail_msg("%s: suppressed %d, wanted %d", emails[i], got[i], want[i]);
	free(list);
	free(got);
}

static void test_suppression_index(void **state)
{
	enum { N = 2000, UNKNOWN = 500 };
	char dir[] = "/tmp/optsync-test-supp-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char text[128];
	struct err e = {0};
	struct config *cfg = test_config(dir, "");
	struct conn *a, *b;
	assert_int_equal(conn_open(&a, cfg, true, NULL, &e), 0);
	assert_int_equal(conn_open(&b, cfg, true, NULL, &e), 0);
	char(*emails)[40] = calloc(N + UNKNOWN, sizeof(*emails));
	bool *want = calloc(N + UNKNOWN, sizeof(*want));
	const char **list = calloc(N, sizeof(*list));
	for (size_t i = 0; i < N + UNKNOWN; i++)
		snprintf(emails[i], sizeof(emails[i]), "Person%zu@Example.org", i);
	check_all(a, emails, N + UNKNOWN, want); /* builds the (empty) index */
	static const struct conn_actor cli = {LEDGER_ORIGIN_LOCAL, "test"};
	static const struct conn_actor admin = {LEDGER_ORIGIN_ADMIN, "alice"};
	for (size_t i = 0; i < N; i++) {
		list[i] = emails[i];
		want[i] = true;
	}
	struct conn_bulk_result res;
	assert_int_equal(conn_optout_many(b, &cli, list, NULL, NULL, N, NULL, NULL, NULL, &res, &e),
	                 0);
	assert_true(res.applied == N && res.invalid == 0);
	conn_bulk_result_free(&res);
	check_all(a, emails, N + UNKNOWN, want); /* b's writes, through the feed */
	usleep(5000);
	struct conn_evidence ev = {time_now_ms() - 1, "newsletter", "form-1", NULL};
	for (size_t i = 0; i < N; i += 5) { /* every fifth: scattered removals */
		cJSON *r = NULL;
		if (conn_resubscribe(b, &admin, emails[i], &ev, &r, &e))
			fail_msg("%s", e.msg);
		cJSON_Delete(r);
		want[i] = false;
	}
	check_all(a, emails, N + UNKNOWN, want);
	for (size_t i = 0; i < N; i += 10) {
		struct conn_optout o = {.email = emails[i]};
		cJSON *r = NULL;
		assert_int_equal(conn_optout(b, &cli, &o, &r, &e), 0);
		cJSON_Delete(r);
		want[i] = true;
	}
	check_all(a, emails, N + UNKNOWN, want);
	/* a new connector builds its index from the persons: the same answers */
	struct conn *c;
	assert_int_equal(conn_open(&c, cfg, false, NULL, &e), 0);
	check_all(c, emails, N + UNKNOWN, want);
	conn_close(c);
	conn_close(a);
	conn_close(b);
	config_free(cfg);
	free(emails);
	free(want);
	free(list);
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

/* The index's per-purpose sets (rule P3) agree with the ledger through
 * opt-ins, a purpose's opt-outs and global opt-outs, made by another
 * connector, and after a rebuild. */
static void check_purpose(struct conn *c, char (*emails)[40], size_t n, const char *purpose,
                          const bool *want)
{
	const char **list = malloc(n * sizeof(*list));
	bool *got = malloc(n * sizeof(*got));
	struct err e = {0};
	for (size_t i = 0; i < n; i++)
		list[i] = emails[i];
	if (conn_suppressed(c, list, n, purpose, got, NULL, &e))
		fail_msg("%s", e.msg);
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i])
			fail_msg("%s (%s): suppressed %d, wanted %d", emails[i], purpose, got[i],
			         want[i]);
	free(list);
	free(got);
}

static void test_purpose_index(void **state)
{
	enum { N = 300 };
	char dir[] = "/tmp/optsync-test-purp-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct err e = {0};
	struct config *cfg = test_config(
	    dir, "[[purposes]]\nname = \"news\"\nbasis = \"consent\"\nsalesforce = { field = "
	         "\"News__c\" }\n[[purposes]]\nname = \"offers\"\nbasis = \"soft_opt_in\"\n"
	         "salesforce = { field = \"Offers__c\" }\n");
	struct conn *a, *b;
	assert_int_equal(conn_open(&a, cfg, true, NULL, &e), 0);
	assert_int_equal(conn_open(&b, cfg, true, NULL, &e), 0);
	char(*emails)[40] = calloc(N, sizeof(*emails));
	bool news[N], offers[N];
	for (size_t i = 0; i < N; i++) {
		snprintf(emails[i], sizeof(emails[i]), "p%zu@example.org", i);
		news[i] = true;    /* consent: out until an opt-in */
		offers[i] = false; /* soft opt-in: in until an objection */
	}
	check_purpose(a, emails, N, "news", news); /* builds the index */
	check_purpose(a, emails, N, "offers", offers);
	static const struct conn_actor cli = {LEDGER_ORIGIN_LOCAL, "test"};
	for (size_t i = 0; i < N; i++) {
		cJSON *r = NULL;
		if (i % 2 == 0) {
			struct conn_consent in = {emails[i], "news", time_now_ms() - 1000, "form",
			                          NULL};
			if (conn_consent(b, &cli, &in, &r, &e))
				fail_msg("%s", e.msg);
			news[i] = false;
		}
		cJSON_Delete(r);
		r = NULL;
		if (i % 3 == 0) {
			struct conn_optout o = {.email = emails[i], .purpose = "offers"};
			assert_int_equal(conn_optout(b, &cli, &o, &r, &e), 0);
			offers[i] = true;
		}
		cJSON_Delete(r);
		r = NULL;
		if (i % 10 == 0) { /* out of all email: out of every purpose */
			struct conn_optout o = {.email = emails[i]};
			assert_int_equal(conn_optout(b, &cli, &o, &r, &e), 0);
			news[i] = offers[i] = true;
		}
		cJSON_Delete(r);
		r = NULL;
		if (i % 4 == 0 && i % 10 != 0) { /* opted in, then out of it again */
			struct conn_optout o = {.email = emails[i], .purpose = "news"};
			assert_int_equal(conn_optout(b, &cli, &o, &r, &e), 0);
			news[i] = true;
		}
		cJSON_Delete(r);
	}
	check_purpose(a, emails, N, "news", news); /* b's writes, through the feed */
	check_purpose(a, emails, N, "offers", offers);
	struct conn *c; /* a new index, built from the ledger */
	assert_int_equal(conn_open(&c, cfg, false, NULL, &e), 0);
	check_purpose(c, emails, N, "news", news);
	check_purpose(c, emails, N, "offers", offers);
	const char *one[1] = {emails[0]};
	bool got[1];
	assert_int_equal(conn_suppressed(c, one, 1, "nope", got, NULL, &e), ERR_INVALID);
	conn_close(c);
	conn_close(a);
	conn_close(b);
	config_free(cfg);
	free(emails);
	char text[128];
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_email_normalize),   cmocka_unit_test(test_admin_hash_format),
	    cmocka_unit_test(test_admin_check),       cmocka_unit_test(test_facts_valid),
	    cmocka_unit_test(test_suppression_index), cmocka_unit_test(test_purpose_index),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
