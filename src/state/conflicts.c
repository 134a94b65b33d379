/* Conflicts: their encoding and operations. */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

/* ---- conflicts ---- */

int ent_conflict_decode(const MDB_val *k, const MDB_val *v, struct ledger_conflict *c)
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
	c->purpose_name[0] = '\0';
	c->detected_at = c->resolved_at = 0;
	if (k->mv_size != 8 || dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	c->id = be64_get(k->mv_data);
	while ((r = dec_next(&d, &f)) == 1) {
		int bad = 0;
		switch (f.num) {
		case 1:
			bad = ent_dec_hash(&f, c->person);
			break;
		case 2:
			bad = ent_dec_recref(&f, &c->record);
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
		case 13:
			bad = dec_str(&f, c->purpose_name, sizeof(c->purpose_name));
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
	ent_enc_recref(&en, 2, &c->record);
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
	enc_str(&en, 13, c->purpose_name);
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
	return ent_conflict_decode(&k, &v, out) ? corrupt(t, "a conflict", e) : 0;
}

int ledger_conflict_each(struct ledger_txn *t, int (*fn)(const struct ledger_conflict *, void *),
                         void *ctx, struct err *e)
{
	EACH(t, t->l->conflicts, struct ledger_conflict, ent_conflict_decode, fn, ctx, "conflicts",
	     e);
}
