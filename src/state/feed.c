/* The change feed and the sync cursors. */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

/* ---- change feed ---- */

int ent_change_decode(const MDB_val *k, const MDB_val *v, struct ledger_change *c)
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
			if (ent_dec_hash(&f, c->person))
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
		case 10:
			if (dec_str(&f, c->purpose_name, sizeof(c->purpose_name)))
				return -1;
			break;
		case 11:
			c->purpose_status = (uint8_t)f.u;
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
	enc_str(&en, 10, c->purpose_name);
	enc_uint(&en, 11, c->purpose_status);
	be64_put(k, c->seq);
	return db_put(t, t->l->feed, k, 8, buf, en.len, MDB_APPEND, "append change", e);
}

int ledger_change_list(struct ledger_txn *t, uint64_t after, size_t limit,
                       int (*fn)(const struct ledger_change *, void *), void *ctx, struct err *e)
{
	if (after == UINT64_MAX)
		return 0; /* nothing comes after the last seq there can be */
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
		if (ent_change_decode(&k, &v, &c)) {
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
