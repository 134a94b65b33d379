/* The append-only history and its hash chain: events, their encoding and
 * hash, a person's list of events, erasure of their personal part.
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
	ev->campaign[0] = ev->purpose_name[0] = '\0';
	ev->access_what[0] = ev->access_via[0] = '\0';
}

/* public fields: 1 at, 2 kind, 3 origin, 4 person, 5 actor, 6 record,
 * 7 conflict_id, 8 facts (enums only), 12 person_prev, 13 count (0, and so
 * absent, in every event but a retention run's), 16 campaign, 17
 * purpose_name (empty, and so absent, but in a link's opt-out: events
 * stored before them hash as they did), 18 access_what and 19 access_via
 * (an access event's; absent elsewhere) */
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
	enc_str(en, 16, ev->campaign);
	enc_str(en, 17, ev->purpose_name);
	enc_str(en, 18, ev->access_what);
	enc_str(en, 19, ev->access_via);
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

int hist_personal_digest(const struct ledger_event *ev, uint8_t out[32])
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

int hist_event_hash(const struct ledger_event *ev, const uint8_t pdigest[32], uint8_t out[32])
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
int hist_event_store(struct ledger_txn *t, const struct ledger_event *ev, const uint8_t pdigest[32],
                     unsigned put_flags, struct err *e)
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

int hist_event_decode(const MDB_val *k, const MDB_val *v, struct ledger_event *ev,
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
		case 16:
			bad = dec_str(&f, ev->campaign, sizeof(ev->campaign));
			break;
		case 17:
			bad = dec_str(&f, ev->purpose_name, sizeof(ev->purpose_name));
			break;
		case 18:
			bad = dec_str(&f, ev->access_what, sizeof(ev->access_what));
			break;
		case 19:
			bad = dec_str(&f, ev->access_via, sizeof(ev->access_via));
			break;
		default:
			break;
		}
		if (bad)
			return -1;
	}
	return r;
}

static int event_append(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                        bool store_person, struct err *e)
{
	/* chain_head: seq (8) then hash (32) */
	uint8_t head[40];
	int found, rc = chain_head_get(t, head, &found, e);
	if (rc)
		return rc;
	if (found)
		memcpy(ev->prev_hash, head + 8, 32);
	else
		memset(ev->prev_hash, 0, 32);
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
	if (hist_personal_digest(ev, pd) || hist_event_hash(ev, pd, h))
		return err_set(e, ERR_LIMIT, "history event too large to hash");
	if ((rc = hist_event_store(t, ev, pd, MDB_APPEND, e)))
		return rc;
	uint8_t nh[40];
	be64_put(nh, ev->seq);
	memcpy(nh + 8, h, 32);
	if ((rc = chain_head_put(t, nh, e)))
		return rc;
	if (p == NULL)
		return 0;
	p->last_event = ev->seq;
	return store_person ? ledger_person_put(t, p, e) : 0;
}

int ledger_event_append(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                        struct err *e)
{
	return event_append(t, p, ev, true, e);
}

int ledger_event_append_held(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                             struct err *e)
{
	return event_append(t, p, ev, false, e);
}

int ledger_event_get(struct ledger_txn *t, uint64_t seq, struct ledger_event *out, struct err *e)
{
	uint8_t kb[8], dig[32];
	be64_put(kb, seq);
	MDB_val k = {8, kb}, v;
	int rc = db_get(t, t->l->history, kb, 8, &v, "history event", e);
	if (rc)
		return rc;
	return hist_event_decode(&k, &v, out, dig) ? corrupt(t, "a history event", e) : 0;
}

/* The seqs of a person's events, oldest first, following person_prev
 * back from last: all of them, or with before < INT64_MAX only the oldest
 * ones before that time (the run that ends at the first newer event; a
 * person's events are in time order). *out is malloc'ed. */
int hist_person_seqs(struct ledger_txn *t, uint64_t last, int64_t before, uint64_t **out, size_t *n,
                     struct err *e)
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
		if (hist_event_decode(&k, &v, ev, dig)) {
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

int hist_each_seq_of(struct ledger_txn *t, uint64_t last,
                     int (*fn)(struct ledger_txn *, uint64_t, void *), void *ctx, struct err *e)
{
	uint64_t *seqs;
	size_t n;
	int rc = hist_person_seqs(t, last, INT64_MAX, &seqs, &n, e);
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
		rc = hist_each_seq_of(t, p->last_event, visit_one, &v, e);
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
	if (rc == 0 && hist_event_decode(&k, &v, ev, pd))
		rc = corrupt(t, "a history event", e);
	if (rc == 0 && !ev->erased && !ev->purged) {
		if (hist_personal_digest(ev, pd)) {
			rc = err_set(e, ERR_INTERNAL, "cannot hash event %llu",
			             (unsigned long long)seq);
		} else {
			ev->facts.purpose[0] = ev->facts.auth_other[0] = ev->facts.source_other[0] =
			    '\0';
			ev->reason[0] = ev->evidence_ref[0] = ev->evidence_sha256[0] = '\0';
			ev->erased = true;
			rc = hist_event_store(t, ev, pd, 0, e);
		}
	}
	free(ev);
	return rc;
}

int ledger_event_scrub_list(struct ledger_txn *t, uint64_t last_event, struct err *e)
{
	return hist_each_seq_of(t, last_event, scrub_one, e, e);
}

/* Replace event seq by a stub naming run; *was set to 1 when it was an
 * event (0: a stub already). */
