/* Internal to src/state: the handle types and the helpers the ledger's
 * files share. */
#ifndef OPTSYNC_STATE_INTERNAL_H
#define OPTSYNC_STATE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>

#include "state/codec.h"
#include "state/ledger.h"

struct ledger {
	MDB_env *env;
	MDB_dbi meta, persons, records, history, feed, cursors, conflicts, outbox, idem, purposes;
	MDB_dbi person_records, open_conflicts; /* schema 4 */
	MDB_dbi push_due, conflicts_open; /* schema 5: the indexes of outbox.c and conflicts.c */
	char *migration_backup;           /* the backup taken before migrating, or NULL */
	char *path;
	uint64_t max_map_size;
	uint8_t hmac_key[32];
	struct hmac_key *hmac;   /* the key schedule of hmac_key */
	pthread_rwlock_t resize; /* transactions hold it shared; map growth exclusive */
	int lock_fd;             /* sync lock, -1 when not held */
	/* The size of data.mdb, shared by every process that opens it (see
	 * "map size" in ledger.c): map.lock is flock'ed exclusively while a
	 * process sets it; data_fd is LMDB's descriptor of data.mdb. */
	int map_fd, data_fd;
	int open_fd;       /* open.lock: flock'ed shared while this ledger is open */
	uint64_t reserved; /* bytes of data.mdb known to be allocated on disk */
	bool no_reserve;   /* the file system cannot reserve space (no fallocate) */
	bool unmapped;     /* a failed growth lost the map: no transaction may begin */
	/* backups copying in this process: map growth waits for them outside
	 * the resize lock, so that readers do not queue behind it */
	pthread_mutex_t copy_mu;
	pthread_cond_t copy_cv;
	int copies;
};

/* A write transaction run by ledger_write keeps the meta counters it moves
 * (event_seq, change_seq, ...) and the chain head in memory and writes them
 * once, just before the commit: a batch of pulled pages appends thousands of
 * events, each of which used to read and write them in the meta tree. */
#define TXN_META_SLOTS 5 /* event_seq, change_seq, conflict_id, person_records_no, schema */
/* Counts kept in meta as arrays of u64 BE (schema 5), by object byte
 * (LEDGER_OBJ_SLOTS): "outbox_counts" (pushes queued, then parked: 2
 * arrays) and "conflict_counts" (open conflicts). */
#define TXN_COUNTS     2
#define TXN_COUNTS_MAX (2 * LEDGER_OBJ_SLOTS)
struct ledger_txn {
	struct ledger *l;
	MDB_txn *txn;
	int write;
	int map_full; /* a put hit MDB_MAP_FULL: ledger_write grows and re-runs */
	bool cache;   /* the counters and head below are used (ledger_write) */
	int nslots;
	struct {
		const char *name; /* a literal */
		uint64_t v;
		bool dirty;
	} slot[TXN_META_SLOTS];
	int ncounts;
	struct {
		const char *name; /* a literal */
		size_t n;
		bool dirty;
		uint64_t v[TXN_COUNTS_MAX];
	} counts[TXN_COUNTS];
	int head; /* chain head: 0 not read yet, 1 none, 2 in head_v */
	bool head_dirty;
	uint8_t head_v[40];
	/* cursors on the persons and records trees (ledger_write only): a get
	 * leaves one on the key's leaf, where the put that follows finds its
	 * place without a search from the root. LMDB closes them with the
	 * transaction. */
	MDB_cursor *persons_cur, *records_cur, *links_cur;
	MDB_cursor *outbox_cur, *due_cur; /* the outbox and its due index (outbox.c) */
	MDB_cursor *open_cur;             /* the open conflicts' index (conflicts.c) */
};

/* db_get and db_put through *cur when the transaction keeps cursors. */
int db_cursor_get(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, const void *key, size_t klen,
                  MDB_val *out, const char *what, struct err *e);
int db_cursor_put(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, const void *key, size_t klen,
                  const void *data, size_t len, const char *what, struct err *e);
/* db_del through *cur: one search, none when the cursor is on the key. */
/* A cursor of the transaction on dbi (opened into *cur on first use,
 * closed by LMDB with the transaction): ledger_write's transactions only;
 * *cur stays NULL, and 0 is returned, in others. */
int db_txn_cursor(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, struct err *e);
int db_cursor_del(struct ledger_txn *t, MDB_cursor **cur, MDB_dbi dbi, const void *key, size_t klen,
                  const char *what, struct err *e);

/* The chain head (seq then hash, 40 bytes): *found 0 on an empty chain. */
int chain_head_get(struct ledger_txn *t, uint8_t out[40], int *found, struct err *e);
int chain_head_put(struct ledger_txn *t, const uint8_t head[40], struct err *e);

/* Map an LMDB failure to ERR_LEDGER (or ERR_NOTFOUND for MDB_NOTFOUND)
 * with a message naming the ledger and what was being done. */
int ledger_mdb_error(struct ledger_txn *t, int rc, const char *what, struct err *e);

int db_get(struct ledger_txn *t, MDB_dbi dbi, const void *key, size_t klen, MDB_val *out,
           const char *what, struct err *e);
int db_put(struct ledger_txn *t, MDB_dbi dbi, const void *key, size_t klen, const void *data,
           size_t len, unsigned flags, const char *what, struct err *e);
int db_del(struct ledger_txn *t, MDB_dbi dbi, const void *key, size_t klen, const MDB_val *data,
           const char *what, struct err *e);
int corrupt(struct ledger_txn *t, const char *what, struct err *e);

void be64_put(uint8_t out[8], uint64_t v);
uint64_t be64_get(const uint8_t in[8]);

/* meta counters: "event_seq", "change_seq", "conflict_id" */
int meta_next(struct ledger_txn *t, const char *name, uint64_t *out, struct err *e);
int meta_get_u64(struct ledger_txn *t, const char *name, uint64_t *out, struct err *e);
/* The counts array name (n u64s, all 0 while none is stored), and a change
 * of its entry i by delta (never below 0). A transaction of ledger_write
 * reads it once and writes it once, before its commit. */
int meta_counts_get(struct ledger_txn *t, const char *name, size_t n, uint64_t *out, struct err *e);
int meta_counts_add(struct ledger_txn *t, const char *name, size_t n, size_t i, int64_t delta,
                    struct err *e);
int meta_counts_put(struct ledger_txn *t, const char *name, size_t n, const uint64_t *v,
                    struct err *e);
/* The counts slot of an object byte. */
size_t count_slot(int object);

/* Another process grew the map: take its size (no transaction of this
 * process may be open; it takes the resize lock exclusively). */
void ledger_adopt_map_size(struct ledger *l);
/* The bytes of data.mdb in use (its newest meta page's last page), from the
 * file itself; 0 when no meta page can be read (walk.c). */
uint64_t ledger_file_used(int fd);

/* Around a long read (a backup's copy, the trees' walk, the chain's
 * verification): growth in this process waits for it before it takes the
 * resize lock, so other readers do not queue behind the waiting growth. Call
 * it with the read transaction open (or none), never around its begin. */
void ledger_copy_enter(struct ledger *l);
void ledger_copy_leave(struct ledger *l);

/* [object byte][id] keys of records and pushes */
size_t recref_key(uint8_t out[1 + LEDGER_ID_MAX], int object, const char *id);

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

/* ---- the entities' encodings, shared by their files (entities.c, feed.c,
 * conflicts.c, outbox.c) and the fuzz probe ---- */

void ent_enc_recref(struct enc *en, unsigned field, const struct ledger_recref *r);
int ent_dec_recref(const struct field *f, struct ledger_recref *r);
int ent_dec_hash(const struct field *f, uint8_t out[32]);
int ent_person_decode(const MDB_val *v, struct ledger_person *p);
/* The person's value into buf (cap bytes); *ovf set when it did not fit. */
size_t ent_person_encode(const struct ledger_person *p, uint8_t *buf, size_t cap, int *ovf);
int ent_record_decode(const MDB_val *v, struct ledger_record *r);
int ent_change_decode(const MDB_val *k, const MDB_val *v, struct ledger_change *c);
int ent_conflict_decode(const MDB_val *k, const MDB_val *v, struct ledger_conflict *c);
int ent_push_decode(const MDB_val *k, const MDB_val *v, struct ledger_push *p);

/* ---- the history's encoding and hash (chain.c), for retention.c and
 * verify.c ---- */

/* H(seq) of a stored event v, which hist_event_decode decoded into ev
 * (stored_digest as it gave it; not a stub, which keeps its hash), by the
 * version the event names in field 20 (*version; 1 when it names none):
 * version 1 over its known fields encoded again, version 2 over its stored
 * bytes (chain.c). 0; HIST_BAD when it cannot be hashed (*why says why: a
 * field repeated that a version-2 event holds once, ...); HIST_NEWER when
 * a newer optsync wrote it. */
enum { HIST_BAD = -1, HIST_NEWER = -2 };
int hist_event_hash(const MDB_val *v, const struct ledger_event *ev,
                    const uint8_t stored_digest[32], uint8_t out[32], uint64_t *version,
                    const char **why);
/* The error of a write (erasure, retention) that met an event
 * hist_event_hash refused: ERR_LEDGER, a corrupt event or a newer optsync. */
int hist_hash_error(struct ledger_txn *t, int rc, uint64_t seq, uint64_t version, const char *why,
                    struct err *e);
/* Decode a stored event; stored_digest gets the digest an erased or purged
 * event carries in place of its personal part (a stub: its own hash). */
int hist_event_decode(const MDB_val *k, const MDB_val *v, struct ledger_event *ev,
                      uint8_t stored_digest[32]);
/* The seqs of the person's list ending at last (oldest first), those older
 * than before; a merge event's merged_prev is followed too; *out malloc'ed. */
int hist_person_seqs(struct ledger_txn *t, uint64_t last, int64_t before, uint64_t **out, size_t *n,
                     struct err *e);
/* fn for each seq of the list ending at last. */
int hist_each_seq_of(struct ledger_txn *t, uint64_t last,
                     int (*fn)(struct ledger_txn *, uint64_t, void *), void *ctx, struct err *e);

/* Schema 2 -> 3 (ledger.c's migrations): nothing to rewrite. The events
 * stored keep their version-1 hash (they hold no field 20); those appended
 * from now on are hashed by version 2. The schema changes so that an
 * optsync of schema 2, which would purge or erase a version-2 event as if
 * it were of version 1 and so break the chain, refuses the ledger. */
int hist_migrate_2_to_3(struct ledger_txn *t, struct err *e);

/* Schema 5 -> 6 (ledger.c's migrations, rekey.c): every person keyed by
 * today's email normalization; persons that are one address merged. */
int rekey_migrate(struct ledger_txn *t, struct err *e);
/* Schema 3 -> 4 (person_records.c): each person's embedded list of
 * Salesforce records (person field 10) moves into person_records and the
 * person is stored without it; then conflicts_index_open builds the index
 * of open conflicts. */
int person_records_migrate_3_to_4(struct ledger_txn *t, struct err *e);
/* The open conflicts by record (conflicts.c), for the migration: each open
 * conflict about a record is indexed; a later open one of the same record,
 * field and purpose (schema 3 allowed it) is closed as a duplicate of the
 * first, resolved at now. */
int conflicts_index_open(struct ledger_txn *t, int64_t now, struct err *e);
/* Keys of the schema-4 indexes, for the trees' walk: a well-formed one. */
bool person_records_key_ok(const uint8_t *k, size_t kl);
bool open_conflicts_key_ok(const uint8_t *k, size_t kl);
/* Schema 4 -> 5: the outbox's due index and counts (outbox.c), the open
 * conflicts' index and counts (conflicts.c), built from the tables. */
int outbox_migrate_4_to_5(struct ledger_txn *t, struct err *e);
int conflicts_migrate_4_to_5(struct ledger_txn *t, struct err *e);

/* Erasure of the personal part of every event in the person's list that
 * ends at last_event (chain.c). */
int ledger_event_scrub_list(struct ledger_txn *t, uint64_t last_event, struct err *e);

/* For the ledger codec fuzz target: decode arbitrary bytes as stored
 * values (entities.c, history.c); the number of kinds that accepted them. */
int ledger_probe_entities(const void *k, size_t kl, const void *v, size_t vl);
int ledger_probe_event(const void *k, size_t kl, const void *v, size_t vl);

/* Copy the open ledger to file as ledger_backup does, with its schema
 * given (the opening of a ledger to migrate has not read it the usual way). */
struct ledger_backup_info;
int ledger_backup_schema(struct ledger *l, const char *file, uint32_t schema,
                         struct ledger_backup_info *info, struct err *e);
/* Erasure's part in the purposes table: evidence references go. */
int ledger_purposes_scrub(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                          struct err *e);

#endif
