/* Internal to src/connector: the scratch context the use cases share
 * (writes.c, reads.c, conflicts.c, status.c, feed.c) and its helpers. */
#ifndef OPTSYNC_CONNECTOR_USECASE_H
#define OPTSYNC_CONNECTOR_USECASE_H

#include "connector/internal.h"

/* Scratch space for one use case; everything a write callback needs, so
 * that the callback can run again from the same inputs. */
struct uc {
	struct conn *c;
	const struct conn_actor *who;
	char email[LEDGER_EMAIL_MAX + 1];
	uint8_t key[LEDGER_KEY_LEN];
	struct ledger_person p;
	struct ledger_event ev;
	struct apply_stats st;
	/* inputs */
	const struct conn_optout *optout;
	const struct conn_facts_change *change;
	struct ledger_facts want; /* validated new facts */
	uint32_t groups;          /* LEDGER_F_AUTH_TYPE and/or LEDGER_F_SOURCE_TYPE */
	const struct conn_evidence *evidence;
	uint64_t conflict_id;
	enum conn_resolution how;
	/* outputs */
	int found, already;
	uint64_t event_seq;
};

/* A context for the person of email (when given: normalized and keyed;
 * ERR_INVALID naming it otherwise). NULL on failure, e set. */
struct uc *uc_new(struct conn *c, const struct conn_actor *who, const char *email, struct err *e);
/* Free u and return rc (a use case's failure path). */
int uc_fail(struct uc *u, int rc);
/* The end of a use case that answers with the person's state: on rc 0,
 * *result is u->p rendered (ERR_NOMEM when rendering ran out of memory);
 * u is freed either way, *result NULL on failure. */
int uc_person_result(struct uc *u, int rc, cJSON **result, struct err *e);
/* Load the person (or a fresh one): u->found says which. */
int uc_load_person(struct ledger_txn *t, struct uc *u, struct err *e);
/* An event of kind by who, now. */
void uc_event_by(struct ledger_event *ev, const struct conn_actor *who, int kind);
/* Close every open re-subscribe conflict of u's person as how (conflicts.c). */
int uc_resolve_resubscribe_conflicts(struct ledger_txn *t, struct uc *u, const char *how,
                                     struct err *e);
/* The rules of consent evidence (writes.c): ERR_EVIDENCE or ERR_INVALID. */
int uc_check_evidence(const struct conn_evidence *ev, struct err *e);
/* The re-subscribe's write transaction (writes.c), which resolving a
 * conflict with new evidence runs too. */
int uc_resub_txn(struct ledger_txn *t, void *ctx, struct err *e);

#endif
