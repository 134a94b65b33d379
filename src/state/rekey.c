/* Schema 6: every person keyed by the email normalization of docs/sync-rules.md, "What a person is"
 * (util/email.c), in the opening transaction of a ledger of an older
 * schema, after the backup ledger_open takes before migrating.
 *
 * Before schema 6 only ASCII was lower-cased: "Jane@BÜCHER.example" was
 * stored as "jane@bÜcher.example", "ÅSA@x.org" as "Åsa@x.org", and a
 * precomposed and a combining é were two persons. Each person whose stored
 * email normalizes to something else moves to the key of its normalized
 * email (docs/ledger-format.md, "Schema 6"):
 *
 *   - alone there: the same person under its new key and email;
 *   - with others (the person already there, or other spellings moving
 *     there too): one person (merge_into): opted out if any of them was,
 *     since the latest of their opt-outs; each compliance group (the
 *     authorization, the source) from the one that changed it last; the
 *     union of their Salesforce records; per purpose, out if any is out,
 *     else the newest opt-in; and one history. Events are hashed and never
 *     rewritten, so the lists are joined by a new event of kind "merge"
 *     per person merged in: its person_prev is the merged person's list,
 *     its merged_prev the other's (chain.c walks both). When the merged
 *     person is opted out and one of them was not, that is an opt-out for
 *     the application (a change on the feed) and for each of the merged
 *     person's writable records that Salesforce shows opted in (a push).
 *   - the records, queued pushes, conflicts and change-feed entries that
 *     name an old key name the new one (the key is a 32-byte field patched
 *     in place); the purposes' keys are moved.
 *
 * Left as they are, and counted in the migration's log line:
 *   - erased persons: their email is gone, so their key cannot be
 *     recomputed. Their suppression holds under the key their address had
 *     by the old rules, which is the new key for an ASCII address (the
 *     keys of ASCII addresses do not change) but not for one with
 *     non-ASCII characters;
 *   - persons whose stored email the new rules refuse even read as
 *     Windows-1252 (email_normalize_stored): they keep their key and email.
 * A person that merges into an erased one is erased first (its address is
 * the one whose erasure was asked for); the opt-out still merges. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"
#include "state/sha.h"
#include "util/email.h"
#include "util/log.h"
#include "util/timefmt.h"

struct move {
	uint8_t from[LEDGER_KEY_LEN], to[LEDGER_KEY_LEN];
	char email[LEDGER_EMAIL_MAX + 1]; /* normalized */
};

struct rekey {
	struct move *v;
	size_t n, cap;
	uint64_t erased, invalid, recoded, merged, into, pushes;
	char first_invalid[ERR_MSG_MAX];
};

static int by_to(const void *a, const void *b)
{
	const struct move *x = a, *y = b;
	int c = memcmp(x->to, y->to, LEDGER_KEY_LEN);
	return c ? c : memcmp(x->from, y->from, LEDGER_KEY_LEN);
}

static int by_from(const void *a, const void *b)
{
	return memcmp(((const struct move *)a)->from, ((const struct move *)b)->from,
	              LEDGER_KEY_LEN);
}

/* The persons whose key changes, into r->v. */
static int collect(struct ledger_txn *t, const struct hmac_key *hk, struct rekey *r, struct err *e)
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(t->txn, t->l->persons, &cur), op = MDB_FIRST;
	if (mrc)
		return ledger_mdb_error(t, mrc, "persons", e);
	struct ledger_person *p = malloc(sizeof(*p));
	MDB_val k, v;
	int rc = p ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	while (rc == 0 && (mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (k.mv_size != LEDGER_KEY_LEN || ent_person_decode(&v, p)) {
			rc = corrupt(t, "a person", e);
			break;
		}
		if ((p->flags & LEDGER_PERSON_ERASED) || p->email[0] == '\0') {
			r->erased++;
			continue;
		}
		struct move m;
		struct err ie;
		int recoded = 0;
		if (email_normalize_stored(p->email, m.email, &recoded, &ie)) {
			if (ie.code == ERR_NOMEM) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			if (r->invalid++ == 0)
				memcpy(r->first_invalid, ie.msg, sizeof(ie.msg));
			continue;
		}
		sha_hmac(hk, m.email, strlen(m.email), m.to);
		if (memcmp(m.to, k.mv_data, LEDGER_KEY_LEN) == 0)
			continue; /* normalized already: most persons, every ASCII one */
		memcpy(m.from, k.mv_data, LEDGER_KEY_LEN);
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 64;
			struct move *g =
			    cap > SIZE_MAX / sizeof(*g) ? NULL : realloc(r->v, cap * sizeof(*g));
			if (g == NULL) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			r->v = g;
			r->cap = cap;
		}
		r->v[r->n++] = m;
		r->recoded += (uint64_t)recoded;
	}
	if (rc == 0 && mrc != MDB_NOTFOUND)
		rc = ledger_mdb_error(t, mrc, "persons", e);
	free(p);
	mdb_cursor_close(cur);
	return rc;
}

/* ---- one person out of several ---- */

#define AUTH_GROUP                                                                                 \
	(LEDGER_F_AUTH_TYPE | LEDGER_F_AUTH_OTHER | LEDGER_F_CONSENT_DATE | LEDGER_F_PURPOSE)
#define SOURCE_GROUP (LEDGER_F_SOURCE_TYPE | LEDGER_F_SOURCE_OTHER)

static void copy_group(struct ledger_facts *to, const struct ledger_facts *from, uint32_t group)
{
	to->mask = (to->mask & ~group) | (from->mask & group);
	if (group & LEDGER_F_AUTH_TYPE) {
		to->auth_type = from->auth_type;
		to->consent_date = from->consent_date;
		memcpy(to->purpose, from->purpose, sizeof(to->purpose));
		memcpy(to->auth_other, from->auth_other, sizeof(to->auth_other));
	} else {
		to->source_type = from->source_type;
		memcpy(to->source_other, from->source_other, sizeof(to->source_other));
	}
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* Merge c into m (see the top of the file). */
static void merge_into(struct ledger_person *m, const struct ledger_person *c)
{
	if (c->facts.opted_out) {
		m->opted_out_at =
		    m->facts.opted_out ? max64(m->opted_out_at, c->opted_out_at) : c->opted_out_at;
		m->facts.mask |= LEDGER_F_OPTED_OUT;
		m->facts.opted_out = true;
	} else if (!(m->facts.mask & LEDGER_F_OPTED_OUT) && (c->facts.mask & LEDGER_F_OPTED_OUT)) {
		m->facts.mask |= LEDGER_F_OPTED_OUT; /* known opted in */
	}
	m->optout_changed_at = max64(m->optout_changed_at, c->optout_changed_at);
	if ((c->facts.mask & LEDGER_F_AUTH_TYPE) &&
	    (!(m->facts.mask & LEDGER_F_AUTH_TYPE) || c->auth_changed_at > m->auth_changed_at)) {
		copy_group(&m->facts, &c->facts, AUTH_GROUP);
		m->auth_changed_at = c->auth_changed_at;
	}
	if ((c->facts.mask & LEDGER_F_SOURCE_TYPE) &&
	    (!(m->facts.mask & LEDGER_F_SOURCE_TYPE) ||
	     c->source_changed_at > m->source_changed_at)) {
		copy_group(&m->facts, &c->facts, SOURCE_GROUP);
		m->source_changed_at = c->source_changed_at;
	}
	if (c->created_at && (m->created_at == 0 || c->created_at < m->created_at))
		m->created_at = c->created_at;
	if (m->individual_id[0] == '\0')
		memcpy(m->individual_id, c->individual_id, sizeof(m->individual_id));
}

/* ---- records ---- */

struct refs {
	struct ledger_recref *v;
	size_t n, cap;
	bool oom;
};

static int refs_add(const struct ledger_recref *ref, void *ctx)
{
	struct refs *l = ctx;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct ledger_recref *g =
		    cap > SIZE_MAX / sizeof(*g) ? NULL : realloc(l->v, cap * sizeof(*g));
		if (g == NULL) {
			l->oom = true;
			return 1;
		}
		l->v = g;
		l->cap = cap;
	}
	l->v[l->n++] = *ref;
	return 0;
}

/* c's Salesforce records (the person_records index) become m's: any number
 * of them; m gets its records_no here if it had none (m is stored after). */
static int move_links(struct ledger_txn *t, struct ledger_person *m, const struct ledger_person *c,
                      struct err *e)
{
	struct refs l = {0};
	int rc = ledger_person_records_each(t, c, refs_add, &l, e);
	if (l.oom)
		rc = err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		if ((rc = ledger_person_record_remove(t, c, &l.v[i], e)) == 0)
			rc = ledger_person_record_add(t, m, &l.v[i], e);
	}
	free(l.v);
	return rc;
}

/* ---- purposes ---- */

struct plist {
	struct ledger_purpose *v;
	size_t n, cap;
	bool oom;
};

static int plist_add(const struct ledger_purpose *p, void *ctx)
{
	struct plist *l = ctx;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct ledger_purpose *g = realloc(l->v, cap * sizeof(*g));
		if (g == NULL) {
			l->oom = true;
			return 1;
		}
		l->v = g;
		l->cap = cap;
	}
	l->v[l->n++] = *p;
	return 0;
}

static int rank(const struct ledger_purpose *p)
{
	return p->status == LEDGER_PURPOSE_OUT ? 2 : p->status == LEDGER_PURPOSE_IN ? 1 : 0;
}

/* The purposes of from (deleted there) merged into to's. */
static int move_purposes(struct ledger_txn *t, const uint8_t from[LEDGER_KEY_LEN],
                         const uint8_t to[LEDGER_KEY_LEN], struct err *e)
{
	struct plist l = {0};
	int rc = ledger_purpose_each(t, from, plist_add, &l, e);
	if (l.oom)
		rc = err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		struct ledger_purpose *p = &l.v[i], cur;
		uint8_t k[LEDGER_KEY_LEN + LEDGER_PURPOSE_NAME_MAX];
		size_t nl = strlen(p->name);
		memcpy(k, from, LEDGER_KEY_LEN);
		memcpy(k + LEDGER_KEY_LEN, p->name, nl);
		if ((rc = db_del(t, t->l->purposes, k, LEDGER_KEY_LEN + nl, NULL, "move purpose",
		                 e)))
			break;
		rc = ledger_purpose_get(t, to, p->name, &cur, e);
		if (rc == ERR_NOTFOUND) {
			rc = ledger_purpose_put(t, to, p, e);
			continue;
		}
		if (rc)
			break;
		/* out wins, then in; of two alike the newer */
		const struct ledger_purpose *win =
		    rank(p) != rank(&cur) ? (rank(p) > rank(&cur) ? p : &cur)
		                          : (p->changed_at > cur.changed_at ? p : &cur);
		const struct ledger_purpose *lose = win == p ? &cur : p;
		struct ledger_purpose w = *win;
		/* both persons' consent rows are the merged person's (as many
		 * as it can remember; the others are read again when changed) */
		for (uint8_t j = 0; j < lose->nrows; j++)
			if (ledger_purpose_row_find(&w, lose->rows[j].id) == NULL &&
			    w.nrows < LEDGER_PURPOSE_ROWS_MAX)
				w.rows[w.nrows++] = lose->rows[j];
		rc = ledger_purpose_put(t, to, &w, e);
	}
	free(l.v);
	return rc;
}

/* ---- the merged person's opt-out, spread ---- */

struct spread {
	struct ledger_txn *t;
	const struct ledger_person *m;
	struct rekey *r;
	struct ledger_record *rec;
	struct ledger_push *q;
	struct err *e;
};

static int spread_one(const struct ledger_recref *ref, void *ctx)
{
	struct spread *x = ctx;
	struct ledger_txn *t = x->t;
	struct ledger_record *rec = x->rec;
	struct ledger_push *q = x->q;
	int rc = ledger_record_get(t, ref->object, ref->id, rec, x->e);
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if ((rec->flags & (LEDGER_RECORD_DELETED | LEDGER_RECORD_CONVERTED)) ||
	    ((rec->seen.mask & LEDGER_F_OPTED_OUT) && rec->seen.opted_out))
		return 0;
	rc = ledger_push_get(t, ref->object, ref->id, q, x->e);
	if (rc == ERR_NOTFOUND) {
		memset(q, 0, sizeof(*q));
		q->record = *ref;
		ledger_facts_init(&q->want);
		q->enqueued_at = time_now_ms();
		rc = 0;
	}
	if (rc)
		return rc;
	memcpy(q->person, x->m->key, LEDGER_KEY_LEN);
	q->want.mask |= LEDGER_F_OPTED_OUT;
	q->want.opted_out = true;
	ledger_push_renew(q);
	if ((rc = ledger_push_put(t, q, x->e)) == 0)
		x->r->pushes++;
	return rc;
}

/* The merged person's opt-out onto each of its writable records that
 * Salesforce shows opted in. */
static int spread_optout(struct ledger_txn *t, const struct ledger_person *m, struct rekey *r,
                         struct err *e)
{
	struct spread x = {t, m, r, malloc(sizeof(*x.rec)), malloc(sizeof(*x.q)), e};
	int rc = x.rec && x.q ? ledger_person_records_each(t, m, spread_one, &x, e)
	                      : err_set(e, ERR_NOMEM, "out of memory");
	free(x.rec);
	free(x.q);
	return rc;
}

/* The persons moving to g[0].to (n of them), with the one there already. */
static int move_group(struct ledger_txn *t, const struct move *g, size_t n, struct rekey *r,
                      struct err *e)
{
	struct ledger_person *m = malloc(sizeof(*m)), *c = malloc(sizeof(*c));
	struct ledger_event *ev = malloc(sizeof(*ev));
	int rc = m && c && ev ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	if (rc)
		goto out;
	rc = ledger_person_get(t, g[0].to, m, e);
	bool there = rc == 0, erased = there && (m->flags & LEDGER_PERSON_ERASED);
	if (rc == ERR_NOTFOUND)
		rc = 0;
	if (rc)
		goto out;
	bool all_out = !(there && !m->facts.opted_out); /* every one of them opted out */
	uint64_t absorbed[64];
	size_t nabs = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (erased && (rc = ledger_person_erase(t, g[i].from, e)))
			break;
		if ((rc = ledger_person_get(t, g[i].from, c, e)) ||
		    (rc = ledger_person_delete(t, g[i].from, e)) ||
		    (rc = move_purposes(t, g[i].from, g[i].to, e)))
			break;
		all_out &= c->facts.opted_out;
		if (!there && i == 0) {
			*m = *c; /* the first one moves; the others merge into it */
			memcpy(m->key, g[0].to, LEDGER_KEY_LEN);
			continue;
		}
		merge_into(m, c);
		if ((rc = move_links(t, m, c, e)))
			break;
		if (nabs == sizeof(absorbed) / sizeof(absorbed[0])) {
			rc = err_set(e, ERR_LIMIT, "more than %zu spellings of one email address",
			             sizeof(absorbed) / sizeof(absorbed[0]));
			break;
		}
		absorbed[nabs++] = c->last_event;
	}
	if (rc)
		goto out;
	if (!erased)
		memcpy(m->email, g[0].email, sizeof(m->email));
	int64_t now = time_now_ms();
	for (size_t i = 0; rc == 0 && i < nabs; i++) {
		ledger_event_init(ev);
		ev->at = now;
		ev->kind = LEDGER_EV_MERGE;
		ev->origin = LEDGER_ORIGIN_LOCAL;
		snprintf(ev->actor, sizeof(ev->actor), "optsync");
		snprintf(ev->reason, sizeof(ev->reason),
		         "two spellings of one email address, one person since schema 6 "
		         "(docs/sync-rules.md, "
		         "'What a person is': the domain's A-label, the local part in NFC, "
		         "lower-cased)");
		ev->facts.mask = LEDGER_F_OPTED_OUT;
		ev->facts.opted_out = m->facts.opted_out;
		ev->merged_prev = absorbed[i];
		rc = ledger_event_append_held(t, m, ev, e);
	}
	if (nabs) {
		m->updated_at = now;
		r->merged += nabs + (there ? 0 : 1);
		r->into++;
	}
	if (rc == 0)
		rc = ledger_person_put(t, m, e);
	/* an opt-out of one spelling is now the others' too */
	if (rc == 0 && nabs && m->facts.opted_out && !all_out) {
		struct ledger_change ch;
		memset(&ch, 0, sizeof(ch));
		ch.event_seq = ev->seq;
		ch.at = now;
		ch.kind = LEDGER_EV_OPTOUT;
		ch.origin = LEDGER_ORIGIN_LOCAL;
		memcpy(ch.person, m->key, LEDGER_KEY_LEN);
		ch.opted_out = true;
		ch.auth_type = (m->facts.mask & LEDGER_F_AUTH_TYPE) ? m->facts.auth_type : 0;
		ch.consent_date =
		    (m->facts.mask & LEDGER_F_CONSENT_DATE) ? m->facts.consent_date : 0;
		ch.source_type = (m->facts.mask & LEDGER_F_SOURCE_TYPE) ? m->facts.source_type : 0;
		rc = ledger_change_append(t, &ch, e);
		if (rc == 0)
			rc = spread_optout(t, m, r, e);
	}
out:
	free(m);
	free(c);
	free(ev);
	return rc;
}

/* ---- what names a person by key ---- */

/* In every value of dbi, the 32-byte field num that holds an old key gets
 * the new one (moves sorted by from). */
static int patch_keys(struct ledger_txn *t, MDB_dbi dbi, unsigned num, const struct move *moves,
                      size_t n, const char *what, struct err *e)
{
	MDB_cursor *cur;
	int mrc = mdb_cursor_open(t->txn, dbi, &cur), op = MDB_FIRST;
	if (mrc)
		return ledger_mdb_error(t, mrc, what, e);
	uint8_t *buf = malloc(CODEC_MAX);
	MDB_val k, v;
	int rc = buf ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	while (rc == 0 && (mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		struct dec d;
		struct field f;
		int r;
		if (dec_init(&d, v.mv_data, v.mv_size)) {
			rc = corrupt(t, what, e);
			break;
		}
		while ((r = dec_next(&d, &f)) == 1 && !(f.num == num && f.wire == W_HASH))
			;
		if (r < 0) {
			rc = corrupt(t, what, e);
			break;
		}
		if (r == 0 || v.mv_size > CODEC_MAX)
			continue;
		struct move key;
		memcpy(key.from, f.data, LEDGER_KEY_LEN);
		const struct move *m = bsearch(&key, moves, n, sizeof(*moves), by_from);
		if (m == NULL)
			continue;
		size_t at = (size_t)(f.data - (const uint8_t *)v.mv_data);
		memcpy(buf, v.mv_data, v.mv_size);
		memcpy(buf + at, m->to, LEDGER_KEY_LEN);
		MDB_val nv = {v.mv_size, buf};
		if ((mrc = mdb_cursor_put(cur, &k, &nv, MDB_CURRENT)))
			rc = ledger_mdb_error(t, mrc, what, e);
	}
	if (rc == 0 && mrc != MDB_NOTFOUND)
		rc = ledger_mdb_error(t, mrc, what, e);
	free(buf);
	mdb_cursor_close(cur);
	return rc;
}

int rekey_migrate(struct ledger_txn *t, struct err *e)
{
	MDB_val v;
	int rc = db_get(t, t->l->meta, "key", 3, &v, "ledger key", e);
	if (rc == ERR_NOTFOUND)
		return corrupt(t, "ledger key (missing)", e);
	if (rc)
		return rc;
	if (v.mv_size != 32)
		return corrupt(t, "ledger key", e);
	struct hmac_key *hk = sha_hmac_key_new(v.mv_data);
	struct rekey *r = calloc(1, sizeof(*r));
	rc = hk && r ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = collect(t, hk, r, e);
	if (rc == 0 && r->n)
		qsort(r->v, r->n, sizeof(*r->v), by_to);
	for (size_t i = 0, j; rc == 0 && i < r->n; i = j) {
		for (j = i + 1; j < r->n && memcmp(r->v[j].to, r->v[i].to, LEDGER_KEY_LEN) == 0;
		     j++)
			;
		rc = move_group(t, r->v + i, j - i, r, e);
	}
	if (rc == 0 && r->n) {
		qsort(r->v, r->n, sizeof(*r->v), by_from);
		rc = patch_keys(t, t->l->records, 1, r->v, r->n, "records", e);
		if (rc == 0)
			rc = patch_keys(t, t->l->outbox, 1, r->v, r->n, "outbox", e);
		if (rc == 0)
			rc = patch_keys(t, t->l->conflicts, 1, r->v, r->n, "conflicts", e);
		if (rc == 0)
			rc = patch_keys(t, t->l->feed, 5, r->v, r->n, "change feed", e);
		/* the open conflicts by person (keyed by the person) are built
		 * anew by step 6 -> 7, which always follows this one */
	}
	if (rc == 0)
		log_info("ledger.migrate",
		         "schema 6 (email normalization): %zu persons re-keyed (%llu read as "
		         "Windows-1252), %llu merged into %llu others, %llu Salesforce writes "
		         "queued for "
		         "merged opt-outs; %llu erased persons keep their key (no email to "
		         "recompute it from)",
		         r->n, (unsigned long long)r->recoded, (unsigned long long)r->merged,
		         (unsigned long long)r->into, (unsigned long long)r->pushes,
		         (unsigned long long)r->erased);
	if (rc == 0 && r->invalid)
		log_warn("ledger.migrate",
		         "schema 6: %llu persons keep their key and email, which the new rules "
		         "refuse; the first: %s",
		         (unsigned long long)r->invalid, r->first_invalid);
	if (r)
		free(r->v);
	free(r);
	sha_hmac_key_free(hk);
	return rc;
}
