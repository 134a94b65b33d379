#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>
#include <pthread.h>
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

/* ---- the link group commit: one request's failure is its own ---- */

/* A write transaction held open, so that link opt-outs queue behind it. */
struct holder {
	struct conn *c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool holding, release;
	pthread_t th;
};

static int hold_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct holder *h = ctx;
	pthread_mutex_lock(&h->mu);
	h->holding = true;
	pthread_cond_broadcast(&h->cv);
	while (!h->release)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	return 0;
}

static void *hold_main(void *arg)
{
	struct holder *h = arg;
	struct err e = {0};
	if (ledger_write(h->c->l, hold_txn, h, &e))
		fail_msg("hold: %s", e.msg);
	return NULL;
}

static void hold_start(struct holder *h, struct conn *c)
{
	memset(h, 0, sizeof(*h));
	h->c = c;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	assert_int_equal(pthread_create(&h->th, NULL, hold_main, h), 0);
	pthread_mutex_lock(&h->mu);
	while (!h->holding)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

static void hold_end(struct holder *h)
{
	pthread_mutex_lock(&h->mu);
	h->release = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
}

struct link_call {
	struct conn *c;
	struct conn_link_view v;
	struct conn_link_result res;
	struct err e;
	int rc;
	pthread_t th;
};

static void *link_main(void *arg)
{
	struct link_call *k = arg;
	k->rc = conn_link_optout(k->c, &k->v, CONN_LINK_ONE_CLICK, NULL, &k->res, &k->e);
	return NULL;
}

static void link_start(struct link_call *k, struct conn *c, const char *email)
{
	memset(k, 0, sizeof(*k));
	k->c = c;
	k->v.state = CONN_LINK_VALID;
	snprintf(k->v.email, sizeof(k->v.email), "%s", email);
	snprintf(k->v.campaign, sizeof(k->v.campaign), "spring");
	assert_int_equal(pthread_create(&k->th, NULL, link_main, k), 0);
}

/* One opt-out alone (it leads a commit of its own, waiting behind the held
 * write), then n more, queued meanwhile: one group, committed once the
 * write is let go. */
static void link_round(struct conn *c, struct link_call *calls, char (*emails)[40], size_t n)
{
	struct holder h;
	hold_start(&h, c);
	link_start(&calls[0], c, emails[0]);
	usleep(100 * 1000);
	for (size_t i = 1; i < n; i++)
		link_start(&calls[i], c, emails[i]);
	usleep(300 * 1000);
	hold_end(&h);
	for (size_t i = 0; i < n; i++)
		pthread_join(calls[i].th, NULL);
}

static void corrupt_person(MDB_env *env, const uint8_t key[LEDGER_KEY_LEN])
{
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "persons", 0, &dbi), 0);
	uint8_t b[5] = {1, 0x0a, 0xff, 0xff, 0xff}; /* a bytes field running past the end */
	MDB_val k = {LEDGER_KEY_LEN, (void *)key}, v = {sizeof(b), b};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

struct opted_check {
	struct ledger *l;
	char (*emails)[40];
	size_t n, bad, found;
};

static int check_opted(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct opted_check *k = ctx;
	struct ledger_person *p = malloc(sizeof(*p));
	k->found = 0;
	for (size_t i = 0; i < k->n; i++) {
		if (i % (k->n / 2) == k->bad)
			continue;
		uint8_t key[LEDGER_KEY_LEN];
		ledger_person_key(k->l, k->emails[i], strlen(k->emails[i]), key);
		if (ledger_person_get(t, key, p, e))
			fail_msg("%s: %s", k->emails[i], e->msg);
		if (!p->facts.opted_out)
			fail_msg("%s: acknowledged, not opted out", k->emails[i]);
		k->found++;
	}
	free(p);
	return 0;
}

static void test_link_group_isolation(void **state)
{
	enum { N = 40, BAD = 17 };
	char dir[] = "/tmp/optsync-test-links-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct err e = {0};
	struct config *cfg = test_config(dir, "");
	struct conn *c;
	assert_int_equal(conn_open(&c, cfg, true, NULL, &e), 0);
	char(*emails)[40] = calloc(2 * N, sizeof(*emails));
	for (size_t i = 0; i < 2 * N; i++)
		snprintf(emails[i], sizeof(emails[i]), "p%zu@example.org", i);
	snprintf(emails[BAD], sizeof(emails[BAD]), "damaged@example.org");
	/* a person whose stored record cannot be read: that request's own
	 * failure, whatever group it is in */
	static const struct conn_actor cli = {LEDGER_ORIGIN_LOCAL, "test"};
	struct conn_optout o = {.email = emails[BAD]};
	cJSON *r = NULL;
	assert_int_equal(conn_optout(c, &cli, &o, &r, &e), 0);
	cJSON_Delete(r);
	uint8_t key[LEDGER_KEY_LEN];
	ledger_person_key(c->l, emails[BAD], strlen(emails[BAD]), key);
	conn_close(c);
	char path[128];
	snprintf(path, sizeof(path), "%s/state", dir);
	MDB_env *env;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
	corrupt_person(env, key);
	mdb_env_close(env);
	assert_int_equal(conn_open(&c, cfg, true, NULL, &e), 0);

	struct link_call *calls = calloc(N, sizeof(*calls));
	link_round(c, calls, emails, N);
	for (size_t i = 0; i < N; i++) {
		if (i == BAD) {
			assert_int_equal(calls[i].rc, ERR_LEDGER);
			assert_non_null(strstr(calls[i].e.msg, "corrupt"));
			continue;
		}
		if (calls[i].rc)
			fail_msg("%s (a request of the damaged one's group): %s", emails[i],
			         calls[i].e.msg);
		assert_false(calls[i].res.already);
		assert_true(calls[i].res.event_seq > 0);
	}
	/* its retry goes in the next group, of new requests: only it fails */
	char(*next)[40] = emails + N;
	memcpy(next[BAD], emails[BAD], sizeof(next[BAD]));
	link_round(c, calls, next, N);
	for (size_t i = 0; i < N; i++) {
		if (i == BAD) {
			assert_int_equal(calls[i].rc, ERR_LEDGER);
			continue;
		}
		if (calls[i].rc)
			fail_msg("%s (in the retry's group): %s", next[i], calls[i].e.msg);
		assert_false(calls[i].res.already);
	}
	/* every acknowledged opt-out is in the ledger (read person by person:
	 * the suppression index would read the damaged one too) */
	struct opted_check k = {c->l, emails, 2 * N, BAD, 0};
	assert_int_equal(ledger_read(c->l, check_opted, &k, &e), 0);
	assert_int_equal(k.found, 2 * N - 2);
	free(calls);
	conn_close(c);
	config_free(cfg);
	free(emails);
	char text[128];
	snprintf(text, sizeof(text), "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_email_normalize),      cmocka_unit_test(test_admin_hash_format),
	    cmocka_unit_test(test_admin_check),          cmocka_unit_test(test_facts_valid),
	    cmocka_unit_test(test_suppression_index),    cmocka_unit_test(test_purpose_index),
	    cmocka_unit_test(test_link_group_isolation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
