/* The schema-6 migration (state/rekey.c): a ledger written with the old
 * normalization (ASCII lower-cased only), opened by this optsync. The old
 * ledger is made the way that optsync made it: persons keyed by the HMAC
 * of their old normalized email, their records, events, feed entries,
 * pushes, conflicts and purposes, and schema version 3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glob.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/ledger.h"
#include "util/email.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/optsync-rekey-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	rmdir(dir); /* the ledger creates it */
	return 0;
}

static int teardown(void **state)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'.schema*", dir, dir);
	return system(cmd);
}

/* What the old optsync did: trim, lower-case ASCII, keep every other byte. */
static void old_normalize(const char *in, char *out)
{
	size_t i = 0;
	for (; in[i]; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
	out[i] = '\0';
}

struct old_person {
	const char *typed; /* as it was entered */
	bool opted_out;    /* since opted_out_at */
	int64_t opted_out_at;
	int64_t auth_changed_at;    /* 0: no authorization */
	const char *record_id;      /* a Contact, seen as the person's state */
	const char *purpose_status; /* "newsletter" in (i) or out (o), or NULL */
	bool erased;
};

static const struct old_person people[] = {
    /* re-keyed alone: the docs' example, stored as jane.doe+news@bÜcher.example */
    {"Jane.Doe+News@BÜCHER.Example", true, 1700000100000, 0, "003000000000001AAA", NULL, false},
    /* two spellings of one address: merged, opted out (the first's) */
    {"ÅSA@x.org", true, 1700000200000, 1700000000000, "003000000000002AAA", "o", false},
    {"åsa@x.org", false, 0, 1700000300000, "003000000000003AAA", "i", false},
    /* a precomposed and a combining é: merged, neither opted out */
    {"ren\xc3\xa9@x.org", false, 0, 0, "003000000000004AAA", NULL, false},
    {"rene\xcc\x81@x.org", false, 0, 0, "003000000000005AAA", NULL, false},
    /* ASCII: untouched */
    {"Bob@Example.com", true, 1700000400000, 0, "003000000000006AAA", NULL, false},
    /* a Latin-1 byte, as a Latin-1 CSV gave it: read as Windows-1252 */
    {"j\xfcrgen@x.org", true, 1700000500000, 0, "003000000000007AAA", NULL, false},
    /* an erased person: no email to re-key it by */
    {"Örjan@x.org", true, 1700000600000, 0, "003000000000008AAA", NULL, true},
};
#define NPEOPLE (sizeof(people) / sizeof(people[0]))

struct make {
	struct ledger *l;
	uint8_t keys[NPEOPLE][32];
};

static int make_old(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct make *mk = ctx;
	struct ledger_person *p = calloc(1, sizeof(*p));
	struct ledger_record *r = calloc(1, sizeof(*r));
	struct ledger_event *ev = calloc(1, sizeof(*ev));
	struct ledger_push *q = calloc(1, sizeof(*q));
	struct ledger_conflict *cf = calloc(1, sizeof(*cf));
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < NPEOPLE; i++) {
		const struct old_person *s = &people[i];
		char email[300];
		old_normalize(s->typed, email);
		memset(p, 0, sizeof(*p));
		ledger_person_key(mk->l, email, strlen(email), p->key);
		memcpy(mk->keys[i], p->key, 32);
		size_t el = strlen(email);
		assert_true(el < sizeof(p->email));
		memcpy(p->email, email, el + 1);
		ledger_facts_init(&p->facts);
		p->facts.mask = LEDGER_F_OPTED_OUT;
		p->facts.opted_out = s->opted_out;
		p->opted_out_at = s->opted_out_at;
		p->optout_changed_at = s->opted_out_at;
		if (s->auth_changed_at) {
			p->facts.mask |= LEDGER_F_AUTH_TYPE;
			p->facts.auth_type = s->auth_changed_at == 1700000300000
			                         ? LEDGER_AUTH_CONTRACT
			                         : LEDGER_AUTH_LEGITIMATE_INTEREST;
			p->auth_changed_at = s->auth_changed_at;
		}
		p->created_at = p->updated_at = 1690000000000 + (int64_t)i;
		struct ledger_recref ref = {LEDGER_OBJ_CONTACT, ""};
		snprintf(ref.id, sizeof(ref.id), "%s", s->record_id);
		if ((rc = ledger_person_record_add(t, p, &ref, e)))
			break;
		memset(r, 0, sizeof(*r));
		r->object = LEDGER_OBJ_CONTACT;
		snprintf(r->id, sizeof(r->id), "%s", s->record_id);
		memcpy(r->person, p->key, 32);
		ledger_facts_init(&r->seen);
		ledger_facts_init(&r->written);
		r->seen.mask = LEDGER_F_OPTED_OUT;
		r->seen.opted_out = s->opted_out;
		snprintf(r->first_name, sizeof(r->first_name), "First%zu", i);
		if ((rc = ledger_record_put(t, r, e)))
			break;
		for (int k = 0; rc == 0 && k < 2; k++) {
			ledger_event_init(ev);
			ev->at = 1700000000000 + (int64_t)(i * 10 + (size_t)k);
			ev->kind = k == 0 ? LEDGER_EV_RECORD : LEDGER_EV_OPTOUT;
			ev->origin = LEDGER_ORIGIN_LOCAL;
			snprintf(ev->actor, sizeof(ev->actor), "cli");
			snprintf(ev->reason, sizeof(ev->reason), "reason %zu.%d", i, k);
			ev->record = ref;
			rc = ledger_event_append(t, p, ev, e);
			struct ledger_change ch;
			memset(&ch, 0, sizeof(ch));
			ch.event_seq = ev->seq;
			ch.kind = ev->kind;
			ch.origin = ev->origin;
			memcpy(ch.person, p->key, 32);
			ch.opted_out = s->opted_out;
			if (rc == 0)
				rc = ledger_change_append(t, &ch, e);
		}
		if (rc == 0 && s->purpose_status) {
			struct ledger_purpose pu;
			memset(&pu, 0, sizeof(pu));
			snprintf(pu.name, sizeof(pu.name), "newsletter");
			pu.status =
			    s->purpose_status[0] == 'o' ? LEDGER_PURPOSE_OUT : LEDGER_PURPOSE_IN;
			pu.changed_at = 1700000000000 + (int64_t)i;
			rc = ledger_purpose_put(t, p->key, &pu, e);
		}
		if (rc == 0 && i == 0) { /* a queued push and a conflict name the key too */
			memset(q, 0, sizeof(*q));
			q->record = ref;
			memcpy(q->person, p->key, 32);
			ledger_facts_init(&q->want);
			q->want.mask = LEDGER_F_OPTED_OUT;
			q->want.opted_out = true;
			q->version = 1;
			rc = ledger_push_put(t, q, e);
			memset(cf, 0, sizeof(*cf));
			memcpy(cf->person, p->key, 32);
			cf->record = ref;
			cf->kind = LEDGER_CONFLICT_RESUBSCRIBE;
			cf->status = LEDGER_CONFLICT_OPEN;
			cf->field = LEDGER_F_OPTED_OUT;
			if (rc == 0)
				rc = ledger_conflict_add(t, cf, e);
		}
		if (rc == 0 && s->erased)
			rc = ledger_person_erase(t, p->key, e);
	}
	free(p);
	free(r);
	free(ev);
	free(q);
	free(cf);
	return rc;
}

static void set_schema(int version)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 16u << 20), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, (uint8_t)version};
	MDB_val k = {6, (void *)"schema"}, v = {8, b};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* What the test reads back after the migration. */
struct after {
	struct ledger *l;
	const char *email; /* normalized */
	struct ledger_person p;
	int rc;
	size_t nevents, nmerge, nscrubbed;
	uint64_t nrecords;
	uint8_t key[32];
};

static int count_event(const struct ledger_event *ev, void *ctx)
{
	struct after *a = ctx;
	a->nevents++;
	a->nmerge += ev->kind == LEDGER_EV_MERGE;
	a->nscrubbed += ev->erased;
	return 0;
}

static int read_person(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct after *a = ctx;
	ledger_person_key(a->l, a->email, strlen(a->email), a->key);
	a->nevents = a->nmerge = a->nscrubbed = 0;
	a->rc = ledger_person_get(t, a->key, &a->p, e);
	if (a->rc)
		return a->rc == ERR_NOTFOUND ? 0 : a->rc;
	int rc = ledger_person_records_count(t, &a->p, 0, &a->nrecords, e);
	if (rc)
		return rc;
	return ledger_event_each_of(t, a->key, count_event, a, e);
}

static struct after *person(struct ledger *l, const char *email)
{
	static struct after a;
	memset(&a, 0, sizeof(a));
	a.l = l;
	a.email = email;
	struct err e = {0};
	if (ledger_read(l, read_person, &a, &e))
		fail_msg("read %s: %s", email, e.msg);
	return &a;
}

struct keyed {
	uint8_t key[32];
	int rc;
	struct ledger_record r;
	struct ledger_push q;
	struct ledger_conflict cf;
	struct ledger_purpose pu;
	uint64_t changes_of_key, optout_changes, open_conflicts;
};

static int count_open(const struct ledger_conflict *cf, void *ctx)
{
	(void)cf;
	(*(uint64_t *)ctx)++;
	return 0;
}

static int per_change(const struct ledger_change *c, void *ctx)
{
	struct keyed *k = ctx;
	if (memcmp(c->person, k->key, 32) == 0) {
		k->changes_of_key++;
		k->optout_changes += c->kind == LEDGER_EV_OPTOUT && c->event_seq > 16;
	}
	return 0;
}

static int read_keyed(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct keyed *k = ctx;
	k->rc = ledger_person_get(t, k->key, &(struct ledger_person){0}, e);
	k->open_conflicts = 0;
	int rc = ledger_conflict_each_open_of_person(t, k->key, count_open, &k->open_conflicts, e);
	return rc ? rc : ledger_change_list(t, 0, 1000, per_change, k, e);
}

static int count_person(const struct ledger_person *p, void *ctx)
{
	(*(size_t *)ctx)++;
	return 0;
}

static int count_persons(struct ledger_txn *t, void *ctx, struct err *e)
{
	return ledger_person_each(t, count_person, ctx, e);
}

static struct ledger *make_and_migrate(struct make *mk)
{
	struct ledger_options o = {dir, 16u << 20, 1u << 30, true, false};
	struct err e = {0};
	if (ledger_open(&mk->l, &o, &e))
		fail_msg("open: %s", e.msg);
	if (ledger_write(mk->l, make_old, mk, &e))
		fail_msg("make: %s", e.msg);
	ledger_close(mk->l);
	set_schema(5); /* the layout of schema 5: records in person_records */
	struct ledger *l;
	o.create = false;
	if (ledger_open(&l, &o, &e))
		fail_msg("open (migrating): %s", e.msg);
	mk->l = l;
	return l;
}

static void test_rekey(void **state)
{
	struct make mk;
	struct ledger *l = make_and_migrate(&mk);
	struct err e = {0};
	/* backed up first, then migrated */
	assert_non_null(ledger_migration_backup(l));
	struct ledger_stats st;
	struct ledger_verify_report rep;
	assert_int_equal(ledger_verify(l, &rep, &e), 0);

	/* the docs' example is found by every spelling's normalized form */
	struct after *a = person(l, "jane.doe+news@xn--bcher-kva.example");
	assert_int_equal(a->rc, 0);
	assert_string_equal(a->p.email, "jane.doe+news@xn--bcher-kva.example");
	assert_true(a->p.facts.opted_out);
	assert_int_equal(a->nevents, 2); /* its history, under the new key */
	assert_int_equal(a->nmerge, 0);
	/* and nothing is left under its old key; what named it names the new one */
	struct keyed *k = calloc(1, sizeof(*k));
	memcpy(k->key, mk.keys[0], 32);
	assert_int_equal(ledger_read(l, read_keyed, k, &e), 0);
	assert_int_equal(k->rc, ERR_NOTFOUND);
	assert_int_equal(k->changes_of_key, 0);
	assert_int_equal(k->open_conflicts, 0);
	memcpy(k->key, a->key, 32);
	assert_int_equal(ledger_read(l, read_keyed, k, &e), 0);
	assert_int_equal(k->changes_of_key, 2);
	assert_int_equal(k->open_conflicts, 1); /* found by its new key */

	/* ÅSA and åsa: one person, opted out since the first's opt-out, with
	 * both records, both histories and a merge event, the newer
	 * authorization, the purpose out (out wins) */
	a = person(l, "åsa@x.org");
	assert_int_equal(a->rc, 0);
	assert_true(a->p.facts.opted_out);
	assert_int_equal(a->p.opted_out_at, 1700000200000);
	assert_int_equal(a->nrecords, 2);
	assert_int_equal(a->p.facts.auth_type, LEDGER_AUTH_CONTRACT);
	assert_int_equal(a->nevents, 2 + 2 + 1);
	assert_int_equal(a->nmerge, 1);
	uint8_t asa[32];
	memcpy(asa, a->key, 32);
	/* the application hears of the opt-out åsa@ now has, and Salesforce's
	 * record of åsa@ (seen opted in) gets it */
	memcpy(k->key, asa, 32);
	k->changes_of_key = k->optout_changes = 0;
	assert_int_equal(ledger_read(l, read_keyed, k, &e), 0);
	assert_int_equal(k->changes_of_key, 2 + 2 + 1);
	assert_int_equal(k->optout_changes, 1);

	/* precomposed and combining é: one person, not opted out */
	a = person(l, "ren\xc3\xa9@x.org");
	assert_int_equal(a->rc, 0);
	assert_false(a->p.facts.opted_out);
	assert_int_equal(a->nrecords, 2);
	assert_int_equal(a->nevents, 5);
	assert_int_equal(a->nmerge, 1);

	/* ASCII: the same key as ever */
	a = person(l, "bob@example.com");
	assert_int_equal(a->rc, 0);
	assert_memory_equal(a->key, mk.keys[5], 32);
	/* a Latin-1 byte: read as Windows-1252 */
	a = person(l, "jürgen@x.org");
	assert_int_equal(a->rc, 0);
	assert_true(a->p.facts.opted_out);
	/* the erased person keeps its key and its opt-out */
	memcpy(k->key, mk.keys[7], 32);
	assert_int_equal(ledger_read(l, read_keyed, k, &e), 0);
	assert_int_equal(k->rc, 0);
	size_t n = 0;
	assert_int_equal(ledger_read(l, count_persons, &n, &e), 0);
	assert_int_equal(n, NPEOPLE - 2); /* two merges */
	(void)st;

	/* the chain holds: nothing stored was rewritten, merge events appended */
	assert_int_equal(ledger_verify(l, &rep, &e), 0);
	assert_int_equal(rep.events, NPEOPLE * 2 + 2);
	free(k);
	ledger_close(l);
}

struct rec_ctx {
	const char *id;
	struct ledger_record r;
	struct ledger_push q;
	int qrc;
	struct ledger_conflict cf;
	struct ledger_purpose pu;
	uint8_t purpose_key[32];
	int prc;
};

static int read_rec(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct rec_ctx *c = ctx;
	int rc = ledger_record_get(t, LEDGER_OBJ_CONTACT, c->id, &c->r, e);
	if (rc)
		return rc;
	c->qrc = ledger_push_get(t, LEDGER_OBJ_CONTACT, c->id, &c->q, e);
	c->prc = ledger_purpose_get(t, c->purpose_key, "newsletter", &c->pu, e);
	if (ledger_conflict_get(t, 1, &c->cf, e))
		memset(&c->cf, 0, sizeof(c->cf));
	return 0;
}

static void test_rekey_records_pushes_purposes(void **state)
{
	struct make mk;
	struct ledger *l = make_and_migrate(&mk);
	struct err e = {0};
	uint8_t jane[32], asa[32];
	memcpy(jane, person(l, "jane.doe+news@xn--bcher-kva.example")->key, 32);
	memcpy(asa, person(l, "åsa@x.org")->key, 32);
	struct rec_ctx *c = calloc(1, sizeof(*c));
	/* Jane's record, queued push and conflict name her new key */
	c->id = "003000000000001AAA";
	memcpy(c->purpose_key, jane, 32);
	assert_int_equal(ledger_read(l, read_rec, c, &e), 0);
	assert_memory_equal(c->r.person, jane, 32);
	assert_int_equal(c->qrc, 0);
	assert_memory_equal(c->q.person, jane, 32);
	assert_memory_equal(c->cf.person, jane, 32);
	assert_string_equal(c->r.first_name, "First0");
	/* åsa@'s record was seen opted in: a push opts it out */
	c->id = "003000000000003AAA";
	memcpy(c->purpose_key, asa, 32);
	assert_int_equal(ledger_read(l, read_rec, c, &e), 0);
	assert_memory_equal(c->r.person, asa, 32);
	assert_int_equal(c->qrc, 0);
	assert_true(c->q.want.mask & LEDGER_F_OPTED_OUT);
	assert_true(c->q.want.opted_out);
	assert_memory_equal(c->q.person, asa, 32);
	/* the purpose under the new key, out (out wins over the other's in) */
	assert_int_equal(c->prc, 0);
	assert_int_equal(c->pu.status, LEDGER_PURPOSE_OUT);
	/* ÅSA@'s record was opted out already: no push */
	c->id = "003000000000002AAA";
	assert_int_equal(ledger_read(l, read_rec, c, &e), 0);
	assert_memory_equal(c->r.person, asa, 32);
	assert_int_equal(c->qrc, ERR_NOTFOUND);
	free(c);
	ledger_close(l);
}

static int erase_asa(struct ledger_txn *t, void *ctx, struct err *e)
{
	return ledger_person_erase(t, ctx, e);
}

/* An erasure of the merged person reaches both spellings' events. */
static void test_rekey_then_erase(void **state)
{
	struct make mk;
	struct ledger *l = make_and_migrate(&mk);
	struct err e = {0};
	uint8_t asa[32];
	memcpy(asa, person(l, "åsa@x.org")->key, 32);
	assert_int_equal(ledger_write(l, erase_asa, asa, &e), 0);
	struct after *a = person(l, "åsa@x.org");
	assert_int_equal(a->rc, 0);
	assert_true(a->p.flags & LEDGER_PERSON_ERASED);
	assert_true(a->p.facts.opted_out);
	assert_int_equal(a->nevents, 5);
	assert_int_equal(a->nscrubbed, 5);
	struct ledger_verify_report rep;
	assert_int_equal(ledger_verify(l, &rep, &e), 0);
	ledger_close(l);
}

/* A ledger of schema 6 is not migrated again, and opening it twice
 * changes nothing. */
static void test_rekey_once(void **state)
{
	struct make mk;
	struct ledger *l = make_and_migrate(&mk);
	ledger_close(l);
	struct ledger_options o = {dir, 16u << 20, 1u << 30, false, false};
	struct err e = {0};
	assert_int_equal(ledger_open(&l, &o, &e), 0);
	assert_null(ledger_migration_backup(l));
	struct after *a = person(l, "åsa@x.org");
	assert_int_equal(a->nmerge, 1);
	ledger_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rekey, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rekey_records_pushes_purposes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rekey_then_erase, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rekey_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
