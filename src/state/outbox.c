/* The push outbox, idempotency keys, and the named values of the layers
 * above. */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

/* ---- push outbox ---- */

int ent_push_decode(const MDB_val *k, const MDB_val *v, struct ledger_push *p)
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
	p->want_purposes.n = 0;
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
			bad = ent_dec_hash(&f, p->person);
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
		case 9:
			bad = dec_pflag(&f, &p->want_purposes);
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
	int rc =
	    db_cursor_get(t, &t->outbox_cur, t->l->outbox, kb, k.mv_size, &v, "queued push", e);
	if (rc)
		return rc;
	return ent_push_decode(&k, &v, out) ? corrupt(t, "a queued push", e) : 0;
}

/* ---- the due index and the counts (schema 5) ----
 *
 * push_due holds one empty value per queued push, keyed by its object
 * byte, its next_try (8 bytes big-endian, the sign bit flipped so that
 * the keys sort as the times) and its Salesforce id; "outbox_counts" in
 * meta holds the pushes not parked, then those parked, by object. Both
 * change with the outbox, in the same transaction. */

#define DUE_KEY_MAX   (1 + 8 + LEDGER_ID_MAX)
#define OUTBOX_COUNTS "outbox_counts"

static size_t due_key(uint8_t out[DUE_KEY_MAX], int object, int64_t next_try, const char *id)
{
	size_t n = strnlen(id, LEDGER_ID_MAX);
	out[0] = (uint8_t)object;
	be64_put(out + 1, (uint64_t)next_try ^ (UINT64_C(1) << 63));
	memcpy(out + 9, id, n);
	return 9 + n;
}

static int64_t due_key_time(const uint8_t *k)
{
	return (int64_t)(be64_get(k + 1) ^ (UINT64_C(1) << 63));
}

/* What the index and the counts know of a stored push. */
struct place {
	int64_t next_try;
	bool parked;
};

static int place_decode(const MDB_val *v, struct place *pl)
{
	struct dec d;
	struct field f;
	int r;
	pl->next_try = 0;
	pl->parked = false;
	if (dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	while ((r = dec_next(&d, &f)) == 1)
		if (f.num == 6)
			pl->next_try = f.s;
		else if (f.num == 7)
			pl->parked = f.u != 0;
	return r;
}

/* The stored push at key k: *found, and its place. */
static int place_get(struct ledger_txn *t, const uint8_t *k, size_t kl, bool *found,
                     struct place *pl, struct err *e)
{
	MDB_val v;
	int rc = db_cursor_get(t, &t->outbox_cur, t->l->outbox, k, kl, &v, "queued push", e);
	*found = rc == 0;
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	return place_decode(&v, pl) ? corrupt(t, "a queued push", e) : 0;
}

static int count_push(struct ledger_txn *t, int object, bool parked, int64_t delta, struct err *e)
{
	size_t i = (parked ? LEDGER_OBJ_SLOTS : 0) + count_slot(object);
	return meta_counts_add(t, OUTBOX_COUNTS, 2 * LEDGER_OBJ_SLOTS, i, delta, e);
}

int ledger_push_version(struct ledger_txn *t, int object, const char *id, uint64_t *version,
                        struct err *e)
{
	uint8_t kb[1 + LEDGER_ID_MAX];
	MDB_val v;
	int rc = db_cursor_get(t, &t->outbox_cur, t->l->outbox, kb, recref_key(kb, object, id), &v,
	                       "queued push", e);
	if (rc)
		return rc;
	struct dec d;
	struct field f;
	*version = 0;
	if (dec_init(&d, v.mv_data, v.mv_size))
		return corrupt(t, "a queued push", e);
	while ((rc = dec_next(&d, &f)) == 1)
		if (f.num == 3)
			*version = f.u;
	return rc ? corrupt(t, "a queued push", e) : 0;
}

int ledger_push_put(struct ledger_txn *t, const struct ledger_push *p, struct err *e)
{
	uint8_t buf[CODEC_MAX], k[1 + LEDGER_ID_MAX], dk[DUE_KEY_MAX];
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
	enc_pflags(&en, 9, &p->want_purposes);
	if (en.overflow)
		return err_set(e, ERR_LIMIT, "push for %s too large to store", p->record.id);
	size_t kl = recref_key(k, p->record.object, p->record.id);
	bool found;
	struct place was;
	int rc = place_get(t, k, kl, &found, &was, e);
	if (rc == 0)
		rc = db_cursor_put(t, &t->outbox_cur, t->l->outbox, k, kl, buf, en.len,
		                   "queue push", e);
	if (rc == 0 && found && was.next_try != p->next_try)
		rc = db_cursor_del(t, &t->due_cur, t->l->push_due, dk,
		                   due_key(dk, p->record.object, was.next_try, p->record.id),
		                   "the due index", e);
	if (rc == 0 && (!found || was.next_try != p->next_try))
		rc = db_cursor_put(t, &t->due_cur, t->l->push_due, dk,
		                   due_key(dk, p->record.object, p->next_try, p->record.id), "", 0,
		                   "the due index", e);
	if (rc == 0 && found && was.parked != p->parked)
		rc = count_push(t, p->record.object, was.parked, -1, e);
	if (rc == 0 && (!found || was.parked != p->parked))
		rc = count_push(t, p->record.object, p->parked, 1, e);
	return rc;
}

int ledger_push_delete(struct ledger_txn *t, int object, const char *id, struct err *e)
{
	uint8_t k[1 + LEDGER_ID_MAX], dk[DUE_KEY_MAX];
	size_t kl = recref_key(k, object, id);
	bool found;
	struct place was;
	int rc = place_get(t, k, kl, &found, &was, e);
	if (rc == 0 && !found)
		return err_set(e, ERR_NOTFOUND, "delete push: not found");
	if (rc == 0)
		rc = db_cursor_del(t, &t->outbox_cur, t->l->outbox, k, kl, "delete push", e);
	if (rc == 0)
		rc = db_cursor_del(t, &t->due_cur, t->l->push_due, dk,
		                   due_key(dk, object, was.next_try, id), "the due index", e);
	if (rc == 0)
		rc = count_push(t, object, was.parked, -1, e);
	return rc;
}

int ledger_push_each(struct ledger_txn *t, int (*fn)(const struct ledger_push *, void *), void *ctx,
                     struct err *e)
{
	EACH(t, t->l->outbox, struct ledger_push, ent_push_decode, fn, ctx, "outbox", e);
}

/* The walk of the due index for both: each due push decoded into
 * slot(ctx) (NULL: the walk is done), then took(push, ctx): 0, it is taken
 * and the mark moves past it; nonzero stops the walk and is returned. */
static int due_walk(struct ledger_txn *t, int object, int64_t due_by, struct ledger_push_mark *mark,
                    struct ledger_push *(*slot)(void *),
                    int (*took)(const struct ledger_push *, void *), void *ctx, struct err *e)
{
	uint8_t start[DUE_KEY_MAX];
	bool after = mark && mark->set;
	size_t sl = after ? due_key(start, object, mark->next_try, mark->id)
	                  : due_key(start, object, INT64_MIN, "");
	/* the pushes are looked up through a cursor of their own: pushes due
	 * together are often neighbours, found without a search from the root */
	MDB_cursor *cur, *qcur = NULL;
	int rc = mdb_cursor_open(t->txn, t->l->push_due, &cur), ret = 0;
	if (rc == 0 && (rc = mdb_cursor_open(t->txn, t->l->outbox, &qcur)) != 0)
		mdb_cursor_close(cur);
	if (rc)
		return ledger_mdb_error(t, rc, "the due index", e);
	MDB_val k = {sl, start}, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kb = k.mv_data;
		if (k.mv_size < 10 || k.mv_size > DUE_KEY_MAX || kb[0] != (uint8_t)object ||
		    due_key_time(kb) > due_by)
			break;
		if (after && k.mv_size == sl && memcmp(kb, start, sl) == 0)
			continue; /* the mark itself: taken before */
		struct ledger_push *item = slot(ctx);
		if (item == NULL)
			break;
		MDB_val pk = {k.mv_size - 8, NULL}, pv;
		uint8_t kbuf[1 + LEDGER_ID_MAX];
		kbuf[0] = kb[0];
		memcpy(kbuf + 1, kb + 9, k.mv_size - 9);
		pk.mv_data = kbuf;
		if ((rc = mdb_cursor_get(qcur, &pk, &pv, MDB_SET_KEY)) != 0) {
			ret = rc == MDB_NOTFOUND
			          ? corrupt(t, "the due index (a push not queued)", e)
			          : ledger_mdb_error(t, rc, "outbox", e);
			break;
		}
		if (ent_push_decode(&pk, &pv, item)) {
			ret = corrupt(t, "a queued push", e);
			break;
		}
		if ((ret = took(item, ctx)) != 0)
			break;
		if (mark) {
			mark->set = true;
			mark->next_try = due_key_time(kb);
			memcpy(mark->id, kb + 9, k.mv_size - 9);
			mark->id[k.mv_size - 9] = '\0';
		}
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "the due index", e);
	mdb_cursor_close(qcur);
	mdb_cursor_close(cur);
	return ret;
}

struct each_due {
	struct ledger_push *item;
	int (*fn)(const struct ledger_push *, void *);
	void *ctx;
};

static struct ledger_push *each_slot(void *ctx)
{
	return ((struct each_due *)ctx)->item;
}

static int each_took(const struct ledger_push *q, void *ctx)
{
	struct each_due *x = ctx;
	return x->fn(q, x->ctx);
}

int ledger_push_each_due(struct ledger_txn *t, int object, int64_t due_by,
                         struct ledger_push_mark *mark,
                         int (*fn)(const struct ledger_push *, void *), void *ctx, struct err *e)
{
	struct each_due x = {malloc(sizeof(struct ledger_push)), fn, ctx};
	if (x.item == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = due_walk(t, object, due_by, mark, each_slot, each_took, &x, e);
	free(x.item);
	return rc;
}

struct into_due {
	struct ledger_push *out;
	size_t cap, *n;
};

static struct ledger_push *into_slot(void *ctx)
{
	struct into_due *x = ctx;
	return *x->n < x->cap ? &x->out[*x->n] : NULL;
}

static int into_took(const struct ledger_push *q, void *ctx)
{
	(void)q;
	(*((struct into_due *)ctx)->n)++;
	return 0;
}

int ledger_push_due(struct ledger_txn *t, int object, int64_t due_by, struct ledger_push_mark *mark,
                    struct ledger_push *out, size_t cap, size_t *n, struct err *e)
{
	struct into_due x = {out, cap, n};
	return due_walk(t, object, due_by, mark, into_slot, into_took, &x, e);
}

int ledger_push_counts(struct ledger_txn *t, struct ledger_push_counts *out, struct err *e)
{
	uint64_t v[2 * LEDGER_OBJ_SLOTS];
	int rc = meta_counts_get(t, OUTBOX_COUNTS, 2 * LEDGER_OBJ_SLOTS, v, e);
	if (rc)
		return rc;
	memcpy(out->queued, v, sizeof(out->queued));
	memcpy(out->parked, v + LEDGER_OBJ_SLOTS, sizeof(out->parked));
	return 0;
}

int outbox_migrate_4_to_5(struct ledger_txn *t, struct err *e)
{
	uint64_t n[2 * LEDGER_OBJ_SLOTS] = {0};
	MDB_cursor *cur;
	int rc = mdb_drop(t->txn, t->l->push_due, 0);
	if (rc == 0)
		rc = mdb_cursor_open(t->txn, t->l->outbox, &cur);
	if (rc)
		return ledger_mdb_error(t, rc, "the due index", e);
	MDB_val k, v;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct place pl;
		if (k.mv_size < 2 || k.mv_size > 1 + LEDGER_ID_MAX || place_decode(&v, &pl)) {
			ret = corrupt(t, "a queued push", e);
			break;
		}
		uint8_t dk[DUE_KEY_MAX];
		char id[LEDGER_ID_MAX + 1];
		int object = ((const uint8_t *)k.mv_data)[0];
		memcpy(id, (const uint8_t *)k.mv_data + 1, k.mv_size - 1);
		id[k.mv_size - 1] = '\0';
		ret = db_put(t, t->l->push_due, dk, due_key(dk, object, pl.next_try, id), "", 0, 0,
		             "the due index", e);
		n[(pl.parked ? LEDGER_OBJ_SLOTS : 0) + count_slot(object)]++;
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "outbox", e);
	mdb_cursor_close(cur);
	return ret ? ret : meta_counts_put(t, OUTBOX_COUNTS, 2 * LEDGER_OBJ_SLOTS, n, e);
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

int ledger_meta_delete(struct ledger_txn *t, const char *name, struct err *e)
{
	char k[72];
	int kl = app_key(k, name, e);
	if (kl < 0)
		return kl;
	return db_del(t, t->l->meta, k, (size_t)kl, NULL, name, e);
}

int ledger_meta_each(struct ledger_txn *t, const char *prefix,
                     int (*fn)(const char *name, const void *data, size_t len, void *ctx),
                     void *ctx, struct err *e)
{
	char k[72];
	int kl = app_key(k, prefix, e);
	if (kl < 0)
		return kl;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->l->meta, &cur);
	if (rc)
		return ledger_mdb_error(t, rc, prefix, e);
	MDB_val key = {(size_t)kl, k}, v;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
		if (key.mv_size < (size_t)kl || memcmp(key.mv_data, k, (size_t)kl) != 0)
			break; /* past the names that start with prefix */
		char name[72];
		if (key.mv_size > sizeof(name) - 1) {
			ret = corrupt(t, prefix, e);
			break;
		}
		memcpy(name, (const char *)key.mv_data + 4, key.mv_size - 4);
		name[key.mv_size - 4] = '\0';
		if ((ret = fn(name, v.mv_data, v.mv_size, ctx)) != 0)
			break;
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, prefix, e);
	mdb_cursor_close(cur);
	return ret;
}

void ledger_push_renew(struct ledger_push *p)
{
	p->version++;
	p->attempts = 0;
	p->next_try = 0;
	p->parked = false;
	p->last_error[0] = '\0';
}
