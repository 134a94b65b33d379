/* A person's Salesforce records (schema 4): the person_records index, and
 * the migration that moved each person's embedded list into it.
 *
 * Key: the person's records_no (u64 BE), the object byte, the record id
 * (1 to LEDGER_ID_MAX bytes); the value is empty. A person's records are
 * the keys that start with its number, in (object, id) order: a range of
 * one B-tree, read with one cursor. The numbers are given in the order
 * persons get their first record, so a first pull appends.
 *
 * Why a number and not the person key: keyed by the (random) person key,
 * every record of a first pull was one more write to a random leaf of a
 * large tree (+60% CPU for a first pull of 200,000 persons, measured). */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

#define NO_LEN       8
#define LINK_KEY_MAX (NO_LEN + 1 + LEDGER_ID_MAX)

static size_t link_key(uint8_t out[LINK_KEY_MAX], uint64_t no, const struct ledger_recref *ref)
{
	be64_put(out, no);
	return NO_LEN + recref_key(out + NO_LEN, ref->object, ref->id);
}

bool person_records_key_ok(const uint8_t *k, size_t kl)
{
	static const uint8_t zero[NO_LEN];
	if (kl < NO_LEN + 2 || kl > LINK_KEY_MAX || memcmp(k, zero, NO_LEN) == 0)
		return false;
	if (k[NO_LEN] != LEDGER_OBJ_CONTACT && k[NO_LEN] != LEDGER_OBJ_LEAD)
		return false;
	return memchr(k + NO_LEN + 1, '\0', kl - NO_LEN - 1) == NULL;
}

static int check_ref(const struct ledger_recref *ref, struct err *e)
{
	size_t n = strnlen(ref->id, sizeof(ref->id));
	if ((ref->object != LEDGER_OBJ_CONTACT && ref->object != LEDGER_OBJ_LEAD) || n == 0 ||
	    n > LEDGER_ID_MAX)
		return err_set(e, ERR_INVALID, "not a Contact or Lead to link to a person: %s '%s'",
		               ledger_object_name(ref->object) ? ledger_object_name(ref->object)
		                                               : "object ?",
		               ref->id);
	return 0;
}

int ledger_person_record_add(struct ledger_txn *t, struct ledger_person *p,
                             const struct ledger_recref *ref, struct err *e)
{
	uint8_t k[LINK_KEY_MAX];
	int rc = check_ref(ref, e);
	if (rc)
		return rc;
	if (p->records_no == 0) {
		/* the person's first record: the next number, so its key is the
		 * largest of the tree */
		uint64_t no;
		if ((rc = meta_next(t, "person_records_no", &no, e)))
			return rc;
		p->records_no = no;
		size_t kl = link_key(k, no, ref);
		return db_put(t, t->l->person_records, k, kl, "", 0, MDB_APPEND,
		              "link a Salesforce record to its person", e);
	}
	size_t kl = link_key(k, p->records_no, ref);
	/* a person's records are neighbours in the tree: a cursor left on the
	 * leaf of the last one linked finds the next one's place there */
	return db_cursor_put(t, &t->links_cur, t->l->person_records, k, kl, "", 0,
	                     "link a Salesforce record to its person", e);
}

int ledger_person_record_remove(struct ledger_txn *t, const struct ledger_person *p,
                                const struct ledger_recref *ref, struct err *e)
{
	uint8_t k[LINK_KEY_MAX];
	int rc = check_ref(ref, e);
	if (rc)
		return rc;
	if (p->records_no == 0)
		return err_set(e, ERR_NOTFOUND, "%s %s is not linked to that person",
		               ledger_object_name(ref->object), ref->id);
	size_t kl = link_key(k, p->records_no, ref);
	MDB_val key = {kl, k};
	rc = mdb_del(t->txn, t->l->person_records, &key, NULL);
	if (rc == MDB_NOTFOUND)
		return err_set(e, ERR_NOTFOUND, "%s %s is not linked to that person",
		               ledger_object_name(ref->object), ref->id);
	return rc ? ledger_mdb_error(t, rc, "unlink a Salesforce record from its person", e) : 0;
}

/* The walk of one person's range: fn for each record (fn NULL: count them
 * into *n, up to max). */
static int walk_person(struct ledger_txn *t, const struct ledger_person *p,
                       int (*fn)(const struct ledger_recref *, void *), void *ctx, uint64_t max,
                       uint64_t *n, struct err *e)
{
	if (n)
		*n = 0;
	if (p->records_no == 0)
		return 0; /* never had a record */
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->l->person_records, &c);
	if (rc)
		return ledger_mdb_error(t, rc, "person_records cursor", e);
	uint8_t no[NO_LEN];
	be64_put(no, p->records_no);
	MDB_val k = {NO_LEN, no}, v;
	struct ledger_recref ref;
	int ret = 0;
	uint64_t count = 0;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < NO_LEN || memcmp(k.mv_data, no, NO_LEN) != 0)
			break; /* the next person's */
		const uint8_t *kb = k.mv_data;
		if (!person_records_key_ok(kb, k.mv_size)) {
			ret = corrupt(t, "a person's record link", e);
			break;
		}
		count++;
		if (fn == NULL) {
			if (max && count >= max)
				break;
			continue;
		}
		ref.object = kb[NO_LEN];
		memcpy(ref.id, kb + NO_LEN + 1, k.mv_size - NO_LEN - 1);
		ref.id[k.mv_size - NO_LEN - 1] = '\0';
		if ((ret = fn(&ref, ctx)) != 0)
			break;
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = ledger_mdb_error(t, rc, "person_records cursor", e);
	mdb_cursor_close(c);
	if (n)
		*n = count;
	return ret;
}

int ledger_person_records_each(struct ledger_txn *t, const struct ledger_person *p,
                               int (*fn)(const struct ledger_recref *, void *), void *ctx,
                               struct err *e)
{
	return walk_person(t, p, fn, ctx, 0, NULL, e);
}

int ledger_person_records_count(struct ledger_txn *t, const struct ledger_person *p, uint64_t max,
                                uint64_t *n, struct err *e)
{
	return walk_person(t, p, NULL, NULL, max, n, e);
}

static int take_first(const struct ledger_recref *ref, void *ctx)
{
	*(struct ledger_recref *)ctx = *ref;
	return 1;
}

int ledger_person_record_first(struct ledger_txn *t, const struct ledger_person *p,
                               struct ledger_recref *first, struct err *e)
{
	int rc = walk_person(t, p, take_first, first, 0, NULL, e);
	if (rc == 1)
		return 0;
	return rc ? rc : err_set(e, ERR_NOTFOUND, "the person has no Salesforce record");
}

/* ---- schema 3 -> 4 ---- */

/* Schema 3's person field 10: one Salesforce record of the person
 * (repeated, at most 32). */
#define V3_PERSON_RECORD 10

int person_records_migrate_3_to_4(struct ledger_txn *t, struct err *e)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(t->txn, t->l->persons, &c);
	if (rc)
		return ledger_mdb_error(t, rc, "persons cursor", e);
	struct ledger_person *p = malloc(sizeof(*p));
	uint8_t *buf = malloc(CODEC_MAX);
	int ret = p && buf ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	MDB_val k, v;
	int op = MDB_FIRST;
	while (ret == 0 && (rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		struct dec d;
		struct field f;
		int r, linked = 0;
		if (k.mv_size != LEDGER_KEY_LEN || dec_init(&d, v.mv_data, v.mv_size)) {
			ret = corrupt(t, "a person", e);
			break;
		}
		uint8_t key[LEDGER_KEY_LEN];
		memcpy(key, k.mv_data, LEDGER_KEY_LEN);
		/* the person as schema 4 reads it (field 10 skipped) */
		if (ent_person_decode(&v, p)) {
			ret = corrupt(t, "a person", e);
			break;
		}
		while (ret == 0 && (r = dec_next(&d, &f)) == 1) {
			struct ledger_recref ref;
			if (f.num != V3_PERSON_RECORD)
				continue;
			if (ent_dec_recref(&f, &ref)) {
				ret = corrupt(t, "a person's Salesforce record", e);
				break;
			}
			/* numbered in the persons' key order */
			ret = ledger_person_record_add(t, p, &ref, e);
			linked++;
		}
		if (ret == 0 && r < 0)
			ret = corrupt(t, "a person", e);
		if (ret || linked == 0)
			continue;
		/* stored again without field 10, with its records_no */
		int ovf;
		size_t n = ent_person_encode(p, buf, CODEC_MAX, &ovf);
		/* the key from our copy: LMDB moves the page's bytes when the
		 * value's size changes, and k points into the page */
		MDB_val nk = {LEDGER_KEY_LEN, key}, nv = {n, buf};
		if (ovf)
			ret = err_set(e, ERR_LIMIT, "a person too large to store");
		else if ((rc = mdb_cursor_put(c, &nk, &nv, MDB_CURRENT)) != 0)
			ret = ledger_mdb_error(t, rc, "put person", e);
	}
	if (ret == 0 && rc && rc != MDB_NOTFOUND)
		ret = ledger_mdb_error(t, rc, "persons cursor", e);
	mdb_cursor_close(c);
	free(p);
	free(buf);
	return ret;
}
