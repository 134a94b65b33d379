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

int ledger_person_delete(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], struct err *e)
{
	return db_del(t, t->l->persons, key, LEDGER_KEY_LEN, NULL, "delete person", e);
}

/* ---- the open conflicts' index and counts (schema 5) ----
 *
 * conflicts_open holds, for each open conflict, two empty values: one
 * keyed 'p' + person key + id, one keyed 'r' + object byte + id length +
 * Salesforce id + conflict id (ids big-endian); "conflict_counts" in meta
 * holds the open conflicts by their record's object. Both change with the
 * conflicts, in the same transaction. */

#define OPEN_KEY_MAX    (1 + LEDGER_KEY_LEN + 8) /* the longer: a person's */
#define CONFLICT_COUNTS "conflict_counts"
_Static_assert(3 + LEDGER_ID_MAX + 8 <= OPEN_KEY_MAX, "a record's key fits");

/* What the index and the counts know of a conflict. */
struct open_place {
	uint8_t person[LEDGER_KEY_LEN];
	struct ledger_recref record;
	uint8_t status;
};

static size_t person_key(uint8_t out[OPEN_KEY_MAX], const uint8_t person[LEDGER_KEY_LEN])
{
	out[0] = 'p';
	memcpy(out + 1, person, LEDGER_KEY_LEN);
	return 1 + LEDGER_KEY_LEN;
}

static size_t record_key(uint8_t out[OPEN_KEY_MAX], int object, const char *id)
{
	size_t n = strnlen(id, LEDGER_ID_MAX);
	out[0] = 'r';
	out[1] = (uint8_t)object;
	out[2] = (uint8_t)n;
	memcpy(out + 3, id, n);
	return 3 + n;
}

static int open_place_decode(const MDB_val *v, struct open_place *pl)
{
	struct dec d;
	struct field f;
	int r;
	memset(pl, 0, sizeof(*pl));
	if (dec_init(&d, v->mv_data, v->mv_size))
		return -1;
	while ((r = dec_next(&d, &f)) == 1) {
		int bad = 0;
		if (f.num == 1)
			bad = ent_dec_hash(&f, pl->person);
		else if (f.num == 2)
			bad = ent_dec_recref(&f, &pl->record);
		else if (f.num == 5)
			pl->status = (uint8_t)f.u;
		if (bad)
			return -1;
	}
	return r;
}

/* Add (or, with del, remove) the index entries of an open conflict. */
static int open_index(struct ledger_txn *t, uint64_t id, const struct open_place *pl, bool del,
                      struct err *e)
{
	uint8_t k[OPEN_KEY_MAX];
	size_t kl = person_key(k, pl->person);
	be64_put(k + kl, id);
	int rc = del ? db_del(t, t->l->conflicts_open, k, kl + 8, NULL, "open conflicts", e)
	             : db_put(t, t->l->conflicts_open, k, kl + 8, "", 0, 0, "open conflicts", e);
	if (rc)
		return rc;
	kl = record_key(k, pl->record.object, pl->record.id);
	be64_put(k + kl, id);
	rc = del ? db_del(t, t->l->conflicts_open, k, kl + 8, NULL, "open conflicts", e)
	         : db_put(t, t->l->conflicts_open, k, kl + 8, "", 0, 0, "open conflicts", e);
	if (rc)
		return rc;
	return meta_counts_add(t, CONFLICT_COUNTS, LEDGER_OBJ_SLOTS, count_slot(pl->record.object),
	                       del ? -1 : 1, e);
}

/* The conflict stored as id: *found, and its place. */
static int open_place_get(struct ledger_txn *t, uint64_t id, bool *found, struct open_place *pl,
                          struct err *e)
{
	uint8_t k[8];
	be64_put(k, id);
	MDB_val v;
	int rc = db_get(t, t->l->conflicts, k, 8, &v, "conflict", e);
	*found = rc == 0;
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	return open_place_decode(&v, pl) ? corrupt(t, "a conflict", e) : 0;
}

static bool same_place(const struct open_place *a, const struct ledger_conflict *c)
{
	return memcmp(a->person, c->person, LEDGER_KEY_LEN) == 0 &&
	       a->record.object == c->record.object && strcmp(a->record.id, c->record.id) == 0;
}

int ledger_conflict_delete(struct ledger_txn *t, uint64_t id, struct err *e)
{
	bool found;
	struct open_place was;
	int rc = open_place_get(t, id, &found, &was, e);
	if (rc == 0 && !found)
		return err_set(e, ERR_NOTFOUND, "delete conflict: not found");
	uint8_t k[8];
	be64_put(k, id);
	if (rc == 0)
		rc = db_del(t, t->l->conflicts, k, 8, NULL, "delete conflict", e);
	if (rc == 0 && was.status == LEDGER_CONFLICT_OPEN)
		rc = open_index(t, id, &was, true, e);
	return rc;
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
	bool found;
	struct open_place was;
	int rc = open_place_get(t, c->id, &found, &was, e);
	if (rc)
		return rc;
	be64_put(k, c->id);
	if ((rc = db_put(t, t->l->conflicts, k, 8, buf, en.len, 0, "put conflict", e)))
		return rc;
	bool was_open = found && was.status == LEDGER_CONFLICT_OPEN;
	bool is_open = c->status == LEDGER_CONFLICT_OPEN;
	if (was_open && is_open && same_place(&was, c))
		return 0;
	if (was_open && (rc = open_index(t, c->id, &was, true, e)))
		return rc;
	if (is_open) {
		struct open_place now = {.record = c->record, .status = c->status};
		memcpy(now.person, c->person, LEDGER_KEY_LEN);
		rc = open_index(t, c->id, &now, false, e);
	}
	return rc;
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

/* The ids of the index entries under prefix, then fn for each conflict. */
static int each_open(struct ledger_txn *t, const uint8_t *prefix, size_t pl,
                     int (*fn)(const struct ledger_conflict *, void *), void *ctx, struct err *e)
{
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	/* the transaction's cursor in a write (a drain asks for each record it
	 * wrote), else one of its own */
	MDB_cursor *cur = NULL;
	int ret = db_txn_cursor(t, &t->open_cur, t->l->conflicts_open, e), rc = 0;
	if (ret)
		return ret;
	bool own = t->open_cur == NULL;
	if (own && (rc = mdb_cursor_open(t->txn, t->l->conflicts_open, &cur)) != 0)
		return ledger_mdb_error(t, rc, "open conflicts", e);
	if (!own)
		cur = t->open_cur;
	MDB_val k = {pl, (void *)prefix}, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != pl + 8 || memcmp(k.mv_data, prefix, pl) != 0)
			break;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			uint64_t *g = realloc(ids, nc * sizeof(*g));
			if (g == NULL) {
				ret = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			ids = g;
			cap = nc;
		}
		ids[n++] = be64_get((const uint8_t *)k.mv_data + pl);
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "open conflicts", e);
	if (own)
		mdb_cursor_close(cur);
	struct ledger_conflict *c = ret == 0 && n ? malloc(sizeof(*c)) : NULL;
	if (ret == 0 && n && c == NULL)
		ret = err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; ret == 0 && i < n; i++) {
		ret = ledger_conflict_get(t, ids[i], c, e);
		if (ret == ERR_NOTFOUND)
			ret = corrupt(t, "the open conflicts' index (a conflict not stored)", e);
		if (ret == 0 && c->status != LEDGER_CONFLICT_OPEN)
			continue; /* the index is behind the table: not open */
		if (ret == 0)
			ret = fn(c, ctx);
	}
	free(c);
	free(ids);
	return ret;
}

int ledger_conflict_each_open_of_record(struct ledger_txn *t, int object, const char *id,
                                        int (*fn)(const struct ledger_conflict *, void *),
                                        void *ctx, struct err *e)
{
	uint8_t k[OPEN_KEY_MAX];
	return each_open(t, k, record_key(k, object, id), fn, ctx, e);
}

int ledger_conflict_each_open_of_person(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                                        int (*fn)(const struct ledger_conflict *, void *),
                                        void *ctx, struct err *e)
{
	uint8_t k[OPEN_KEY_MAX];
	return each_open(t, k, person_key(k, person), fn, ctx, e);
}

int ledger_conflict_open_counts(struct ledger_txn *t, uint64_t out[LEDGER_OBJ_SLOTS], struct err *e)
{
	return meta_counts_get(t, CONFLICT_COUNTS, LEDGER_OBJ_SLOTS, out, e);
}

int conflicts_migrate_4_to_5(struct ledger_txn *t, struct err *e)
{
	uint64_t n[LEDGER_OBJ_SLOTS] = {0};
	MDB_cursor *cur;
	int rc = mdb_drop(t->txn, t->l->conflicts_open, 0);
	if (rc == 0)
		rc = mdb_cursor_open(t->txn, t->l->conflicts, &cur);
	if (rc)
		return ledger_mdb_error(t, rc, "open conflicts", e);
	MDB_val k, v;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct open_place pl;
		if (k.mv_size != 8 || open_place_decode(&v, &pl)) {
			ret = corrupt(t, "a conflict", e);
			break;
		}
		if (pl.status != LEDGER_CONFLICT_OPEN)
			continue;
		uint64_t id = be64_get(k.mv_data);
		uint8_t ik[OPEN_KEY_MAX];
		size_t kl = person_key(ik, pl.person);
		be64_put(ik + kl, id);
		ret = db_put(t, t->l->conflicts_open, ik, kl + 8, "", 0, 0, "open conflicts", e);
		kl = record_key(ik, pl.record.object, pl.record.id);
		be64_put(ik + kl, id);
		if (ret == 0)
			ret = db_put(t, t->l->conflicts_open, ik, kl + 8, "", 0, 0,
			             "open conflicts", e);
		n[count_slot(pl.record.object)]++;
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "conflicts", e);
	mdb_cursor_close(cur);
	return ret ? ret : meta_counts_put(t, CONFLICT_COUNTS, LEDGER_OBJ_SLOTS, n, e);
}
