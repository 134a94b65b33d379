/* The append-only history and its hash chain: events, their encoding and
 * hash, a person's list of events, erasure of their personal part.
 *
 * Event i is stored under its sequence number with prev_hash = H(i-1).
 * Events written by this optsync hold field 20 = 2, the hash's version:
 *   H(i) = SHA-256("optsync-event-v2" || seq(8, big-endian) || prev_hash
 *                  || personal digest || the stored value without fields
 *                  9, 10 and 11)
 * where the personal digest is SHA-256 of field 10's bytes as stored (the
 * personal part: free texts and evidence), and the rest of the value is
 * hashed byte for byte as stored, fields this optsync does not know
 * included: a later optsync may add fields and this one still verifies
 * them, and nothing stored is outside the hash. Events written before
 * (no field 20) keep their version-1 hash:
 *   H(i) = SHA-256("optsync-event-v1" || seq || prev_hash
 *                  || SHA-256(personal encoding) || public encoding)
 * of the fields known then, encoded again from what was decoded.
 *
 * Erasure drops the personal part but stores its digest (field 11) in its
 * place, so every H(i) is unchanged and the chain still verifies; a
 * version-2 event keeps every other byte as it was. meta "chain_head"
 * holds (seq, H(seq)) of the last event, so that removing events from the
 * end is caught too.
 *
 * Retention replaces an event by a stub: the key, field 9 (prev_hash),
 * field 14 (the event's own hash H(i), of whichever version) and field 15
 * (the seq of the retention event that purged it). Verification takes H(i)
 * from the stub, checks its link to the event before, and counts the stubs
 * of each retention event against the count that event holds (field 13). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"
#include "state/sha.h"

static const char domain_v1[] = "optsync-event-v1";
static const char domain_v2[] = "optsync-event-v2";
#define HASH_VERSION 2 /* field 20 of the events this optsync writes */

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
	ev->merged_prev = 0;
}

/* public fields: 1 at, 2 kind, 3 origin, 4 person, 5 actor, 6 record,
 * 7 conflict_id, 8 facts (enums only), 12 person_prev, 13 count (0, and so
 * absent, in every event but a retention run's), 16 campaign, 17
 * purpose_name (empty, and so absent, but in a link's opt-out: events
 * stored before them hash as they did), 18 access_what and 19 access_via
 * (an access event's; absent elsewhere), 21 merged_prev (a merge event's;
 * absent elsewhere). The version-1 hash is over this encoding. */
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
	enc_uint(en, 21, ev->merged_prev);
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

/* The stored form: the public fields, 20 the hash's version (version 2
 * only), 9 prev_hash, then 10 the personal part (nested) or, erased, 11 its
 * digest. */
static void encode_stored(struct enc *en, const struct ledger_event *ev, unsigned version,
                          const uint8_t pdigest[32])
{
	encode_public(en, ev);
	if (version >= 2)
		enc_uint(en, 20, version);
	enc_hash(en, 9, ev->prev_hash);
	if (ev->erased) {
		enc_hash(en, 11, pdigest);
		return;
	}
	uint8_t pbuf[CODEC_MAX];
	struct enc pen;
	enc_init(&pen, pbuf, sizeof(pbuf));
	pen.len = 0; /* nested: no version byte */
	encode_personal(&pen, ev);
	if (pen.overflow)
		en->overflow = 1;
	enc_bytes(en, 10, pbuf, pen.len);
}

/* ---- version 1: the known fields, encoded again ---- */

static int personal_digest_v1(const struct ledger_event *ev, uint8_t out[32])
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

static int hash_v1(const struct ledger_event *ev, const uint8_t pdigest[32], uint8_t out[32])
{
	uint8_t buf[CODEC_MAX];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	encode_public(&en, ev);
	if (en.overflow)
		return -1;
	uint8_t head[sizeof(domain_v1) - 1 + 8 + 32 + 32];
	size_t o = 0;
	memcpy(head, domain_v1, sizeof(domain_v1) - 1);
	o += sizeof(domain_v1) - 1;
	be64_put(head + o, ev->seq);
	o += 8;
	memcpy(head + o, ev->prev_hash, 32);
	o += 32;
	memcpy(head + o, pdigest, 32);
	o += 32;
	sha256_2(head, o, buf, en.len, out);
	return 0;
}

/* ---- version 2: the stored bytes ---- */

/* Where the parts of a stored event are. */
struct stored {
	bool named;             /* it holds field 20, the hash's version: not version 1 */
	uint64_t version;       /* field 20 (0 when not a number); 1 when absent */
	struct sha_part pub[4]; /* the value but fields 9, 10 and 11: at most 4 runs */
	size_t npub;
	const uint8_t *personal; /* field 10's bytes (NULL: none) */
	size_t personal_len;
	const uint8_t *field10, *field10_end; /* field 10 with its tag and length */
	const uint8_t *digest;                /* field 11's 32 bytes (NULL: none) */
	const char *bad;                      /* why it cannot be hashed as version 2 */
};

/* Find the parts of a stored event. Only a version-2 event must hold
 * fields 9, 10, 11 and 20 at most once, and not both 10 and 11 (a repeated
 * one would be outside the hash); s->bad then says what is wrong. -1 when
 * the value does not decode. */
static int stored_scan(const uint8_t *p, size_t n, struct stored *s)
{
	struct dec d;
	struct field f;
	unsigned seen[4] = {0}; /* fields 9, 10, 11, 20 */
	memset(s, 0, sizeof(*s));
	s->version = 1;
	if (dec_init(&d, p, n))
		return -1;
	const uint8_t *run = p, *at = d.p;
	int r;
	while ((r = dec_next(&d, &f)) == 1) {
		int cut = 0;
		switch (f.num) {
		case 9:
			cut = ++seen[0];
			break;
		case 10:
			cut = ++seen[1];
			if (f.wire != W_BYTES)
				s->bad = "its personal part is not bytes";
			s->personal = f.data;
			s->personal_len = f.len;
			s->field10 = at;
			s->field10_end = d.p;
			break;
		case 11:
			cut = ++seen[2];
			if (f.wire != W_HASH)
				s->bad = "its personal digest is not a hash";
			s->digest = f.data;
			break;
		case 20:
			seen[3]++;
			s->version = f.wire == W_UINT ? f.u : 0;
			break;
		default:
			break;
		}
		if (cut > 1 || seen[3] > 1)
			s->bad = "a field it holds once is repeated";
		if (cut && !s->bad) {
			if (at > run)
				s->pub[s->npub++] = (struct sha_part){run, (size_t)(at - run)};
			run = d.p;
		}
		at = d.p;
	}
	if (r < 0)
		return -1;
	if (at > run && !s->bad)
		s->pub[s->npub++] = (struct sha_part){run, (size_t)(at - run)};
	if (seen[1] && seen[2] && !s->bad)
		s->bad = "it holds both its personal part and its digest";
	if (seen[3] && s->version < 2 && !s->bad)
		s->bad = "its hash version is not one optsync writes";
	s->named = seen[3] > 0;
	if (!s->named)
		s->version = 1;
	return 0;
}

static void personal_digest_v2(const struct stored *s, uint8_t out[32])
{
	if (s->digest)
		memcpy(out, s->digest, 32);
	else
		sha256_2(s->personal ? (const void *)s->personal : "", s->personal_len, NULL, 0,
		         out);
}

static void hash_v2(uint64_t seq, const uint8_t prev_hash[32], const struct stored *s,
                    uint8_t out[32])
{
	uint8_t head[sizeof(domain_v2) - 1 + 8 + 32 + 32];
	size_t o = 0;
	memcpy(head, domain_v2, sizeof(domain_v2) - 1);
	o += sizeof(domain_v2) - 1;
	be64_put(head + o, seq);
	o += 8;
	memcpy(head + o, prev_hash, 32);
	o += 32;
	personal_digest_v2(s, head + o);
	o += 32;
	struct sha_part parts[1 + 4] = {{head, o}};
	memcpy(parts + 1, s->pub, s->npub * sizeof(parts[0]));
	sha256_parts(parts, 1 + s->npub, out);
}

int hist_event_hash(const MDB_val *v, const struct ledger_event *ev,
                    const uint8_t stored_digest[32], uint8_t out[32], uint64_t *version,
                    const char **why)
{
	struct stored s;
	*why = "it does not decode";
	*version = 1;
	if (ev->purged || stored_scan(v->mv_data, v->mv_size, &s))
		return HIST_BAD;
	*version = s.version;
	if (s.version > HASH_VERSION && !s.bad)
		return HIST_NEWER;
	if (!s.named) {
		uint8_t pd[32];
		*why = "it is too large";
		if (ev->erased)
			memcpy(pd, stored_digest, 32);
		else if (personal_digest_v1(ev, pd))
			return HIST_BAD;
		return hash_v1(ev, pd, out) ? HIST_BAD : 0;
	}
	if (s.bad) {
		*why = s.bad;
		return HIST_BAD;
	}
	hash_v2(ev->seq, ev->prev_hash, &s, out);
	return 0;
}

int hist_hash_error(struct ledger_txn *t, int rc, uint64_t seq, uint64_t version, const char *why,
                    struct err *e)
{
	if (rc == HIST_NEWER)
		return err_set(e, ERR_LEDGER,
		               "history event %llu was written by a newer optsync (hash version "
		               "%llu; this one knows %d): upgrade optsync",
		               (unsigned long long)seq, (unsigned long long)version, HASH_VERSION);
	return err_set(e, ERR_LEDGER,
	               "ledger %s is corrupt: history event %llu cannot be hashed (%s)", t->l->path,
	               (unsigned long long)seq, why);
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
		case 21:
			ev->merged_prev = f.u;
			break;
		default: /* 20, the hash's version, is stored_scan's */
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
	ev->erased = false;
	uint8_t buf[CODEC_MAX], h[32], k[8];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	encode_stored(&en, ev, HASH_VERSION, NULL);
	if (en.overflow)
		return err_set(e, ERR_LIMIT, "history event too large to store");
	/* hashed from the bytes stored, as verify will */
	struct stored s;
	if (stored_scan(buf, en.len, &s) || s.bad)
		return err_set(e, ERR_INTERNAL, "history event %llu: its encoding cannot be hashed",
		               (unsigned long long)ev->seq);
	hash_v2(ev->seq, ev->prev_hash, &s, h);
	be64_put(k, ev->seq);
	if ((rc = db_put(t, t->l->history, k, 8, buf, en.len, MDB_APPEND, "append history", e)))
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

/* One event of a person's list, as the walk meets it. */
struct seq_at {
	uint64_t seq;
	int64_t at;
};

static int by_seq(const void *a, const void *b)
{
	uint64_t x = ((const struct seq_at *)a)->seq, y = ((const struct seq_at *)b)->seq;
	return x < y ? -1 : x > y;
}

/* Append v to the array *a (*n used, *cap allocated). */
static int grow_push(void **a, size_t *n, size_t *cap, size_t size, const void *v)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		void *g = c > SIZE_MAX / 2 / size ? NULL : realloc(*a, c * size);
		if (g == NULL)
			return -1;
		*a = g;
		*cap = c;
	}
	memcpy((char *)*a + *n * size, v, size);
	(*n)++;
	return 0;
}

/* The seqs of a person's events, oldest first, following person_prev
 * back from last, and at a merge event (schema 6) merged_prev too: the
 * lists of the persons merged into this one are its own. All of them, or
 * with before < INT64_MAX only the oldest ones before that time (the run
 * that ends at the first newer event; a person's events are in time
 * order). A stub ends its branch: retention removes the oldest events of
 * the whole list first. *out is malloc'ed. */
int hist_person_seqs(struct ledger_txn *t, uint64_t last, int64_t before, uint64_t **out, size_t *n,
                     struct err *e)
{
	struct seq_at *got = NULL;
	uint64_t *heads = NULL;
	size_t ngot = 0, capgot = 0, nheads = 0, capheads = 0;
	uint8_t dig[32];
	*n = 0;
	*out = NULL;
	struct ledger_event *ev = malloc(sizeof(*ev));
	int rc = ev ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	if (rc == 0 && last &&
	    grow_push((void **)&heads, &nheads, &capheads, sizeof(*heads), &last))
		rc = err_set(e, ERR_NOMEM, "out of memory");
	while (rc == 0 && nheads > 0) {
		for (uint64_t seq = heads[--nheads]; rc == 0 && seq != 0;) {
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
			/* seqs only go down along a branch, so a sound list visits
			 * each of the at most `last` events once */
			struct seq_at sa = {seq, ev->at};
			if (ngot >= last || ev->person_prev >= seq ||
			    (ev->merged_prev && ev->merged_prev >= seq)) {
				rc = corrupt(t, "a person's history list (a loop)", e);
				break;
			}
			if (grow_push((void **)&got, &ngot, &capgot, sizeof(*got), &sa) ||
			    (ev->merged_prev && grow_push((void **)&heads, &nheads, &capheads,
			                                  sizeof(*heads), &ev->merged_prev))) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			seq = ev->person_prev;
		}
	}
	free(ev);
	free(heads);
	if (rc == 0 && ngot > 1)
		qsort(got, ngot, sizeof(*got), by_seq);
	for (size_t i = 1; rc == 0 && i < ngot; i++)
		if (got[i].seq == got[i - 1].seq)
			rc = corrupt(t, "a person's history list (an event in two branches)", e);
	if (rc == 0)
		*out = malloc((ngot ? ngot : 1) * sizeof(**out));
	if (rc == 0 && *out == NULL)
		rc = err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < ngot; i++) {
		if (before != INT64_MAX && got[i].at >= before)
			break; /* it and everything newer stay */
		(*out)[(*n)++] = got[i].seq;
	}
	free(got);
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

/* Erasure of one event's personal part, keeping its digest. A version-1
 * event is stored again from its known fields, as it always was; a
 * version-2 one keeps every stored byte but field 10's, and field 11 (the
 * SHA-256 of field 10's bytes) takes field 10's place. */
static int scrub_one(struct ledger_txn *t, uint64_t seq, void *ctx)
{
	struct err *e = ctx;
	struct ledger_event *ev = malloc(sizeof(*ev));
	uint8_t *buf = NULL;
	if (ev == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	uint8_t kb[8], pd[32];
	be64_put(kb, seq);
	MDB_val k = {8, kb}, v;
	struct stored s;
	int rc = db_get(t, t->l->history, kb, 8, &v, "history event", e);
	if (rc == 0 && (hist_event_decode(&k, &v, ev, pd) || stored_scan(v.mv_data, v.mv_size, &s)))
		rc = corrupt(t, "a history event", e);
	if (rc || ev->erased || ev->purged)
		goto out;
	if (s.version > HASH_VERSION && !s.bad) {
		rc = hist_hash_error(t, HIST_NEWER, seq, s.version, NULL, e);
		goto out;
	}
	if (!s.named) {
		uint8_t b1[CODEC_MAX];
		struct enc en;
		if (personal_digest_v1(ev, pd)) {
			rc = hist_hash_error(t, HIST_BAD, seq, 1, "it is too large", e);
			goto out;
		}
		ev->facts.purpose[0] = ev->facts.auth_other[0] = ev->facts.source_other[0] = '\0';
		ev->reason[0] = ev->evidence_ref[0] = ev->evidence_sha256[0] = '\0';
		ev->erased = true;
		enc_init(&en, b1, sizeof(b1));
		encode_stored(&en, ev, 1, pd);
		rc = en.overflow
		         ? err_set(e, ERR_LIMIT, "history event too large to store")
		         : db_put(t, t->l->history, kb, 8, b1, en.len, 0, "erase history event", e);
		goto out;
	}
	if (s.bad) {
		rc = hist_hash_error(t, HIST_BAD, seq, s.version, s.bad, e);
		goto out;
	}
	personal_digest_v2(&s, pd);
	const uint8_t *p = v.mv_data, *end = p + v.mv_size;
	const uint8_t *cut = s.field10 ? s.field10 : end,
	              *cut_end = s.field10 ? s.field10_end : end;
	buf = malloc(v.mv_size + 33);
	if (buf == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	size_t o = (size_t)(cut - p);
	memcpy(buf, p, o);
	buf[o++] = 11 << 2 | W_HASH;
	memcpy(buf + o, pd, 32);
	o += 32;
	memcpy(buf + o, cut_end, (size_t)(end - cut_end));
	o += (size_t)(end - cut_end);
	rc = db_put(t, t->l->history, kb, 8, buf, o, 0, "erase history event", e);
out:
	free(buf);
	free(ev);
	return rc;
}

int ledger_event_scrub_list(struct ledger_txn *t, uint64_t last_event, struct err *e)
{
	return hist_each_seq_of(t, last_event, scrub_one, e, e);
}

int hist_migrate_2_to_3(struct ledger_txn *t, struct err *e)
{
	(void)t;
	(void)e;
	return 0;
}
