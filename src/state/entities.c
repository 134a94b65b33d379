/* Persons, Salesforce records, the change feed, cursors, conflicts, the
 * push outbox and idempotency keys: their encodings and operations. */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

/* ---- enum names ---- */

static const char *const auth_names[] = {NULL,
                                         "consent",
                                         "legitimate_interest",
                                         "contract",
                                         "legal_obligation",
                                         "vital_interests",
                                         "public_interest",
                                         "other"};
static const char *const source_names[] = {
    NULL, "crm_sync", "import", "manual_upload", "browser_extension", "other"};
static const char *const object_names[] = {NULL, "Contact", "Lead"};
static const char *const origin_names[] = {NULL, "salesforce", "local", "admin"};
static const char *const kind_names[] = {NULL,     "optout",   "optin",   "authorization",
                                         "source", "conflict", "erasure", "refused",
                                         "record", "retention"};
static const char *const conflict_kind_names[] = {NULL, "resubscribe", "invalid_value",
                                                  "concurrent_edit"};

#define NAME_OF(tab, v) ((v) > 0 && (size_t)(v) < sizeof(tab) / sizeof(tab[0]) ? tab[v] : NULL)

static int parse_name(const char *const *tab, size_t n, const char *s)
{
	for (size_t i = 1; i < n; i++)
		if (strcmp(tab[i], s) == 0)
			return (int)i;
	return -1;
}

const char *ledger_auth_name(int v)
{
	return NAME_OF(auth_names, v);
}

int ledger_auth_parse(const char *s)
{
	return parse_name(auth_names, sizeof(auth_names) / sizeof(auth_names[0]), s);
}

const char *ledger_source_name(int v)
{
	return NAME_OF(source_names, v);
}

int ledger_source_parse(const char *s)
{
	return parse_name(source_names, sizeof(source_names) / sizeof(source_names[0]), s);
}

const char *ledger_object_name(int v)
{
	return NAME_OF(object_names, v);
}

int ledger_object_parse(const char *s)
{
	return parse_name(object_names, sizeof(object_names) / sizeof(object_names[0]), s);
}

const char *ledger_origin_name(int v)
{
	return NAME_OF(origin_names, v);
}

const char *ledger_event_kind_name(int v)
{
	return NAME_OF(kind_names, v);
}

const char *ledger_conflict_kind_name(int v)
{
	return NAME_OF(conflict_kind_names, v);
}

void ledger_facts_init(struct ledger_facts *f)
{
	f->mask = 0;
	f->opted_out = false;
	f->auth_type = 0;
	f->source_type = 0;
	f->consent_date = 0;
	f->purpose[0] = f->auth_other[0] = f->source_other[0] = '\0';
}

/* recrefs travel as bytes: object byte then id */
static void enc_recref(struct enc *en, unsigned field, const struct ledger_recref *r)
{
	uint8_t k[1 + LEDGER_ID_MAX];
	if (r->object == 0)
		return;
	enc_bytes(en, field, k, recref_key(k, r->object, r->id));
}

static int dec_recref(const struct field *f, struct ledger_recref *r)
{
	if (f->wire != W_BYTES || f->len < 1 || f->len > 1 + LEDGER_ID_MAX)
		return -1;
	r->object = f->data[0];
	memcpy(r->id, f->data + 1, f->len - 1);
	r->id[f->len - 1] = '\0';
	return 0;
}

static int dec_hash(const struct field *f, uint8_t out[32])
{
	if (f->wire != W_HASH)
		return -1;
	memcpy(out, f->data, 32);
	return 0;
}

/* ---- persons ---- */

static void person_init(struct ledger_person *p)
{
	p->email[0] = '\0';
	ledger_facts_init(&p->facts);
	p->opted_out_at = p->optout_changed_at = p->auth_changed_at = p->source_changed_at = 0;
	p->created_at = p->updated_at = 0;
	p->last_event = 0;
	p->flags = 0;
	p->nrecords = 0;
}

static size_t person_encode(const struct ledger_person *p, uint8_t *buf, size_t cap, int *ovf)
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
	for (uint32_t i = 0; i < p->nrecords && i < LEDGER_RECORDS_MAX; i++)
		enc_recref(&en, 10, &p->records[i]);
	enc_uint(&en, 11, p->last_event);
	*ovf = en.overflow;
	return en.len;
}

static int person_decode(const MDB_val *v, struct ledger_person *p)
{
	struct dec d;
	struct field f;
	int r;
	person_init(p);
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
		case 10:
			if (p->nrecords >= LEDGER_RECORDS_MAX ||
			    dec_recref(&f, &p->records[p->nrecords]))
				return -1;
			p->nrecords++;
			break;
		case 11:
			p->last_event = f.u;
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
	int rc = db_get(t, t->l->persons, key, LEDGER_KEY_LEN, &v, "person", e);
	if (rc)
		return rc;
	if (person_decode(&v, out))
		return corrupt(t, "a person", e);
	memcpy(out->key, key, LEDGER_KEY_LEN);
	return 0;
}

int ledger_person_put(struct ledger_txn *t, const struct ledger_person *p, struct err *e)
{
	uint8_t buf[CODEC_MAX];
	int ovf;
	size_t n = person_encode(p, buf, sizeof(buf), &ovf);
	if (ovf || p->nrecords > LEDGER_RECORDS_MAX)
		return err_set(e, ERR_LIMIT, "person record too large (%u Salesforce records)",
		               p->nrecords);
	return db_put(t, t->l->persons, p->key, LEDGER_KEY_LEN, buf, n, 0, "put person", e);
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
		if (k.mv_size != LEDGER_KEY_LEN || person_decode(&v, &p)) {
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

static void record_init(struct ledger_record *r)
{
	memset(r->person, 0, sizeof(r->person));
	r->modstamp = r->written_at = r->sf_created = r->sf_modified = 0;
	ledger_facts_init(&r->seen);
	ledger_facts_init(&r->written);
	r->flags = 0;
	r->first_name[0] = r->last_name[0] = r->company[0] = r->title[0] = r->phone[0] = '\0';
}

static int record_decode(const MDB_val *v, struct ledger_record *r)
{
	struct dec d;
	struct field f;
	int res;
	record_init(r);
	if (dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	while ((res = dec_next(&d, &f)) == 1) {
		int bad = 0;
		switch (f.num) {
		case 1:
			bad = dec_hash(&f, r->person);
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
	int rc = db_get(t, t->l->records, k, kl, &v, "Salesforce record", e);
	if (rc)
		return rc;
	if (record_decode(&v, out))
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
	if (en.overflow)
		return err_set(e, ERR_LIMIT, "Salesforce record %s too large to store", r->id);
	size_t kl = recref_key(k, r->object, r->id);
	return db_put(t, t->l->records, k, kl, buf, en.len, 0, "put Salesforce record", e);
}

/* ---- change feed ---- */

static int change_decode(const MDB_val *k, const MDB_val *v, struct ledger_change *c)
{
	struct dec d;
	struct field f;
	int r;
	memset(c, 0, sizeof(*c));
	if (k->mv_size != 8 || dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	c->seq = be64_get(k->mv_data);
	while ((r = dec_next(&d, &f)) == 1) {
		switch (f.num) {
		case 1:
			c->event_seq = f.u;
			break;
		case 2:
			c->at = f.s;
			break;
		case 3:
			c->kind = (uint8_t)f.u;
			break;
		case 4:
			c->origin = (uint8_t)f.u;
			break;
		case 5:
			if (dec_hash(&f, c->person))
				return -1;
			break;
		case 6:
			c->opted_out = f.u != 0;
			break;
		case 7:
			c->auth_type = (uint8_t)f.u;
			break;
		case 8:
			c->source_type = (uint8_t)f.u;
			break;
		case 9:
			c->consent_date = f.s;
			break;
		default:
			break;
		}
	}
	return r;
}

int ledger_change_append(struct ledger_txn *t, struct ledger_change *c, struct err *e)
{
	int rc = meta_next(t, "change_seq", &c->seq, e);
	if (rc)
		return rc;
	uint8_t buf[256], k[8];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	enc_uint(&en, 1, c->event_seq);
	enc_sint(&en, 2, c->at);
	enc_uint(&en, 3, c->kind);
	enc_uint(&en, 4, c->origin);
	enc_hash(&en, 5, c->person);
	enc_uint(&en, 6, c->opted_out);
	enc_uint(&en, 7, c->auth_type);
	enc_uint(&en, 8, c->source_type);
	enc_sint(&en, 9, c->consent_date);
	be64_put(k, c->seq);
	return db_put(t, t->l->feed, k, 8, buf, en.len, MDB_APPEND, "append change", e);
}

int ledger_change_list(struct ledger_txn *t, uint64_t after, size_t limit,
                       int (*fn)(const struct ledger_change *, void *), void *ctx, struct err *e)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->l->feed, &cur);
	if (rc)
		return ledger_mdb_error(t, rc, "feed cursor", e);
	uint8_t kb[8];
	be64_put(kb, after + 1);
	MDB_val k = {8, kb}, v;
	struct ledger_change c;
	int op = MDB_SET_RANGE, ret = 0;
	size_t n = 0;
	while (n < limit && (rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (change_decode(&k, &v, &c)) {
			ret = corrupt(t, "a change", e);
			break;
		}
		n++;
		if ((ret = fn(&c, ctx)) != 0)
			break;
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "feed cursor", e);
	mdb_cursor_close(cur);
	return ret;
}

uint64_t ledger_change_last(struct ledger_txn *t)
{
	uint64_t v = 0;
	struct err e;
	meta_get_u64(t, "change_seq", &v, &e);
	return v;
}

/* ---- cursors ---- */

int ledger_cursor_get(struct ledger_txn *t, int object, struct ledger_cursor *out, struct err *e)
{
	uint8_t k = (uint8_t)object;
	MDB_val v;
	memset(out, 0, sizeof(*out));
	int rc = db_get(t, t->l->cursors, &k, 1, &v, "sync cursor", e);
	if (rc)
		return rc;
	struct dec d;
	struct field f;
	if (dec_init(&d, v.mv_data, v.mv_size))
		return corrupt(t, "a sync cursor", e);
	while ((rc = dec_next(&d, &f)) == 1) {
		switch (f.num) {
		case 1:
			out->modstamp = f.s;
			break;
		case 2:
			if (dec_str(&f, out->last_id, sizeof(out->last_id)))
				return corrupt(t, "a sync cursor", e);
			break;
		case 3:
			out->updated_at = f.s;
			break;
		case 4:
			out->pulled = f.u;
			break;
		case 5:
			out->full_done = f.u != 0;
			break;
		case 6:
			out->caught_up_at = f.s;
			break;
		default:
			break;
		}
	}
	return rc < 0 ? corrupt(t, "a sync cursor", e) : 0;
}

int ledger_cursor_put(struct ledger_txn *t, int object, const struct ledger_cursor *c,
                      struct err *e)
{
	uint8_t buf[128], k = (uint8_t)object;
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	enc_sint(&en, 1, c->modstamp);
	enc_str(&en, 2, c->last_id);
	enc_sint(&en, 3, c->updated_at);
	enc_uint(&en, 4, c->pulled);
	enc_uint(&en, 5, c->full_done);
	enc_sint(&en, 6, c->caught_up_at);
	return db_put(t, t->l->cursors, &k, 1, buf, en.len, 0, "put sync cursor", e);
}

/* ---- conflicts ---- */

static int conflict_decode(const MDB_val *k, const MDB_val *v, struct ledger_conflict *c)
{
	struct dec d;
	struct field f;
	int r;
	memset(c->person, 0, sizeof(c->person));
	c->record.object = 0;
	c->record.id[0] = '\0';
	c->field = 0;
	c->kind = c->status = 0;
	c->auto_resolved = false;
	c->local_value[0] = c->sf_value[0] = c->resolution[0] = c->resolved_by[0] = '\0';
	c->detected_at = c->resolved_at = 0;
	if (k->mv_size != 8 || dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	c->id = be64_get(k->mv_data);
	while ((r = dec_next(&d, &f)) == 1) {
		int bad = 0;
		switch (f.num) {
		case 1:
			bad = dec_hash(&f, c->person);
			break;
		case 2:
			bad = dec_recref(&f, &c->record);
			break;
		case 3:
			c->field = (uint32_t)f.u;
			break;
		case 4:
			c->kind = (uint8_t)f.u;
			break;
		case 5:
			c->status = (uint8_t)f.u;
			break;
		case 6:
			c->auto_resolved = f.u != 0;
			break;
		case 7:
			bad = dec_str(&f, c->local_value, sizeof(c->local_value));
			break;
		case 8:
			bad = dec_str(&f, c->sf_value, sizeof(c->sf_value));
			break;
		case 9:
			c->detected_at = f.s;
			break;
		case 10:
			c->resolved_at = f.s;
			break;
		case 11:
			bad = dec_str(&f, c->resolution, sizeof(c->resolution));
			break;
		case 12:
			bad = dec_str(&f, c->resolved_by, sizeof(c->resolved_by));
			break;
		default:
			break;
		}
		if (bad)
			return -1;
	}
	return r;
}

int ledger_conflict_delete(struct ledger_txn *t, uint64_t id, struct err *e)
{
	uint8_t k[8];
	be64_put(k, id);
	return db_del(t, t->l->conflicts, k, 8, NULL, "delete conflict", e);
}

int ledger_person_delete(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], struct err *e)
{
	return db_del(t, t->l->persons, key, LEDGER_KEY_LEN, NULL, "delete person", e);
}

int ledger_conflict_put(struct ledger_txn *t, const struct ledger_conflict *c, struct err *e)
{
	uint8_t buf[CODEC_MAX], k[8];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	enc_hash(&en, 1, c->person);
	enc_recref(&en, 2, &c->record);
	enc_uint(&en, 3, c->field);
	enc_uint(&en, 4, c->kind);
	enc_uint(&en, 5, c->status);
	enc_uint(&en, 6, c->auto_resolved);
	enc_str(&en, 7, c->local_value);
	enc_str(&en, 8, c->sf_value);
	enc_sint(&en, 9, c->detected_at);
	enc_sint(&en, 10, c->resolved_at);
	enc_str(&en, 11, c->resolution);
	enc_str(&en, 12, c->resolved_by);
	if (en.overflow)
		return err_set(e, ERR_LIMIT, "conflict too large to store");
	be64_put(k, c->id);
	return db_put(t, t->l->conflicts, k, 8, buf, en.len, 0, "put conflict", e);
}

int ledger_conflict_add(struct ledger_txn *t, struct ledger_conflict *c, struct err *e)
{
	int rc = meta_next(t, "conflict_id", &c->id, e);
	return rc ? rc : ledger_conflict_put(t, c, e);
}

int ledger_conflict_get(struct ledger_txn *t, uint64_t id, struct ledger_conflict *out,
                        struct err *e)
{
	uint8_t kb[8];
	be64_put(kb, id);
	MDB_val k = {8, kb}, v;
	int rc = db_get(t, t->l->conflicts, kb, 8, &v, "conflict", e);
	if (rc)
		return rc;
	return conflict_decode(&k, &v, out) ? corrupt(t, "a conflict", e) : 0;
}

/* Walk a database whose entries one decoder turns into T. */
#define EACH(t, dbi, T, decode, fn, ctx, what, e)                                                  \
	do {                                                                                       \
		MDB_cursor *cur_;                                                                  \
		int rc_ = mdb_cursor_open((t)->txn, (dbi), &cur_), ret_ = 0, op_ = MDB_FIRST;      \
		if (rc_)                                                                           \
			return ledger_mdb_error((t), rc_, what, (e));                              \
		MDB_val k_, v_;                                                                    \
		T *item_ = malloc(sizeof(T));                                                      \
		if (item_ == NULL) {                                                               \
			mdb_cursor_close(cur_);                                                    \
			return err_set((e), ERR_NOMEM, "out of memory");                           \
		}                                                                                  \
		while ((rc_ = mdb_cursor_get(cur_, &k_, &v_, op_)) == 0) {                         \
			op_ = MDB_NEXT;                                                            \
			if (decode(&k_, &v_, item_)) {                                             \
				ret_ = corrupt((t), what, (e));                                    \
				break;                                                             \
			}                                                                          \
			if ((ret_ = fn(item_, ctx)) != 0)                                          \
				break;                                                             \
		}                                                                                  \
		if (rc_ && rc_ != MDB_NOTFOUND && ret_ == 0)                                       \
			ret_ = ledger_mdb_error((t), rc_, what, (e));                              \
		free(item_);                                                                       \
		mdb_cursor_close(cur_);                                                            \
		return ret_;                                                                       \
	} while (0)

int ledger_conflict_each(struct ledger_txn *t, int (*fn)(const struct ledger_conflict *, void *),
                         void *ctx, struct err *e)
{
	EACH(t, t->l->conflicts, struct ledger_conflict, conflict_decode, fn, ctx, "conflicts", e);
}

/* ---- push outbox ---- */

static int push_decode(const MDB_val *k, const MDB_val *v, struct ledger_push *p)
{
	struct dec d;
	struct field f;
	int r;
	if (k->mv_size < 2 || k->mv_size > 1 + LEDGER_ID_MAX)
		return -1;
	p->record.object = ((const uint8_t *)k->mv_data)[0];
	memcpy(p->record.id, (const uint8_t *)k->mv_data + 1, k->mv_size - 1);
	p->record.id[k->mv_size - 1] = '\0';
	memset(p->person, 0, sizeof(p->person));
	ledger_facts_init(&p->want);
	p->version = 0;
	p->attempts = 0;
	p->enqueued_at = p->next_try = 0;
	p->parked = false;
	p->last_error[0] = '\0';
	if (dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	while ((r = dec_next(&d, &f)) == 1) {
		int bad = 0;
		switch (f.num) {
		case 1:
			bad = dec_hash(&f, p->person);
			break;
		case 2:
			bad = dec_facts(&f, &p->want);
			break;
		case 3:
			p->version = f.u;
			break;
		case 4:
			p->attempts = (uint32_t)f.u;
			break;
		case 5:
			p->enqueued_at = f.s;
			break;
		case 6:
			p->next_try = f.s;
			break;
		case 7:
			p->parked = f.u != 0;
			break;
		case 8:
			bad = dec_str(&f, p->last_error, sizeof(p->last_error));
			break;
		default:
			break;
		}
		if (bad)
			return -1;
	}
	return r;
}

int ledger_push_get(struct ledger_txn *t, int object, const char *id, struct ledger_push *out,
                    struct err *e)
{
	uint8_t kb[1 + LEDGER_ID_MAX];
	MDB_val k = {recref_key(kb, object, id), kb}, v;
	int rc = db_get(t, t->l->outbox, kb, k.mv_size, &v, "queued push", e);
	if (rc)
		return rc;
	return push_decode(&k, &v, out) ? corrupt(t, "a queued push", e) : 0;
}

int ledger_push_put(struct ledger_txn *t, const struct ledger_push *p, struct err *e)
{
	uint8_t buf[CODEC_MAX], k[1 + LEDGER_ID_MAX];
	struct enc en;
	enc_init(&en, buf, sizeof(buf));
	enc_hash(&en, 1, p->person);
	enc_facts(&en, 2, &p->want, 1);
	enc_uint(&en, 3, p->version);
	enc_uint(&en, 4, p->attempts);
	enc_sint(&en, 5, p->enqueued_at);
	enc_sint(&en, 6, p->next_try);
	enc_uint(&en, 7, p->parked);
	enc_str(&en, 8, p->last_error);
	if (en.overflow)
		return err_set(e, ERR_LIMIT, "push for %s too large to store", p->record.id);
	size_t kl = recref_key(k, p->record.object, p->record.id);
	return db_put(t, t->l->outbox, k, kl, buf, en.len, 0, "queue push", e);
}

int ledger_push_delete(struct ledger_txn *t, int object, const char *id, struct err *e)
{
	uint8_t k[1 + LEDGER_ID_MAX];
	return db_del(t, t->l->outbox, k, recref_key(k, object, id), NULL, "delete push", e);
}

int ledger_push_each(struct ledger_txn *t, int (*fn)(const struct ledger_push *, void *), void *ctx,
                     struct err *e)
{
	EACH(t, t->l->outbox, struct ledger_push, push_decode, fn, ctx, "outbox", e);
}

/* ---- idempotency keys ---- */

int ledger_idem_get(struct ledger_txn *t, const char *key, uint64_t *event_seq, struct err *e)
{
	size_t kl = strlen(key);
	if (kl == 0 || kl > LEDGER_IDEM_MAX)
		return err_set(e, ERR_INVALID, "idempotency key must be 1 to %d bytes",
		               LEDGER_IDEM_MAX);
	MDB_val v;
	int rc = db_get(t, t->l->idem, key, kl, &v, "idempotency key", e);
	if (rc)
		return rc;
	if (v.mv_size != 16)
		return corrupt(t, "an idempotency key", e);
	*event_seq = be64_get(v.mv_data);
	return 0;
}

int ledger_idem_put(struct ledger_txn *t, const char *key, uint64_t event_seq, int64_t at,
                    struct err *e)
{
	size_t kl = strlen(key);
	if (kl == 0 || kl > LEDGER_IDEM_MAX)
		return err_set(e, ERR_INVALID, "idempotency key must be 1 to %d bytes",
		               LEDGER_IDEM_MAX);
	uint8_t v[16];
	be64_put(v, event_seq);
	be64_put(v + 8, (uint64_t)at);
	return db_put(t, t->l->idem, key, kl, v, 16, 0, "put idempotency key", e);
}

/* ---- erasure ---- */

static void facts_scrub(struct ledger_facts *f)
{
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
	for (uint32_t i = 0; i < p->nrecords; i++) {
		const struct ledger_recref *ref = &p->records[i];
		rc = ledger_record_get(t, ref->object, ref->id, r, e);
		if (rc == 0) {
			r->first_name[0] = r->last_name[0] = r->company[0] = r->title[0] =
			    r->phone[0] = '\0';
			facts_scrub(&r->seen);
			facts_scrub(&r->written);
			rc = ledger_record_put(t, r, e);
		} else if (rc == ERR_NOTFOUND) {
			rc = 0;
		}
		if (rc)
			goto out;
		rc = ledger_push_get(t, ref->object, ref->id, q, e);
		if (rc == 0) {
			/* do not send erased texts; the enums still go */
			facts_scrub(&q->want);
			q->want.mask &=
			    ~(LEDGER_F_PURPOSE | LEDGER_F_AUTH_OTHER | LEDGER_F_SOURCE_OTHER);
			rc = q->want.mask ? ledger_push_put(t, q, e)
			                  : ledger_push_delete(t, ref->object, ref->id, e);
		} else if (rc == ERR_NOTFOUND) {
			rc = 0;
		}
		if (rc)
			goto out;
	}
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

/* ---- named values ---- */

static int app_key(char out[72], const char *name, struct err *e)
{
	size_t n = strlen(name);
	if (n == 0 || n > 64)
		return err_set(e, ERR_INVALID, "meta name must be 1 to 64 bytes");
	memcpy(out, "app.", 4);
	memcpy(out + 4, name, n);
	return (int)(n + 4);
}

int ledger_meta_get(struct ledger_txn *t, const char *name, void *buf, size_t cap, size_t *len,
                    struct err *e)
{
	char k[72];
	int kl = app_key(k, name, e);
	if (kl < 0)
		return kl;
	MDB_val v;
	int rc = db_get(t, t->l->meta, k, (size_t)kl, &v, name, e);
	if (rc)
		return rc;
	if (v.mv_size > cap)
		return err_set(e, ERR_LIMIT, "meta value %s larger than %zu bytes", name, cap);
	memcpy(buf, v.mv_data, v.mv_size);
	*len = v.mv_size;
	return 0;
}

int ledger_meta_put(struct ledger_txn *t, const char *name, const void *data, size_t len,
                    struct err *e)
{
	char k[72];
	int kl = app_key(k, name, e);
	if (kl < 0)
		return kl;
	if (len > LEDGER_META_MAX)
		return err_set(e, ERR_LIMIT, "meta value %s is %zu bytes, more than %u", name, len,
		               LEDGER_META_MAX);
	return db_put(t, t->l->meta, k, (size_t)kl, data, len, 0, name, e);
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
		ok = (person_decode(&val, p) == 0) + (record_decode(&val, r) == 0) +
		     (change_decode(&key, &val, c) == 0) + (conflict_decode(&key, &val, f) == 0) +
		     (push_decode(&key, &val, q) == 0);
	free(p);
	free(r);
	free(c);
	free(f);
	free(q);
	return ok;
}
