/* Persons and Salesforce records: their encodings and operations, erasure,
 * and the fuzz target's way into every decoder. */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

void ent_enc_recref(struct enc *en, unsigned field, const struct ledger_recref *r)
{
	uint8_t k[1 + LEDGER_ID_MAX];
	if (r->object == 0)
		return;
	enc_bytes(en, field, k, recref_key(k, r->object, r->id));
}

int ent_dec_recref(const struct field *f, struct ledger_recref *r)
{
	if (f->wire != W_BYTES || f->len < 1 || f->len > 1 + LEDGER_ID_MAX)
		return -1;
	r->object = f->data[0];
	memcpy(r->id, f->data + 1, f->len - 1);
	r->id[f->len - 1] = '\0';
	return 0;
}

int ent_dec_hash(const struct field *f, uint8_t out[32])
{
	if (f->wire != W_HASH)
		return -1;
	memcpy(out, f->data, 32);
	return 0;
}

/* ---- persons ---- */

static void ent_person_init(struct ledger_person *p)
{
	p->email[0] = '\0';
	ledger_facts_init(&p->facts);
	p->opted_out_at = p->optout_changed_at = p->auth_changed_at = p->source_changed_at = 0;
	p->created_at = p->updated_at = 0;
	p->last_event = 0;
	p->flags = 0;
	p->records_no = 0;
	p->individual_id[0] = '\0';
}

size_t ent_person_encode(const struct ledger_person *p, uint8_t *buf, size_t cap, int *ovf)
{
	struct enc en;
	enc_init(&en, buf, cap);
	enc_str(&en, 1, p->email);
	enc_facts(&en, 2, &p->facts, 1);
	enc_sint(&en, 3, p->opted_out_at);
	enc_sint(&en, 4, p->optout_changed_at);
	enc_sint(&en, 5, p->auth_changed_at);
	enc_sint(&en, 6, p->source_changed_at);
	enc_sint(&en, 7, p->created_at);
	enc_sint(&en, 8, p->updated_at);
	enc_uint(&en, 9, p->flags);
	/* 10 was the person's Salesforce records until schema 4 (now the
	 * person_records index); never reused */
	enc_uint(&en, 11, p->last_event);
	enc_str(&en, 12, p->individual_id);
	enc_uint(&en, 13, p->records_no);
	*ovf = en.overflow;
	return en.len;
}

int ent_person_decode(const MDB_val *v, struct ledger_person *p)
{
	struct dec d;
	struct field f;
	int r;
	ent_person_init(p);
	if (dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	while ((r = dec_next(&d, &f)) == 1) {
		switch (f.num) {
		case 1:
			if (dec_str(&f, p->email, sizeof(p->email)))
				return -1;
			break;
		case 2:
			if (dec_facts(&f, &p->facts))
				return -1;
			break;
		case 3:
			p->opted_out_at = f.s;
			break;
		case 4:
			p->optout_changed_at = f.s;
			break;
		case 5:
			p->auth_changed_at = f.s;
			break;
		case 6:
			p->source_changed_at = f.s;
			break;
		case 7:
			p->created_at = f.s;
			break;
		case 8:
			p->updated_at = f.s;
			break;
		case 9:
			p->flags = (uint32_t)f.u;
			break;
		case 11:
			p->last_event = f.u;
			break;
		case 12:
			if (dec_str(&f, p->individual_id, sizeof(p->individual_id)))
				return -1;
			break;
		case 13:
			p->records_no = f.u;
			break;
		default:
			break;
		}
	}
	return r;
}

int ledger_person_get(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN],
                      struct ledger_person *out, struct err *e)
{
	MDB_val v;
	int rc =
	    db_cursor_get(t, &t->persons_cur, t->l->persons, key, LEDGER_KEY_LEN, &v, "person", e);
	if (rc)
		return rc;
	if (ent_person_decode(&v, out))
		return corrupt(t, "a person", e);
	memcpy(out->key, key, LEDGER_KEY_LEN);
	return 0;
}

int ledger_person_put(struct ledger_txn *t, const struct ledger_person *p, struct err *e)
{
	uint8_t buf[CODEC_MAX];
	int ovf;
	size_t n = ent_person_encode(p, buf, sizeof(buf), &ovf);
	if (ovf)
		return err_set(e, ERR_LIMIT, "person %s too large to store",
		               p->email[0] ? p->email : "(erased)");
	return db_cursor_put(t, &t->persons_cur, t->l->persons, p->key, LEDGER_KEY_LEN, buf, n,
	                     "put person", e);
}

int ledger_person_each(struct ledger_txn *t, int (*fn)(const struct ledger_person *, void *),
                       void *ctx, struct err *e)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->l->persons, &c);
	if (rc)
		return ledger_mdb_error(t, rc, "persons cursor", e);
	struct ledger_person p;
	MDB_val k, v;
	int op = MDB_FIRST, ret = 0;
	while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (k.mv_size != LEDGER_KEY_LEN || ent_person_decode(&v, &p)) {
			ret = corrupt(t, "a person", e);
			break;
		}
		memcpy(p.key, k.mv_data, LEDGER_KEY_LEN);
		if ((ret = fn(&p, ctx)) != 0)
			break;
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "persons cursor", e);
	mdb_cursor_close(c);
	return ret;
}

/* ---- Salesforce records ---- */

static void ent_record_init(struct ledger_record *r)
{
	memset(r->person, 0, sizeof(r->person));
	r->modstamp = r->written_at = r->sf_created = r->sf_modified = 0;
	ledger_facts_init(&r->seen);
	ledger_facts_init(&r->written);
	r->seen_purposes.n = 0;
	r->flags = 0;
	r->first_name[0] = r->last_name[0] = r->company[0] = r->title[0] = r->phone[0] = '\0';
}

int ent_record_decode(const MDB_val *v, struct ledger_record *r)
{
	struct dec d;
	struct field f;
	int res;
	ent_record_init(r);
	if (dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	while ((res = dec_next(&d, &f)) == 1) {
		int bad = 0;
		switch (f.num) {
		case 1:
			bad = ent_dec_hash(&f, r->person);
			break;
		case 2:
			r->modstamp = f.s;
			break;
		case 3:
			bad = dec_facts(&f, &r->seen);
			break;
		case 4:
			bad = dec_facts(&f, &r->written);
			break;
		case 5:
			r->written_at = f.s;
			break;
		case 6:
			r->flags = (uint32_t)f.u;
			break;
		case 7:
			bad = dec_str(&f, r->first_name, sizeof(r->first_name));
			break;
		case 8:
			bad = dec_str(&f, r->last_name, sizeof(r->last_name));
			break;
		case 9:
			bad = dec_str(&f, r->company, sizeof(r->company));
			break;
		case 10:
			bad = dec_str(&f, r->title, sizeof(r->title));
			break;
		case 11:
			bad = dec_str(&f, r->phone, sizeof(r->phone));
			break;
		case 12:
			r->sf_created = f.s;
			break;
		case 13:
			r->sf_modified = f.s;
			break;
		case 14:
			bad = dec_pflag(&f, &r->seen_purposes);
			break;
		default:
			break;
		}
		if (bad)
			return -1;
	}
	return res;
}

int ledger_record_get(struct ledger_txn *t, int object, const char *id, struct ledger_record *out,
                      struct err *e)
{
	uint8_t k[1 + LEDGER_ID_MAX];
	size_t kl = recref_key(k, object, id);
	MDB_val v;
	int rc =
	    db_cursor_get(t, &t->records_cur, t->l->records, k, kl, &v, "Salesforce record", e);
	if (rc)
		return rc;
	if (ent_record_decode(&v, out))
		return corrupt(t, "a Salesforce record", e);
	out->object = (uint8_t)object;
	memcpy(out->id, k + 1, kl - 1);
	out->id[kl - 1] = '\0';
	return 0;
}

int ledger_record_put(struct ledger_txn *t, const struct ledger_record *r, struct err *e)
{
	uint8_t buf[CODEC_MAX], k[1 + LEDGER_ID_MAX];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	enc_hash(&en, 1, r->person);
	enc_sint(&en, 2, r->modstamp);
	enc_facts(&en, 3, &r->seen, 1);
	enc_facts(&en, 4, &r->written, 1);
	enc_sint(&en, 5, r->written_at);
	enc_uint(&en, 6, r->flags);
	enc_str(&en, 7, r->first_name);
	enc_str(&en, 8, r->last_name);
	enc_str(&en, 9, r->company);
	enc_str(&en, 10, r->title);
	enc_str(&en, 11, r->phone);
	enc_sint(&en, 12, r->sf_created);
	enc_sint(&en, 13, r->sf_modified);
	enc_pflags(&en, 14, &r->seen_purposes);
	if (en.overflow)
		return err_set(e, ERR_LIMIT, "Salesforce record %s too large to store", r->id);
	size_t kl = recref_key(k, r->object, r->id);
	return db_cursor_put(t, &t->records_cur, t->l->records, k, kl, buf, en.len,
	                     "put Salesforce record", e);
}

int ledger_record_delete(struct ledger_txn *t, int object, const char *id, struct err *e)
{
	uint8_t k[1 + LEDGER_ID_MAX];
	return db_del(t, t->l->records, k, recref_key(k, object, id), NULL,
	              "delete Salesforce record", e);
}

/* ---- erasure ---- */

/* What erasure leaves of a set of facts: the opt-out, and nothing of the
 * compliance groups. Their free texts are personal, and a basis of consent
 * or other is not valid without them (rule 5): kept, it would be written to
 * the person's next record as Consent without a purpose and read back as a
 * conflict. The other bases and sources go with them: an erased person is
 * a suppression, with no lawful basis or source of data left to state. */
#define ERASED_FACTS                                                                               \
	(LEDGER_F_AUTH_TYPE | LEDGER_F_AUTH_OTHER | LEDGER_F_CONSENT_DATE | LEDGER_F_PURPOSE |     \
	 LEDGER_F_SOURCE_TYPE | LEDGER_F_SOURCE_OTHER)

static void facts_scrub(struct ledger_facts *f)
{
	f->mask &= ~ERASED_FACTS;
	f->auth_type = f->source_type = 0;
	f->consent_date = 0;
	f->purpose[0] = f->auth_other[0] = f->source_other[0] = '\0';
}

struct scrub_ctx {
	struct ledger_txn *t;
	const uint8_t *person;
	struct err *e;
	uint64_t ids[64];
	size_t n;
	int more;
};

static int collect_conflict(const struct ledger_conflict *c, void *ctx)
{
	struct scrub_ctx *s = ctx;
	if (memcmp(c->person, s->person, LEDGER_KEY_LEN) != 0 ||
	    (c->local_value[0] == '\0' && c->sf_value[0] == '\0'))
		return 0;
	if (s->n == sizeof(s->ids) / sizeof(s->ids[0])) {
		s->more = 1;
		return 1;
	}
	s->ids[s->n++] = c->id;
	return 0;
}

/* Erasure's part in one of the person's records: the names from
 * Salesforce and the compliance facts go, from the record and from a push
 * still queued for it. */
struct erase_ctx {
	struct ledger_txn *t;
	struct ledger_record *r;
	struct ledger_push *q;
	struct err *e;
};

static int erase_record(const struct ledger_recref *ref, void *ctx)
{
	struct erase_ctx *x = ctx;
	struct ledger_txn *t = x->t;
	struct ledger_record *r = x->r;
	struct ledger_push *q = x->q;
	int rc = ledger_record_get(t, ref->object, ref->id, r, x->e);
	if (rc == 0) {
		r->first_name[0] = r->last_name[0] = r->company[0] = r->title[0] = r->phone[0] =
		    '\0';
		facts_scrub(&r->seen);
		facts_scrub(&r->written);
		rc = ledger_record_put(t, r, x->e);
	} else if (rc == ERR_NOTFOUND) {
		rc = 0;
	}
	if (rc)
		return rc;
	rc = ledger_push_get(t, ref->object, ref->id, q, x->e);
	if (rc == 0) {
		/* the compliance groups are not sent (facts_scrub); the
		 * opt-outs still go */
		facts_scrub(&q->want);
		rc = q->want.mask || q->want_purposes.n
		         ? ledger_push_put(t, q, x->e)
		         : ledger_push_delete(t, ref->object, ref->id, x->e);
	} else if (rc == ERR_NOTFOUND) {
		rc = 0;
	}
	return rc;
}

int ledger_person_erase(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], struct err *e)
{
	struct ledger_person *p = malloc(sizeof(*p));
	struct ledger_record *r = malloc(sizeof(*r));
	struct ledger_push *q = malloc(sizeof(*q));
	struct ledger_conflict *c = malloc(sizeof(*c));
	int rc = 0;
	if (!p || !r || !q || !c) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = ledger_person_get(t, key, p, e)))
		goto out;
	p->email[0] = '\0';
	facts_scrub(&p->facts);
	p->flags |= LEDGER_PERSON_ERASED;
	if ((rc = ledger_person_put(t, p, e)))
		goto out;
	struct erase_ctx x = {t, r, q, e};
	if ((rc = ledger_person_records_each(t, p, erase_record, &x, e)))
		goto out;
	if ((rc = ledger_purposes_scrub(t, key, e)))
		goto out;
	if ((rc = ledger_event_scrub_list(t, p->last_event, e)))
		goto out;
	struct scrub_ctx s = {t, key, e, {0}, 0, 1};
	while (s.more) {
		s.n = 0;
		s.more = 0;
		if ((rc = ledger_conflict_each(t, collect_conflict, &s, e)) < 0)
			goto out;
		rc = 0;
		for (size_t i = 0; i < s.n; i++) {
			if ((rc = ledger_conflict_get(t, s.ids[i], c, e)))
				goto out;
			c->local_value[0] = c->sf_value[0] = '\0';
			if ((rc = ledger_conflict_put(t, c, e)))
				goto out;
		}
	}
out:
	free(p);
	free(r);
	free(q);
	free(c);
	return rc;
}

/* The fuzz target's way in: decode (k, v) as every kind of stored value.
 * Returns how many kinds accepted it. */
int ledger_probe_entities(const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	struct ledger_person *p = malloc(sizeof(*p));
	struct ledger_record *r = malloc(sizeof(*r));
	struct ledger_change *c = malloc(sizeof(*c));
	struct ledger_conflict *f = malloc(sizeof(*f));
	struct ledger_push *q = malloc(sizeof(*q));
	int ok = 0;
	if (p && r && c && f && q)
		ok = (ent_person_decode(&val, p) == 0) + (ent_record_decode(&val, r) == 0) +
		     (ent_change_decode(&key, &val, c) == 0) +
		     (ent_conflict_decode(&key, &val, f) == 0) +
		     (ent_push_decode(&key, &val, q) == 0);
	free(p);
	free(r);
	free(c);
	free(f);
	free(q);
	return ok;
}
