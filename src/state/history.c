/* The append-only history and its hash chain.
 *
 * Event i is stored under its sequence number with prev_hash = H(i-1),
 * where
 *   H(i) = SHA-256("optsync-event-v1" || seq(8, big-endian) || prev_hash
 *                  || public encoding || personal digest)
 * and the personal digest is SHA-256 of the encoding of the event's
 * personal part (free texts and evidence). Erasure drops the personal part
 * but stores its digest in its place, so every H(i) is unchanged and the
 * chain still verifies. meta "chain_head" holds (seq, H(seq)) of the last
 * event, so that removing events from the end is caught too.
 *
 * Retention replaces an event by a stub: the key, field 9 (prev_hash),
 * field 14 (the event's own hash H(i)) and field 15 (the seq of the
 * retention event that purged it). Verification takes H(i) from the stub,
 * checks its link to the event before, and counts the stubs of each
 * retention event against the count that event holds (field 13). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"
#include "state/sha.h"

static const char domain[] = "optsync-event-v1";

void ledger_event_init(struct ledger_event *ev)
{
	ev->seq = 0;
	ev->at = 0;
	ev->kind = ev->origin = 0;
	memset(ev->person, 0, sizeof(ev->person));
	ev->person_prev = 0;
	ev->actor[0] = '\0';
	ev->record.object = 0;
	ev->record.id[0] = '\0';
	ev->conflict_id = 0;
	ledger_facts_init(&ev->facts);
	ev->reason[0] = ev->evidence_ref[0] = ev->evidence_sha256[0] = '\0';
	ev->erased = false;
	memset(ev->prev_hash, 0, sizeof(ev->prev_hash));
	ev->count = 0;
	ev->purged = false;
	ev->purged_by = 0;
}

/* public fields: 1 at, 2 kind, 3 origin, 4 person, 5 actor, 6 record,
 * 7 conflict_id, 8 facts (enums only), 12 person_prev, 13 count (0, and so
 * absent, in every event but a retention run's) */
static void encode_public(struct enc *en, const struct ledger_event *ev)
{
	uint8_t k[1 + LEDGER_ID_MAX];
	enc_sint(en, 1, ev->at);
	enc_uint(en, 2, ev->kind);
	enc_uint(en, 3, ev->origin);
	enc_hash(en, 4, ev->person);
	enc_str(en, 5, ev->actor);
	if (ev->record.object)
		enc_bytes(en, 6, k, recref_key(k, ev->record.object, ev->record.id));
	enc_uint(en, 7, ev->conflict_id);
	enc_facts(en, 8, &ev->facts, 0);
	enc_uint(en, 12, ev->person_prev);
	enc_uint(en, 13, ev->count);
}

/* personal fields: 1 purpose, 2 auth_other, 3 source_other, 4 reason,
 * 5 evidence_ref, 6 evidence_sha256 */
static void encode_personal(struct enc *en, const struct ledger_event *ev)
{
	enc_str(en, 1, ev->facts.purpose);
	enc_str(en, 2, ev->facts.auth_other);
	enc_str(en, 3, ev->facts.source_other);
	enc_str(en, 4, ev->reason);
	enc_str(en, 5, ev->evidence_ref);
	enc_str(en, 6, ev->evidence_sha256);
}

static int personal_digest(const struct ledger_event *ev, uint8_t out[32])
{
	uint8_t buf[CODEC_MAX];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	encode_personal(&en, ev);
	if (en.overflow)
		return -1;
	sha256_2(buf, en.len, NULL, 0, out);
	return 0;
}

static int event_hash(const struct ledger_event *ev, const uint8_t pdigest[32], uint8_t out[32])
{
	uint8_t buf[CODEC_MAX];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	encode_public(&en, ev);
	if (en.overflow)
		return -1;
	uint8_t head[sizeof(domain) - 1 + 8 + 32 + 32];
	size_t o = 0;
	memcpy(head, domain, sizeof(domain) - 1);
	o += sizeof(domain) - 1;
	be64_put(head + o, ev->seq);
	o += 8;
	memcpy(head + o, ev->prev_hash, 32);
	o += 32;
	memcpy(head + o, pdigest, 32);
	o += 32;
	sha256_2(head, o, buf, en.len, out);
	return 0;
}

/* stored form: public fields 1-8, 9 prev_hash, 10 personal (nested) or
 * 11 personal digest when erased */
static int event_store(struct ledger_txn *t, const struct ledger_event *ev,
                       const uint8_t pdigest[32], unsigned put_flags, struct err *e)
{
	uint8_t buf[CODEC_MAX], pbuf[CODEC_MAX], k[8];
	struct enc en, pen;
	enc_init(&en, buf, sizeof(buf));
	encode_public(&en, ev);
	enc_hash(&en, 9, ev->prev_hash);
	if (ev->erased) {
		enc_hash(&en, 11, pdigest);
	} else {
		enc_init(&pen, pbuf, sizeof(pbuf));
		pen.len = 0; /* nested: no version byte */
		encode_personal(&pen, ev);
		if (pen.overflow)
			en.overflow = 1;
		enc_bytes(&en, 10, pbuf, pen.len);
	}
	if (en.overflow)
		return err_set(e, ERR_LIMIT, "history event too large to store");
	be64_put(k, ev->seq);
	return db_put(t, t->l->history, k, 8, buf, en.len, put_flags, "append history", e);
}

static int event_decode(const MDB_val *k, const MDB_val *v, struct ledger_event *ev,
                        uint8_t stored_digest[32])
{
	struct dec d, pd;
	struct field f, g;
	int r;
	ledger_event_init(ev);
	if (k->mv_size != 8 || dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	ev->seq = be64_get(k->mv_data);
	while ((r = dec_next(&d, &f)) == 1) {
		int bad = 0;
		switch (f.num) {
		case 1:
			ev->at = f.s;
			break;
		case 2:
			ev->kind = (uint8_t)f.u;
			break;
		case 3:
			ev->origin = (uint8_t)f.u;
			break;
		case 4:
			bad = f.wire != W_HASH;
			if (!bad)
				memcpy(ev->person, f.data, 32);
			break;
		case 5:
			bad = dec_str(&f, ev->actor, sizeof(ev->actor));
			break;
		case 6:
			bad = f.wire != W_BYTES || f.len < 1 || f.len > 1 + LEDGER_ID_MAX;
			if (!bad) {
				ev->record.object = f.data[0];
				memcpy(ev->record.id, f.data + 1, f.len - 1);
				ev->record.id[f.len - 1] = '\0';
			}
			break;
		case 7:
			ev->conflict_id = f.u;
			break;
		case 8:
			bad = dec_facts(&f, &ev->facts);
			break;
		case 9:
			bad = f.wire != W_HASH;
			if (!bad)
				memcpy(ev->prev_hash, f.data, 32);
			break;
		case 10:
			bad = f.wire != W_BYTES;
			if (bad)
				break;
			pd.p = f.data;
			pd.end = f.data + f.len;
			pd.bad = 0;
			while (!bad && (r = dec_next(&pd, &g)) == 1) {
				switch (g.num) {
				case 1:
					bad = dec_str(&g, ev->facts.purpose,
					              sizeof(ev->facts.purpose));
					break;
				case 2:
					bad = dec_str(&g, ev->facts.auth_other,
					              sizeof(ev->facts.auth_other));
					break;
				case 3:
					bad = dec_str(&g, ev->facts.source_other,
					              sizeof(ev->facts.source_other));
					break;
				case 4:
					bad = dec_str(&g, ev->reason, sizeof(ev->reason));
					break;
				case 5:
					bad =
					    dec_str(&g, ev->evidence_ref, sizeof(ev->evidence_ref));
					break;
				case 6:
					bad = dec_str(&g, ev->evidence_sha256,
					              sizeof(ev->evidence_sha256));
					break;
				default:
					break;
				}
			}
			bad |= r < 0;
			break;
		case 11:
			bad = f.wire != W_HASH;
			if (!bad) {
				ev->erased = true;
				memcpy(stored_digest, f.data, 32);
			}
			break;
		case 12:
			ev->person_prev = f.u;
			break;
		case 13:
			ev->count = f.u;
			break;
		case 14: /* a stub: its hash */
			bad = f.wire != W_HASH;
			if (!bad) {
				ev->purged = true;
				memcpy(stored_digest, f.data, 32);
			}
			break;
		case 15:
			ev->purged_by = f.u;
			break;
		default:
			break;
		}
		if (bad)
			return -1;
	}
	return r;
}

int ledger_event_append(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                        struct err *e)
{
	/* chain_head: seq (8) then hash (32) */
	MDB_val head;
	int rc = db_get(t, t->l->meta, "chain_head", 10, &head, "chain head", e);
	if (rc == ERR_NOTFOUND) {
		memset(ev->prev_hash, 0, 32);
	} else if (rc) {
		return rc;
	} else if (head.mv_size != 40) {
		return corrupt(t, "the chain head", e);
	} else {
		memcpy(ev->prev_hash, (uint8_t *)head.mv_data + 8, 32);
	}
	if ((rc = meta_next(t, "event_seq", &ev->seq, e)))
		return rc;
	if (p) {
		memcpy(ev->person, p->key, LEDGER_KEY_LEN);
		ev->person_prev = p->last_event;
	} else {
		memset(ev->person, 0, LEDGER_KEY_LEN);
		ev->person_prev = 0;
	}
	uint8_t pd[32], h[32];
	ev->erased = false;
	if (personal_digest(ev, pd) || event_hash(ev, pd, h))
		return err_set(e, ERR_LIMIT, "history event too large to hash");
	if ((rc = event_store(t, ev, pd, MDB_APPEND, e)))
		return rc;
	uint8_t nh[40];
	be64_put(nh, ev->seq);
	memcpy(nh + 8, h, 32);
	if ((rc = db_put(t, t->l->meta, "chain_head", 10, nh, 40, 0, "chain head", e)))
		return rc;
	if (p == NULL)
		return 0;
	p->last_event = ev->seq;
	return ledger_person_put(t, p, e);
}

int ledger_event_get(struct ledger_txn *t, uint64_t seq, struct ledger_event *out, struct err *e)
{
	uint8_t kb[8], dig[32];
	be64_put(kb, seq);
	MDB_val k = {8, kb}, v;
	int rc = db_get(t, t->l->history, kb, 8, &v, "history event", e);
	if (rc)
		return rc;
	return event_decode(&k, &v, out, dig) ? corrupt(t, "a history event", e) : 0;
}

/* The seqs of a person's events, oldest first, following person_prev
 * back from last: all of them, or with before < INT64_MAX only the oldest
 * ones before that time (the run that ends at the first newer event; a
 * person's events are in time order). *out is malloc'ed. */
static int person_seqs(struct ledger_txn *t, uint64_t last, int64_t before, uint64_t **out,
                       size_t *n, struct err *e)
{
	size_t cap = 16;
	*n = 0;
	*out = malloc(cap * sizeof(**out));
	uint8_t dig[32];
	struct ledger_event *ev = malloc(sizeof(*ev));
	int rc = *out && ev ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (uint64_t seq = last; rc == 0 && seq != 0;) {
		if (*n == cap) {
			uint64_t *grown = cap > SIZE_MAX / 2 / sizeof(**out)
			                      ? NULL
			                      : realloc(*out, cap * 2 * sizeof(**out));
			if (grown == NULL) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			*out = grown;
			cap *= 2;
		}
		uint8_t kb[8];
		be64_put(kb, seq);
		MDB_val k = {8, kb}, v;
		if ((rc = db_get(t, t->l->history, kb, 8, &v, "history event", e)))
			break;
		if (event_decode(&k, &v, ev, dig)) {
			rc = corrupt(t, "a history event", e);
			break;
		}
		if (ev->purged)
			break; /* retention removed it and everything older */
		if (before != INT64_MAX && ev->at >= before)
			*n = 0; /* it and everything newer stay */
		else
			(*out)[(*n)++] = seq;
		if (ev->person_prev >= seq) {
			rc = corrupt(t, "a person's history list (a loop)", e);
			break;
		}
		seq = ev->person_prev;
	}
	free(ev);
	for (size_t i = 0; rc == 0 && i < *n / 2; i++) {
		uint64_t tmp = (*out)[i];
		(*out)[i] = (*out)[*n - 1 - i];
		(*out)[*n - 1 - i] = tmp;
	}
	if (rc) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

static int each_seq_of(struct ledger_txn *t, uint64_t last,
                       int (*fn)(struct ledger_txn *, uint64_t, void *), void *ctx, struct err *e)
{
	uint64_t *seqs;
	size_t n;
	int rc = person_seqs(t, last, INT64_MAX, &seqs, &n, e);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = fn(t, seqs[i], ctx);
	free(seqs);
	return rc;
}

struct visit_ctx {
	int (*fn)(const struct ledger_event *, void *);
	void *ctx;
	struct ledger_event *ev;
	struct err *e;
};

static int visit_one(struct ledger_txn *t, uint64_t seq, void *ctx)
{
	struct visit_ctx *v = ctx;
	int rc = ledger_event_get(t, seq, v->ev, v->e);
	return rc ? rc : v->fn(v->ev, v->ctx);
}

int ledger_event_each_of(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                         int (*fn)(const struct ledger_event *, void *), void *ctx, struct err *e)
{
	struct ledger_person *p = malloc(sizeof(*p));
	struct visit_ctx v = {fn, ctx, malloc(sizeof(struct ledger_event)), e};
	int rc =
	    p && v.ev ? ledger_person_get(t, person, p, e) : err_set(e, ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = each_seq_of(t, p->last_event, visit_one, &v, e);
	free(p);
	free(v.ev);
	return rc;
}

/* Erasure of one event's personal part, keeping its digest. */
static int scrub_one(struct ledger_txn *t, uint64_t seq, void *ctx)
{
	struct err *e = ctx;
	struct ledger_event *ev = malloc(sizeof(*ev));
	if (ev == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	uint8_t kb[8], pd[32];
	be64_put(kb, seq);
	MDB_val k = {8, kb}, v;
	int rc = db_get(t, t->l->history, kb, 8, &v, "history event", e);
	if (rc == 0 && event_decode(&k, &v, ev, pd))
		rc = corrupt(t, "a history event", e);
	if (rc == 0 && !ev->erased && !ev->purged) {
		if (personal_digest(ev, pd)) {
			rc = err_set(e, ERR_INTERNAL, "cannot hash event %llu",
			             (unsigned long long)seq);
		} else {
			ev->facts.purpose[0] = ev->facts.auth_other[0] = ev->facts.source_other[0] =
			    '\0';
			ev->reason[0] = ev->evidence_ref[0] = ev->evidence_sha256[0] = '\0';
			ev->erased = true;
			rc = event_store(t, ev, pd, 0, e);
		}
	}
	free(ev);
	return rc;
}

int ledger_event_scrub_list(struct ledger_txn *t, uint64_t last_event, struct err *e)
{
	return each_seq_of(t, last_event, scrub_one, e, e);
}

/* Replace event seq by a stub naming run; *was set to 1 when it was an
 * event (0: a stub already). */
static int event_purge(struct ledger_txn *t, uint64_t seq, uint64_t run, int *was, struct err *e)
{
	struct ledger_event *ev = malloc(sizeof(*ev));
	if (ev == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	uint8_t kb[8], pd[32], h[32];
	be64_put(kb, seq);
	MDB_val k = {8, kb}, v;
	*was = 0;
	int rc = db_get(t, t->l->history, kb, 8, &v, "history event", e);
	if (rc == 0 && event_decode(&k, &v, ev, pd))
		rc = corrupt(t, "a history event", e);
	if (rc == 0 && !ev->purged) {
		if ((!ev->erased && personal_digest(ev, pd)) || event_hash(ev, pd, h)) {
			rc = err_set(e, ERR_INTERNAL, "cannot hash event %llu",
			             (unsigned long long)seq);
		} else {
			uint8_t buf[128];
			struct enc en;
			enc_init(&en, buf, sizeof(buf));
			enc_hash(&en, 9, ev->prev_hash);
			enc_hash(&en, 14, h);
			enc_uint(&en, 15, run);
			rc = db_put(t, t->l->history, kb, 8, buf, en.len, 0, "purge history event",
			            e);
			*was = rc == 0;
		}
	}
	free(ev);
	return rc;
}

struct purge_ctx {
	uint64_t run;
	uint64_t n;
	struct err *e;
};

static int purge_one(struct ledger_txn *t, uint64_t seq, void *ctx)
{
	struct purge_ctx *p = ctx;
	int was = 0;
	int rc = event_purge(t, seq, p->run, &was, p->e);
	p->n += (uint64_t)was;
	return rc;
}

struct cand {
	uint8_t key[LEDGER_KEY_LEN];
	uint64_t last;
	bool stale; /* the person goes too */
};

struct scan {
	const struct ledger_retention *r;
	struct cand *c;
	size_t n, cap;
	int oom;
};

static int scan_person(const struct ledger_person *p, void *ctx)
{
	struct scan *s = ctx;
	if (p->facts.opted_out)
		return 0; /* an opt-out outlives every rule */
	bool stale =
	    s->r->persons_before && p->nrecords == 0 && p->updated_at < s->r->persons_before;
	if (!stale && (s->r->events_before == 0 || p->last_event == 0))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct cand *g = realloc(s->c, cap * sizeof(*g));
		if (g == NULL) {
			s->oom = 1;
			return 1;
		}
		s->c = g;
		s->cap = cap;
	}
	memcpy(s->c[s->n].key, p->key, LEDGER_KEY_LEN);
	s->c[s->n].last = p->last_event;
	s->c[s->n].stale = stale;
	s->n++;
	return 0;
}

struct old_conflicts {
	int64_t before;
	uint64_t *ids;
	size_t n, cap;
	int oom;
};

static int scan_conflict(const struct ledger_conflict *c, void *ctx)
{
	struct old_conflicts *o = ctx;
	if (c->status != LEDGER_CONFLICT_RESOLVED || c->resolved_at >= o->before)
		return 0;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint64_t *g = realloc(o->ids, cap * sizeof(*g));
		if (g == NULL) {
			o->oom = 1;
			return 1;
		}
		o->ids = g;
		o->cap = cap;
	}
	o->ids[o->n++] = c->id;
	return 0;
}

/* What one run would remove: the persons with something to purge (their
 * keys) and the conflicts. */
struct plan {
	uint8_t (*keys)[LEDGER_KEY_LEN];
	size_t nkeys;
	uint64_t *conflicts;
	size_t nconflicts;
};

static void plan_free(struct plan *p)
{
	free(p->keys);
	free(p->conflicts);
	memset(p, 0, sizeof(*p));
}

/* One run in t. only == NULL: look at every person and conflict, and fill
 * out (when given) with what would go. only != NULL: look again at just
 * those (state may have changed since they were picked). Writes only when
 * !dry_run. */
static int retention_in(struct ledger_txn *t, const struct ledger_retention *r, bool dry_run,
                        const struct plan *only, struct plan *out,
                        struct ledger_retention_report *rep, struct err *e)
{
	memset(rep, 0, sizeof(*rep));
	struct scan s = {r, NULL, 0, 0, 0};
	struct old_conflicts oc = {r->conflicts_before, NULL, 0, 0, 0};
	uint64_t **lists = NULL;
	size_t *lens = NULL;
	int rc = 0;
	if (only == NULL) {
		rc = ledger_person_each(t, scan_person, &s, e);
		if (rc == 0 && r->conflicts_before)
			rc = ledger_conflict_each(t, scan_conflict, &oc, e);
	} else {
		struct ledger_person *p = malloc(sizeof(*p));
		struct ledger_conflict *c = malloc(sizeof(*c));
		if (p == NULL || c == NULL)
			rc = err_set(e, ERR_NOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < only->nkeys; i++) {
			rc = ledger_person_get(t, only->keys[i], p, e);
			if (rc == 0)
				scan_person(p, &s);
			else if (rc == ERR_NOTFOUND)
				rc = 0;
		}
		for (size_t i = 0; rc == 0 && i < only->nconflicts; i++) {
			rc = ledger_conflict_get(t, only->conflicts[i], c, e);
			if (rc == 0)
				scan_conflict(c, &oc);
			else if (rc == ERR_NOTFOUND)
				rc = 0;
		}
		free(p);
		free(c);
	}
	if (rc == 0 && (s.oom || oc.oom))
		rc = err_set(e, ERR_NOMEM, "out of memory");
	lists = calloc(s.n ? s.n : 1, sizeof(*lists));
	lens = calloc(s.n ? s.n : 1, sizeof(*lens));
	if (rc == 0 && (lists == NULL || lens == NULL))
		rc = err_set(e, ERR_NOMEM, "out of memory");
	/* what goes: counted before anything is written, since the run's
	 * event (appended first) holds the count its stubs are checked against */
	for (size_t i = 0; rc == 0 && i < s.n; i++) {
		int64_t before = s.c[i].stale ? INT64_MAX : r->events_before;
		rc = person_seqs(t, s.c[i].last, before, &lists[i], &lens[i], e);
		rep->events += lens[i];
		rep->persons += s.c[i].stale;
	}
	rep->conflicts = oc.n;
	if (rc == 0 && out) {
		out->keys = malloc((s.n ? s.n : 1) * sizeof(*out->keys));
		out->conflicts = malloc((oc.n ? oc.n : 1) * sizeof(*out->conflicts));
		if (out->keys == NULL || out->conflicts == NULL)
			rc = err_set(e, ERR_NOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < s.n; i++)
			if (lens[i] || s.c[i].stale)
				memcpy(out->keys[out->nkeys++], s.c[i].key, LEDGER_KEY_LEN);
		for (size_t i = 0; rc == 0 && i < oc.n; i++)
			out->conflicts[out->nconflicts++] = oc.ids[i];
	}
	if (rc || dry_run || rep->events + rep->persons + rep->conflicts == 0)
		goto out;
	struct ledger_event *ev = malloc(sizeof(*ev));
	if (ev == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	ledger_event_init(ev);
	ev->kind = LEDGER_EV_RETENTION;
	ev->origin = LEDGER_ORIGIN_LOCAL;
	ev->at = r->now;
	ev->count = rep->events;
	snprintf(ev->actor, sizeof(ev->actor), "%s", r->actor ? r->actor : "retention");
	snprintf(ev->reason, sizeof(ev->reason),
	         "purged %llu events, %llu resolved conflicts, %llu stale persons",
	         (unsigned long long)rep->events, (unsigned long long)rep->conflicts,
	         (unsigned long long)rep->persons);
	rc = ledger_event_append(t, NULL, ev, e);
	rep->event_seq = ev->seq;
	free(ev);
	struct purge_ctx pc = {rep->event_seq, 0, e};
	for (size_t i = 0; rc == 0 && i < s.n; i++) {
		for (size_t j = 0; rc == 0 && j < lens[i]; j++)
			rc = purge_one(t, lists[i][j], &pc);
		if (rc == 0 && s.c[i].stale)
			rc = ledger_person_delete(t, s.c[i].key, e);
	}
	if (rc == 0 && pc.n != rep->events)
		rc = err_set(e, ERR_INTERNAL, "retention: %llu events counted, %llu purged",
		             (unsigned long long)rep->events, (unsigned long long)pc.n);
	for (size_t i = 0; rc == 0 && i < oc.n; i++)
		rc = ledger_conflict_delete(t, oc.ids[i], e);
out:
	for (size_t i = 0; lists && i < s.n; i++)
		free(lists[i]);
	free(lists);
	free(lens);
	free(s.c);
	free(oc.ids);
	return rc;
}

struct retention_ctx {
	const struct ledger_retention *r;
	struct plan plan;
	struct ledger_retention_report rep;
	ledger_retention_hook hook;
	void *hook_ctx;
};

static int plan_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct retention_ctx *x = ctx;
	plan_free(&x->plan);
	return retention_in(t, x->r, true, NULL, &x->plan, &x->rep, e);
}

static int apply_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct retention_ctx *x = ctx;
	int rc = retention_in(t, x->r, false, &x->plan, NULL, &x->rep, e);
	if (rc == 0 && x->hook)
		rc = x->hook(t, &x->rep, x->hook_ctx, e);
	return rc;
}

int ledger_retention(struct ledger *l, const struct ledger_retention *r, ledger_retention_hook hook,
                     void *hook_ctx, struct ledger_retention_report *rep, struct err *e)
{
	struct retention_ctx x = {r, {0}, {0}, hook, hook_ctx};
	/* the scan of every person reads; only what it picked is looked at
	 * again (and removed) in the write transaction, which stays short */
	int rc = ledger_read(l, plan_txn, &x, e);
	if (rc == 0 && !r->dry_run)
		rc = ledger_write(l, apply_txn, &x, e);
	*rep = x.rep;
	plan_free(&x.plan);
	return rc;
}

/* Stubs per retention event: an open-addressing table run -> count. */
struct tally {
	uint64_t *run, *n;
	size_t cap, used;
};

static uint64_t *tally_slot(struct tally *t, uint64_t run)
{
	if (t->used * 2 >= t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		uint64_t *r = calloc(cap, sizeof(*r)), *n = calloc(cap, sizeof(*n));
		if (r == NULL || n == NULL) {
			free(r);
			free(n);
			return NULL;
		}
		for (size_t i = 0; i < t->cap; i++) {
			if (t->run[i] == 0)
				continue;
			size_t j = (size_t)(t->run[i] * 0x9E3779B97F4A7C15ull) & (cap - 1);
			while (r[j])
				j = (j + 1) & (cap - 1);
			r[j] = t->run[i];
			n[j] = t->n[i];
		}
		free(t->run);
		free(t->n);
		t->run = r;
		t->n = n;
		t->cap = cap;
	}
	size_t j = (size_t)(run * 0x9E3779B97F4A7C15ull) & (t->cap - 1);
	while (t->run[j] && t->run[j] != run)
		j = (j + 1) & (t->cap - 1);
	if (t->run[j] == 0) {
		t->run[j] = run;
		t->used++;
	}
	return &t->n[j];
}

/* ---- verification ---- */

struct verify_ctx {
	struct ledger_verify_report *rep;
	uint64_t at; /* the event whose hash to report, 0: none */
};

static int bad_event(struct ledger_verify_report *rep, uint64_t seq, const char *why)
{
	rep->first_bad = seq;
	snprintf(rep->why, sizeof(rep->why), "%s", why);
	return 1;
}

static int verify_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger_verify_report *rep = ((struct verify_ctx *)ctx)->rep;
	uint64_t at = ((struct verify_ctx *)ctx)->at;
	struct ledger_event *ev = malloc(sizeof(*ev));
	if (ev == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->l->history, &c);
	if (rc) {
		free(ev);
		return ledger_mdb_error(t, rc, "history cursor", e);
	}
	uint8_t running[32] = {0}, pd[32], h[32];
	uint64_t expect = 1;
	struct tally tl = {0};
	char msg[160];
	MDB_val k, v;
	int op = MDB_FIRST, bad = 0;
	while (!bad && (rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (event_decode(&k, &v, ev, pd)) {
			bad = bad_event(rep, k.mv_size == 8 ? be64_get(k.mv_data) : expect,
			                "event cannot be decoded");
			break;
		}
		if (ev->seq != expect) {
			bad = bad_event(rep, expect, "event missing (sequence gap)");
			break;
		}
		if (memcmp(ev->prev_hash, running, 32) != 0) {
			bad = bad_event(rep, ev->seq - 1,
			                "event altered: its hash no longer matches the link stored "
			                "in the next event (or that link was altered)");
			break;
		}
		if (ev->purged) {
			uint64_t *n =
			    ev->purged_by > ev->seq ? tally_slot(&tl, ev->purged_by) : NULL;
			if (n == NULL) {
				bad =
				    bad_event(rep, ev->seq,
				              ev->purged_by > ev->seq
				                  ? "out of memory"
				                  : "a purged event names no later retention run");
				break;
			}
			(*n)++;
			memcpy(running, pd, 32); /* the stub keeps the event's hash */
			if (ev->seq == at) {
				rep->at_found = true;
				memcpy(rep->at_hash, running, 32);
			}
			rep->purged++;
			rep->events++;
			expect++;
			continue;
		}
		if (!ev->erased && personal_digest(ev, pd)) {
			bad = bad_event(rep, ev->seq, "event too large");
			break;
		}
		if (event_hash(ev, pd, h)) {
			bad = bad_event(rep, ev->seq, "event too large");
			break;
		}
		if (ev->kind == LEDGER_EV_RETENTION) {
			uint64_t *n = tally_slot(&tl, ev->seq);
			if (n == NULL || *n != ev->count) {
				snprintf(msg, sizeof(msg),
				         "retention run purged %llu events, but %llu purged events "
				         "name it",
				         (unsigned long long)ev->count,
				         (unsigned long long)(n ? *n : 0));
				bad = bad_event(rep, ev->seq, msg);
				break;
			}
			*n = UINT64_MAX; /* matched */
		}
		memcpy(running, h, 32);
		if (ev->seq == at) {
			rep->at_found = true;
			memcpy(rep->at_hash, running, 32);
		}
		rep->events++;
		expect++;
	}
	memcpy(rep->head_hash, running, 32);
	for (size_t i = 0; !bad && i < tl.cap; i++)
		if (tl.run[i] && tl.n[i] != UINT64_MAX)
			bad = bad_event(
			    rep, tl.run[i],
			    "purged events name this event, which is not a retention run");
	free(tl.run);
	free(tl.n);
	mdb_cursor_close(c);
	free(ev);
	if (rc && rc != MDB_NOTFOUND && !bad)
		return ledger_mdb_error(t, rc, "history cursor", e);
	if (!bad) {
		MDB_val head;
		rc = db_get(t, t->l->meta, "chain_head", 10, &head, "chain head", e);
		if (rc == ERR_NOTFOUND) {
			if (rep->events != 0)
				bad = bad_event(rep, 1, "chain head missing");
		} else if (rc) {
			return rc;
		} else if (head.mv_size != 40 || be64_get(head.mv_data) != rep->events) {
			bad = bad_event(rep, rep->events + 1,
			                "events missing at the end (chain head is further on)");
		} else if (memcmp((uint8_t *)head.mv_data + 8, running, 32) != 0) {
			/* the last event itself was altered after the head was written */
			bad = bad_event(rep, rep->events,
			                "event altered (hash differs from chain head)");
		}
	}
	if (bad)
		return err_set(e, ERR_LEDGER, "history chain broken at event %llu: %s",
		               (unsigned long long)rep->first_bad, rep->why);
	return 0;
}

int ledger_verify_at(struct ledger *l, uint64_t at, struct ledger_verify_report *rep, struct err *e)
{
	memset(rep, 0, sizeof(*rep));
	struct verify_ctx v = {rep, at};
	return ledger_read(l, verify_txn, &v, e);
}

int ledger_verify(struct ledger *l, struct ledger_verify_report *rep, struct err *e)
{
	return ledger_verify_at(l, 0, rep, e);
}

/* The fuzz target's way in: decode (k, v) as a history event. */
int ledger_probe_event(const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	struct ledger_event *ev = malloc(sizeof(*ev));
	uint8_t digest[32];
	int ok = ev != NULL && event_decode(&key, &val, ev, digest) == 0;
	free(ev);
	return ok;
}
