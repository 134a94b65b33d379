#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/codec.h"
#include "state/ledger.h"

static char dir[64];

static struct ledger *open_ledger(uint64_t map, uint64_t max)
{
	struct ledger_options o = {dir, map, max, true, false};
	struct ledger *l;
	struct err e = {0};
	if (ledger_open(&l, &o, &e))
		fail_msg("open: %s", e.msg);
	return l;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/optsync-ledger-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	rmdir(dir); /* the ledger creates it */
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* ---- helpers run inside transactions ---- */

struct person_spec {
	const char *email;
	int opted_out;
	const char *record_id;
	const char *reason;
};

struct add_ctx {
	struct person_spec spec;
	struct ledger *l;
};

static int add_person(struct ledger_txn *t, void *ctx, struct err *e)
{
	const struct person_spec *s = &((struct add_ctx *)ctx)->spec;
	struct ledger *l = ((struct add_ctx *)ctx)->l;
	struct ledger_person *p = calloc(1, sizeof(*p));
	struct ledger_record *r = calloc(1, sizeof(*r));
	struct ledger_event *ev = calloc(1, sizeof(*ev));
	ledger_person_key(l, s->email, strlen(s->email), p->key);
	uint64_t last = 0;
	if (ledger_person_get(t, p->key, p, e) == 0)
		last = p->last_event; /* get-modify-put keeps the history list */
	p->last_event = last;
	snprintf(p->email, sizeof(p->email), "%s", s->email);
	p->facts.mask =
	    LEDGER_F_OPTED_OUT | LEDGER_F_AUTH_TYPE | LEDGER_F_PURPOSE | LEDGER_F_CONSENT_DATE;
	p->facts.opted_out = s->opted_out;
	p->facts.auth_type = LEDGER_AUTH_CONSENT;
	p->facts.consent_date = 1700000000000;
	snprintf(p->facts.purpose, sizeof(p->facts.purpose), "newsletter for %s", s->email);
	p->opted_out_at = s->opted_out ? 1700000001000 : 0;
	struct ledger_recref ref = {LEDGER_OBJ_CONTACT, ""};
	snprintf(ref.id, sizeof(ref.id), "%s", s->record_id);
	int rc = ledger_person_record_add(t, p, &ref, e); /* sets p->records_no */
	if (rc == 0)
		rc = ledger_person_put(t, p, e);
	if (rc == 0) {
		memcpy(r->person, p->key, 32);
		r->object = LEDGER_OBJ_CONTACT;
		snprintf(r->id, sizeof(r->id), "%s", s->record_id);
		snprintf(r->first_name, sizeof(r->first_name), "Ada");
		snprintf(r->company, sizeof(r->company), "Analytical Engines");
		r->seen = p->facts;
		r->modstamp = 1700000002000;
		rc = ledger_record_put(t, r, e);
	}
	if (rc == 0) {
		ledger_event_init(ev);
		ev->at = 1700000003000;
		ev->kind = s->opted_out ? LEDGER_EV_OPTOUT : LEDGER_EV_AUTHORIZATION;
		ev->origin = LEDGER_ORIGIN_LOCAL;
		memcpy(ev->person, p->key, 32);
		snprintf(ev->actor, sizeof(ev->actor), "cli");
		ev->record = ref;
		ev->facts = p->facts;
		snprintf(ev->reason, sizeof(ev->reason), "%s", s->reason);
		snprintf(ev->evidence_ref, sizeof(ev->evidence_ref), "ticket for %s", s->email);
		rc = ledger_event_append(t, p, ev, e);
	}
	free(p);
	free(r);
	free(ev);
	return rc;
}

static void put_person(struct ledger *l, const char *email, int opted_out, const char *id,
                       const char *reason)
{
	struct add_ctx c = {{email, opted_out, id, reason}, l};
	struct err e = {0};
	if (ledger_write(l, add_person, &c, &e))
		fail_msg("write: %s", e.msg);
}

struct get_ctx {
	struct ledger *l;
	const char *email;
	struct ledger_person p;
	int rc;
	uint64_t nrecords;
	struct ledger_recref first; /* its first record */
};

static int get_person(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct get_ctx *g = ctx;
	uint8_t key[32];
	ledger_person_key(g->l, g->email, strlen(g->email), key);
	g->rc = ledger_person_get(t, key, &g->p, e);
	if (g->rc == 0 && ledger_person_records_count(t, &g->p, 0, &g->nrecords, e) == 0 &&
	    g->nrecords)
		assert_int_equal(ledger_person_record_first(t, &g->p, &g->first, e), 0);
	return g->rc == ERR_NOTFOUND ? 0 : g->rc;
}

static void verify_ok(struct ledger *l, uint64_t events)
{
	struct ledger_verify_report rep;
	struct err e = {0};
	if (ledger_verify(l, &rep, &e))
		fail_msg("verify: %s", e.msg);
	assert_int_equal(rep.events, events);
}

/* Edit the raw LMDB environment, as an attacker or a bug would. */
static void raw_edit(const char *db, const void *key, size_t klen,
                     void (*edit)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *))
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	MDB_val k = {klen, (void *)key}, v;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	edit(txn, dbi, &k, &v);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void flip_byte(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	uint8_t *copy = malloc(v->mv_size);
	memcpy(copy, v->mv_data, v->mv_size);
	copy[v->mv_size - 1] ^= 0x01; /* the last byte: inside the event's own texts */
	MDB_val nv = {v->mv_size, copy};
	assert_int_equal(mdb_put(txn, dbi, k, &nv, 0), 0);
	free(copy);
}

static void delete_it(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	assert_int_equal(mdb_del(txn, dbi, k, NULL), 0);
}

static void set_schema_99(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 99};
	MDB_val nv = {8, b};
	assert_int_equal(mdb_put(txn, dbi, k, &nv, 0), 0);
}

static void garbage(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	uint8_t b[5] = {1, 0x0a, 0xff, 0xff, 0xff}; /* a bytes field running past the end */
	MDB_val nv = {5, b};
	assert_int_equal(mdb_put(txn, dbi, k, &nv, 0), 0);
}

/* ---- tests ---- */

static void test_create_modes_and_key(void **state)
{
	struct ledger_options o = {dir, 1 << 20, 1 << 24, false, false};
	struct ledger *l;
	struct err e = {0};
	assert_int_equal(ledger_open(&l, &o, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "no ledger at"));

	umask(022);
	l = open_ledger(1 << 20, 1 << 24);
	uint8_t k1[32], k2[32];
	ledger_person_key(l, "a@example.com", 13, k1);
	ledger_close(l);
	struct stat st;
	char path[128];
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	o.create = false;
	assert_int_equal(ledger_open(&l, &o, &e), 0);
	ledger_person_key(l, "a@example.com", 13, k2);
	assert_memory_equal(k1, k2, 32); /* the key is kept in the ledger */
	ledger_person_key(l, "b@example.com", 13, k2);
	assert_memory_not_equal(k1, k2, 32);
	ledger_close(l);
}

static void test_person_roundtrip(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	put_person(l, "ada@example.com", 1, "0035e00000AbCdEAAA", "asked by phone");
	struct get_ctx g = {.l = l, .email = "ada@example.com"};
	struct err e = {0};
	assert_int_equal(ledger_read(l, get_person, &g, &e), 0);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.p.email, "ada@example.com");
	assert_true(g.p.facts.opted_out);
	assert_int_equal(g.p.facts.auth_type, LEDGER_AUTH_CONSENT);
	assert_true(g.p.facts.consent_date == 1700000000000);
	assert_string_equal(g.p.facts.purpose, "newsletter for ada@example.com");
	assert_int_equal(g.nrecords, 1);
	assert_string_equal(g.first.id, "0035e00000AbCdEAAA");
	g.email = "nobody@example.com";
	assert_int_equal(ledger_read(l, get_person, &g, &e), 0);
	assert_int_equal(g.rc, ERR_NOTFOUND);
	verify_ok(l, 1);
	ledger_close(l);
}

struct events_ctx {
	struct ledger *l;
	int n;
	uint64_t seqs[8];
	char reasons[8][64];
	struct ledger_record rec;
};

static int collect_event(const struct ledger_event *ev, void *ctx)
{
	struct events_ctx *c = ctx;
	c->seqs[c->n] = ev->seq;
	snprintf(c->reasons[c->n], 64, "%.63s", ev->reason);
	c->n++;
	return 0;
}

static int list_events(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct events_ctx *c = ctx;
	uint8_t key[32];
	ledger_person_key(c->l, "ada@example.com", 15, key);
	c->n = 0;
	int rc = ledger_event_each_of(t, key, collect_event, c, e);
	if (rc == 0)
		rc = ledger_record_get(t, LEDGER_OBJ_CONTACT, "0035e00000AbCdEAAA", &c->rec, e);
	return rc;
}

static void test_history_index_and_records(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	put_person(l, "ada@example.com", 1, "0035e00000AbCdEAAA", "first");
	put_person(l, "bob@example.com", 0, "0035e00000XyZzYAAA", "other person");
	put_person(l, "ada@example.com", 1, "0035e00000AbCdEAAA", "second");
	struct events_ctx c = {.l = l};
	struct err e = {0};
	assert_int_equal(ledger_read(l, list_events, &c, &e), 0);
	assert_int_equal(c.n, 2);
	assert_true(c.seqs[0] == 1 && c.seqs[1] == 3);
	assert_string_equal(c.reasons[0], "first");
	assert_string_equal(c.reasons[1], "second");
	assert_string_equal(c.rec.first_name, "Ada");
	assert_true(c.rec.seen.opted_out);
	verify_ok(l, 3);
	ledger_close(l);
}

static void test_tamper_detected(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	for (int i = 0; i < 5; i++) {
		char email[64];
		snprintf(email, sizeof(email), "p%d@example.com", i);
		put_person(l, email, i % 2, "003000000000001AAA", "r");
	}
	verify_ok(l, 5);
	ledger_close(l);

	uint8_t k3[8] = {0, 0, 0, 0, 0, 0, 0, 3};
	raw_edit("history", k3, 8, flip_byte);
	l = open_ledger(1 << 20, 1 << 24);
	struct ledger_verify_report rep;
	struct err e = {0};
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 3);
	assert_non_null(strstr(e.msg, "event 3"));
	ledger_close(l);
}

static void test_tamper_last_and_removed(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	for (int i = 0; i < 4; i++)
		put_person(l, "x@example.com", 1, "003000000000001AAA", "r");
	ledger_close(l);
	/* the last event: only the chain head can catch it */
	uint8_t k4[8] = {0, 0, 0, 0, 0, 0, 0, 4};
	raw_edit("history", k4, 8, flip_byte);
	l = open_ledger(1 << 20, 1 << 24);
	struct ledger_verify_report rep;
	struct err e = {0};
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 4);
	ledger_close(l);
	/* removing the last event */
	raw_edit("history", k4, 8, delete_it);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_non_null(strstr(rep.why, "missing at the end"));
	ledger_close(l);
	/* removing one in the middle */
	uint8_t k2[8] = {0, 0, 0, 0, 0, 0, 0, 2};
	raw_edit("history", k2, 8, delete_it);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 2);
	assert_non_null(strstr(rep.why, "gap"));
	ledger_close(l);
}

struct erase_ctx {
	struct ledger *l;
	struct ledger_person p;
	struct ledger_record r;
	struct ledger_push q;
	struct ledger_conflict c;
	struct ledger_event ev;
	int push_rc;
};

static int erase_setup(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct erase_ctx *x = ctx;
	uint8_t key[32];
	ledger_person_key(x->l, "ada@example.com", 15, key);
	struct ledger_conflict c;
	memset(&c, 0, sizeof(c));
	memcpy(c.person, key, 32);
	c.kind = LEDGER_CONFLICT_INVALID_VALUE;
	c.status = LEDGER_CONFLICT_OPEN;
	snprintf(c.sf_value, sizeof(c.sf_value), "Ada's secret purpose");
	int rc = ledger_conflict_add(t, &c, e);
	struct ledger_push q;
	memset(&q, 0, sizeof(q));
	q.record.object = LEDGER_OBJ_CONTACT;
	snprintf(q.record.id, sizeof(q.record.id), "0035e00000AbCdEAAA");
	memcpy(q.person, key, 32);
	ledger_facts_init(&q.want);
	q.want.mask = LEDGER_F_PURPOSE;
	snprintf(q.want.purpose, sizeof(q.want.purpose), "private purpose");
	if (rc == 0)
		rc = ledger_push_put(t, &q, e);
	return rc;
}

static int erase_it(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct erase_ctx *x = ctx;
	uint8_t key[32];
	ledger_person_key(x->l, "ada@example.com", 15, key);
	return ledger_person_erase(t, key, e);
}

static int erase_check(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct erase_ctx *x = ctx;
	uint8_t key[32];
	ledger_person_key(x->l, "ada@example.com", 15, key);
	int rc = ledger_person_get(t, key, &x->p, e);
	if (rc == 0)
		rc = ledger_record_get(t, LEDGER_OBJ_CONTACT, "0035e00000AbCdEAAA", &x->r, e);
	if (rc == 0)
		rc = ledger_conflict_get(t, 1, &x->c, e);
	if (rc == 0)
		rc = ledger_event_get(t, 1, &x->ev, e);
	if (rc == 0)
		x->push_rc = ledger_push_get(t, LEDGER_OBJ_CONTACT, "0035e00000AbCdEAAA", &x->q, e);
	return rc;
}

static void test_erasure(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	put_person(l, "ada@example.com", 1, "0035e00000AbCdEAAA", "told us at the fair");
	put_person(l, "bob@example.com", 0, "0035e00000XyZzYAAA", "bob's reason");
	struct erase_ctx *x = calloc(1, sizeof(*x));
	x->l = l;
	struct err e = {0};
	assert_int_equal(ledger_write(l, erase_setup, x, &e), 0);
	assert_int_equal(ledger_write(l, erase_it, x, &e), 0);
	assert_int_equal(ledger_read(l, erase_check, x, &e), 0);
	assert_string_equal(x->p.email, "");
	assert_true(x->p.flags & LEDGER_PERSON_ERASED);
	assert_true(x->p.facts.opted_out); /* the suppression stays */
	assert_true(x->p.opted_out_at == 1700000001000);
	/* no compliance facts stay: consent without its purpose is no basis */
	assert_int_equal(x->p.facts.mask, LEDGER_F_OPTED_OUT);
	assert_int_equal(x->p.facts.auth_type, 0);
	assert_true(x->p.facts.consent_date == 0);
	assert_string_equal(x->p.facts.purpose, "");
	assert_string_equal(x->r.first_name, "");
	assert_string_equal(x->r.company, "");
	assert_string_equal(x->r.seen.purpose, "");
	assert_int_equal(x->r.seen.mask & ~LEDGER_F_OPTED_OUT, 0);
	assert_int_equal(x->r.written.mask & ~LEDGER_F_OPTED_OUT, 0);
	assert_string_equal(x->c.sf_value, "");
	assert_true(x->ev.erased);
	assert_string_equal(x->ev.reason, "");
	assert_string_equal(x->ev.evidence_ref, "");
	assert_int_equal(x->ev.kind, LEDGER_EV_OPTOUT);
	assert_int_equal(x->push_rc, ERR_NOTFOUND); /* only texts were queued */
	verify_ok(l, 2);
	/* the other person is untouched */
	struct get_ctx g = {.l = l, .email = "bob@example.com"};
	assert_int_equal(ledger_read(l, get_person, &g, &e), 0);
	assert_string_equal(g.p.email, "bob@example.com");
	/* a second erasure is harmless and the chain still holds */
	assert_int_equal(ledger_write(l, erase_it, x, &e), 0);
	verify_ok(l, 2);
	ledger_close(l);
	free(x);
}

struct misc_ctx {
	struct ledger_cursor cur;
	int cur_rc;
	uint64_t changes[4];
	int nchanges;
	struct ledger_conflict c;
	int pushes;
	uint64_t idem;
	int idem_rc;
	struct ledger_stats st;
};

static int fill_misc(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger_cursor c = {1700000000000, "003000000000009AAA", 5, 42, true, 1700000000500};
	int rc = ledger_cursor_put(t, LEDGER_OBJ_LEAD, &c, e);
	for (int i = 0; rc == 0 && i < 3; i++) {
		struct ledger_change ch;
		memset(&ch, 0, sizeof(ch));
		ch.event_seq = (uint64_t)i + 10;
		ch.kind = LEDGER_EV_OPTOUT;
		ch.opted_out = true;
		rc = ledger_change_append(t, &ch, e);
	}
	struct ledger_conflict cf;
	memset(&cf, 0, sizeof(cf));
	cf.kind = LEDGER_CONFLICT_RESUBSCRIBE;
	cf.status = LEDGER_CONFLICT_OPEN;
	cf.record.object = LEDGER_OBJ_LEAD;
	snprintf(cf.record.id, sizeof(cf.record.id), "00Q000000000001AAA");
	snprintf(cf.sf_value, sizeof(cf.sf_value), "false");
	if (rc == 0)
		rc = ledger_conflict_add(t, &cf, e);
	if (rc == 0) {
		cf.status = LEDGER_CONFLICT_RESOLVED;
		snprintf(cf.resolution, sizeof(cf.resolution), "keep_optout");
		snprintf(cf.resolved_by, sizeof(cf.resolved_by), "alice");
		rc = ledger_conflict_put(t, &cf, e);
	}
	for (int i = 0; rc == 0 && i < 3; i++) {
		struct ledger_push q;
		memset(&q, 0, sizeof(q));
		q.record.object = LEDGER_OBJ_CONTACT;
		snprintf(q.record.id, sizeof(q.record.id), "00300000000000%dAAA", i);
		ledger_facts_init(&q.want);
		q.want.mask = LEDGER_F_OPTED_OUT;
		q.want.opted_out = true;
		q.version = 1;
		q.parked = i == 2;
		snprintf(q.last_error, sizeof(q.last_error), "%s",
		         i == 2 ? "ENTITY_IS_DELETED" : "");
		rc = ledger_push_put(t, &q, e);
	}
	if (rc == 0)
		rc = ledger_push_delete(t, LEDGER_OBJ_CONTACT, "003000000000001AAA", e);
	if (rc == 0)
		rc = ledger_idem_put(t, "req-123", 77, 1700000000000, e);
	return rc;
}

static int note_change(const struct ledger_change *c, void *ctx)
{
	struct misc_ctx *m = ctx;
	m->changes[m->nchanges++] = c->seq;
	return 0;
}

static int note_push(const struct ledger_push *p, void *ctx)
{
	struct misc_ctx *m = ctx;
	m->pushes++;
	if (p->parked && strcmp(p->last_error, "ENTITY_IS_DELETED") != 0)
		fail_msg("parked push lost its error");
	return 0;
}

static int read_misc(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct misc_ctx *m = ctx;
	m->cur_rc = ledger_cursor_get(t, LEDGER_OBJ_LEAD, &m->cur, e);
	struct ledger_cursor none;
	if (ledger_cursor_get(t, LEDGER_OBJ_CONTACT, &none, e) != ERR_NOTFOUND)
		fail_msg("a cursor that was never written exists");
	int rc = ledger_change_list(t, 1, 10, note_change, m, e);
	if (rc == 0)
		rc = ledger_conflict_get(t, 1, &m->c, e);
	if (rc == 0)
		rc = ledger_push_each(t, note_push, m, e);
	if (rc == 0)
		m->idem_rc = ledger_idem_get(t, "req-123", &m->idem, e);
	if (rc == 0)
		rc = ledger_stats(t, &m->st, e);
	return rc;
}

static void test_feed_cursors_conflicts_outbox(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct misc_ctx *m = calloc(1, sizeof(*m));
	struct err e = {0};
	assert_int_equal(ledger_write(l, fill_misc, m, &e), 0);
	assert_int_equal(ledger_read(l, read_misc, m, &e), 0);
	assert_int_equal(m->cur_rc, 0);
	assert_true(m->cur.modstamp == 1700000000000);
	assert_string_equal(m->cur.last_id, "003000000000009AAA");
	assert_true(m->cur.full_done);
	assert_true(m->cur.caught_up_at == 1700000000500);
	assert_true(m->cur.pulled == 42);
	assert_int_equal(m->nchanges, 2); /* after 1 */
	assert_true(m->changes[0] == 2 && m->changes[1] == 3);
	assert_int_equal(m->c.status, LEDGER_CONFLICT_RESOLVED);
	assert_string_equal(m->c.resolved_by, "alice");
	assert_string_equal(m->c.record.id, "00Q000000000001AAA");
	assert_int_equal(m->pushes, 2);
	assert_int_equal(m->idem_rc, 0);
	assert_true(m->idem == 77);
	assert_true(m->st.changes == 3 && m->st.conflicts == 1 && m->st.pushes == 2);
	assert_int_equal(m->st.schema_version, LEDGER_SCHEMA_VERSION);
	free(m);
	ledger_close(l);
}

/* Purpose checkboxes on a record, a push and a conflict survive the store. */
struct pflags_ctx {
	struct ledger_record r;
	struct ledger_push q;
	struct ledger_conflict c;
	uint64_t cid;
};

static int put_pflags(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct pflags_ctx *x = ctx;
	memset(&x->r, 0, sizeof(x->r));
	x->r.object = LEDGER_OBJ_LEAD;
	snprintf(x->r.id, sizeof(x->r.id), "00Q000000000042AAA");
	ledger_facts_init(&x->r.seen);
	ledger_facts_init(&x->r.written);
	assert_int_equal(ledger_pflags_set(&x->r.seen_purposes, "newsletter", true), 0);
	assert_int_equal(ledger_pflags_set(&x->r.seen_purposes, "events", false), 0);
	assert_int_equal(ledger_pflags_set(&x->r.seen_purposes, "newsletter", false), 0);
	assert_int_equal(x->r.seen_purposes.n, 2);
	char name[40];
	memset(name, 'a', 33);
	name[33] = '\0';
	assert_int_equal(ledger_pflags_set(&x->r.seen_purposes, name, true), -1); /* too long */
	int rc = ledger_record_put(t, &x->r, e);
	memset(&x->q, 0, sizeof(x->q));
	x->q.record = (struct ledger_recref){LEDGER_OBJ_LEAD, "00Q000000000042AAA"};
	ledger_facts_init(&x->q.want);
	for (int i = 0; i < LEDGER_PFLAGS_MAX; i++) {
		snprintf(name, sizeof(name), "p%02d", i);
		assert_int_equal(ledger_pflags_set(&x->q.want_purposes, name, i % 2), 0);
	}
	assert_int_equal(ledger_pflags_set(&x->q.want_purposes, "one_more", true), -1); /* full */
	if (rc == 0)
		rc = ledger_push_put(t, &x->q, e);
	memset(&x->c, 0, sizeof(x->c));
	x->c.kind = LEDGER_CONFLICT_RESUBSCRIBE;
	x->c.field = LEDGER_F_OPTED_OUT;
	snprintf(x->c.purpose_name, sizeof(x->c.purpose_name), "newsletter");
	if (rc == 0)
		rc = ledger_conflict_add(t, &x->c, e);
	x->cid = x->c.id;
	return rc;
}

static int get_pflags(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct pflags_ctx *x = ctx;
	int rc = ledger_record_get(t, LEDGER_OBJ_LEAD, "00Q000000000042AAA", &x->r, e);
	if (rc == 0)
		rc = ledger_push_get(t, LEDGER_OBJ_LEAD, "00Q000000000042AAA", &x->q, e);
	if (rc == 0)
		rc = ledger_conflict_get(t, x->cid, &x->c, e);
	return rc;
}

static void test_purpose_checkboxes_stored(void **state)
{
	(void)state;
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct pflags_ctx *x = calloc(1, sizeof(*x));
	struct err e = {0};
	assert_int_equal(ledger_write(l, put_pflags, x, &e), 0);
	memset(x, 0xff, sizeof(*x) - sizeof(x->cid));
	assert_int_equal(ledger_read(l, get_pflags, x, &e), 0);
	assert_int_equal(x->r.seen_purposes.n, 2);
	assert_int_equal(ledger_pflags_get(&x->r.seen_purposes, "newsletter"), 0);
	assert_int_equal(ledger_pflags_get(&x->r.seen_purposes, "events"), 0);
	assert_int_equal(ledger_pflags_get(&x->r.seen_purposes, "offers"), -1);
	assert_int_equal(x->q.want_purposes.n, LEDGER_PFLAGS_MAX);
	assert_int_equal(ledger_pflags_get(&x->q.want_purposes, "p15"), 1);
	assert_int_equal(ledger_pflags_get(&x->q.want_purposes, "p14"), 0);
	assert_string_equal(x->c.purpose_name, "newsletter");
	free(x);
	ledger_close(l);
}

static int write_then_fail(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger_cursor c = {123, "", 0, 0, false, 0};
	int rc = ledger_cursor_put(t, LEDGER_OBJ_CONTACT, &c, e);
	if (rc)
		return rc;
	return err_set(e, ERR_INVALID, "the use case changed its mind");
}

static int cursor_absent(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger_cursor c;
	*(int *)ctx = ledger_cursor_get(t, LEDGER_OBJ_CONTACT, &c, e);
	return 0;
}

static void test_failed_txn_leaves_nothing(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct err e = {0};
	assert_int_equal(ledger_write(l, write_then_fail, NULL, &e), ERR_INVALID);
	assert_string_equal(e.msg, "the use case changed its mind");
	int rc = 0;
	assert_int_equal(ledger_read(l, cursor_absent, &rc, &e), 0);
	assert_int_equal(rc, ERR_NOTFOUND);
	ledger_close(l);
}

static void test_schema_newer_and_corrupt(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	put_person(l, "ada@example.com", 1, "0035e00000AbCdEAAA", "r");
	ledger_close(l);
	uint8_t key[32];
	{
		/* the person key, to corrupt its value below */
		l = open_ledger(1 << 20, 1 << 24);
		ledger_person_key(l, "ada@example.com", 15, key);
		ledger_close(l);
	}
	raw_edit("persons", key, 32, garbage);
	l = open_ledger(1 << 20, 1 << 24);
	struct get_ctx g = {.l = l, .email = "ada@example.com"};
	struct err e = {0};
	assert_int_equal(ledger_read(l, get_person, &g, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "corrupt"));
	ledger_close(l);

	raw_edit("meta", "schema", 6, set_schema_99);
	struct ledger_options o = {dir, 1 << 20, 1 << 24, false, false};
	assert_int_equal(ledger_open(&l, &o, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "schema version 99, newer"));

	/* a file that is not an LMDB environment at all */
	char path[128];
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	FILE *f = fopen(path, "w");
	fputs("this is not a database", f);
	fclose(f);
	assert_int_equal(ledger_open(&l, &o, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, dir));
}

struct fill_ctx {
	struct ledger *l;
	int batch;
};

static int fill_batch(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct fill_ctx *f = ctx;
	struct ledger_person *p = calloc(1, sizeof(*p));
	int rc = 0;
	for (int i = 0; rc == 0 && i < 100; i++) {
		char email[64];
		snprintf(email, sizeof(email), "grow%d-%d@example.com", f->batch, i);
		ledger_person_key(f->l, email, strlen(email), p->key);
		snprintf(p->email, sizeof(p->email), "%s", email);
		ledger_facts_init(&p->facts);
		memset(p->facts.purpose, 'x', 600); /* make the map fill quickly */
		p->facts.purpose[600] = '\0';
		p->facts.mask = LEDGER_F_PURPOSE;
		rc = ledger_person_put(t, p, e);
	}
	free(p);
	return rc;
}

static int count_persons(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger_stats st;
	int rc = ledger_stats(t, &st, e);
	((uint64_t *)ctx)[0] = st.persons;
	((uint64_t *)ctx)[1] = st.map_size;
	return rc;
}

static void test_map_growth_and_limit(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 4 << 20);
	struct fill_ctx f = {l, 0};
	struct err e = {0};
	int rc;
	int written = 0;
	uint64_t st[2];
	while ((rc = ledger_write(l, fill_batch, &f, &e)) == 0) {
		written++;
		f.batch++;
		assert_true(written < 1000);
	}
	assert_int_equal(rc, ERR_LEDGER);
	assert_non_null(strstr(e.msg, "is full"));
	assert_non_null(strstr(e.msg, "max_map_size"));
	assert_int_equal(ledger_read(l, count_persons, st, &e), 0);
	assert_true(st[0] == (uint64_t)written * 100); /* nothing acknowledged was lost */
	assert_true(st[1] == 4 << 20);                 /* it grew to the limit */
	assert_true(written > 10);                     /* well past the first 1 MiB */
	ledger_close(l);
	/* reopening with a larger limit lets writes go on */
	l = open_ledger(1 << 20, 16 << 20);
	f.l = l;
	assert_int_equal(ledger_write(l, fill_batch, &f, &e), 0);
	assert_int_equal(ledger_read(l, count_persons, st, &e), 0);
	assert_true(st[0] == (uint64_t)(written + 1) * 100);
	ledger_close(l);
}

static uint64_t data_size(void)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/* Other processes open the ledger with a map_size smaller than the file a
 * writer has grown, read and write beside it: the file never shrinks (with
 * MDB_WRITEMAP LMDB sets the file's length to the map of whoever opens it),
 * the writer never dies of SIGBUS, and every write of every process is
 * there at the end. */
static void test_open_never_shrinks(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 64 << 20);
	struct fill_ctx f = {l, 0};
	struct err e = {0};
	uint64_t st[2];
	do {
		assert_int_equal(ledger_write(l, fill_batch, &f, &e), 0);
		f.batch++;
		assert_int_equal(ledger_read(l, count_persons, st, &e), 0);
	} while (st[1] < (4u << 20));
	uint64_t size = data_size(), children = 0;
	pid_t pids[8];
	for (int c = 0; c < 8; c++) {
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0) {
			struct ledger_options o = {dir, 1 << 20, 64 << 20, false, false};
			struct ledger *cl;
			struct err ce = {0};
			if (ledger_open(&cl, &o, &ce)) {
				fprintf(stderr, "child open: %s\n", ce.msg);
				_exit(10);
			}
			uint64_t cs[2];
			struct fill_ctx cf = {cl, 100000 + c};
			int bad = ledger_read(cl, count_persons, cs, &ce) != 0;
			if (c % 2 == 0) /* half of them write too */
				for (int i = 0; !bad && i < 20; i++, cf.batch += 100)
					bad = ledger_write(cl, fill_batch, &cf, &ce) != 0;
			if (bad)
				fprintf(stderr, "child: %s\n", ce.msg);
			ledger_close(cl);
			_exit(bad ? 11 : 0);
		}
		if (c % 2 == 0)
			children += 20;
	}
	/* the parent writes on while they run */
	for (int i = 0; i < 40; i++, f.batch++) {
		assert_int_equal(ledger_write(l, fill_batch, &f, &e), 0);
		uint64_t now = data_size();
		assert_true(now >= size);
		size = now;
	}
	for (int c = 0; c < 8; c++) {
		int status;
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_true(data_size() >= size);
	assert_int_equal(ledger_read(l, count_persons, st, &e), 0);
	assert_true(st[0] == ((uint64_t)f.batch + children) * 100);
	ledger_close(l);
	/* a later open with the small map_size keeps the file as it is */
	size = data_size();
	l = open_ledger(1 << 20, 64 << 20);
	assert_true(data_size() == size);
	assert_int_equal(ledger_read(l, count_persons, st, &e), 0);
	assert_true(st[1] == size);
	ledger_close(l);
}

/* ---- the trees' check ---- */

static void flip(const char *path, long off, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= mask;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static uint16_t page_flags(const char *path, long pg)
{
	int fd = open(path, O_RDONLY);
	uint8_t h[16] = {0};
	assert_int_equal(pread(fd, h, 16, pg * 4096), 16);
	close(fd);
	return (uint16_t)(h[10] | h[11] << 8);
}

/* Damage inside B-tree pages (headers, node offsets, keys, child page
 * numbers) is found by the walk and named; no flip makes it crash; a ledger
 * whose trees are damaged is not backed up. */
static void test_trees_damage(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 64 << 20);
	struct fill_ctx f = {l, 0};
	struct err e = {0};
	for (int i = 0; i < 30; i++, f.batch++)
		assert_int_equal(ledger_write(l, fill_batch, &f, &e), 0);
	struct ledger_tree_report rep;
	assert_int_equal(ledger_check_trees(l, &rep, &e), 0);
	assert_true(rep.tables >= 9);
	assert_true(rep.entries >= 3000);
	assert_true(rep.pages > 100);
	assert_int_equal(rep.leaked_pages, 0);
	assert_true(rep.free_pages > 0);
	/* a compacted copy has no free pages: every branch and leaf in it is
	 * in a tree, so a flip in any of them is damage */
	char data[200], bak[160], copy[160];
	struct ledger_backup_info info;
	struct ledger_verify_report vrep;
	snprintf(bak, sizeof(bak), "%s.bak", dir);
	snprintf(copy, sizeof(copy), "%s.copy", dir);
	snprintf(data, sizeof(data), "%s/data.mdb", copy);
	assert_int_equal(ledger_backup(l, bak, &info, &e), 0);
	ledger_close(l);
	struct ledger_options co = {copy, 1 << 20, 64 << 20, true, false};
	assert_int_equal(ledger_restore(bak, &co, &info, &vrep, &e), 0);
	assert_int_equal(ledger_check_file(data, &rep, &e), 0);
	assert_int_equal(rep.free_pages, 0);
	struct stat st;
	assert_int_equal(stat(data, &st), 0);
	long npages = (long)(st.st_size / 4096);
	/* which pages are branches and leaves */
	long leafs[64], branches[16];
	int nl = 0, nb = 0;
	for (long pg = 2; pg < npages; pg++) {
		uint16_t fl = page_flags(data, pg) & ~0x10;
		if (fl == 0x02 && nl < 64)
			leafs[nl++] = pg;
		else if (fl == 0x01 && nb < 16)
			branches[nb++] = pg;
	}
	assert_true(nl > 8 && nb > 0);
	/* each structural flip, undone after it is checked */
	struct {
		long off;
		uint8_t mask;
		const char *what;
	} flips[] = {
	    {10, 0x04, "not a branch or leaf"}, /* the page's kind */
	    {0, 0x01, "its header says page"},  /* its number */
	    {12, 0x40, "page"},                 /* lower: more nodes than there are */
	    {14, 0x80, "page"},                 /* upper */
	    {16, 0x01, "outside the page"},     /* the first node's offset: odd */
	};
	long targets[] = {leafs[nl / 2], branches[0]};
	for (size_t t = 0; t < 2; t++)
		for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
			long off = targets[t] * 4096 + flips[i].off;
			flip(data, off, flips[i].mask);
			if (ledger_check_file(data, &rep, &e) != ERR_LEDGER)
				fail_msg("page %ld flip %zu not found", targets[t], i);
			if (strstr(e.msg, flips[i].what) == NULL)
				fail_msg("page %ld flip %zu: %s", targets[t], i, e.msg);
			assert_non_null(strstr(e.msg, "damaged"));
			assert_non_null(strstr(rep.damage, "page"));
			flip(data, off, flips[i].mask);
		}
	assert_int_equal(ledger_check_file(data, &rep, &e), 0);
	/* a child page number in a branch: the node's low word */
	{
		int fd = open(data, O_RDONLY);
		uint8_t pgb[4096];
		assert_int_equal(pread(fd, pgb, 4096, branches[0] * 4096), 4096);
		close(fd);
		unsigned nodeoff = pgb[18] | pgb[19] << 8; /* the second node */
		long off = branches[0] * 4096 + nodeoff;
		flip(data, off, 0x7f);
		assert_int_equal(ledger_check_file(data, &rep, &e), ERR_LEDGER);
		flip(data, off, 0x7f);
	}
	/* random flips anywhere in tree pages: never a crash, and most found */
	unsigned seed = 12345, found = 0, tries = 400;
	for (unsigned i = 0; i < tries; i++) {
		seed = seed * 1103515245u + 12345u;
		long pg = (seed >> 8) % 2 ? leafs[(seed >> 12) % nl] : branches[(seed >> 12) % nb];
		seed = seed * 1103515245u + 12345u;
		long off = pg * 4096 + (long)((seed >> 8) % 4096);
		uint8_t mask = (uint8_t)(1u << ((seed >> 20) % 8));
		flip(data, off, mask);
		int rc = ledger_check_file(data, &rep, &e);
		assert_true(rc == 0 || rc == ERR_LEDGER);
		found += rc == ERR_LEDGER;
		flip(data, off, mask);
	}
	print_message("random flips in tree pages found: %u of %u\n", found, tries);
	assert_int_equal(ledger_check_file(data, &rep, &e), 0);
	/* damaged: no backup is written, and the open ledger says so too */
	flip(data, leafs[1] * 4096 + 10, 0x04);
	co.create = false;
	assert_int_equal(ledger_open(&l, &co, &e), 0);
	assert_int_equal(ledger_check_trees(l, &rep, &e), ERR_LEDGER);
	unlink(bak);
	assert_int_equal(ledger_backup(l, bak, &info, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "no backup was written"));
	assert_int_not_equal(access(bak, F_OK), 0);
	ledger_close(l);
	unlink(data);
	char lockf[200];
	snprintf(lockf, sizeof(lockf), "%s/lock.mdb", copy);
	unlink(lockf);
	snprintf(lockf, sizeof(lockf), "%s/map.lock", copy);
	unlink(lockf);
	rmdir(copy);
}

static void test_sync_lock(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	char path[128];
	snprintf(path, sizeof(path), "%s/sync.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "4242\n", 5), 5); /* as an older optsync wrote it */
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	struct err e = {0};
	assert_int_equal(ledger_sync_lock(l, "optsync sync", &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "locked by another sync: another optsync (pid 4242)"));
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, "4343 optsync run\n", 17, 0), 17);
	assert_int_equal(ledger_sync_lock(l, "optsync sync", &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "locked by another sync: optsync run (pid 4343)"));
	close(fd);
	assert_int_equal(ledger_sync_lock(l, "optsync run", &e), 0);
	/* the holder names itself for the next one to be refused */
	char buf[64] = "", want[64];
	fd = open(path, O_RDONLY);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	snprintf(want, sizeof(want), "%ld optsync run\n", (long)getpid());
	assert_string_equal(buf, want);
	ledger_sync_unlock(l);
	ledger_close(l);
}

static void test_enum_names(void **state)
{
	assert_string_equal(ledger_auth_name(LEDGER_AUTH_LEGITIMATE_INTEREST),
	                    "legitimate_interest");
	assert_int_equal(ledger_auth_parse("public_interest"), LEDGER_AUTH_PUBLIC_INTEREST);
	assert_int_equal(ledger_auth_parse("Consent"), -1);
	assert_null(ledger_auth_name(0));
	assert_null(ledger_auth_name(99));
	assert_string_equal(ledger_source_name(LEDGER_SOURCE_BROWSER_EXTENSION),
	                    "browser_extension");
	assert_int_equal(ledger_object_parse("Lead"), LEDGER_OBJ_LEAD);
	assert_string_equal(ledger_event_kind_name(LEDGER_EV_ERASURE), "erasure");
}

/* ---- retention ---- */

struct ret_ctx {
	struct ledger *l;
	struct ledger_retention r;
	struct ledger_retention_report rep;
	int n; /* events listed */
	int64_t at[8];
	int found[4];       /* persons present after the run */
	uint64_t conflicts; /* conflicts left */
	int hooked;         /* the hook ran (in the write transaction) */
};

static int ret_person(struct ledger_txn *t, struct ledger *l, const char *email, int opted_out,
                      int records, int64_t updated, const int64_t *times, int ntimes, struct err *e)
{
	struct ledger_person *p = calloc(1, sizeof(*p));
	struct ledger_event *ev = calloc(1, sizeof(*ev));
	ledger_person_key(l, email, strlen(email), p->key);
	snprintf(p->email, sizeof(p->email), "%s", email);
	ledger_facts_init(&p->facts);
	p->facts.mask = LEDGER_F_OPTED_OUT;
	p->facts.opted_out = opted_out;
	p->updated_at = updated;
	int rc = 0;
	if (records) {
		struct ledger_recref ref = {LEDGER_OBJ_CONTACT, ""};
		snprintf(ref.id, sizeof(ref.id), "003%.15s", email);
		rc = ledger_person_record_add(t, p, &ref, e);
	}
	if (rc == 0)
		rc = ledger_person_put(t, p, e);
	for (int i = 0; rc == 0 && i < ntimes; i++) {
		ledger_event_init(ev);
		ev->at = times[i];
		ev->kind = LEDGER_EV_AUTHORIZATION;
		ev->origin = LEDGER_ORIGIN_LOCAL;
		snprintf(ev->reason, sizeof(ev->reason), "event %d of %s", i, email);
		rc = ledger_event_append(t, p, ev, e);
	}
	free(p);
	free(ev);
	return rc;
}

static int ret_setup(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger *l = ((struct ret_ctx *)ctx)->l;
	static const int64_t t_out[] = {1000, 2000}, t_in[] = {1000, 2000, 9000},
	                     t_stale[] = {1000}, t_fresh[] = {1500};
	int rc = ret_person(t, l, "out@x.org", 1, 0, 1000, t_out, 2, e);
	if (rc == 0)
		rc = ret_person(t, l, "in@x.org", 0, 1, 9000, t_in, 3, e);
	if (rc == 0)
		rc = ret_person(t, l, "stale@x.org", 0, 0, 1000, t_stale, 1, e);
	if (rc == 0)
		rc = ret_person(t, l, "fresh@x.org", 0, 0, 9000, t_fresh, 1, e);
	static const struct {
		uint8_t status;
		int64_t resolved;
	} cs[] = {{LEDGER_CONFLICT_RESOLVED, 1000},
	          {LEDGER_CONFLICT_RESOLVED, 9000},
	          {LEDGER_CONFLICT_OPEN, 0}};
	for (size_t i = 0; rc == 0 && i < 3; i++) {
		struct ledger_conflict *c = calloc(1, sizeof(*c));
		c->kind = LEDGER_CONFLICT_CONCURRENT;
		c->status = cs[i].status;
		c->detected_at = 1000;
		c->resolved_at = cs[i].resolved;
		rc = ledger_conflict_add(t, c, e);
		free(c);
	}
	return rc;
}

static int ret_hook(struct ledger_txn *t, const struct ledger_retention_report *rep, void *ctx,
                    struct err *e)
{
	(void)t, (void)rep, (void)e;
	((struct ret_ctx *)ctx)->hooked++;
	return 0;
}

static int ret_run(struct ret_ctx *c)
{
	struct err e = {0};
	int rc = ledger_retention(c->l, &c->r, ret_hook, c, &c->rep, &e);
	if (rc)
		fail_msg("retention: %s", e.msg);
	return rc;
}

static int ret_collect(const struct ledger_event *ev, void *ctx)
{
	struct ret_ctx *c = ctx;
	c->at[c->n++] = ev->at;
	return 0;
}

static int ret_count_conflict(const struct ledger_conflict *cf, void *ctx)
{
	(void)cf;
	((struct ret_ctx *)ctx)->conflicts++;
	return 0;
}

static int ret_check(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ret_ctx *c = ctx;
	static const char *const emails[] = {"out@x.org", "in@x.org", "stale@x.org", "fresh@x.org"};
	struct ledger_person *p = malloc(sizeof(*p));
	uint8_t key[32];
	int rc = 0;
	for (int i = 0; rc == 0 && i < 4; i++) {
		ledger_person_key(c->l, emails[i], strlen(emails[i]), key);
		rc = ledger_person_get(t, key, p, e);
		c->found[i] = rc == 0;
		if (rc == ERR_NOTFOUND)
			rc = 0;
	}
	c->n = 0;
	if (rc == 0) {
		ledger_person_key(c->l, "in@x.org", 8, key);
		rc = ledger_event_each_of(t, key, ret_collect, c, e);
	}
	c->conflicts = 0;
	if (rc == 0)
		rc = ledger_conflict_each(t, ret_count_conflict, c, e);
	free(p);
	return rc;
}

/* Turn event 1 (kept: an opted-out person's) into a well-formed stub of
 * the retention run: only the count in the run's event can tell. */
static uint64_t forged_run;
static uint8_t forged_hash[32];
static void forge_stub(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	(void)v;
	uint8_t buf[128];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	enc_hash(&en, 14, forged_hash);
	enc_uint(&en, 15, forged_run);
	MDB_val nv = {en.len, buf};
	assert_int_equal(mdb_put(txn, dbi, k, &nv, 0), 0);
}

static void grab_prev_hash(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	(void)txn, (void)dbi, (void)k;
	struct dec d;
	struct field f;
	assert_int_equal(dec_init(&d, v->mv_data, v->mv_size), 0);
	while (dec_next(&d, &f) == 1)
		if (f.num == 9)
			memcpy(forged_hash, f.data, 32); /* H(1), as event 2 links to it */
}

static void test_retention(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct ret_ctx *c = calloc(1, sizeof(*c));
	c->l = l;
	struct err e = {0};
	assert_int_equal(ledger_write(l, ret_setup, c, &e), 0);
	verify_ok(l, 7);
	c->r = (struct ledger_retention){5000, 5000, 5000, true, 10000, "test"};
	assert_int_equal(ret_run(c), 0); /* a dry run reads only */
	assert_int_equal(c->hooked, 0);
	assert_true(c->rep.events == 4 && c->rep.persons == 1 && c->rep.conflicts == 1);
	assert_true(c->rep.event_seq == 0);
	verify_ok(l, 7);
	assert_int_equal(ledger_read(l, ret_check, c, &e), 0);
	assert_int_equal(c->n, 3);
	c->r.dry_run = false;
	assert_int_equal(ret_run(c), 0);
	assert_int_equal(c->hooked, 1);
	assert_true(c->rep.events == 4 && c->rep.persons == 1 && c->rep.conflicts == 1);
	assert_true(c->rep.event_seq == 8);
	struct ledger_verify_report rep;
	assert_int_equal(ledger_verify(l, &rep, &e), 0);
	assert_true(rep.events == 8 && rep.purged == 4);
	assert_int_equal(ledger_read(l, ret_check, c, &e), 0);
	assert_true(c->found[0] && c->found[1] && !c->found[2] && c->found[3]);
	assert_int_equal(c->n, 1); /* in@x.org keeps its newer event only */
	assert_true(c->at[0] == 9000);
	assert_true(c->conflicts == 2); /* the open one and the recent one */
	/* (the opted-out person's two old events are among the 8 verified,
	 * not among the 4 purged) a second run finds nothing and writes no event */
	assert_int_equal(ret_run(c), 0);
	assert_int_equal(c->hooked, 2); /* the caller's bookkeeping runs anyway */
	assert_true(c->rep.events == 0 && c->rep.persons == 0 && c->rep.event_seq == 0);
	verify_ok(l, 8);
	ledger_close(l);
	/* a kept event turned into a stub naming the run is caught by the count */
	uint8_t k1[8] = {0, 0, 0, 0, 0, 0, 0, 1}, k2[8] = {0, 0, 0, 0, 0, 0, 0, 2};
	forged_run = 8;
	raw_edit("history", k2, 8, grab_prev_hash);
	raw_edit("history", k1, 8, forge_stub);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 8);
	assert_non_null(strstr(e.msg, "purged 4 events, but 5 purged events name it"));
	ledger_close(l);
	free(c);
}

/* ---- the chain's hash over the bytes stored ----
 *
 * The hash as docs/ledger-format.md gives it, written again here, so that a
 * test can store what a later optsync would (fields this one does not know)
 * and link it into the chain as that optsync would. */

struct val {
	uint8_t b[2 * CODEC_MAX];
	size_t n;
};

struct rawf {
	unsigned num;
	size_t at, len;       /* the whole field: tag, length, bytes */
	size_t data, datalen; /* its bytes (a number: none) */
	uint64_t u;
};

static size_t rawf_list(const struct val *v, struct rawf *out, size_t cap)
{
	struct dec d;
	struct field f;
	assert_int_equal(dec_init(&d, v->b, v->n), 0);
	size_t k = 0;
	const uint8_t *at = d.p;
	while (dec_next(&d, &f) == 1) {
		assert_true(k < cap);
		out[k++] = (struct rawf){f.num,
		                         (size_t)(at - v->b),
		                         (size_t)(d.p - at),
		                         f.data ? (size_t)(f.data - v->b) : 0,
		                         f.len,
		                         f.u};
		at = d.p;
	}
	assert_true(d.p == d.end);
	return k;
}

/* the index of field num in v's list, -1 when it has none */
static int rawf_find(const struct val *v, unsigned num, struct rawf *f)
{
	struct rawf all[64];
	size_t n = rawf_list(v, all, 64);
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < n; i++)
		if (all[i].num == num) {
			*f = all[i];
			return (int)i;
		}
	return -1;
}

static void val_splice(struct val *v, size_t at, size_t cut, const void *p, size_t n)
{
	assert_true(at + cut <= v->n && v->n - cut + n <= sizeof(v->b));
	memmove(v->b + at + n, v->b + at + cut, v->n - at - cut);
	memcpy(v->b + at, p, n);
	v->n = v->n - cut + n;
}

/* a field as the codec writes it (numbers below 64, bytes below 128) */
static size_t raw_field(uint8_t *out, unsigned num, unsigned wire, const void *p, size_t n)
{
	assert_true(num < 64 && n < 128);
	out[0] = (uint8_t)(num << 2 | wire);
	if (wire == W_HASH) {
		memcpy(out + 1, p, 32);
		return 33;
	}
	out[1] = (uint8_t)n;
	memcpy(out + 2, p, n);
	return 2 + n;
}

static void val_drop(struct val *v, unsigned num)
{
	struct rawf f;
	while (rawf_find(v, num, &f) >= 0)
		val_splice(v, f.at, f.len, "", 0);
}

/* insert a field before the first of those numbered before (or at the
 * end) */
static void val_add(struct val *v, unsigned before, const uint8_t *field, size_t n)
{
	struct rawf f;
	val_splice(v, rawf_find(v, before, &f) >= 0 ? f.at : v->n, 0, field, n);
}

/* a field appended inside the personal part (field 10) */
static void val_add_personal(struct val *v, const uint8_t *field, size_t n)
{
	struct rawf f;
	assert_true(rawf_find(v, 10, &f) >= 0);
	uint8_t part[256];
	assert_true(f.datalen + n < 128);
	memcpy(part, v->b + f.data, f.datalen);
	memcpy(part + f.datalen, field, n);
	uint8_t whole[260];
	size_t wl = raw_field(whole, 10, W_BYTES, part, f.datalen + n);
	val_splice(v, f.at, f.len, whole, wl);
}

static int holds(const uint8_t *p, size_t n, const char *s)
{
	for (size_t sl = strlen(s), i = 0; i + sl <= n; i++)
		if (memcmp(p + i, s, sl) == 0)
			return 1;
	return 0;
}

static void sha(const void *p, size_t n, uint8_t out[32])
{
	assert_int_equal(EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL), 1);
}

/* H(seq): version 2 when the event holds field 20, else version 1 (these
 * tests' version-1 events hold only the fields optsync knows, in the order
 * it writes them, so the stored bytes without fields 9, 10 and 11 are the
 * public encoding version 1 hashes) */
static void doc_hash(uint64_t seq, const struct val *v, uint8_t out[32])
{
	struct rawf all[64];
	size_t n = rawf_list(v, all, 64);
	static uint8_t buf[16 + 8 + 32 + 32 + sizeof(((struct val *)0)->b)];
	uint8_t prev[32] = {0}, pd[32], part[1 + CODEC_MAX] = {1};
	const struct rawf *personal = NULL, *digest = NULL;
	int v2 = 0;
	size_t o = 16 + 8 + 32 + 32;
	buf[o++] = v->b[0]; /* the version byte */
	for (size_t i = 0; i < n; i++) {
		const struct rawf *f = &all[i];
		if (f->num == 9)
			memcpy(prev, v->b + f->data, 32);
		else if (f->num == 10)
			personal = f;
		else if (f->num == 11)
			digest = f;
		else {
			v2 |= f->num == 20;
			memcpy(buf + o, v->b + f->at, f->len);
			o += f->len;
		}
	}
	/* the personal digest: of field 10's bytes (version 1: after a
	 * version byte 1) */
	size_t pl = personal ? personal->datalen : 0;
	if (personal)
		memcpy(part + 1, v->b + personal->data, pl);
	if (digest)
		memcpy(pd, v->b + digest->data, 32);
	else
		sha(v2 ? part + 1 : part, v2 ? pl : pl + 1, pd);
	memcpy(buf, v2 ? "optsync-event-v2" : "optsync-event-v1", 16);
	for (int i = 0; i < 8; i++)
		buf[16 + i] = (uint8_t)(seq >> (56 - 8 * i));
	memcpy(buf + 24, prev, 32);
	memcpy(buf + 56, pd, 32);
	sha(buf, o, out);
}

/* Rewrite every history event as edit says (NULL: as it is), then link the
 * chain again as a writer would: each event's field 9 the hash of the one
 * before, stubs keeping theirs, and the chain head the last one's. */
static void relink(void (*edit)(uint64_t seq, struct val *v))
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi hist, meta;
	MDB_cursor *c;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "history", 0, &hist), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_cursor_open(txn, hist, &c), 0);
	static struct val v;
	static const uint8_t zero[32];
	uint8_t running[32] = {0};
	uint64_t seq = 0;
	MDB_val k, d;
	for (int op = MDB_FIRST; mdb_cursor_get(c, &k, &d, op) == 0; op = MDB_NEXT) {
		seq = 0;
		for (int i = 0; i < 8; i++)
			seq = seq << 8 | ((uint8_t *)k.mv_data)[i];
		memcpy(v.b, d.mv_data, d.mv_size);
		v.n = d.mv_size;
		struct rawf f;
		if (rawf_find(&v, 14, &f) < 0 && edit)
			edit(seq, &v);
		val_drop(&v, 9);
		if (memcmp(running, zero, 32) != 0) {
			uint8_t f9[33];
			size_t n = raw_field(f9, 9, W_HASH, running, 32);
			val_add(&v, rawf_find(&v, 10, &f) >= 0 ? 10 : 11, f9, n);
		}
		if (rawf_find(&v, 14, &f) >= 0)
			memcpy(running, v.b + f.data, 32);
		else
			doc_hash(seq, &v, running);
		uint8_t kb[8]; /* k points into the page the put changes */
		memcpy(kb, k.mv_data, 8);
		MDB_val nk = {8, kb}, nd = {v.n, v.b};
		assert_int_equal(mdb_cursor_put(c, &nk, &nd, MDB_CURRENT), 0);
	}
	mdb_cursor_close(c);
	uint8_t head[40];
	for (int i = 0; i < 8; i++)
		head[i] = (uint8_t)(seq >> (56 - 8 * i));
	memcpy(head + 8, running, 32);
	MDB_val hk = {10, "chain_head"}, hv = {40, head};
	assert_int_equal(mdb_put(txn, meta, &hk, &hv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* the stored bytes of event seq, and their replacement */
static struct val *got_val;
static void take_val(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	(void)txn, (void)dbi, (void)k;
	memcpy(got_val->b, v->mv_data, v->mv_size);
	got_val->n = v->mv_size;
}

static void give_val(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	(void)v;
	MDB_val nv = {got_val->n, got_val->b};
	assert_int_equal(mdb_put(txn, dbi, k, &nv, 0), 0);
}

static void event_val(uint64_t seq, struct val *v, int put)
{
	uint8_t k[8];
	for (int i = 0; i < 8; i++)
		k[i] = (uint8_t)(seq >> (56 - 8 * i));
	got_val = v;
	raw_edit("history", k, 8, put ? give_val : take_val);
}

static const char later_public[] = "a field of a later optsync";
static const char later_personal[] = "a later optsync's personal text";

static void add_later_fields(uint64_t seq, struct val *v)
{
	uint8_t f[64];
	if (seq == 2 || seq == 3)
		val_add(v, 9, f, raw_field(f, 30, W_BYTES, later_public, strlen(later_public)));
	if (seq == 2)
		val_add_personal(v, f,
		                 raw_field(f, 31, W_BYTES, later_personal, strlen(later_personal)));
}

static void strip_version(uint64_t seq, struct val *v)
{
	(void)seq;
	val_drop(v, 20);
}

static const char *erase_email;
static int erase_one(struct ledger_txn *t, void *ctx, struct err *e)
{
	uint8_t key[32];
	ledger_person_key(ctx, erase_email, strlen(erase_email), key);
	return ledger_person_erase(t, key, e);
}

static void erase_person(struct ledger *l, const char *email)
{
	struct err e = {0};
	erase_email = email;
	if (ledger_write(l, erase_one, l, &e))
		fail_msg("erase: %s", e.msg);
}

/* a retention run purging the events before 1700000004000 of persons not
 * opted out (put_person's are at 1700000003000) */
static uint64_t purge_old(struct ledger *l)
{
	struct ledger_retention r = {0, 1700000004000, 0, false, 1700000005000, "test"};
	struct ledger_retention_report rep;
	struct err e = {0};
	if (ledger_retention(l, &r, NULL, NULL, &rep, &e))
		fail_msg("retention: %s", e.msg);
	return rep.events;
}

static void verify_purged(struct ledger *l, uint64_t events, uint64_t purged)
{
	struct ledger_verify_report rep;
	struct err e = {0};
	if (ledger_verify(l, &rep, &e))
		fail_msg("verify: %s", e.msg);
	assert_true(rep.events == events && rep.purged == purged);
}

static uint64_t field_u(const struct val *v, unsigned num)
{
	struct rawf f;
	return rawf_find(v, num, &f) >= 0 ? f.u : 0;
}

static void test_hash_covers_unknown_fields(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	put_person(l, "ada@example.com", 1, "003000000000001AAA", "r1");
	put_person(l, "bob@example.com", 0, "003000000000002AAA", "r2");
	put_person(l, "cy@example.com", 1, "003000000000003AAA", "r3");
	ledger_close(l);
	/* this optsync writes hash version 2, and the hash is the documented one */
	static struct val v, keep;
	event_val(1, &v, 0);
	assert_true(field_u(&v, 20) == 2);
	relink(NULL);
	l = open_ledger(1 << 20, 1 << 24);
	verify_ok(l, 3);
	ledger_close(l);

	/* events 2 and 3 as a later optsync would store them: a public field
	 * and (event 2) a personal field that this optsync does not know */
	relink(add_later_fields);
	l = open_ledger(1 << 20, 1 << 24);
	verify_ok(l, 3);
	/* erasure keeps every public byte, and stores the digest of the
	 * personal part as it was stored */
	event_val(2, &v, 0);
	struct rawf f;
	assert_true(rawf_find(&v, 10, &f) >= 0);
	assert_true(holds(v.b + f.data, f.datalen, later_personal));
	uint8_t pd[32];
	sha(v.b + f.data, f.datalen, pd);
	erase_person(l, "bob@example.com");
	verify_ok(l, 3);
	event_val(2, &v, 0);
	assert_int_equal(rawf_find(&v, 10, &f), -1);
	assert_true(rawf_find(&v, 11, &f) >= 0);
	assert_memory_equal(v.b + f.data, pd, 32);
	assert_true(rawf_find(&v, 30, &f) >= 0);
	assert_memory_equal(v.b + f.data, later_public, strlen(later_public));
	/* a retention run stubs event 2 with its hash */
	assert_true(purge_old(l) == 1);
	verify_purged(l, 4, 1);
	ledger_close(l);

	/* altering the unknown field is tampering */
	event_val(3, &keep, 0);
	v = keep;
	assert_true(rawf_find(&v, 30, &f) >= 0);
	v.b[f.data + 3] ^= 0x20;
	event_val(3, &v, 1);
	l = open_ledger(1 << 20, 1 << 24);
	struct ledger_verify_report rep;
	struct err e = {0};
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 3);
	assert_non_null(strstr(e.msg, "history chain broken at event 3"));
	ledger_close(l);
	/* so is dropping it, or repeating a field that is outside the hash */
	v = keep;
	val_drop(&v, 30);
	event_val(3, &v, 1);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 3);
	ledger_close(l);
	v = keep;
	assert_true(rawf_find(&v, 10, &f) >= 0);
	uint8_t f10[64];
	memcpy(f10, v.b + f.at, f.len);
	val_add(&v, 9, f10, f.len);
	event_val(3, &v, 1);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 3);
	assert_non_null(strstr(rep.why, "repeated"));
	ledger_close(l);
	/* and an event claiming a version this optsync does not know is not a
	 * verdict on the chain: it says to upgrade */
	v = keep;
	val_drop(&v, 20);
	uint8_t f20[2] = {20 << 2 | W_UINT, 3};
	val_add(&v, 9, f20, 2);
	event_val(3, &v, 1);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 0);
	assert_non_null(strstr(e.msg, "newer optsync"));
	assert_null(strstr(e.msg, "broken"));
	ledger_close(l);
	/* a version field saying 1 is not a way to the version-1 hash (which
	 * leaves out the fields it does not know) */
	v = keep;
	val_drop(&v, 20);
	f20[1] = 1;
	val_add(&v, 9, f20, 2);
	event_val(3, &v, 1);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 3);
	assert_non_null(strstr(rep.why, "not one optsync writes"));
	ledger_close(l);
	event_val(3, &keep, 1);
	l = open_ledger(1 << 20, 1 << 24);
	verify_purged(l, 4, 1);
	ledger_close(l);
}

struct schema_ctx {
	struct ledger_stats st;
};

static int read_stats(struct ledger_txn *t, void *ctx, struct err *e)
{
	return ledger_stats(t, &((struct schema_ctx *)ctx)->st, e);
}

static void set_schema_2(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	(void)v;
	uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 2};
	MDB_val nv = {8, b};
	assert_int_equal(mdb_put(txn, dbi, k, &nv, 0), 0);
}

static void test_hash_v1_events(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	put_person(l, "ada@example.com", 1, "003000000000001AAA", "r1");
	put_person(l, "bob@example.com", 0, "003000000000002AAA", "r2");
	put_person(l, "cy@example.com", 1, "003000000000003AAA", "r3");
	ledger_close(l);
	/* a schema-2 ledger as optsync wrote it before: version-1 hashes */
	relink(strip_version);
	raw_edit("meta", "schema", 6, set_schema_2);
	struct ledger_options o = {dir, 1 << 20, 1 << 24, false, true};
	struct err e = {0};
	if (ledger_open(&l, &o, &e))
		fail_msg("open: %s", e.msg);
	struct schema_ctx sc;
	assert_int_equal(ledger_read(l, read_stats, &sc, &e), 0);
	assert_int_equal(sc.st.schema_version, LEDGER_SCHEMA_VERSION);
	verify_ok(l, 3);
	/* new events are of version 2, after the old ones */
	put_person(l, "dan@example.com", 0, "003000000000004AAA", "r4");
	verify_ok(l, 4);
	ledger_close(l);
	static struct val v;
	event_val(3, &v, 0);
	assert_true(field_u(&v, 20) == 0);
	event_val(4, &v, 0);
	assert_true(field_u(&v, 20) == 2);
	/* erasure and retention of a version-1 event keep its hash */
	l = open_ledger(1 << 20, 1 << 24);
	erase_person(l, "bob@example.com");
	verify_ok(l, 4);
	assert_true(purge_old(l) == 2); /* bob's (version 1) and dan's (2) */
	verify_purged(l, 5, 2);
	ledger_close(l);
	/* an altered version-1 event is caught as before */
	uint8_t k3[8] = {0, 0, 0, 0, 0, 0, 0, 3};
	raw_edit("history", k3, 8, flip_byte);
	l = open_ledger(1 << 20, 1 << 24);
	struct ledger_verify_report rep;
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 3);
	ledger_close(l);
	/* and so is a version-2 event passed off as one of version 1 */
	raw_edit("history", k3, 8, flip_byte);
	event_val(5, &v, 0);
	val_drop(&v, 20);
	event_val(5, &v, 1);
	l = open_ledger(1 << 20, 1 << 24);
	assert_int_equal(ledger_verify(l, &rep, &e), ERR_LEDGER);
	assert_true(rep.first_bad == 5);
	ledger_close(l);
}

/* ---- meta values: a cap, never a cut ---- */

static int meta_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	size_t len = *(size_t *)ctx;
	char *v = malloc(len + 1);
	memset(v, 'x', len);
	int rc = ledger_meta_put(t, "big", v, len, e);
	free(v);
	return rc;
}

static int meta_get_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	char buf[100];
	size_t n;
	(void)ctx;
	return ledger_meta_get(t, "big", buf, sizeof(buf), &n, e);
}

/* ---- a person's records and the open conflicts (schema 4) ---- */

#define BIG 10000 /* records of one person: a role address's Leads */

struct links_ctx {
	struct ledger *l;
	struct ledger_person big, small, other; /* as stored */
	uint64_t n;
	char last[LEDGER_ID_MAX + 2]; /* object byte and id of the last seen: the order */
	int out_of_order;
};

static void lead_id(char out[LEDGER_ID_MAX + 1], unsigned i)
{
	snprintf(out, LEDGER_ID_MAX + 1, "00Q5e%010uAAA", i);
}

static void links_person(struct links_ctx *x, struct ledger_person *p, const char *email)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->email, sizeof(p->email), "%s", email);
	ledger_person_key(x->l, email, strlen(email), p->key);
	ledger_facts_init(&p->facts);
}

static int links_put(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct links_ctx *x = ctx;
	links_person(x, &x->big, "info@bigco.example");
	links_person(x, &x->small, "ada@example.com");
	links_person(x, &x->other, "bob@example.com");
	int rc = 0;
	/* the big person's records interleaved with two others' */
	for (unsigned i = 0; rc == 0 && i < BIG; i++) {
		struct ledger_recref ref = {LEDGER_OBJ_LEAD, ""};
		lead_id(ref.id, i);
		rc = ledger_person_record_add(t, &x->big, &ref, e);
		if (rc == 0 && i % 1000 == 0) {
			ref.object = LEDGER_OBJ_CONTACT;
			snprintf(ref.id, sizeof(ref.id), "0035e%010uAAA", i);
			rc = ledger_person_record_add(t, i % 2000 ? &x->small : &x->other, &ref, e);
		}
	}
	/* linking again is nothing new */
	struct ledger_recref again = {LEDGER_OBJ_LEAD, ""};
	lead_id(again.id, 7);
	if (rc == 0)
		rc = ledger_person_record_add(t, &x->big, &again, e);
	/* numbered in the order they got their first record */
	assert_true(x->big.records_no == 1 && x->other.records_no == 2 && x->small.records_no == 3);
	if (rc == 0)
		rc = ledger_person_put(t, &x->big, e);
	if (rc == 0)
		rc = ledger_person_put(t, &x->small, e);
	if (rc == 0)
		rc = ledger_person_put(t, &x->other, e);
	return rc;
}

static int links_seen(const struct ledger_recref *ref, void *ctx)
{
	struct links_ctx *x = ctx;
	char cur[LEDGER_ID_MAX + 2];
	cur[0] = (char)ref->object;
	snprintf(cur + 1, sizeof(cur) - 1, "%s", ref->id);
	if (x->n && strcmp(cur, x->last) <= 0)
		x->out_of_order = 1;
	memcpy(x->last, cur, sizeof(cur));
	x->n++;
	return 0;
}

static int stop_at_3(const struct ledger_recref *ref, void *ctx)
{
	(void)ref;
	return ++((struct links_ctx *)ctx)->n == 3 ? 42 : 0;
}

/* The three persons as the ledger has them. */
static void links_get(struct ledger_txn *t, struct links_ctx *x, struct err *e)
{
	struct ledger_person *ps[3] = {&x->big, &x->small, &x->other};
	for (int i = 0; i < 3; i++) {
		uint8_t k[LEDGER_KEY_LEN];
		memcpy(k, ps[i]->key, sizeof(k));
		assert_int_equal(ledger_person_get(t, k, ps[i], e), 0);
	}
}

static int links_check(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct links_ctx *x = ctx;
	links_get(t, x, e);
	x->n = 0;
	x->out_of_order = 0;
	assert_int_equal(ledger_person_records_each(t, &x->big, links_seen, x, e), 0);
	assert_true(x->n == BIG);
	assert_false(x->out_of_order);
	uint64_t n;
	assert_int_equal(ledger_person_records_count(t, &x->big, 0, &n, e), 0);
	assert_true(n == BIG);
	assert_int_equal(ledger_person_records_count(t, &x->big, 1, &n, e), 0);
	assert_true(n == 1);
	assert_int_equal(ledger_person_records_count(t, &x->small, 0, &n, e), 0);
	assert_true(n == 5); /* 1000, 3000, 5000, 7000, 9000 */
	assert_int_equal(ledger_person_records_count(t, &x->other, 0, &n, e), 0);
	assert_true(n == 5);
	struct ledger_recref first;
	assert_int_equal(ledger_person_record_first(t, &x->big, &first, e), 0);
	assert_int_equal(first.object, LEDGER_OBJ_LEAD);
	assert_string_equal(first.id, "00Q5e0000000000AAA");
	assert_int_equal(ledger_person_record_first(t, &x->small, &first, e), 0);
	assert_int_equal(first.object, LEDGER_OBJ_CONTACT);
	assert_string_equal(first.id, "0035e0000001000AAA");
	x->n = 0;
	assert_int_equal(ledger_person_records_each(t, &x->big, stop_at_3, x, e), 42);
	return 0;
}

static int links_remove(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct links_ctx *x = ctx;
	links_get(t, x, e);
	struct ledger_recref ref = {LEDGER_OBJ_LEAD, ""};
	for (unsigned i = 0; i < BIG; i += 2) {
		lead_id(ref.id, i);
		assert_int_equal(ledger_person_record_remove(t, &x->big, &ref, e), 0);
	}
	lead_id(ref.id, 0);
	assert_int_equal(ledger_person_record_remove(t, &x->big, &ref, e), ERR_NOTFOUND);
	/* the record of another person is not this one's to unlink */
	lead_id(ref.id, 1);
	assert_int_equal(ledger_person_record_remove(t, &x->small, &ref, e), ERR_NOTFOUND);
	/* only Contacts and Leads are linked */
	struct ledger_recref row = {LEDGER_OBJ_CONSENT, "0ZW5e000000001AAA"};
	assert_int_equal(ledger_person_record_add(t, &x->big, &row, e), ERR_INVALID);
	struct ledger_recref empty = {LEDGER_OBJ_LEAD, ""};
	assert_int_equal(ledger_person_record_add(t, &x->big, &empty, e), ERR_INVALID);
	uint64_t n;
	assert_int_equal(ledger_person_records_count(t, &x->big, 0, &n, e), 0);
	assert_true(n == BIG / 2);
	/* a person that never had a record */
	struct ledger_person *nobody = calloc(1, sizeof(*nobody));
	struct ledger_recref first;
	assert_int_equal(ledger_person_record_first(t, nobody, &first, e), ERR_NOTFOUND);
	assert_int_equal(ledger_person_records_count(t, nobody, 0, &n, e), 0);
	assert_true(n == 0);
	assert_int_equal(ledger_person_record_remove(t, nobody, &ref, e), ERR_NOTFOUND);
	free(nobody);
	return 0;
}

static void test_person_records_index(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 26);
	struct links_ctx *x = calloc(1, sizeof(*x));
	x->l = l;
	struct err e = {0};
	if (ledger_write(l, links_put, x, &e))
		fail_msg("put: %s", e.msg);
	assert_int_equal(ledger_read(l, links_check, x, &e), 0);
	ledger_close(l);
	l = open_ledger(1 << 20, 1 << 26); /* durable */
	x->l = l;
	assert_int_equal(ledger_read(l, links_check, x, &e), 0);
	assert_int_equal(ledger_write(l, links_remove, x, &e), 0);
	struct ledger_tree_report rep;
	if (ledger_check_trees(l, &rep, &e))
		fail_msg("trees: %s", e.msg);
	ledger_close(l);
	free(x);
}

static struct ledger_conflict conflict_on(const char *id, uint32_t field, const char *purpose,
                                          int status)
{
	struct ledger_conflict c;
	memset(&c, 0, sizeof(c));
	c.record.object = LEDGER_OBJ_CONTACT;
	snprintf(c.record.id, sizeof(c.record.id), "%s", id);
	c.field = field;
	c.kind = field == LEDGER_F_OPTED_OUT ? LEDGER_CONFLICT_RESUBSCRIBE
	                                     : LEDGER_CONFLICT_INVALID_VALUE;
	c.status = (uint8_t)status;
	snprintf(c.purpose_name, sizeof(c.purpose_name), "%s", purpose);
	return c;
}

static int count_each(struct ledger_conflict *c, void *ctx)
{
	(void)c;
	(*(int *)ctx)++;
	return 0;
}

static int close_each(struct ledger_conflict *c, void *ctx)
{
	struct ledger_txn *t = ctx;
	c->status = LEDGER_CONFLICT_RESOLVED;
	struct err e = {0};
	return ledger_conflict_put(t, c, &e);
}

#define ID15 "0035e0000000001" /* a 15-character id, a prefix of ID18's */
#define ID18 "0035e0000000001AAA"

static int open_conflicts_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	(void)ctx;
	struct ledger_conflict a = conflict_on(ID18, LEDGER_F_OPTED_OUT, "", LEDGER_CONFLICT_OPEN);
	assert_int_equal(ledger_conflict_add(t, &a, e), 0);
	/* a second open one of the record, field and purpose is refused, and
	 * takes no id */
	struct ledger_conflict b = a;
	assert_int_equal(ledger_conflict_add(t, &b, e), ERR_CONFLICT);
	assert_non_null(strstr(e->msg, "already has an open conflict (1)"));
	/* another purpose, another field, the 15-character id: other questions */
	struct ledger_conflict c =
	    conflict_on(ID18, LEDGER_F_OPTED_OUT, "news", LEDGER_CONFLICT_OPEN);
	struct ledger_conflict d = conflict_on(ID18, LEDGER_F_AUTH_TYPE, "", LEDGER_CONFLICT_OPEN);
	struct ledger_conflict f = conflict_on(ID15, LEDGER_F_OPTED_OUT, "", LEDGER_CONFLICT_OPEN);
	assert_int_equal(ledger_conflict_add(t, &c, e), 0);
	assert_int_equal(ledger_conflict_add(t, &d, e), 0);
	assert_int_equal(ledger_conflict_add(t, &f, e), 0);
	assert_true(c.id == 2 && d.id == 3 && f.id == 4);
	/* resolved ones are not in the index, as many as there are */
	struct ledger_conflict r1 =
	    conflict_on(ID18, LEDGER_F_OPTED_OUT, "", LEDGER_CONFLICT_RESOLVED);
	struct ledger_conflict r2 = r1;
	assert_int_equal(ledger_conflict_add(t, &r1, e), 0);
	assert_int_equal(ledger_conflict_add(t, &r2, e), 0);
	struct ledger_conflict got;
	assert_int_equal(ledger_conflict_open_get(t, &a.record, LEDGER_F_OPTED_OUT, NULL, &got, e),
	                 0);
	assert_true(got.id == a.id);
	assert_int_equal(
	    ledger_conflict_open_get(t, &a.record, LEDGER_F_OPTED_OUT, "news", &got, e), 0);
	assert_true(got.id == c.id);
	assert_int_equal(ledger_conflict_open_get(t, &f.record, LEDGER_F_OPTED_OUT, "", &got, e),
	                 0);
	assert_true(got.id == f.id);
	assert_int_equal(ledger_conflict_open_get(t, &a.record, LEDGER_F_SOURCE_TYPE, "", &got, e),
	                 ERR_NOTFOUND);
	int n = 0;
	assert_int_equal(ledger_conflict_open_each(t, &a.record, count_each, &n, e), 0);
	assert_int_equal(n, 3); /* the 15-character id's is not among them */
	/* reopening a resolved one while another is open is refused */
	r1.status = LEDGER_CONFLICT_OPEN;
	assert_int_equal(ledger_conflict_put(t, &r1, e), ERR_CONFLICT);
	/* resolved: out of the index; then another may open */
	a.status = LEDGER_CONFLICT_RESOLVED;
	assert_int_equal(ledger_conflict_put(t, &a, e), 0);
	assert_int_equal(ledger_conflict_open_get(t, &a.record, LEDGER_F_OPTED_OUT, "", &got, e),
	                 ERR_NOTFOUND);
	assert_int_equal(ledger_conflict_put(t, &r1, e), 0);
	assert_int_equal(ledger_conflict_open_get(t, &a.record, LEDGER_F_OPTED_OUT, "", &got, e),
	                 0);
	assert_true(got.id == r1.id);
	/* a put that leaves it open keeps it; a delete takes it out */
	snprintf(r1.sf_value, sizeof(r1.sf_value), "opted_in");
	assert_int_equal(ledger_conflict_put(t, &r1, e), 0);
	assert_int_equal(ledger_conflict_delete(t, r1.id, e), 0);
	assert_int_equal(ledger_conflict_open_get(t, &a.record, LEDGER_F_OPTED_OUT, "", &got, e),
	                 ERR_NOTFOUND);
	/* fn may close what it is given */
	assert_int_equal(ledger_conflict_open_each(t, &a.record, close_each, t, e), 0);
	n = 0;
	assert_int_equal(ledger_conflict_open_each(t, &a.record, count_each, &n, e), 0);
	assert_int_equal(n, 0);
	struct ledger_stats st;
	assert_int_equal(ledger_stats(t, &st, e), 0);
	assert_true(st.open_conflicts == 1); /* f's */
	return 0;
}

static void test_open_conflicts_index(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct err e = {0};
	if (ledger_write(l, open_conflicts_txn, NULL, &e))
		fail_msg("%s", e.msg);
	struct ledger_tree_report rep;
	if (ledger_check_trees(l, &rep, &e))
		fail_msg("trees: %s", e.msg);
	ledger_close(l);
}

/* A schema-3 ledger, made from a schema-4 one as optsync of schema 3 stored
 * it: each person's links back inside the person (field 10), no indexes,
 * and the second of two conflicts of one record open as well. */
#define MIG_PERSONS 3000

static void downgrade_to(int version)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi persons, links, open, conflicts, meta;
	MDB_cursor *c;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_set_mapsize(env, 1 << 26), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "persons", 0, &persons), 0);
	assert_int_equal(mdb_dbi_open(txn, "person_records", 0, &links), 0);
	assert_int_equal(mdb_dbi_open(txn, "open_conflicts", 0, &open), 0);
	assert_int_equal(mdb_dbi_open(txn, "conflicts", 0, &conflicts), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_cursor_open(txn, persons, &c), 0);
	static struct val v;
	MDB_val k, d;
	for (int op = MDB_FIRST; mdb_cursor_get(c, &k, &d, op) == 0; op = MDB_NEXT) {
		memcpy(v.b, d.mv_data, d.mv_size);
		v.n = d.mv_size;
		struct rawf f;
		if (rawf_find(&v, 13, &f) < 0)
			continue; /* no record */
		uint8_t no[8];
		for (int i = 0; i < 8; i++)
			no[i] = (uint8_t)(f.u >> (56 - 8 * i));
		val_drop(&v, 13);
		MDB_cursor *lc;
		assert_int_equal(mdb_cursor_open(txn, links, &lc), 0);
		MDB_val lk = {8, no}, ld;
		for (int rc = mdb_cursor_get(lc, &lk, &ld, MDB_SET_RANGE);
		     rc == 0 && memcmp(lk.mv_data, no, 8) == 0;
		     rc = mdb_cursor_get(lc, &lk, &ld, MDB_NEXT)) {
			uint8_t f10[2 + 1 + LEDGER_ID_MAX];
			size_t n =
			    raw_field(f10, 10, W_BYTES, (uint8_t *)lk.mv_data + 8, lk.mv_size - 8);
			val_add(&v, 11, f10, n);
		}
		mdb_cursor_close(lc);
		uint8_t kb[LEDGER_KEY_LEN]; /* k points into the page the put changes */
		memcpy(kb, k.mv_data, sizeof(kb));
		MDB_val nk = {LEDGER_KEY_LEN, kb}, nv = {v.n, v.b};
		assert_int_equal(mdb_cursor_put(c, &nk, &nv, MDB_CURRENT), 0);
	}
	mdb_cursor_close(c);
	assert_int_equal(mdb_drop(txn, links, 1), 0);
	assert_int_equal(mdb_drop(txn, open, 1), 0);
	/* conflict 2 (resolved, of the same record as the open 1) open too */
	uint8_t ck[8] = {0, 0, 0, 0, 0, 0, 0, 2};
	MDB_val ckv = {8, ck}, cv;
	assert_int_equal(mdb_get(txn, conflicts, &ckv, &cv), 0);
	memcpy(v.b, cv.mv_data, cv.mv_size);
	v.n = cv.mv_size;
	struct rawf f;
	assert_true(rawf_find(&v, 5, &f) >= 0);
	assert_int_equal(v.b[f.at + 1], LEDGER_CONFLICT_RESOLVED);
	v.b[f.at + 1] = LEDGER_CONFLICT_OPEN;
	MDB_val nv = {v.n, v.b};
	assert_int_equal(mdb_put(txn, conflicts, &ckv, &nv, 0), 0);
	uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, (uint8_t)version};
	MDB_val sk = {6, "schema"}, sv = {8, b};
	assert_int_equal(mdb_put(txn, meta, &sk, &sv, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static unsigned mig_records(unsigned i)
{
	return i == 0 ? 32 : i % 5; /* schema 3's most on the first */
}

static int mig_put(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger *l = ctx;
	struct ledger_person *p = calloc(1, sizeof(*p));
	int rc = 0;
	for (unsigned i = 0; rc == 0 && i < MIG_PERSONS; i++) {
		memset(p, 0, sizeof(*p));
		snprintf(p->email, sizeof(p->email), "person%u@example.com", i);
		ledger_person_key(l, p->email, strlen(p->email), p->key);
		ledger_facts_init(&p->facts);
		p->created_at = 1700000000000 + i;
		for (unsigned j = 0; rc == 0 && j < mig_records(i); j++) {
			struct ledger_recref ref = {j % 2 ? LEDGER_OBJ_LEAD : LEDGER_OBJ_CONTACT,
			                            ""};
			snprintf(ref.id, sizeof(ref.id), "%s5e%05u%05uAAA", j % 2 ? "00Q" : "003",
			         i % 100000, j % 100000);
			rc = ledger_person_record_add(t, p, &ref, e);
		}
		if (rc == 0)
			rc = ledger_person_put(t, p, e);
	}
	struct ledger_conflict a = conflict_on(ID18, LEDGER_F_OPTED_OUT, "", LEDGER_CONFLICT_OPEN);
	struct ledger_conflict b = a;
	b.status = LEDGER_CONFLICT_RESOLVED;
	struct ledger_conflict c = conflict_on(ID15, LEDGER_F_OPTED_OUT, "", LEDGER_CONFLICT_OPEN);
	if (rc == 0)
		rc = ledger_conflict_add(t, &a, e);
	if (rc == 0)
		rc = ledger_conflict_add(t, &b, e);
	if (rc == 0)
		rc = ledger_conflict_add(t, &c, e);
	free(p);
	return rc;
}

static int mig_check(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger *l = ctx;
	struct ledger_person *p = calloc(1, sizeof(*p));
	for (unsigned i = 0; i < MIG_PERSONS; i++) {
		char email[64];
		snprintf(email, sizeof(email), "person%u@example.com", i);
		uint8_t key[LEDGER_KEY_LEN];
		ledger_person_key(l, email, strlen(email), key);
		assert_int_equal(ledger_person_get(t, key, p, e), 0);
		assert_string_equal(p->email, email);
		assert_true(p->created_at == 1700000000000 + i);
		uint64_t n;
		assert_int_equal(ledger_person_records_count(t, p, 0, &n, e), 0);
		assert_true(n == mig_records(i));
		assert_true((p->records_no != 0) == (mig_records(i) != 0));
	}
	free(p);
	struct ledger_conflict got;
	struct ledger_recref x = {LEDGER_OBJ_CONTACT, ID18}, y = {LEDGER_OBJ_CONTACT, ID15};
	assert_int_equal(ledger_conflict_open_get(t, &x, LEDGER_F_OPTED_OUT, "", &got, e), 0);
	assert_true(got.id == 1); /* the first is kept */
	assert_int_equal(ledger_conflict_get(t, 2, &got, e), 0);
	assert_int_equal(got.status, LEDGER_CONFLICT_RESOLVED);
	assert_string_equal(got.resolution, "duplicate");
	assert_string_equal(got.resolved_by, "optsync");
	assert_true(got.auto_resolved);
	assert_int_equal(ledger_conflict_open_get(t, &y, LEDGER_F_OPTED_OUT, "", &got, e), 0);
	assert_true(got.id == 3);
	struct ledger_stats st;
	assert_int_equal(ledger_stats(t, &st, e), 0);
	assert_int_equal(st.schema_version, LEDGER_SCHEMA_VERSION);
	assert_true(st.open_conflicts == 2);
	return 0;
}

static int no_field_10(MDB_txn *txn)
{
	MDB_dbi persons;
	MDB_cursor *c;
	assert_int_equal(mdb_dbi_open(txn, "persons", 0, &persons), 0);
	assert_int_equal(mdb_cursor_open(txn, persons, &c), 0);
	static struct val v;
	MDB_val k, d;
	int left = 0;
	for (int op = MDB_FIRST; mdb_cursor_get(c, &k, &d, op) == 0; op = MDB_NEXT) {
		memcpy(v.b, d.mv_data, d.mv_size);
		v.n = d.mv_size;
		struct rawf f;
		left += rawf_find(&v, 10, &f) >= 0;
	}
	mdb_cursor_close(c);
	return left == 0;
}

/* A ledger in schema 3's layout, marked version: opened, migrated. */
static void migrate_from(int version)
{
	/* a map that the migration outgrows: it grows and migrates again */
	struct ledger *l = open_ledger(1 << 20, 1 << 26);
	struct err e = {0};
	if (ledger_write(l, mig_put, l, &e))
		fail_msg("%s", e.msg);
	ledger_close(l);
	downgrade_to(version);
	struct stat before;
	char data[128];
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	assert_int_equal(stat(data, &before), 0);
	struct ledger_options o = {dir, 1 << 20, 1 << 26, false, true};
	if (ledger_open(&l, &o, &e))
		fail_msg("open: %s", e.msg);
	assert_int_equal(ledger_read(l, mig_check, l, &e), 0);
	struct ledger_tree_report rep;
	if (ledger_check_trees(l, &rep, &e))
		fail_msg("trees: %s", e.msg);
	ledger_close(l);
	MDB_env *env;
	MDB_txn *txn;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_true(no_field_10(txn));
	mdb_txn_abort(txn);
	mdb_env_close(env);
	struct stat after;
	assert_int_equal(stat(data, &after), 0);
	/* the opening grew the map for the migration (nothing else wrote) */
	assert_true(after.st_size > before.st_size);
}

static void test_migrate_schema_3(void **state)
{
	migrate_from(3);
}

/* The optsync that introduced schema 6 had empty steps 3 -> 4 and 4 -> 5: a
 * ledger it wrote is at schema 6 with its records still inside the persons
 * and no indexes. Step 6 -> 7 migrates it as 3 -> 4 would have. */
static void test_migrate_release_6(void **state)
{
	migrate_from(6);
}

static void test_meta_cap(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct err e = {0};
	size_t len = LEDGER_META_MAX + 1;
	assert_int_equal(ledger_write(l, meta_txn, &len, &e), ERR_LIMIT);
	assert_non_null(strstr(e.msg, "more than"));
	len = LEDGER_META_MAX;
	assert_int_equal(ledger_write(l, meta_txn, &len, &e), 0);
	/* a buffer too small for the value: refused, not filled with a part */
	assert_int_equal(ledger_read(l, meta_get_txn, NULL, &e), ERR_LIMIT);
	ledger_close(l);
}

/* The named values under a prefix, in name order, and their removal. */
static int meta_some_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	(void)ctx;
	static const char *const names[] = {"p.b", "p.a", "pa", "p", "q.a", "o.z"};
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(names) / sizeof(names[0]); i++)
		rc = ledger_meta_put(t, names[i], names[i], strlen(names[i]), e);
	return rc;
}

static int meta_list(const char *name, const void *data, size_t len, void *ctx)
{
	char *out = ctx;
	size_t o = strlen(out);
	snprintf(out + o, 200 - o, "%s=%.*s;", name, (int)len, (const char *)data);
	return strcmp(name, "p.z") == 0 ? 7 : 0;
}

static int meta_each_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	((char *)ctx)[0] = '\0';
	return ledger_meta_each(t, "p.", meta_list, ctx, e);
}

static int meta_del_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	int rc = ledger_meta_delete(t, "p.a", e);
	if (rc == 0)
		rc = ledger_meta_put(t, "p.z", "z", 1, e);
	*(int *)ctx = ledger_meta_delete(t, "p.nothing", e);
	return rc;
}

static void test_meta_each_and_delete(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct err e = {0};
	char got[200];
	assert_int_equal(ledger_write(l, meta_some_txn, NULL, &e), 0);
	assert_int_equal(ledger_read(l, meta_each_txn, got, &e), 0);
	assert_string_equal(got, "p.a=p.a;p.b=p.b;"); /* not "p", "pa", "q.a", "o.z" */
	int absent = 0;
	assert_int_equal(ledger_write(l, meta_del_txn, &absent, &e), 0);
	assert_int_equal(absent, ERR_NOTFOUND);
	/* fn's nonzero return stops the walk and is returned */
	assert_int_equal(ledger_read(l, meta_each_txn, got, &e), 7);
	assert_string_equal(got, "p.b=p.b;p.z=z;");
	ledger_close(l);
}

/* ---- backups ---- */

static void backup_to(struct ledger *l, const char *file)
{
	struct ledger_backup_info info;
	struct err e = {0};
	if (ledger_backup(l, file, &info, &e))
		fail_msg("backup: %s", e.msg);
	assert_true(info.compacted);
	assert_int_equal(info.schema_version, LEDGER_SCHEMA_VERSION);
	struct stat st;
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true((uint64_t)st.st_size == info.bytes);
}

/* restore file into target; the code it returns, with the message in e */
static int restore_to(const char *file, const char *target, struct err *e)
{
	struct ledger_options o = {target, 1 << 20, 1 << 24, false, false};
	struct ledger_backup_info info;
	struct ledger_verify_report rep;
	return ledger_restore(file, &o, &info, &rep, e);
}

static void write_bytes(const char *file, const void *data, size_t len)
{
	FILE *f = fopen(file, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void *read_bytes(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	void *b = malloc(*len);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static void test_backup_restore(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	for (int i = 0; i < 50; i++) {
		char email[64];
		snprintf(email, sizeof(email), "p%d@example.com", i);
		put_person(l, email, i % 3 == 0, "003000000000001AAA", "r");
	}
	char file[96], target[sizeof(dir)];
	snprintf(file, sizeof(file), "%s.backup", dir);
	snprintf(target, sizeof(target), "%.50s-rs", dir);
	backup_to(l, file);
	put_person(l, "after@example.com", 1, "003000000000002AAA", "after the backup");
	ledger_close(l);

	struct err e = {0};
	if (restore_to(file, target, &e))
		fail_msg("restore: %s", e.msg);
	/* what the backup held, and nothing written after it */
	char swap[64];
	snprintf(swap, sizeof(swap), "%s", dir);
	snprintf(dir, sizeof(dir), "%s", target);
	l = open_ledger(1 << 20, 1 << 24);
	verify_ok(l, 50);
	struct get_ctx *g = calloc(1, sizeof(*g));
	g->l = l;
	g->email = "p3@example.com";
	assert_int_equal(ledger_read(l, get_person, g, &e), 0);
	assert_int_equal(g->rc, 0);
	assert_true(g->p.facts.opted_out);
	g->email = "after@example.com";
	assert_int_equal(ledger_read(l, get_person, g, &e), 0);
	assert_int_equal(g->rc, ERR_NOTFOUND);
	free(g);
	ledger_close(l);
	snprintf(dir, sizeof(dir), "%s", swap);

	/* never over a ledger, nor into a folder holding anything */
	assert_int_equal(restore_to(file, target, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "already holds a ledger"));
	char other[160];
	snprintf(other, sizeof(other), "%s-other", dir);
	assert_int_equal(mkdir(other, 0700), 0);
	char junk[200];
	snprintf(junk, sizeof(junk), "%s/notes.txt", other);
	write_bytes(junk, "x", 1);
	assert_int_equal(restore_to(file, other, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "not empty"));
	unlink(junk);

	/* a cut, a damaged, a newer and a foreign file: refused, naming why,
	 * and the empty target stays empty */
	size_t len;
	uint8_t *b = read_bytes(file, &len);
	char bad[160];
	snprintf(bad, sizeof(bad), "%s.bad", dir);
	const struct {
		size_t len;
		size_t flip;   /* byte to change, or SIZE_MAX */
		uint8_t value; /* its new value */
		const char *why;
	} cases[] = {
	    {0, SIZE_MAX, 0, "not whole"},                           /* empty */
	    {4096, SIZE_MAX, 0, "not whole"},                        /* cut inside the data */
	    {SIZE_MAX - 1, SIZE_MAX, 0, "not whole"},                /* cut by one byte */
	    {SIZE_MAX, 5000, 0x5a, "does not match the SHA-256"},    /* a byte of data */
	    {SIZE_MAX, 0, 0x00, "does not match the SHA-256"},       /* the first byte */
	    {SIZE_MAX, SIZE_MAX - 64 + 16, 0x7f, "trailer says"},    /* the length */
	    {SIZE_MAX, SIZE_MAX - 64 + 27, 99, "schema version 99"}, /* the schema */
	    {SIZE_MAX, SIZE_MAX - 64 + 3, 'x', "not whole"},         /* the magic */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = cases[i].len == SIZE_MAX       ? len
		           : cases[i].len == SIZE_MAX - 1 ? len - 1
		                                          : cases[i].len;
		/* flip counts from the end when it is past len: SIZE_MAX - k is
		 * the k-th byte before the end */
		uint8_t *c = malloc(len);
		memcpy(c, b, len);
		if (cases[i].flip != SIZE_MAX) {
			size_t at =
			    cases[i].flip > len ? len - (SIZE_MAX - cases[i].flip) : cases[i].flip;
			c[at] = c[at] == cases[i].value ? (uint8_t)(cases[i].value ^ 1)
			                                : cases[i].value;
		}
		write_bytes(bad, c, n);
		free(c);
		assert_int_equal(restore_to(bad, other, &e), ERR_LEDGER);
		if (strstr(e.msg, cases[i].why) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, e.msg, cases[i].why);
		struct ledger_backup_info info;
		assert_int_equal(ledger_backup_check(bad, &info, &e), ERR_LEDGER);
		char probe[220];
		snprintf(probe, sizeof(probe), "%s/data.mdb", other);
		assert_int_equal(access(probe, F_OK), -1);
		snprintf(probe, sizeof(probe), "%s/restore.tmp", other);
		assert_int_equal(access(probe, F_OK), -1);
	}
	free(b);

	/* a ledger whose history was altered is not backed up: its chain is
	 * checked before the copy, as its trees are */
	uint8_t k7[8] = {0, 0, 0, 0, 0, 0, 0, 7};
	raw_edit("history", k7, 8, flip_byte);
	l = open_ledger(1 << 20, 1 << 24);
	struct ledger_backup_info binfo;
	unlink(file);
	assert_int_equal(ledger_backup(l, file, &binfo, &e), ERR_LEDGER);
	assert_non_null(strstr(e.msg, "no backup was written"));
	assert_non_null(strstr(e.msg, "event 7"));
	assert_int_equal(access(file, F_OK), -1);
	ledger_close(l);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s' '%s' '%s'", file, target, other, bad);
	assert_int_equal(system(cmd), 0);
}

/* ---- the outbox's due index and the counts (schema 5) ---- */

/* A model of the outbox: what the index and the counts must agree with. */
#define QN 300
struct qmodel {
	bool live[QN];
	int object[QN];
	int64_t next_try[QN];
	bool parked[QN];
	uint64_t seed;
};

static uint64_t qrand(struct qmodel *m)
{
	m->seed = m->seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return m->seed >> 33;
}

static void qid(int i, char out[LEDGER_ID_MAX + 1])
{
	snprintf(out, LEDGER_ID_MAX + 1, "003Q%011dAAA", i);
}

/* A batch of random changes: new pushes, backoffs, parks, releases and
 * deletes, as the drain and the rules make them. */
static int qchange(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct qmodel *m = ctx;
	struct ledger_push *q = calloc(1, sizeof(*q));
	int rc = 0;
	for (int k = 0; rc == 0 && k < 60; k++) {
		int i = (int)(qrand(m) % QN);
		memset(q, 0, sizeof(*q));
		ledger_facts_init(&q->want);
		q->record.object = (uint8_t)(m->live[i] ? m->object[i] : 1 + (int)(qrand(m) % 5));
		qid(i, q->record.id);
		int what = (int)(qrand(m) % 4);
		if (m->live[i] && what == 0) {
			rc = ledger_push_delete(t, q->record.object, q->record.id, e);
			m->live[i] = false;
			continue;
		}
		if (m->live[i] && (rc = ledger_push_get(t, q->record.object, q->record.id, q, e)))
			break;
		q->want.mask |= LEDGER_F_OPTED_OUT;
		q->want.opted_out = true;
		q->version++;
		q->parked = what == 1 ? !q->parked : q->parked;
		q->next_try = what == 2 ? 0 : (int64_t)(qrand(m) % 5000) - 1000; /* some before 0 */
		if ((rc = ledger_push_put(t, q, e)))
			break;
		m->live[i] = true;
		m->object[i] = q->record.object;
		m->next_try[i] = q->next_try;
		m->parked[i] = q->parked;
	}
	free(q);
	return rc;
}

struct qdue {
	int object;
	int64_t last_try;
	char last_id[LEDGER_ID_MAX + 1];
	size_t n, stop_at;
	struct qmodel *m;
};

static int qdue_one(const struct ledger_push *q, void *ctx)
{
	struct qdue *d = ctx;
	if (d->n == d->stop_at)
		return 7;
	assert_int_equal(q->record.object, d->object);
	int i = atoi(q->record.id + 4);
	assert_true(d->m->live[i]);
	assert_true(d->m->next_try[i] == q->next_try);
	assert_int_equal(d->m->parked[i], q->parked);
	/* in (next_try, id) order */
	assert_true(d->n == 0 || q->next_try > d->last_try ||
	            (q->next_try == d->last_try && strcmp(q->record.id, d->last_id) > 0));
	d->last_try = q->next_try;
	snprintf(d->last_id, sizeof(d->last_id), "%s", q->record.id);
	d->n++;
	return 0;
}

struct qcheck {
	struct qmodel *m;
	int64_t due_by;
};

/* The index gives exactly the model's due pushes, in order, also when
 * walked in pieces from a mark; the counts are the model's. */
static int qcheck_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct qcheck *c = ctx;
	struct qmodel *m = c->m;
	for (int object = 1; object <= 5; object++) {
		size_t want = 0;
		for (int i = 0; i < QN; i++)
			want += m->live[i] && m->object[i] == object && m->next_try[i] <= c->due_by;
		struct qdue d = {object, 0, "", 0, SIZE_MAX, m};
		if (ledger_push_each_due(t, object, c->due_by, NULL, qdue_one, &d, e))
			fail_msg("each_due: %s", e->msg);
		assert_int_equal(d.n, want);
		/* in pieces of 7: the mark goes on after the last one taken */
		struct ledger_push_mark mark = {0};
		size_t total = 0;
		for (;;) {
			struct qdue p = {object, 0, "", 0, 7, m};
			int rc = ledger_push_each_due(t, object, c->due_by, &mark, qdue_one, &p, e);
			assert_true(rc == 0 || rc == 7);
			total += p.n;
			if (rc == 0)
				break;
		}
		assert_int_equal(total, want);
	}
	struct ledger_push_counts pc;
	if (ledger_push_counts(t, &pc, e))
		fail_msg("counts: %s", e->msg);
	for (int object = 0; object < LEDGER_OBJ_SLOTS; object++) {
		uint64_t queued = 0, parked = 0;
		for (int i = 0; i < QN; i++)
			if (m->live[i] && m->object[i] == object) {
				queued += !m->parked[i];
				parked += m->parked[i];
			}
		assert_int_equal(pc.queued[object], queued);
		assert_int_equal(pc.parked[object], parked);
	}
	return 0;
}

static void qcheck(struct ledger *l, struct qmodel *m)
{
	struct err e = {0};
	int64_t dues[] = {INT64_MIN, -1, 0, 1500, INT64_MAX};
	for (size_t k = 0; k < sizeof(dues) / sizeof(dues[0]); k++) {
		struct qcheck c = {m, dues[k]};
		if (ledger_read(l, qcheck_txn, &c, &e))
			fail_msg("%s", e.msg);
	}
}

static void qmodel_run(struct ledger *l, struct qmodel *m, int batches)
{
	struct err e = {0};
	for (int b = 0; b < batches; b++) {
		if (ledger_write(l, qchange, m, &e))
			fail_msg("change: %s", e.msg);
		qcheck(l, m);
	}
}

static int failing_after_change(struct ledger_txn *t, void *ctx, struct err *e)
{
	int rc = qchange(t, ctx, e);
	return rc ? rc : err_set(e, ERR_INVALID, "refused after the change");
}

static void test_push_due_index(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 26);
	static struct qmodel m = {.seed = 24};
	qmodel_run(l, &m, 40);
	/* a batch that fails leaves the index and the counts as they were */
	static struct qmodel copy;
	copy = m;
	struct err e = {0};
	assert_int_equal(ledger_write(l, failing_after_change, &copy, &e), ERR_INVALID);
	qcheck(l, &m);
	ledger_close(l);
	l = open_ledger(1 << 20, 1 << 26);
	qcheck(l, &m);
	/* audit's walk of the trees takes the new tables */
	struct ledger_tree_report tr;
	if (ledger_check_trees(l, &tr, &e))
		fail_msg("trees: %s", e.msg);
	ledger_close(l);
}

/* ---- the open conflicts' index and counts (schema 5) ---- */

struct cspec {
	int person; /* 0 or 1 */
	int object;
	const char *id;
	int kind, status;
	const char *purpose;
};

static const struct cspec cspecs[] = {
    {0, LEDGER_OBJ_CONTACT, "003C00000000001AAA", LEDGER_CONFLICT_RESUBSCRIBE, 1, ""},
    {0, LEDGER_OBJ_CONTACT, "003C00000000001AAA", LEDGER_CONFLICT_RESUBSCRIBE, 1, "news"},
    {0, LEDGER_OBJ_LEAD, "00QC00000000002AAA", LEDGER_CONFLICT_INVALID_VALUE, 1, ""},
    {1, LEDGER_OBJ_CONTACT, "003C00000000003AAA", LEDGER_CONFLICT_RESUBSCRIBE, 2, ""},
    {1, LEDGER_OBJ_CONSENT, "0ZWC00000000004AAA", LEDGER_CONFLICT_RESUBSCRIBE, 1, "news"},
    /* an id that is a prefix of another's */
    {1, LEDGER_OBJ_CONTACT, "003C0000000000", LEDGER_CONFLICT_CONCURRENT, 1, ""},
};
#define NC (sizeof(cspecs) / sizeof(cspecs[0]))

struct cstate {
	uint64_t id[NC];
	int status[NC];
	bool gone[NC];
};

static void ckey(int person, uint8_t key[LEDGER_KEY_LEN])
{
	memset(key, 0xa0 + person, LEDGER_KEY_LEN);
}

static int cadd(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct cstate *c = ctx;
	struct ledger_conflict *cf = calloc(1, sizeof(*cf));
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < NC; i++) {
		memset(cf, 0, sizeof(*cf));
		ckey(cspecs[i].person, cf->person);
		cf->record.object = (uint8_t)cspecs[i].object;
		snprintf(cf->record.id, sizeof(cf->record.id), "%s", cspecs[i].id);
		cf->kind = (uint8_t)cspecs[i].kind;
		cf->status = (uint8_t)cspecs[i].status;
		cf->field = LEDGER_F_OPTED_OUT;
		snprintf(cf->purpose_name, sizeof(cf->purpose_name), "%s", cspecs[i].purpose);
		snprintf(cf->local_value, sizeof(cf->local_value), "true");
		rc = ledger_conflict_add(t, cf, e);
		c->id[i] = cf->id;
		c->status[i] = cspecs[i].status;
	}
	free(cf);
	return rc;
}

struct cwalk {
	uint64_t ids[NC];
	size_t n;
};

static int cwalk_one(const struct ledger_conflict *cf, void *ctx)
{
	struct cwalk *w = ctx;
	assert_int_equal(cf->status, LEDGER_CONFLICT_OPEN);
	w->ids[w->n++] = cf->id;
	return 0;
}

static int cwalk_rec(struct ledger_conflict *cf, void *ctx)
{
	return cwalk_one(cf, ctx);
}

static int ccheck_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct cstate *c = ctx;
	uint64_t counts[LEDGER_OBJ_SLOTS], want_counts[LEDGER_OBJ_SLOTS] = {0};
	for (size_t i = 0; i < NC; i++) {
		bool open = !c->gone[i] && c->status[i] == LEDGER_CONFLICT_OPEN;
		want_counts[cspecs[i].object] += open;
		/* the record's open conflicts: exactly the open ones of it */
		struct cwalk w = {{0}, 0};
		struct ledger_recref ref = {(uint8_t)cspecs[i].object, ""};
		snprintf(ref.id, sizeof(ref.id), "%s", cspecs[i].id);
		if (ledger_conflict_open_each(t, &ref, cwalk_rec, &w, e))
			fail_msg("%s", e->msg);
		size_t want = 0;
		for (size_t j = 0; j < NC; j++)
			if (!c->gone[j] && c->status[j] == LEDGER_CONFLICT_OPEN &&
			    cspecs[j].object == cspecs[i].object &&
			    strcmp(cspecs[j].id, cspecs[i].id) == 0) {
				assert_true(want < w.n);
				assert_int_equal(w.ids[want], c->id[j]); /* in id order */
				want++;
			}
		assert_int_equal(w.n, want);
	}
	for (int person = 0; person < 2; person++) {
		uint8_t key[LEDGER_KEY_LEN];
		ckey(person, key);
		struct cwalk w = {{0}, 0};
		if (ledger_conflict_each_open_of_person(t, key, cwalk_one, &w, e))
			fail_msg("%s", e->msg);
		size_t want = 0;
		for (size_t j = 0; j < NC; j++)
			if (!c->gone[j] && c->status[j] == LEDGER_CONFLICT_OPEN &&
			    cspecs[j].person == person) {
				assert_true(want < w.n);
				assert_int_equal(w.ids[want], c->id[j]);
				want++;
			}
		assert_int_equal(w.n, want);
	}
	if (ledger_conflict_open_counts(t, counts, e))
		fail_msg("%s", e->msg);
	for (int k = 0; k < LEDGER_OBJ_SLOTS; k++)
		assert_int_equal(counts[k], want_counts[k]);
	return 0;
}

static void ccheck(struct ledger *l, struct cstate *c)
{
	struct err e = {0};
	if (ledger_read(l, ccheck_txn, c, &e))
		fail_msg("%s", e.msg);
}

struct cset {
	struct cstate *c;
	size_t i;
	int status; /* 0: delete */
};

static int cset_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct cset *x = ctx;
	if (x->status == 0)
		return ledger_conflict_delete(t, x->c->id[x->i], e);
	struct ledger_conflict cf;
	int rc = ledger_conflict_get(t, x->c->id[x->i], &cf, e);
	if (rc)
		return rc;
	cf.status = (uint8_t)x->status;
	cf.local_value[0] = '\0'; /* an erasure's change: the index stays */
	return ledger_conflict_put(t, &cf, e);
}

static void cset(struct ledger *l, struct cstate *c, size_t i, int status)
{
	struct cset x = {c, i, status};
	struct err e = {0};
	if (ledger_write(l, cset_txn, &x, &e))
		fail_msg("%s", e.msg);
	if (status)
		c->status[i] = status;
	else
		c->gone[i] = true;
}

static void test_conflict_open_index(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 24);
	struct cstate c = {{0}, {0}, {0}};
	struct err e = {0};
	assert_int_equal(ledger_write(l, cadd, &c, &e), 0);
	ccheck(l, &c);
	cset(l, &c, 1, LEDGER_CONFLICT_RESOLVED); /* closed: out of the index */
	ccheck(l, &c);
	cset(l, &c, 2, LEDGER_CONFLICT_OPEN); /* put again, still open */
	ccheck(l, &c);
	cset(l, &c, 3, LEDGER_CONFLICT_OPEN); /* opened again: back in it */
	ccheck(l, &c);
	cset(l, &c, 4, 0); /* deleted while open */
	cset(l, &c, 1, 0); /* deleted when resolved (retention) */
	ccheck(l, &c);
	ledger_close(l);
	l = open_ledger(1 << 20, 1 << 24);
	ccheck(l, &c);
	ledger_close(l);
}

/* ---- the migration from schema 4: the indexes and counts built ---- */

static void drop_indexes(MDB_txn *txn, MDB_dbi meta, MDB_val *k, MDB_val *v)
{
	(void)k;
	(void)v;
	uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 4};
	MDB_val sk = {6, "schema"}, nv = {8, b};
	assert_int_equal(mdb_put(txn, meta, &sk, &nv, 0), 0);
	static const char *const counts[] = {"outbox_counts", "conflict_counts"};
	for (int i = 0; i < 2; i++) {
		MDB_val ck = {strlen(counts[i]), (void *)counts[i]};
		assert_int_equal(mdb_del(txn, meta, &ck, NULL), 0);
	}
	static const char *const tables[] = {"push_due", "conflicts_open"};
	for (int i = 0; i < 2; i++) {
		MDB_dbi dbi;
		assert_int_equal(mdb_dbi_open(txn, tables[i], 0, &dbi), 0);
		assert_int_equal(mdb_drop(txn, dbi, 1), 0); /* gone, as before schema 5 */
	}
}

static void test_migration_builds_indexes(void **state)
{
	struct ledger *l = open_ledger(1 << 20, 1 << 26);
	static struct qmodel m = {.seed = 5};
	qmodel_run(l, &m, 10);
	struct cstate c = {{0}, {0}, {0}};
	struct err e = {0};
	assert_int_equal(ledger_write(l, cadd, &c, &e), 0);
	cset(l, &c, 1, LEDGER_CONFLICT_RESOLVED);
	ledger_close(l);
	raw_edit("meta", "schema", 6, drop_indexes);
	struct ledger_options o = {dir, 1 << 20, 1 << 26, false, true};
	if (ledger_open(&l, &o, &e))
		fail_msg("open: %s", e.msg);
	struct schema_ctx sc;
	assert_int_equal(ledger_read(l, read_stats, &sc, &e), 0);
	assert_int_equal(sc.st.schema_version, LEDGER_SCHEMA_VERSION);
	qcheck(l, &m);
	ccheck(l, &c);
	/* and kept from then on */
	qmodel_run(l, &m, 3);
	cset(l, &c, 3, LEDGER_CONFLICT_OPEN);
	ccheck(l, &c);
	ledger_close(l);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_create_modes_and_key),
	    T(test_person_roundtrip),
	    T(test_history_index_and_records),
	    T(test_tamper_detected),
	    T(test_tamper_last_and_removed),
	    T(test_erasure),
	    T(test_feed_cursors_conflicts_outbox),
	    T(test_purpose_checkboxes_stored),
	    T(test_failed_txn_leaves_nothing),
	    T(test_schema_newer_and_corrupt),
	    T(test_map_growth_and_limit),
	    T(test_open_never_shrinks),
	    T(test_trees_damage),
	    T(test_sync_lock),
	    T(test_enum_names),
	    T(test_retention),
	    T(test_hash_covers_unknown_fields),
	    T(test_hash_v1_events),
	    T(test_backup_restore),
	    T(test_meta_cap),
	    T(test_meta_each_and_delete),
	    T(test_person_records_index),
	    T(test_open_conflicts_index),
	    T(test_migrate_schema_3),
	    T(test_migrate_release_6),
	    T(test_push_due_index),
	    T(test_conflict_open_index),
	    T(test_migration_builds_indexes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
