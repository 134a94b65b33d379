/* The sync rules' decisions (docs/sync-rules.md), as pure functions: each
 * takes what Salesforce holds, what optsync last read or wrote there and
 * the person's state, and says what to do. No ledger call, no I/O: the
 * callers (the mappings of src/connector) read the inputs inside their
 * transaction and do the actions. tests/unit/test_rules.c drives every
 * function here through a table, one row per rule and edge. */
#ifndef OPTSYNC_CONNECTOR_RULES_H
#define OPTSYNC_CONNECTOR_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "state/ledger.h"
#include "util/err.h"

/* ---- one boolean flag on a remote row (rules 1-3, P1, P2) ---- */

/* What the flag is. All of them have a "last seen" memory in the ledger. */
enum flag_map {
	FLAG_OPT_OUT_BOX, /* HasOptedOutOfEmail, a purpose's opt-out checkbox:
	                   * in is only the absence of an opt-out */
	FLAG_CONSENT_ROW, /* a ContactPointTypeConsent row: OptIn with its
	                   * CaptureDate is consent, OptOut an opt-out */
	FLAG_OPT_IN_BOX,  /* a purpose's opt-in checkbox: ticked with its date is
	                   * consent, unticked after that an opt-out */
};

struct flag_seen {
	bool in;         /* the row says in now (OptIn, an opt-in box ticked, an
	                  * opt-out box unticked) */
	bool dated;      /* with a valid consent date (CaptureDate, the date field) */
	int before;      /* what optsync last read or wrote there: 1 in, 0 out,
	                  * -1 not known (a row new to optsync, or to the person) */
	uint8_t status;  /* the person's: LEDGER_PURPOSE_IN, _OUT or _NONE (for
	                  * the opt-out of all email: _OUT when opted out) */
	bool global_out; /* a purpose's flag: the person is opted out of all email */
	bool writable;   /* optsync may write the row (not a converted Lead) */
	bool revert;     /* sync.resubscribe_policy = "revert" */
};

/* The actions, a set of bits. */
enum {
	FLAG_CHANGED = 1u << 0,  /* the row reads otherwise than last seen (or is
	                          * new): not an echo of optsync's own write */
	FLAG_OPT_OUT = 1u << 1,  /* rule 1, P1: an opt-out made in Salesforce; apply
	                          * it, correct a queued write of this row that
	                          * says in, and spread it to the person's rows */
	FLAG_OPT_IN = 1u << 2,   /* consent given in Salesforce: an opt-in with
	                          * evidence, spread to the person's rows */
	FLAG_UNDATED = 1u << 3,  /* an opt-in without its date: not evidence,
	                          * counted and named */
	FLAG_CONFLICT = 1u << 4, /* rule 2, P2: back in without evidence given to
	                          * optsync; the person stays out */
	FLAG_REVERT = 1u << 5,   /* ... and the row is set back to out */
	FLAG_SET_OUT = 1u << 6,  /* rule 3: a row new to optsync, in, of a person
	                          * who is out: set out */
	FLAG_SET_IN = 1u << 7,   /* an opt-in box unticked on a row new to optsync,
	                          * the person in: ticked */
};

/* What a flag read from Salesforce does. */
unsigned flag_decide(enum flag_map map, const struct flag_seen *s);
/* Whether the flag may do anything that depends on the person's state:
 * false when it reads as last seen and is no dated opt-in, so that the
 * caller need not read the person's status. */
bool flag_is_news(enum flag_map map, const struct flag_seen *s);

/* ---- the compliance fields (rule 5) ---- */

/* The groups of facts that change together. */
#define AUTH_GROUP                                                                                 \
	(LEDGER_F_AUTH_TYPE | LEDGER_F_CONSENT_DATE | LEDGER_F_PURPOSE | LEDGER_F_AUTH_OTHER)
#define SOURCE_GROUP (LEDGER_F_SOURCE_TYPE | LEDGER_F_SOURCE_OTHER)

/* How far in the future a date given to optsync may lie (clock skew between
 * the application, Salesforce and optsync): a consent date, an opt-out's
 * occurred_at. */
#define FUTURE_TOLERANCE_MS (5 * 60 * 1000LL)

/* One group (authorization or source) of a record read from Salesforce. */
struct facts_seen {
	bool invalid;    /* its values break rule 5 */
	bool raised;     /* a conflict for the invalid value is open already */
	bool sf_has;     /* the record holds the group */
	bool seen_has;   /* optsync's last read of the record held it */
	bool is_new;     /* the record is new to the person */
	bool unchanged;  /* it reads as optsync last read it */
	bool agrees;     /* it holds the person's values */
	bool person_has; /* the person has the group */
	bool writable;
	int queued;    /* a local change of the group queued for the record: 1,
	                * 0 none, -1 not looked up (the decision may ask) */
	bool sf_newer; /* Salesforce's change is later than the local one */
};

enum facts_action {
	FACTS_KEEP,             /* nothing: no values, unchanged, or raised already */
	FACTS_INVALID,          /* not applied: a conflict, raised once */
	FACTS_FILL,             /* a new record without them gets the person's */
	FACTS_AGREES,           /* changed, and it agrees with the person */
	FACTS_NEED_QUEUED,      /* ask again with queued looked up */
	FACTS_APPLY,            /* the person takes Salesforce's values, spread */
	FACTS_CONCURRENT_SF,    /* both changed: Salesforce's is newer and wins
	                         * (the queued local change drops the group) */
	FACTS_CONCURRENT_LOCAL, /* both changed: the local one is newer; its
	                         * queued write stands */
};
enum facts_action facts_decide(const struct facts_seen *s);

/* Whether a and b hold the same values in the groups of group
 * (LEDGER_F_AUTH_TYPE, LEDGER_F_SOURCE_TYPE). Dates compare to the second. */
int facts_group_equal(const struct ledger_facts *a, const struct ledger_facts *b, uint32_t group);
/* Copy the fields of group (LEDGER_F_* bits) from src to dst; absent
 * values become empty. */
void facts_copy_group(struct ledger_facts *dst, const struct ledger_facts *src, uint32_t group);
/* A group as text, for conflicts ("consent 2026-11-20T14:05:00Z Newsletter"). */
void facts_group_text(const struct ledger_facts *f, uint32_t group, char *out, size_t cap);
/* Rule 5 on the groups of groups (LEDGER_F_AUTH_TYPE for authorization,
 * LEDGER_F_SOURCE_TYPE for source) as of now: 1 valid, 0 not, why gets the
 * reason. */
int facts_valid(const struct ledger_facts *f, uint32_t groups, int64_t now, char *why, size_t cap);

/* ---- consent evidence (rules 2 and P2) ---- */

struct conn_evidence;
/* A re-subscribe's evidence as given, as of now: a consent date not in
 * the future, a purpose, an evidence reference, an optional SHA-256. */
int evidence_check(const struct conn_evidence *ev, int64_t now, struct err *e);
/* sha, when given, is 64 hex digits. */
int evidence_check_sha256(const char *sha, struct err *e);
/* The consent date is later than the opt-out it lifts (what: "re-subscribe"). */
int evidence_after(int64_t consent_date, int64_t out_at, const char *what, struct err *e);

#endif
