/* Internal to src/connector. */
#ifndef OPTSYNC_CONNECTOR_INTERNAL_H
#define OPTSYNC_CONNECTOR_INTERNAL_H

#include "connector/connector.h"
#include "connector/core/core.h"
#include "connector/rules/rules.h"
#include "salesforce/sf.h"
#include "state/ledger.h"

struct supp_index;

struct conn {
	const struct config *cfg;
	struct ledger *l;
	struct sf_client *sf; /* made on first use */
	volatile sig_atomic_t *stop;
	struct supp_index *supp;  /* the suppression check's index (suppress.c) */
	bool owns_ledger;         /* conn_own_ledger: the sync lock is held for life */
	struct link_group *links; /* link opt-outs waiting for a group commit (links.c) */
	/* this cycle's DataUsePurpose Ids, by index in cfg->purposes ("": none) */
	char dup_id[CONFIG_PURPOSES_MAX][LEDGER_ID_MAX + 1];
	bool consent_ok; /* the consent objects answered this cycle */
};

struct link_group *link_group_new(void);
void link_group_free(struct link_group *g);

/* The opted-out persons in memory (suppress.c), built on the first check
 * and kept current from the change feed; thread-safe. */
struct supp_index *supp_index_new(const struct config *cfg); /* knows cfg's purposes */
void supp_index_free(struct supp_index *x);
/* out[i]: whether the person with key keys[i] is opted out; with
 * purpose, also whether suppressed for it (rule P3). */
int supp_index_check(struct supp_index *x, struct ledger *l, const uint8_t (*keys)[LEDGER_KEY_LEN],
                     size_t n, const char *purpose, bool *out, struct err *e);

int conn_sf(struct conn *c, struct sf_client **out, struct err *e);
/* A Salesforce client for cfg, its secrets read now (conn_sf's, and the
 * connection check's, which has no ledger). */
int sf_client_of(const struct config *cfg, volatile sig_atomic_t *stop, struct sf_client **out,
                 struct err *e);

/* The [salesforce.fields] keys with the API names they hold, in order:
 * the fields optsync reads and writes on every record. */
#define CONFIG_FIELD_KEYS 7
struct field_key {
	const char *key;   /* "consent_date" */
	const char *field; /* "Consent_Date__c" */
};
void config_field_keys(const struct config *cfg, struct field_key out[CONFIG_FIELD_KEYS]);

/* The picklist enums: their members are 1..AUTH_TYPES and 1..SOURCE_TYPES. */
#define AUTH_TYPES   LEDGER_AUTH_OTHER
#define SOURCE_TYPES LEDGER_SOURCE_OTHER
#define PICKLIST_MAX AUTH_TYPES
struct picklist_entry {
	const char *key;   /* the member's name and its [salesforce.values] key */
	const char *value; /* the Salesforce picklist value */
};
/* The table of the enum of typebit (LEDGER_F_AUTH_TYPE or
 * LEDGER_F_SOURCE_TYPE), member i + 1 at out[i]; its length. */
size_t picklist_of(const struct config *cfg, uint32_t typebit,
                   struct picklist_entry out[PICKLIST_MAX]);

/* Salesforce picklist value <-> enum, through [salesforce.values]. */
int map_auth_from_sf(const struct config *cfg, const char *s);
int map_source_from_sf(const struct config *cfg, const char *s);
const char *map_auth_to_sf(const struct config *cfg, int v);
const char *map_source_to_sf(const struct config *cfg, int v);
int object_of(const char *name); /* LEDGER_OBJ_* or 0 */

/* The connector's values in the ledger's meta (ledger_meta_get/put). */
#define META_LAST_CYCLE        "last_cycle"        /* the last cycle's report, JSON */
#define META_API_USAGE         "api_usage"         /* "USED/MAX" daily API requests */
#define META_HEALTH            "health"            /* health.c */
#define META_RETENTION         "retention"         /* retention.c: the runs, JSON */
#define META_WEBHOOK_DELIVERED "webhook_delivered" /* the feed seq delivered */

/* The sync's health (health.c), in the ledger's meta. */
struct conn_health {
	int64_t last_success_at;    /* start of the last cycle that succeeded (ms) */
	uint64_t failures_in_a_row; /* cycles failed since then */
	int64_t last_error_at;      /* start of the last cycle that failed */
	char last_error[ERR_MSG_MAX];
};
int health_get(struct ledger_txn *t, struct conn_health *h, struct err *e);
int health_put(struct ledger_txn *t, const struct conn_health *h, struct err *e);

/* Retention (retention.c). */
/* Run retention when [retention] is set and retention.every has passed
 * since the last run; *ran says whether it did, *rep what it removed. */
int conn_retention_if_due(struct conn *c, bool *ran, struct ledger_retention_report *rep,
                          struct err *e);
/* The retention totals (events, persons, resolved conflicts) and the last
 * run's time (ms, 0: none). */
int conn_retention_totals(struct ledger_txn *t, uint64_t totals[3], int64_t *last_run,
                          struct err *e);
/* Purposes (purposes.c). ERR_INVALID naming a purpose the configuration
 * does not have. */
int purpose_check(const struct config *cfg, const char *name, struct err *e);

/* The consent dates a push writes with its opt-in boxes
 * (salesforce.opt_in_field), by want_purposes index: the person's consent
 * date for each purpose it opts in to; 0 where none is written (an
 * opt-out, another mapping, a person no longer opted in). */
int purpose_box_dates(struct ledger_txn *t, const struct config *cfg, const struct ledger_push *q,
                      int64_t out[LEDGER_PFLAGS_MAX], struct err *e);

/* Rule P3: whether a person is suppressed for a purpose, from their opt-out
 * of all email, their status for it (enum ledger_purpose_status) and
 * whether its basis is consent. */
static inline bool purpose_out(bool global_out, uint8_t status, bool consent_basis)
{
	return global_out || status == LEDGER_PURPOSE_OUT ||
	       (consent_basis && status != LEDGER_PURPOSE_IN);
}

/* [retention] sets at least one limit. */
bool conn_retention_configured(const struct config *cfg);

/* The resolution of a resubscribe conflict that optsync closed itself when
 * its revert landed in Salesforce (shown as status "reverted"). */
#define CONFLICT_REVERTED "reverted"
/* ... and of the open conflicts of a record no longer its person's: its
 * email changed in Salesforce (rule 9), or it was deleted there. */
#define CONFLICT_RECORD_MOVED   "record_moved"
#define CONFLICT_RECORD_DELETED "record_deleted"

/* in normalized into email and its ledger key; ERR_INVALID naming in when
 * it is not an email address. */
int conn_person_key(struct conn *c, const char *in, char email[LEDGER_EMAIL_MAX + 1],
                    uint8_t key[LEDGER_KEY_LEN], struct err *e);
/* The normalized Email of a pulled record of object (enum ledger_object)
 * into email: 0; ERR_NOTFOUND when the record has none (empty, null or
 * absent: nothing to apply); ERR_INVALID when it is not an email address,
 * the message naming the record ("Contact 003...: Email: '...' is not an
 * email address (not valid UTF-8: ...)"), for the cycle to park the record
 * with (rule 8). email is "" on failure. */
int conn_record_email(int object, const struct sf_record *r, char email[LEDGER_EMAIL_MAX + 1],
                      struct err *e);

/* cJSON's allocation failures (json.c): json_init (once, from conn_open)
 * hooks its allocator; json_mark starts a rendering on this thread;
 * json_result hands o out as *out when rc is 0 and nothing failed since
 * the mark, and otherwise frees it and returns rc (ERR_NOMEM when only an
 * allocation failed), *out NULL. */
void json_init(void);
void json_mark(void);
int json_result(cJSON *o, int rc, cJSON **out, struct err *e);
/* item added to o as name, or to arr; on failure item is freed (an
 * allocation failure, noted for json_result). */
bool json_attach(cJSON *o, const char *name, cJSON *item);
bool json_append(cJSON *arr, cJSON *item);
/* An allocation failed since json_mark (on this thread). */
bool json_failed(void);
/* A nested check that keeps the enclosing one: was = json_begin(); ...;
 * json_end(was) says whether an allocation failed in between (a parse
 * that failed for memory, not for its input). */
bool json_begin(void);
bool json_end(bool was);

/* Rendering (the contract's JSON shapes). */
/* A person's Salesforce record references, read in a transaction to be
 * rendered after it (reads.c): every one of them, in (object, id) order. */
struct person_refs {
	struct ledger_recref *v;
	size_t n, cap;
};
/* Read the person's references into r (emptied first: a callback may run
 * again). */
int person_refs_read(struct ledger_txn *t, const struct ledger_person *p, struct person_refs *r,
                     struct err *e);
void person_refs_free(struct person_refs *r);
/* A person's state; with refs, its Salesforce record references
 * ("salesforce_records": object and id), NULL: without them. */
cJSON *render_person(const struct ledger_person *p, const struct person_refs *refs);
cJSON *render_event(const struct ledger_event *ev);
cJSON *render_conflict(const struct ledger_conflict *cf);
cJSON *render_record(const struct ledger_record *r);
/* A change feed entry, with the person's email (NULL: erased or gone). */
cJSON *render_change(const struct ledger_change *ch, const char *email);
struct apply_stats; /* below */
/* A dry run's due pushes, as a cycle report lists them. */
struct conn_push_list {
	struct ledger_push *items;
	size_t n, cap;
};
/* The summary of a cycle report too large to keep whole (bytes long). */
cJSON *render_cycle_summary(const struct conn_cycle_report *r, size_t bytes);
/* A person's configured purposes: status, basis, whether the suppression
 * check answers suppressed for it, when and where it changed. */
cJSON *render_purposes(const struct config *cfg, const struct ledger_person *person,
                       const struct ledger_purpose *set, size_t n);
/* The email of the person with key, for a list of conflicts, pushes or
 * access events: read into scratch; "erased" once erased, gone, or without
 * scratch. */
const char *person_email(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN],
                         struct ledger_person *scratch);
/* A retention run's report. */
cJSON *render_retention(bool configured, bool dry_run, uint64_t events, uint64_t persons,
                        uint64_t conflicts, uint64_t event_seq);
/* A bulk report's invalid row. */
cJSON *render_bad_row(size_t row, const char *email, const char *error);
void hex32(const uint8_t in[32], char out[65]);
int add_time(cJSON *o, const char *name, int64_t ms);

/* A push that did not land (sync/push.c): counted, then tried again after a
 * backoff (the whole request failed: request_error; or a retryable answer)
 * or parked (a permanent answer x), with why in its last_error. true when
 * parked. x may be NULL with request_error. */
bool push_failed(struct ledger_push *q, const char *request_error, const struct sf_result *x,
                 int64_t now);
/* A parked push (a permanent failure) is tried again by itself after
 * push_park_backoff(attempts): 1 h, doubling per attempt, at most 24 h. */
#define PUSH_PARK_FIRST_MS (3600 * 1000LL)
#define PUSH_PARK_MAX_MS   (24 * 3600 * 1000LL)
int64_t push_park_backoff(uint32_t attempts);
/* When a parked push was refused: push_failed's time (ms). */
int64_t push_parked_at(const struct ledger_push *q);

/* Pulled records that could not be applied (rule 8, parked.c), in the
 * ledger's named values. */
struct parked_record {
	uint8_t object; /* LEDGER_OBJ_* */
	char id[LEDGER_ID_MAX + 1];
	int64_t modstamp;  /* SystemModstamp of the version refused (ms) */
	int64_t parked_at; /* ms */
	uint8_t reason;    /* enum conn_park_reason */
	char error[LEDGER_ERROR_MAX + 1];
};
/* Park (or park again) p->object's record p->id. */
int parked_put(struct ledger_txn *t, const struct parked_record *p, struct err *e);
/* The record applied: no longer parked (0 when it was not). */
int parked_delete(struct ledger_txn *t, int object, const char *id, struct err *e);
/* Each parked record of object (0: of every object), in id order; fn's
 * nonzero return stops the walk and is returned. ERR_LEDGER when an entry
 * is not one parked_put wrote. */
int parked_each(struct ledger_txn *t, int object, int (*fn)(const struct parked_record *, void *),
                void *ctx, struct err *e);

/* Applying pulled records (mappings/), inside a write transaction. */
struct apply_stats {
	uint64_t records, optouts_in, resubscribe_conflicts, suppressed_new, facts_applied,
	    invalid_conflicts, concurrent_conflicts, skipped_no_email, echoes;
	uint64_t pushes_queued, purpose_optouts_in, unlinked;
	uint64_t purpose_optins_in, purpose_optins_nodate;
	uint64_t parked; /* records refused (rule 8) */
	/* not counters (the counters above are summed as one array): where
	 * undated opt-ins are named, NULL: counted only; and why
	 * apply_sf_record or apply_sf_consent refused the record when it
	 * returned ERR_INVALID (enum conn_park_reason) */
	struct conn_undated_list *undated;
	int refused;
};
/* Name an undated opt-in in st's list (once; the first CONN_UNDATED_MAX). */
void undated_note(struct apply_stats *st, int object, const char *id, const char *purpose,
                  const char *missing);

/* Queue a write of the fields in mask (from p's facts) to one record,
 * coalescing with what is queued already. */
int push_enqueue(struct ledger_txn *t, const struct ledger_person *p,
                 const struct ledger_recref *ref, uint32_t mask, bool opted_out_value,
                 struct apply_stats *st, struct err *e);
/* Put the parked push of ref, if any, back in the queue (next_try 0);
 * *released is set when there was one. */
int push_release(struct ledger_txn *t, const struct ledger_recref *ref, bool *released,
                 struct err *e);
/* Queue one purpose's checkbox (field mapping) to one record. */
/* A write still queued for ref that says the other value than out (of
 * all email: purpose NULL; or of purpose) says out instead: it was queued
 * before a later change, and written as it was it would undo it. */
int push_queued_correct(struct ledger_txn *t, const struct ledger_person *p,
                        const struct ledger_recref *ref, const char *purpose, bool out,
                        struct apply_stats *st, struct err *e);
int push_enqueue_purpose(struct ledger_txn *t, const struct ledger_person *p,
                         const struct ledger_recref *ref, const char *purpose, bool out,
                         struct apply_stats *st, struct err *e);
/* P1: queue the purpose's checkbox to every record of p but except whose
 * box is not known to hold it (out: an opt-out box ticked, an opt-in box
 * unticked; an opt-in unticks only opt-out boxes known ticked, and ticks
 * opt-in boxes, opt_in_box, wherever not known ticked). */
int purpose_push_spread(struct ledger_txn *t, const struct ledger_person *p,
                        const struct ledger_recref *except, const char *purpose, bool out,
                        bool opt_in_box, struct apply_stats *st, struct err *e);
/* Purposes on Salesforce's consent objects (consent.c). */
bool consent_configured(const struct config *cfg);
int consent_soql(const struct conn *c, int64_t since, struct buf *q, struct err *e);
/* Before the pulls: resolve this cycle's DataUsePurpose Ids (one query).
 * When the org has no consent objects, or lacks a configured
 * DataUsePurpose, ERR_REMOTE in plain words, also in r->consent_error (the
 * purposes resolved, if any, are synced); any other failure as it came,
 * r->consent_error left empty. */
int consent_prepare(struct conn *c, struct sf_client *sf, struct conn_cycle_report *r,
                    struct err *e);
/* After the Contact and Lead pulls: the ContactPointTypeConsent rows. */
int consent_pull(struct conn *c, struct sf_client *sf, const struct conn_sync_opts *o,
                 struct conn_cycle_report *r, struct err *e);
/* Write the queued consent rows (pushes keyed by Individual). */
int consent_drain(struct conn *c, struct sf_client *sf, struct conn_cycle_report *report,
                  struct err *e);
int apply_sf_consent(struct ledger_txn *t, struct conn *c, const struct sf_record *r,
                     struct apply_stats *st, struct err *e);
/* A record's IndividualId: the person's Individual when it has none yet,
 * and its purposes queued to it. */
int consent_follow_individual(struct ledger_txn *t, const struct config *cfg,
                              struct ledger_person *p, const struct sf_record *r,
                              struct apply_stats *st, struct err *e);
/* P1/P2 for a consent-object purpose: queue its row's status. */
int consent_spread(struct ledger_txn *t, const struct config *cfg, const struct ledger_person *p,
                   const char *purpose, bool out, struct apply_stats *st, struct err *e);
/* Either mapping: the checkboxes of every record, or the consent row. */
int purpose_spread(struct ledger_txn *t, const struct config *cfg, const struct ledger_person *p,
                   const struct ledger_recref *except, const char *purpose, bool out,
                   struct apply_stats *st, struct err *e);
/* Pull one object from its cursor (sync/pull.c). */
int pull_object(struct conn *c, struct sf_client *sf, int object, const struct conn_sync_opts *o,
                struct conn_cycle_report *r, struct err *e);
/* Close the open re-subscribe conflicts of refs[i] about purposes[i] ("":
 * all email) as reverted; *closed counts them. */
int close_reverted_pairs(struct ledger_txn *t, const struct ledger_recref *refs,
                         const char *const *purposes, size_t n, int64_t now, size_t *closed,
                         struct err *e);
/* A conflict seen in Salesforce, with its history event (core/conflicts.c). */
int sf_conflict_add(struct ledger_txn *t, struct ledger_person *p, const struct ledger_recref *ref,
                    int kind, uint32_t field, const char *local, const char *sf, int64_t now,
                    const char *purpose, struct err *e);
/* A purpose's opt-out seen in Salesforce (a box ticked, a row at OptOut, a
 * merge): its history event, with reason when given, about ref, and p's
 * new status for purpose, opted out since at (0: now). held: p is stored by
 * the caller (apply_sf_record), else here with the event. */
int purpose_optout_from_sf(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                           const struct ledger_recref *ref, const char *purpose, const char *reason,
                           int64_t at, bool held, struct apply_stats *st, struct err *e);
/* Consent given in Salesforce (a consent row at OptIn with its CaptureDate,
 * an opt-in box ticked with its date): its history event about ref, with
 * the evidence and reason when given, and p's new status for purpose,
 * opted in since at (0: now). held as for purpose_optout_from_sf. */
int purpose_optin_from_sf(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                          const struct ledger_recref *ref, const char *purpose,
                          int64_t consent_date, const char *evidence_ref, const char *reason,
                          int64_t at, bool held, struct apply_stats *st, struct err *e);
/* Store a person's new status for a purpose (purposes.c). */
int purpose_status_put(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], const char *name,
                       uint8_t status, int64_t at, int origin, int64_t consent_date,
                       const char *evidence_ref, uint64_t event_seq, struct err *e);
/* Queue mask to every record of p that does not already hold the values. */
int push_spread(struct ledger_txn *t, const struct ledger_person *p,
                const struct ledger_recref *except, uint32_t mask, struct apply_stats *st,
                struct err *e);
/* The time (ms) in r's field name, or 0 when it has none or it is not one. */
int64_t record_time(const struct sf_record *r, const char *name);
/* The facts a Salesforce record holds, as of now; invalid gets the groups
 * (LEDGER_F_AUTH_TYPE.. / LEDGER_F_SOURCE_TYPE..) whose values are not
 * valid, raw the offending value. */
void read_sf_record(const struct config *cfg, const struct sf_record *r, int64_t now,
                    struct ledger_facts *f, uint32_t *invalid, char *raw, size_t rawcap);
/* Apply one pulled record to the ledger under the sync rules. A record
 * that cannot be applied (rule 8) is refused with ERR_INVALID and
 * st->refused set, before anything is written: the caller parks it and
 * goes on in the same transaction. Any other failure may come after some
 * of the record was written: the transaction is to be aborted (ERR_LIMIT,
 * ERR_INVALID without st->refused: the record is refused by the caller on
 * a second run without it). apply_sf_consent likewise. */
/* A record parked (rule 8) whose email now names another person, or no
 * address: it leaves its old person as rule 9 says (a push queued for it
 * dropped, its open conflicts closed) and is forgotten, so that it is new
 * to the person of its email when it is applied. */
int forget_moved_parked(struct ledger_txn *t, struct ledger *l, int object,
                        const struct sf_record *r, struct err *e);
int apply_sf_record(struct ledger_txn *t, struct ledger *l, const struct config *cfg, int object,
                    const struct sf_record *r, struct apply_stats *st, struct err *e);
/* Append an event about p (storing p) and its change-feed entry. */
int event_record(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                 struct err *e);

#endif
