/* Conflicts: their encoding and operations. */
#include <stdio.h>
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

/* ---- the open conflicts by record (schema 4) ----
 *
 * Key: the object byte, the record id NUL-padded to LEDGER_ID_MAX bytes
 * (so that a 15-character id is not a prefix of another record's), the
 * field (a LEDGER_F_* bit), the purpose's name (none: all email); value:
 * the conflict id (u64 BE). */

#define OPEN_KEY_MAX (1 + LEDGER_ID_MAX + 1 + LEDGER_PURPOSE_NAME_MAX)

static size_t open_key(uint8_t out[OPEN_KEY_MAX], const struct ledger_recref *ref, uint32_t field,
                       const char *purpose)
{
	memset(out, 0, 1 + LEDGER_ID_MAX);
	out[0] = ref->object;
	memcpy(out + 1, ref->id, strnlen(ref->id, LEDGER_ID_MAX));
	out[1 + LEDGER_ID_MAX] = (uint8_t)field;
	size_t n = purpose ? strnlen(purpose, LEDGER_PURPOSE_NAME_MAX) : 0;
	memcpy(out + 2 + LEDGER_ID_MAX, purpose ? purpose : "", n);
	return 2 + LEDGER_ID_MAX + n;
}

bool open_conflicts_key_ok(const uint8_t *k, size_t kl)
{
	return kl >= 2 + LEDGER_ID_MAX && kl <= OPEN_KEY_MAX && k[0] != 0 && k[1] != 0 &&
	       k[1 + LEDGER_ID_MAX] != 0;
}

/* A conflict the index holds: open, about a record, of a field that fits
 * the key's byte. */
static bool indexed(const struct ledger_conflict *c)
{
	return c->status == LEDGER_CONFLICT_OPEN && c->record.object != 0 && c->field != 0 &&
	       c->field <= 0xff;
}

/* The id the index holds for c's key: 0 when none. */
static int open_lookup(struct ledger_txn *t, const uint8_t *k, size_t kl, uint64_t *id,
                       struct err *e)
{
	MDB_val key = {kl, (void *)k}, v;
	int rc = mdb_get(t->txn, t->l->open_conflicts, &key, &v);
	*id = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return ledger_mdb_error(t, rc, "open conflicts", e);
	if (v.mv_size != 8)
		return corrupt(t, "an open conflict's index entry", e);
	*id = be64_get(v.mv_data);
	return 0;
}

static const char *field_word(uint32_t field)
{
	return field == LEDGER_F_OPTED_OUT     ? "the opt-out"
	       : field == LEDGER_F_AUTH_TYPE   ? "the authorization"
	       : field == LEDGER_F_SOURCE_TYPE ? "the source"
	                                       : "a field";
}

/* Index c, open, under its key; ERR_CONFLICT when another conflict is open
 * there. */
static int open_index(struct ledger_txn *t, const struct ledger_conflict *c, struct err *e)
{
	uint8_t k[OPEN_KEY_MAX], v[8];
	size_t kl = open_key(k, &c->record, c->field, c->purpose_name);
	uint64_t have;
	int rc = open_lookup(t, k, kl, &have, e);
	if (rc)
		return rc;
	if (have && have != c->id)
		return err_set(
		    e, ERR_CONFLICT, "%s %s already has an open conflict (%llu) about %s%s%s",
		    ledger_object_name(c->record.object), c->record.id, (unsigned long long)have,
		    field_word(c->field), c->purpose_name[0] ? " of " : "", c->purpose_name);
	if (have == c->id)
		return 0;
	be64_put(v, c->id);
	return db_put(t, t->l->open_conflicts, k, kl, v, 8, 0, "index an open conflict", e);
}

/* Take c out of the index, where it is the one held. */
static int open_unindex(struct ledger_txn *t, const struct ledger_conflict *c, struct err *e)
{
	uint8_t k[OPEN_KEY_MAX];
	size_t kl = open_key(k, &c->record, c->field, c->purpose_name);
	uint64_t have;
	int rc = open_lookup(t, k, kl, &have, e);
	if (rc || have != c->id)
		return rc;
	return db_del(t, t->l->open_conflicts, k, kl, NULL, "unindex a conflict", e);
}

int ledger_conflict_open_get(struct ledger_txn *t, const struct ledger_recref *ref, uint32_t field,
                             const char *purpose, struct ledger_conflict *out, struct err *e)
{
	uint8_t k[OPEN_KEY_MAX];
	size_t kl = open_key(k, ref, field, purpose);
	uint64_t id;
	int rc = open_lookup(t, k, kl, &id, e);
	if (rc)
		return rc;
	if (id == 0)
		return err_set(e, ERR_NOTFOUND, "no open conflict about %s %s",
		               ledger_object_name(ref->object), ref->id);
	rc = ledger_conflict_get(t, id, out, e);
	if (rc == ERR_NOTFOUND || (rc == 0 && !indexed(out)))
		return corrupt(t, "the index of open conflicts", e);
	return rc;
}

int ledger_conflict_open_each(struct ledger_txn *t, const struct ledger_recref *ref,
                              int (*fn)(struct ledger_conflict *, void *), void *ctx, struct err *e)
{
	uint8_t k[OPEN_KEY_MAX];
	size_t pl = open_key(k, ref, 0, NULL) - 1; /* object and padded id */
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->l->open_conflicts, &c);
	if (rc)
		return ledger_mdb_error(t, rc, "open conflicts cursor", e);
	/* the ids first, then fn: closing one takes it out of this tree */
	MDB_val key = {pl, k}, v;
	int ret = 0;
	for (rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &key, &v, MDB_NEXT)) {
		if (key.mv_size < pl || memcmp(key.mv_data, k, pl) != 0)
			break;
		if (v.mv_size != 8) {
			ret = corrupt(t, "an open conflict's index entry", e);
			break;
		}
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 8;
			uint64_t *g = realloc(ids, nc * sizeof(*g));
			if (g == NULL) {
				ret = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
			ids = g;
			cap = nc;
		}
		ids[n++] = be64_get(v.mv_data);
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "open conflicts cursor", e);
	mdb_cursor_close(c);
	struct ledger_conflict *cf = ret == 0 ? malloc(sizeof(*cf)) : NULL;
	if (ret == 0 && cf == NULL)
		ret = err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; ret == 0 && i < n; i++) {
		ret = ledger_conflict_get(t, ids[i], cf, e);
		if (ret == ERR_NOTFOUND || (ret == 0 && !indexed(cf)))
			ret = corrupt(t, "the index of open conflicts", e);
		else if (ret == 0)
			ret = fn(cf, ctx);
	}
	free(cf);
	free(ids);
	return ret;
}

int ledger_person_delete(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], struct err *e)
{
	return db_del(t, t->l->persons, key, LEDGER_KEY_LEN, NULL, "delete person", e);
}

/* ---- the open conflicts by person, and their counts (schema 5) ----
 *
 * conflicts_open holds, for each open conflict, an empty value keyed 'p' +
 * person key + conflict id (big-endian); "conflict_counts" in meta holds the
 * open conflicts by their record's object. Both change with the conflicts,
 * in the same transaction. (The open conflicts by record are the schema-4
 * index above.) */

#define PERSON_KEY_LEN  (1 + LEDGER_KEY_LEN + 8)
#define CONFLICT_COUNTS "conflict_counts"

/* What the person index and the counts know of a conflict. */
struct open_place {
	uint8_t person[LEDGER_KEY_LEN];
	struct ledger_recref record;
	uint8_t status;
};

static size_t person_key(uint8_t out[PERSON_KEY_LEN], const uint8_t person[LEDGER_KEY_LEN])
{
	out[0] = 'p';
	memcpy(out + 1, person, LEDGER_KEY_LEN);
	return 1 + LEDGER_KEY_LEN;
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

/* Add (or, with del, remove) the person entry of an open conflict, and
 * count it. */
static int person_index(struct ledger_txn *t, uint64_t id, const struct open_place *pl, bool del,
                        struct err *e)
{
	uint8_t k[PERSON_KEY_LEN];
	size_t kl = person_key(k, pl->person);
	be64_put(k + kl, id);
	int rc = del ? db_del(t, t->l->conflicts_open, k, kl + 8, NULL, "open conflicts", e)
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
	struct ledger_conflict *old = malloc(sizeof(*old));
	if (old == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_conflict_get(t, id, old, e);
	if (rc == ERR_NOTFOUND)
		rc = err_set(e, ERR_NOTFOUND, "delete conflict: not found");
	if (rc == 0 && indexed(old))
		rc = open_unindex(t, old, e);
	struct open_place was = {.record = old->record, .status = old->status};
	memcpy(was.person, old->person, LEDGER_KEY_LEN);
	free(old);
	if (rc)
		return rc;
	uint8_t k[8];
	be64_put(k, id);
	rc = db_del(t, t->l->conflicts, k, 8, NULL, "delete conflict", e);
	if (rc == 0 && was.status == LEDGER_CONFLICT_OPEN)
		rc = person_index(t, id, &was, true, e);
	return rc;
}

/* The conflict as stored, without its indexes (the migrations' writes). */
static int conflict_write(struct ledger_txn *t, const struct ledger_conflict *c, struct err *e)
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

/* The conflict stored, its person entry and the counts following it. */
static int conflict_store(struct ledger_txn *t, const struct ledger_conflict *c, struct err *e)
{
	bool found;
	struct open_place was;
	int rc = open_place_get(t, c->id, &found, &was, e);
	if (rc)
		return rc;
	if ((rc = conflict_write(t, c, e)))
		return rc;
	bool was_open = found && was.status == LEDGER_CONFLICT_OPEN;
	bool is_open = c->status == LEDGER_CONFLICT_OPEN;
	if (was_open && is_open && same_place(&was, c))
		return 0;
	if (was_open && (rc = person_index(t, c->id, &was, true, e)))
		return rc;
	if (is_open) {
		struct open_place now = {.record = c->record, .status = c->status};
		memcpy(now.person, c->person, LEDGER_KEY_LEN);
		rc = person_index(t, c->id, &now, false, e);
	}
	return rc;
}

int ledger_conflict_put(struct ledger_txn *t, const struct ledger_conflict *c, struct err *e)
{
	struct ledger_conflict *old = malloc(sizeof(*old));
	if (old == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	/* the index follows the change: out when it is no longer open (or no
	 * longer about the same record, field and purpose), in when it is */
	int rc = ledger_conflict_get(t, c->id, old, e);
	if (rc == ERR_NOTFOUND)
		rc = 0;
	else if (rc == 0 && indexed(old) &&
	         !(indexed(c) && old->field == c->field && old->record.object == c->record.object &&
	           strcmp(old->record.id, c->record.id) == 0 &&
	           strcmp(old->purpose_name, c->purpose_name) == 0))
		rc = open_unindex(t, old, e);
	free(old);
	if (rc == 0 && indexed(c))
		rc = open_index(t, c, e);
	return rc ? rc : conflict_store(t, c, e);
}

int ledger_conflict_add(struct ledger_txn *t, struct ledger_conflict *c, struct err *e)
{
	c->id = 0;
	if (indexed(c)) {
		/* refused before an id is taken */
		uint8_t k[OPEN_KEY_MAX];
		uint64_t have;
		int rc =
		    open_lookup(t, k, open_key(k, &c->record, c->field, c->purpose_name), &have, e);
		if (rc == 0 && have)
			rc = open_index(t, c, e); /* says which one is open */
		if (rc)
			return rc;
	}
	int rc = meta_next(t, "conflict_id", &c->id, e);
	if (rc == 0 && indexed(c))
		rc = open_index(t, c, e);
	return rc ? rc : conflict_store(t, c, e);
}

/* ---- schema 3 -> 4: the index of open conflicts ---- */

struct dup_scan {
	struct ledger_txn *t;
	struct err *e;
	uint64_t *dups; /* later open conflicts of a key already held */
	size_t n, cap;
	int rc;
};

static int index_one(const struct ledger_conflict *c, void *ctx)
{
	struct dup_scan *s = ctx;
	if (!indexed(c))
		return 0;
	uint8_t k[OPEN_KEY_MAX], v[8];
	size_t kl = open_key(k, &c->record, c->field, c->purpose_name);
	uint64_t have;
	if ((s->rc = open_lookup(s->t, k, kl, &have, s->e)))
		return 1;
	if (have == 0) {
		be64_put(v, c->id);
		s->rc = db_put(s->t, s->t->l->open_conflicts, k, kl, v, 8, 0,
		               "index an open conflict", s->e);
		return s->rc ? 1 : 0;
	}
	if (have == c->id)
		return 0; /* indexed already: a ledger this step migrated before */
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		uint64_t *g = realloc(s->dups, cap * sizeof(*g));
		if (g == NULL) {
			s->rc = err_set(s->e, ERR_NOMEM, "out of memory");
			return 1;
		}
		s->dups = g;
		s->cap = cap;
	}
	s->dups[s->n++] = c->id;
	return 0;
}

int conflicts_index_open(struct ledger_txn *t, int64_t now, struct err *e)
{
	struct dup_scan s = {t, e, NULL, 0, 0, 0};
	/* in id order: the first open conflict of a key is the one kept */
	int rc = ledger_conflict_each(t, index_one, &s, e);
	if (s.rc)
		rc = s.rc;
	struct ledger_conflict *c = malloc(sizeof(*c));
	if (rc == 0 && c == NULL)
		rc = err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < s.n; i++) {
		if ((rc = ledger_conflict_get(t, s.dups[i], c, e)))
			break;
		c->status = LEDGER_CONFLICT_RESOLVED;
		c->auto_resolved = true;
		c->resolved_at = now;
		snprintf(c->resolution, sizeof(c->resolution), "duplicate");
		snprintf(c->resolved_by, sizeof(c->resolved_by), "optsync");
		rc = conflict_write(t, c, e); /* 4 -> 5 builds the person index */
	}
	free(c);
	free(s.dups);
	return rc;
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

int ledger_conflict_each_open_of_person(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                                        int (*fn)(const struct ledger_conflict *, void *),
                                        void *ctx, struct err *e)
{
	uint8_t k[PERSON_KEY_LEN];
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
		uint8_t ik[PERSON_KEY_LEN];
		size_t kl = person_key(ik, pl.person);
		be64_put(ik + kl, id);
		ret = db_put(t, t->l->conflicts_open, ik, kl + 8, "", 0, 0, "open conflicts", e);
		n[count_slot(pl.record.object)]++;
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "conflicts", e);
	mdb_cursor_close(cur);
	return ret ? ret : meta_counts_put(t, CONFLICT_COUNTS, LEDGER_OBJ_SLOTS, n, e);
}
