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
	MDB_dbi meta, persons, records, history, feed, cursors, conflicts, outbox, idem;
	char *path;
	char *real_path; /* absolute, for finding the map in /proc/self/maps */
	void *map_addr;  /* where data.mdb is mapped (ledger_trim) */
	size_t map_len, map_seen;
	uint64_t max_map_size;
	uint8_t hmac_key[32];
	struct hmac_key *hmac;   /* the key schedule of hmac_key */
	pthread_rwlock_t resize; /* transactions hold it shared; map growth exclusive */
	int lock_fd;             /* sync lock, -1 when not held */
};

struct ledger_txn {
	struct ledger *l;
	MDB_txn *txn;
	int write;
	int map_full; /* a put hit MDB_MAP_FULL: ledger_write grows and re-runs */
};

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

/* Another process grew the map: take its size (no transaction of this
 * process may be open; it takes the resize lock exclusively). */
void ledger_adopt_map_size(struct ledger *l);

/* [object byte][id] keys of records and pushes */
size_t recref_key(uint8_t out[1 + LEDGER_ID_MAX], int object, const char *id);

/* Erasure of the personal part of every event in the person's list that
 * ends at last_event (history.c). */
int ledger_event_scrub_list(struct ledger_txn *t, uint64_t last_event, struct err *e);

/* For the ledger codec fuzz target: decode arbitrary bytes as stored
 * values (entities.c, history.c); the number of kinds that accepted them. */
int ledger_probe_entities(const void *k, size_t kl, const void *v, size_t vl);
int ledger_probe_event(const void *k, size_t kl, const void *v, size_t vl);

#endif
