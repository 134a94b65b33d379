/* The connector: optsync's sync rules (docs/sync-rules.md) and the use
 * cases that the command line and the local HTTP API both call.
 *
 * The contract, for every function here unless it says otherwise:
 * - Errors: 0, or a negative ERR_* code (util/err.h) with the message set
 *   where the failure was found, naming the input; pass it on unchanged.
 *   Codes the use cases return: ERR_INVALID (input that fails the rules,
 *   naming the field), ERR_EVIDENCE (consent evidence missing or not
 *   enough), ERR_REFUSED (admin credentials), ERR_NOTFOUND (no such person,
 *   conflict or push), ERR_CONFLICT (the state does not allow it),
 *   ERR_LEDGER (missing, locked, corrupt or full ledger), ERR_NOMEM; the
 *   sync adds ERR_REMOTE and ERR_RETRY from Salesforce.
 * - Results: a typed struct (status, the cycle report, with its free
 *   function and a conn_render_* for the contract's JSON), a cJSON
 *   document (in the shapes the README and docs/openapi.yaml describe) or
 *   a malloc'ed string, each the caller's to free or delete. On failure *out (or *result, *report)
 * is NULL, except where a function says it still describes the failure (the sync report, audit
 * verify).
 * - Writes are durable (one fsynced ledger commit) when a use case returns
 *   0; on failure nothing of the call was written.
 * - A struct conn may be used by many threads at once (the API's
 *   connection threads); its ledger serializes writers. */
#ifndef OPTSYNC_CONNECTOR_CONNECTOR_H
#define OPTSYNC_CONNECTOR_CONNECTOR_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "util/err.h"

struct conn;

/* Open the ledger of cfg (created when create is set). The Salesforce
 * client is made on first use, reading its secrets then. stop, when given,
 * ends backoff sleeps early (SIGTERM). */
int conn_open(struct conn **out, const struct config *cfg, bool create, volatile sig_atomic_t *stop,
              struct err *e);
void conn_close(struct conn *c);
/* Remove a closed ledger's directory and its files (a throwaway ledger,
 * such as the dry run's when there is none yet): 0, or -1 with errno. */
int conn_ledger_remove(const char *dir);

/* Where a change comes from, as the history records it. */
enum conn_origin { CONN_ORIGIN_LOCAL = 2, CONN_ORIGIN_ADMIN = 3, CONN_ORIGIN_LINK = 4 };
/* The Salesforce objects optsync syncs, as reports count them. */
enum conn_object { CONN_OBJ_CONTACT = 1, CONN_OBJ_LEAD = 2, CONN_OBJ_CONSENT = 3 };

/* Who acts: shown in the history. */
struct conn_actor {
	int origin;       /* enum conn_origin */
	const char *name; /* admin name, or "cli" / "api" */
};

/* ---- admin credentials ---- */

/* A token_hash line for [[admins]]: scrypt (N=2^15, r=8, p=1), random salt. */
int conn_admin_hash(const char *token, size_t len, char *out, size_t cap, struct err *e);
/* ERR_REFUSED unless name is an [[admins]] entry whose hash matches token
 * (constant-time). A refusal is recorded in the history when email names a
 * person. */
int conn_admin_check(struct conn *c, const char *name, const char *token, const char *email,
                     struct err *e);

/* An admin as the actor of what follows: name and token checked as
 * conn_admin_check does; on success who->name is namebuf (cap bytes, which
 * receives the name). ERR_REFUSED otherwise (recorded, as there). */
int conn_admin_actor(struct conn *c, const char *name, const char *token, const char *email,
                     struct conn_actor *who, char *namebuf, size_t cap, struct err *e);
/* The same from "NAME:TOKEN" (the X-Optsync-Admin header); a missing or
 * malformed value is ERR_REFUSED. */
int conn_admin_actor_header(struct conn *c, const char *header, const char *email,
                            struct conn_actor *who, char *namebuf, size_t cap, struct err *e);

/* ---- emails ---- */

/* The one normalization of an email address (util/email.h, docs/sync-rules.md, "What a person is"):
 * trimmed; invalid UTF-8 and control characters refused; the domain as its
 * IDNA2008 A-label, lower-cased; the local part in NFC, lower-cased.
 * ERR_INVALID naming the input (quoted: the message is valid UTF-8) when
 * it is not an email address; ERR_NOMEM. out has LEDGER_EMAIL_MAX + 1
 * bytes and holds "" on failure. */
int conn_email_normalize(const char *in, char *out, struct err *e);

/* ---- unsubscribe links (links.c) ---- */

/* The link keys and the [unsubscribe] settings minting and the public
 * listener use; needs no ledger. ERR_CONFIG (naming the key) when
 * [unsubscribe] or a key file is missing, unreadable or too short. */
struct conn_links;
int conn_links_open(const struct config *cfg, struct conn_links **out, struct err *e);
void conn_links_close(struct conn_links *k);

#define CONN_LINK_URL_MAX          1100
#define CONN_LIST_UNSUBSCRIBE_POST "List-Unsubscribe=One-Click"
struct conn_link {
	char url[CONN_LINK_URL_MAX];                  /* {base_url}/u/{token} */
	char list_unsubscribe[CONN_LINK_URL_MAX + 2]; /* the header value: <URL> */
};
/* Mint the link of email (normalized here), for purpose (NULL or "": all
 * email) and campaign (NULL: none). Writes nothing. ERR_INVALID naming
 * the bad input: the email, an unknown purpose, a campaign longer than 64
 * bytes or with control characters. */
int conn_link_mint(const struct conn_links *k, const char *email, const char *purpose,
                   const char *campaign, struct conn_link *out, struct err *e);
/* The purpose and campaign checks of conn_link_mint alone (for many
 * emails with the same purpose and campaign). ERR_INVALID. */
int conn_link_check(const struct conn_links *k, const char *purpose, const char *campaign,
                    struct err *e);

enum conn_link_state {
	CONN_LINK_VALID,
	CONN_LINK_INVALID, /* not a token, changed, or sealed under no configured key */
	CONN_LINK_EXPIRED, /* older than link_lifetime */
};
struct conn_link_view {
	enum conn_link_state state;
	char masked[256]; /* "j***@example.com": what a page may show */
	char purpose[65]; /* "": all email */
	char campaign[65];
	char email[255]; /* normalized: for the opt-out, never shown */
	const char *why; /* for the log when not valid: "malformed", ... */
};
/* Open a token of len bytes. Never fails: out->state says what it is. */
void conn_link_open(const struct conn_links *k, const char *token, size_t len,
                    struct conn_link_view *out);

enum conn_link_via { CONN_LINK_ONE_CLICK, CONN_LINK_FORM };
struct conn_link_result {
	bool already;       /* opted out before: nothing new was recorded */
	uint64_t event_seq; /* the opt-out's history event (or the last one) */
};
/* The opt-out of a valid link (v->state CONN_LINK_VALID): durable on
 * return, an event with origin "link", its campaign and purpose, in the
 * change feed and queued for Salesforce. Requests arriving together are
 * committed together (one fsync for many). A repeat records nothing.
 * purpose, when given, is a configured purpose the person leaves from the
 * page (whatever the link's own scope); NULL: the link's scope (its
 * purpose, or all email).
 * Errors: ERR_INVALID (v not valid, an unknown purpose), ERR_LEDGER,
 * ERR_NOMEM. */
int conn_link_optout(struct conn *c, const struct conn_link_view *v, enum conn_link_via via,
                     const char *purpose, struct conn_link_result *out, struct err *e);

/* ---- the connection check (check.c) ---- */

/* Log in to Salesforce with cfg and describe each configured object: every
 * field optsync reads must be visible to the integration user, every field
 * it writes (a purpose's checkbox too) visible and writable, every
 * configured picklist value active; with purposes mapped to the consent
 * objects, those objects must exist (Data Protection and Privacy on).
 * *out: {"login","objects":{...},"consent_objects"?:{NAME: "available" |
 * "not available"},"problems":[plain-word strings],"ok"}.
 * Returns 0 with the problems in *out; an error (and *out NULL) when the
 * login itself fails (its message says what to check). Needs no ledger.
 * With consent_only, only the consent objects are checked (what
 * `config check --strict` asks of Salesforce when purposes use them). */
int conn_check_salesforce(const struct config *cfg, bool consent_only, cJSON **out, struct err *e);
/* Whether a purpose is mapped to Salesforce's consent objects. */
bool conn_consent_objects_used(const struct config *cfg);

/* ---- sync ---- */

struct conn_sync_opts {
	bool dry_run;  /* read Salesforce, write nothing anywhere, report what would change */
	bool full;     /* read everything, not only since the cursors */
	bool progress; /* a progress line on stderr while pulling (terminals) */
};

/* Take the ledger's sync lock for as long as c is open (optsync run): no
 * other run or sync --once can sync this ledger meanwhile. ERR_LEDGER
 * naming the holder's kind and pid when another has it. */
int conn_own_ledger(struct conn *c, struct err *e);

/* What a cycle did (or, in a dry run, would do), typed. */
struct conn_pull_report {
	bool pulled;   /* the cycle read the object (to the end or to a failure) */
	int64_t since; /* ms: read changes from here (the cursor less sync.overlap); 0: all */
	uint64_t records, pages;
	uint64_t optouts_in;            /* opt-outs taken from Salesforce */
	uint64_t purpose_optouts_in;    /* purposes' opt-outs taken (checkboxes ticked) */
	uint64_t purpose_optins_in;     /* purposes' opt-ins with evidence taken */
	uint64_t purpose_optins_nodate; /* purposes' opt-ins without their date: not taken */
	uint64_t facts_applied;         /* compliance fields taken */
	uint64_t resubscribe_conflicts; /* re-subscribes held back (rule 2, P2) */
	uint64_t invalid_conflicts;     /* values outside the picklists */
	uint64_t concurrent_conflicts;  /* both sides changed the same field */
	uint64_t suppressed_new;        /* new records of opted-out persons, opted out */
	uint64_t unchanged;             /* nothing new, our own writes among them */
	uint64_t skipped_no_email;
	uint64_t pushes_queued;
	uint64_t unlinked;       /* records deleted or merged away in Salesforce, unlinked */
	uint64_t parked;         /* records that could not be applied (rule 8), parked */
	bool skipped;            /* not pulled: the cycle stopped before (see stopped) */
	char error[ERR_MSG_MAX]; /* why the pull failed, "" when it did not */
};
struct conn_push_list; /* a dry run's due pushes; rendered, not read */
/* An opt-in seen in Salesforce without the date that makes it evidence (a
 * ContactPointTypeConsent row without CaptureDate, an opt-in checkbox
 * without its date): the person's status stays none. */
#define CONN_UNDATED_MAX 20
struct conn_undated {
	enum conn_object object;
	char id[19];
	char purpose[33];
	char missing[81]; /* the field without a valid date */
};
struct conn_undated_list {
	size_t n; /* the first CONN_UNDATED_MAX, each once */
	struct conn_undated v[CONN_UNDATED_MAX];
};
struct conn_cycle_report {
	int64_t started_at, finished_at; /* ms */
	bool dry_run, full;
	struct conn_pull_report pull[4]; /* by enum conn_object */
	enum conn_object order[4];       /* the objects in the order pulled */
	size_t norder;
	bool pushed; /* the push step ran */
	struct {
		uint64_t would_push; /* dry run: pushes due now */
		uint64_t collection_calls, succeeded, by_object[3], retrying, parked_now,
		    conflicts_reverted;
	} push;
	struct conn_push_list *would_push; /* dry run: the first 10,000 due pushes */
	struct {
		bool ran, failed;
		uint64_t events, persons, conflicts, event_seq;
		char error[ERR_MSG_MAX];
	} retention;
	/* purposes on consent objects that could not be synced this cycle (the
	 * objects missing, a DataUsePurpose not found): the plain-words reason */
	char consent_error[ERR_MSG_MAX];
	/* opt-ins read without their date: named (counted in pull[]) */
	struct conn_undated_list undated;
	int result;              /* 0, or the cycle's error code */
	char error[ERR_MSG_MAX]; /* its message */
	/* result set: the cycle did the rest of its configured work (the other
	 * pulls, the pushes) and says per part what failed (partial), or it
	 * stopped, for the reason in plain words (stopped; a static string) */
	bool partial;
	const char *stopped;
	bool api_known; /* the cycle talked to Salesforce */
	struct {
		uint64_t requests, token_calls, retries;
		long daily_used, daily_max; /* daily_max 0: no Sforce-Limit-Info seen */
	} api;
};

/* One pull+push cycle. *report (the caller's, conn_cycle_report_free) says
 * what happened, or would have, on failure too (with the error; NULL only
 * when it could not be allocated). A cycle takes the sync lock unless c
 * owns the ledger, and refuses (ERR_LEDGER) when another process holds it.
 * Errors: ERR_REMOTE / ERR_RETRY from Salesforce, ERR_LEDGER, ERR_NOMEM. */
int conn_sync_once(struct conn *c, const struct conn_sync_opts *o,
                   struct conn_cycle_report **report, struct err *e);
void conn_cycle_report_free(struct conn_cycle_report *r);
/* The contract's JSON for r (the caller deletes it). ERR_NOMEM. */
int conn_render_cycle(const struct conn_cycle_report *r, const struct config *cfg, cJSON **out,
                      struct err *e);

/* ---- use cases ---- */

struct conn_optout {
	const char *email;
	int64_t occurred_at; /* 0: now */
	const char *source;  /* source type of the person, NULL: unchanged */
	const char *reason;
	const char *idempotency_key;
	const char *purpose; /* a configured purpose: out of it only (rule P1); NULL: all email */
};
/* Record a local opt-out, durable on return. *result: {"email","opted_out",
 * "already", "event_seq"}. */
int conn_optout(struct conn *c, const struct conn_actor *who, const struct conn_optout *o,
                cJSON **result, struct err *e);

/* The bulk use cases (conn_optout_many, conn_contact_set_many): every row
 * is checked first, then the valid ones are applied in one ledger
 * transaction per batch of up to 2,000. With all_or_none one invalid row
 * applies nothing (ERR_INVALID, res->bad still filled). progress, when
 * set, is called after each batch. */
struct conn_bulk_opts {
	bool all_or_none;
	void (*progress)(size_t done, size_t total, void *arg);
	void *arg;
};
struct conn_bulk_result {
	size_t applied;   /* persons changed */
	size_t unchanged; /* already opted out, or already holding the values */
	size_t invalid;
	cJSON *bad; /* the invalid rows: {"row","email","error"} */
	bool *ok;   /* per row (n of them): applied or unchanged */
};
void conn_bulk_result_free(struct conn_bulk_result *res);

/* Many opt-outs (a suppression list from another tool), of all email or,
 * with purpose, of that one (ERR_INVALID for an unknown purpose, before any
 * row). sources, when
 * given, holds each row's source type (NULL or "": none), checked as
 * conn_optout checks it. An invalid row is reported with row rows[i]
 * (i + 1 when rows is NULL). */
int conn_optout_many(struct conn *c, const struct conn_actor *who, const char *const *emails,
                     const char *const *sources, const size_t *rows, size_t n, const char *reason,
                     const char *purpose, const struct conn_bulk_opts *o,
                     struct conn_bulk_result *res, struct err *e);

struct conn_facts_change {
	const char *authorization; /* type name, NULL: unchanged */
	int64_t consent_date;      /* with "consent" */
	const char *purpose;       /* with "consent" */
	const char *other;         /* with "other" */
	const char *source;        /* source type name, NULL: unchanged */
	const char *source_other;  /* with source "other" */
};
/* Change a person's compliance facts (a missing person is created), the
 * change queued for every Salesforce record. *result: the person's state.
 * ERR_INVALID for a fact that breaks rule 5 (consent without a date or a
 * purpose, other without its text, a date in the future). */
int conn_contact_set(struct conn *c, const struct conn_actor *who, const char *email,
                     const struct conn_facts_change *ch, cJSON **result, struct err *e);

/* Many compliance updates (a CSV file, POST /v1/contacts:batch): each row
 * checked as conn_contact_set does; a row whose values the person holds
 * already is left alone (no event, no push). rows[i].error, when set by the
 * adapter (a field it could not read), makes the row invalid with that
 * message; rows[i].row is the row number reports give. */
struct conn_set_row {
	size_t row; /* what the adapter reports: a file line, an array index */
	const char *email;
	struct conn_facts_change ch;
	const char *error;
};
int conn_contact_set_many(struct conn *c, const struct conn_actor *who,
                          const struct conn_set_row *rows, size_t n, const struct conn_bulk_opts *o,
                          struct conn_bulk_result *res, struct err *e);

struct conn_evidence {
	int64_t consent_date;
	const char *purpose;
	const char *evidence_ref;
	const char *evidence_sha256; /* hex, optional */
};
/* Admin only (who->origin must be CONN_ORIGIN_ADMIN, checked before:
 * ERR_REFUSED otherwise). Rule 2: ERR_EVIDENCE when the evidence is missing,
 * predates the opt-out or lies in the future; ERR_CONFLICT when the person
 * is not opted out; ERR_NOTFOUND when unknown. *result: the person's state.
 * conn_contact_erase (admin too): the personal data removed, the hashed
 * suppression kept. */
int conn_resubscribe(struct conn *c, const struct conn_actor *who, const char *email,
                     const struct conn_evidence *ev, cJSON **result, struct err *e);
int conn_contact_erase(struct conn *c, const struct conn_actor *who, const char *email,
                       cJSON **result, struct err *e);

/* A person: the state (show), the events oldest first (history), or both
 * with the records in full (export, JSON or CSV: one table, a section
 * column). ERR_INVALID for an input that is not an email, ERR_NOTFOUND
 * when the person is unknown; ERR_LIMIT when the CSV would exceed 64 MiB. */
int conn_contact_show(struct conn *c, const char *email, cJSON **out, struct err *e);
/* The access trail: record that who read email's data (what: "history",
 * "export"; via: the route or command), as an access event in the person's
 * history, before the data is shown. Nothing for an unknown person. */
int conn_access_record(struct conn *c, const struct conn_actor *who, const char *email,
                       const char *what, const char *via, struct err *e);
/* Access events after seq after (at most limit, 0: 1,000), oldest first:
 * {"access": [events with their email], "next_after", "more"}. */
int conn_access_list(struct conn *c, uint64_t after, size_t limit, cJSON **out, struct err *e);
int conn_contact_history(struct conn *c, const char *email, cJSON **out, struct err *e);
/* Right of access: state, Salesforce records and full history. */
int conn_contact_export(struct conn *c, const char *email, cJSON **out, struct err *e);
/* The same as CSV with a CRM export's columns; *out is malloc'ed. */
int conn_contact_export_csv(struct conn *c, const char *email, char **out, struct err *e);

enum conn_conflict_filter { CONN_CONFLICTS_OPEN, CONN_CONFLICTS_RESOLVED, CONN_CONFLICTS_ALL };
/* What both adapters take: a conflict id (s[0..len): digits only, from 1,
 * no sign, space or leading zero, at most 2^64-1) and a filter ("open",
 * "resolved", "all"): ERR_USAGE naming the input; a resolution
 * ("keep_optout", "resubscribe", "take_salesforce", "take_local"):
 * ERR_INVALID. */
int conn_conflict_id_parse(const char *s, size_t len, uint64_t *id, struct err *e);
/* A seq to list after (GET /v1/changes?after=, GET /v1/access?after=,
 * access list --after): a whole number from 0 to 2^64-1, digits only (no
 * sign, space or leading zero); ERR_INVALID naming "after" otherwise. */
int conn_seq_parse(const char *s, uint64_t *seq, struct err *e);
int conn_conflict_filter_parse(const char *s, enum conn_conflict_filter *f, struct err *e);
/* {"conflicts": [...]} (each with the person's email or "erased"); one
 * conflict with both sides' values and the person's state (ERR_NOTFOUND). */
int conn_conflicts_list(struct conn *c, enum conn_conflict_filter f, cJSON **out, struct err *e);
int conn_conflict_show(struct conn *c, uint64_t id, cJSON **out, struct err *e);

enum conn_resolution { CONN_KEEP_OPTOUT, CONN_RESUBSCRIBE, CONN_TAKE_SALESFORCE, CONN_TAKE_LOCAL };
int conn_resolution_parse(const char *s, enum conn_resolution *how, struct err *e);
/* Admin only. ERR_NOTFOUND for no such conflict, ERR_CONFLICT when it is
 * closed already, ERR_EVIDENCE when a re-subscribe lacks evidence (or
 * taking Salesforce's opt-in would be one), ERR_INVALID when the action does
 * not fit the conflict's kind. *result: the conflict, closed. */
int conn_conflict_resolve(struct conn *c, const struct conn_actor *who, uint64_t id,
                          enum conn_resolution how, const struct conn_evidence *ev, cJSON **result,
                          struct err *e);

/* Status: cursors, the last cycle, health, pushes, conflicts, API usage,
 * the ledger's size and retention, typed; what `optsync status`, GET
 * /v1/status (through conn_render_status) and /metrics show. */
#define CONN_PARKED_SHOWN 100 /* parked pushes listed one by one */
struct conn_parked_push {
	enum conn_object object;
	char id[19];     /* the Salesforce record */
	char email[255]; /* "erased" once the person is */
	char error[301]; /* Salesforce's answer */
	uint32_t attempts;
	int64_t next_try; /* ms */
};
/* Why a pulled record could not be applied (rule 8): it is parked, named
 * in status and /metrics, and tried again when it changes in Salesforce
 * (its SystemModstamp moves) or on a --full pull. */
enum conn_park_reason {
	CONN_PARK_NUL = 1,          /* a value holds a NUL (\u0000) */
	CONN_PARK_INVALID_UTF8,     /* a value is not UTF-8 (or an unpaired surrogate) */
	CONN_PARK_TOO_LONG,         /* a value optsync keeps exactly is longer than it keeps */
	CONN_PARK_INVALID_EMAIL,    /* Email holds no address optsync can take */
	CONN_PARK_UNKNOWN_PICKLIST, /* a picklist value optsync does not know */
	CONN_PARK_LIMIT,            /* a limit of optsync's */
	CONN_PARK_INVALID,          /* any other value the rules refuse */
	CONN_PARK_REASONS           /* the number of reasons, plus one */
};
/* "nul", "invalid_utf8", "too_long", "invalid_email", "unknown_picklist",
 * "limit", "invalid"; "other" for a number that is none of them. */
const char *conn_park_reason_name(int reason);

#define CONN_PARKED_RECORDS_SHOWN 100 /* parked records listed one by one */
struct conn_parked_record {
	enum conn_object object;
	char id[19];
	enum conn_park_reason reason;
	char error[301];   /* what is wrong, naming the field */
	int64_t modstamp;  /* the SystemModstamp of the version refused (ms) */
	int64_t parked_at; /* when it was last refused (ms) */
};

struct conn_status {
	int64_t now; /* ms, when read: lags are measured from it */
	struct conn_status_cursor {
		enum conn_object object;
		bool found;           /* pulled at least once */
		int64_t modstamp;     /* the greatest SystemModstamp read (ms) */
		char last_id[19];     /* of that record */
		uint64_t pulled;      /* records applied since the cursor was made */
		int64_t updated_at;   /* ms */
		int64_t caught_up_at; /* start of the last pull read to the end (every
		                         change made before it was read), 0: none */
	} cursor[3];
	size_t ncursors; /* the configured objects, in their order */
	struct {
		int64_t last_success_at, last_error_at; /* ms, 0: none */
		uint64_t failures_in_a_row;
		bool healthy; /* false once cycles failed for longer than sync.unready_after */
		char last_error[ERR_MSG_MAX];
	} health;
	char *last_cycle; /* the last cycle's report as saved (JSON), NULL: none */
	uint64_t pushes_queued, pushes_parked;
	struct conn_parked_push *parked; /* the first CONN_PARKED_SHOWN of them */
	size_t nparked;
	/* pulled records that could not be applied (rule 8), in all and by
	 * object and reason; with details the first CONN_PARKED_RECORDS_SHOWN */
	uint64_t records_parked;
	uint64_t records_parked_by[4][CONN_PARK_REASONS]; /* [enum conn_object][reason] */
	struct conn_parked_record *parked_records;
	size_t nparked_records;
	uint64_t open_conflicts;
	long api_used, api_max; /* the last Sforce-Limit-Info; -1 when not seen */
	struct {
		uint64_t persons, records, events, changes, used_bytes, map_size;
		uint32_t schema_version;
	} ledger;
	struct {
		bool configured;
		int64_t last_run_at; /* ms, 0: never */
		uint64_t purged[3];  /* totals: events, persons, resolved conflicts */
	} retention;
};
/* One read of the ledger. *out is the caller's (conn_status_free); NULL on
 * failure. Without details (what /metrics needs) last_cycle stays NULL and
 * no parked push is listed, only counted. Errors: ERR_LEDGER, ERR_NOMEM. */
int conn_status(struct conn *c, bool details, struct conn_status **out, struct err *e);
void conn_status_free(struct conn_status *s);
/* The contract's JSON for s (the caller deletes it). ERR_NOMEM. */
int conn_render_status(const struct conn_status *s, cJSON **out, struct err *e);
/* 0 when the ledger answers a read (readiness). */
int conn_ping(struct conn *c, struct err *e);

/* Retention ([retention]): purge what it allows, never an opt-out.
 * *report: {"configured","dry_run","purged"|"would_purge":{events,persons,
 * resolved_conflicts},"event_seq"?}. Nothing configured: a report that
 * says so, and nothing done. */
int conn_retention_run(struct conn *c, const struct conn_actor *who, bool dry_run, cJSON **report,
                       struct err *e);
/* ERR_LEDGER when the history chain is broken, or when expect ("SEQ:HASH",
 * a head recorded from an earlier check) is not in the chain with that
 * hash; ERR_USAGE when expect is malformed. *out describes the check, with
 * the head (seq, hash) to record; it is set on ERR_LEDGER too. */
int conn_audit_verify(struct conn *c, const char *expect, cJSON **out, struct err *e);

/* Whether each email is suppressed (known and opted out): one read
 * transaction for all. out[i] for emails[i]. With valid NULL, an input that
 * is not an email fails the whole check (ERR_INVALID naming it); with
 * valid, valid[i] says whether emails[i] is one, and the others are
 * answered (out[i] false for an invalid one). With purpose (rule P3), an
 * email is also suppressed when opted out of that purpose or, for a
 * consent purpose, without an opt-in to it; ERR_INVALID for a purpose the
 * configuration does not name. */
int conn_suppressed(struct conn *c, const char *const *emails, size_t n, const char *purpose,
                    bool *out, bool *valid, struct err *e);

/* ---- purposes (purposes.c) ---- */

struct conn_consent {
	const char *email, *purpose;
	int64_t consent_date;        /* ms */
	const char *evidence_ref;    /* where the consent is kept */
	const char *evidence_sha256; /* of the evidence file, or NULL */
};
/* An opt-in to a configured purpose, durable on return (rule P2): a first
 * opt-in needs the consent date and evidence reference (ERR_EVIDENCE); one
 * after an opt-out of the purpose, or while the person is opted out of all
 * email, needs an admin (ERR_REFUSED) and a consent date after that
 * opt-out (ERR_EVIDENCE). ERR_INVALID: an unknown purpose, a consent date
 * in the future. *result: {"email","purpose","status","already",
 * "event_seq"}. */
int conn_consent(struct conn *c, const struct conn_actor *who, const struct conn_consent *in,
                 cJSON **result, struct err *e);

/* ---- the suppression list (suppressions.c) ---- */

/* Called for each opted-out person with an address: the normalized email
 * and when the opt-out took effect (ms). Nonzero stops the walk; a
 * negative ERR_* is returned as it is. The strings live during the call. */
typedef int (*conn_suppression_fn)(const char *email, int64_t opted_out_at, void *ctx);
struct conn_suppressions_stats {
	uint64_t listed; /* fn was called for these */
	uint64_t erased; /* opted out and erased: suppressed by their key, no address */
};
/* Every opted-out email, in one read transaction (a consistent list while
 * others write). Errors: fn's code, ERR_LEDGER. */
int conn_suppressions_each(struct conn *c, conn_suppression_fn fn, void *ctx,
                           struct conn_suppressions_stats *st, struct err *e);

/* ---- parked pushes (pushes.c) ---- */

/* Put parked pushes (writes Salesforce refused for good: a validation rule,
 * a deleted record) back in the queue, to be tried on the next cycle: the
 * one of record_id (a Contact or Lead id), or every one when record_id is
 * NULL. *released: how many. ERR_INVALID when record_id is not a record id,
 * ERR_NOTFOUND when it has no parked push. Parked pushes are also tried
 * again when their record changes in Salesforce, and by themselves after
 * 1 h, doubling up to 24 h. */
int conn_pushes_retry(struct conn *c, const char *record_id, size_t *released, struct err *e);

/* ---- backups (backup.c) ---- */

struct conn_backup_result {
	char file[4096];
	uint64_t bytes;           /* size of the backup file */
	uint32_t schema_version;  /* of the ledger in it */
	bool compacted;           /* false: LMDB could not compact, a plain copy */
	int64_t taken_at;         /* when the backup started (ms) */
	int64_t took_ms;          /* how long it took */
	unsigned removed;         /* scheduled: older backups removed (backup_keep) */
	bool created_dir;         /* scheduled: state.backup_dir was made for it */
	uint64_t events_verified; /* restore: history events checked */
};

/* A consistent, compacted copy of the ledger in file (0600, fsynced,
 * written beside it and renamed), while others go on reading and writing.
 * Errors: ERR_IO naming the file; ERR_LEDGER, also when the disk that holds
 * file is full (the message names the file and where that disk is
 * mounted); ERR_USAGE for a name longer than out->file. On failure *out is
 * zero and nothing is left at file. */
int conn_backup(struct conn *c, const char *file, struct conn_backup_result *out, struct err *e);
/* run's own backups: a new file in state.backup_dir named by its time, then
 * all but the newest state.backup_keep of them removed. A backup_dir that
 * is not there is made (0700), its last folder only: ERR_IO when the
 * folder above it is missing too, or it cannot be made. ERR_CONFIG when
 * backup_dir is not set; otherwise as conn_backup. */
int conn_backup_scheduled(struct conn *c, struct conn_backup_result *out, struct err *e);
/* When the newest scheduled backup in state.backup_dir was written (ms,
 * 0 when there is none, or no backup_dir yet). ERR_IO when the folder
 * cannot be read. */
int conn_backup_last(const struct config *cfg, int64_t *at, struct err *e);
/* Fill an empty (or missing) state.path from a backup: checked whole and
 * undamaged, opened and migrated, its history chain verified, then put in
 * place. ERR_LEDGER names the reason it refuses: state.path holds a ledger
 * or anything else, or the file is cut short, damaged, of a newer schema,
 * or does not verify, or the disk that holds state.path is full (named by
 * where it is mounted); state.path is then left as it was. */
int conn_restore(const struct config *cfg, const char *file, struct conn_backup_result *out,
                 struct err *e);

/* ---- the change feed (local API) ---- */

/* The webhook's durable position in the feed (0 when nothing was
 * delivered yet), and its advance. */
int conn_webhook_position(struct conn *c, uint64_t *seq, struct err *e);
int conn_webhook_advance(struct conn *c, uint64_t seq, struct err *e);
int conn_changes(struct conn *c, uint64_t after, size_t limit, cJSON **out, struct err *e);

#endif
