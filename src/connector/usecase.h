/* Internal to src/connector: the person scratch that the write use cases
 * (writes.c, conflicts.c) build their contexts on, and its helpers. */
#ifndef OPTSYNC_CONNECTOR_USECASE_H
#define OPTSYNC_CONNECTOR_USECASE_H

#include "connector/internal.h"

/* The person part of a write use case's context: what every write
 * callback reads and fills, so that the callback can run again from the
 * same inputs. Each use case has its own context with a struct uc as its
 * first member and its inputs after it (struct optout_uc, struct set_uc,
 * struct resub_uc, struct resolve_uc). */
struct uc {
	struct conn *c;
	const struct conn_actor *who;
	char email[LEDGER_EMAIL_MAX + 1];
	uint8_t key[LEDGER_KEY_LEN];
	struct ledger_person p;
	struct ledger_event ev;
	struct apply_stats st;
	/* outputs */
	int found, already;
	uint64_t event_seq;
};

/* The context of an opt-out; a link's carries its campaign. */
struct optout_uc {
	struct uc u;
	const struct conn_optout *o;
	const char *campaign; /* NULL: none */
};
/* The opt-out in a write transaction (a ledger_write callback: may run
 * again). u->already and u->event_seq say what it did. */
int optout_txn(struct ledger_txn *t, void *ctx, struct err *e);

/* A person's opt-out of one purpose (P1) in a write transaction, into u
 * (u->p loaded): nothing new when already out of it. */
int purpose_optout_apply(struct ledger_txn *t, struct uc *u, const char *purpose, int64_t at,
                         const char *reason, const char *campaign, struct err *e);

/* The context of the re-subscribe, which resolving a conflict with new
 * evidence runs too. */
struct resub_uc {
	struct uc u;
	const struct conn_evidence *ev;
};

/* A use case's context of size bytes (a struct with a struct uc first),
 * zeroed, for the person of email (when given: normalized and keyed;
 * ERR_INVALID naming it otherwise). NULL on failure, e set. */
void *uc_new(struct conn *c, const struct conn_actor *who, const char *email, size_t size,
             struct err *e);
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
/* Close every open re-subscribe conflict of u's person as how (conflicts.c):
 * those about purpose, or with purpose NULL those about all email. */
int uc_resolve_resubscribe_conflicts(struct ledger_txn *t, struct uc *u, const char *purpose,
                                     const char *how, struct err *e);
/* The rules of consent evidence: connector/rules/rules.h (evidence_*). */
/* An opt-in to one purpose (rule P2) in a write transaction, into u
 * (u->p loaded): refused (ERR_REFUSED) after an opt-out unless u->who is an
 * admin, with evidence newer than the opt-out (ERR_EVIDENCE). It settles
 * the purpose's open re-subscribe conflicts. */
int purpose_optin_apply(struct ledger_txn *t, struct uc *u, const char *purpose,
                        int64_t consent_date, const char *evidence_ref, const char *evidence_sha256,
                        struct err *e);
/* The re-subscribe's write transaction (writes.c) on a struct resub_uc. */
int uc_resub_txn(struct ledger_txn *t, void *ctx, struct err *e);

#endif
