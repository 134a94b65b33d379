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
	int rc = db_get(t, t->l->outbox, kb, k.mv_size, &v, "queued push", e);
	if (rc)
		return rc;
	return ent_push_decode(&k, &v, out) ? corrupt(t, "a queued push", e) : 0;
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
	enc_pflags(&en, 9, &p->want_purposes);
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
	EACH(t, t->l->outbox, struct ledger_push, ent_push_decode, fn, ctx, "outbox", e);
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
