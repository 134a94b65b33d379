/* The domain operations of the sync over the ledger (connector/core):
 * events, the outbox, conflicts. More of them are declared in
 * connector/internal.h still; they move here as the reshape goes on. */
#ifndef OPTSYNC_CONNECTOR_CORE_H
#define OPTSYNC_CONNECTOR_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "state/ledger.h"
#include "util/err.h"

/* An event of kind about ref (NULL: none), by origin and actor, at. */
void event_about(struct ledger_event *ev, int kind, int origin, const char *actor,
                 const struct ledger_recref *ref, int64_t at);
/* Record ev for p while a pulled record is applied: the person is not
 * stored here (apply_sf_record stores it once at its end). */
int event_record_held(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                      struct err *e);
/* Raise a conflict about ref's field (and purpose, NULL: all email): one
 * open per record, field and purpose (conflict_again); auto_resolved with
 * its resolution for those decided already (rule 5's concurrent changes). */
int conflict_add(struct ledger_txn *t, struct ledger_person *p, const struct ledger_recref *ref,
                 int kind, uint32_t field, const char *local, const char *sf, bool auto_resolved,
                 const char *resolution, int64_t now, const char *purpose, struct err *e);
/* ref was read again at modstamp (changed: it reads otherwise than last
 * time): a push parked on it may go through now, so it is released for
 * this cycle's drain (rule 7). */
int push_release_on_read(struct ledger_txn *t, const struct ledger_recref *ref, int64_t modstamp,
                         bool changed, struct err *e);

#endif
