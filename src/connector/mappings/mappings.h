/* Internal to the Contact and Lead mapping (records.c, merges.c). */
#ifndef OPTSYNC_CONNECTOR_MAPPINGS_H
#define OPTSYNC_CONNECTOR_MAPPINGS_H

#include "connector/internal.h"

/* One record's work space, on the heap (persons and records are large). */
struct work {
	struct ledger_person p, old;
	struct ledger_record rec;
	struct ledger_facts sf;
	struct ledger_push q;
	struct ledger_event ev;
};

/* The opt-outs a merge carries to its survivor: of all email, and of each
 * purpose (out: ticked in purposes). */
struct carried {
	bool out;
	struct ledger_pflags purposes;
};

/* Move a record whose email changed from its old person (w->old) to the
 * new one (rule 9): its queued write goes, its open conflicts close as moot. */
int move_record(struct ledger_txn *t, struct work *w, const struct ledger_recref *ref, int64_t now,
                struct err *e);
/* The opt-outs carried by a merge (c) go to the survivor master's person mp
 * and, spread, to its records. */
int carry_optouts(struct ledger_txn *t, const struct config *cfg, struct work *w,
                  const struct carried *c, struct ledger_person *mp,
                  const struct ledger_recref *master, struct apply_stats *st, struct err *e);
/* A record deleted in Salesforce (IsDeleted, read with queryAll), on its
 * own or merged into another (MasterRecordId): see merges.c. */
int apply_sf_deleted(struct ledger_txn *t, struct ledger *l, const struct config *cfg,
                     struct work *w, const struct sf_record *r, const struct ledger_recref *ref,
                     struct apply_stats *st, struct err *e);

#endif
