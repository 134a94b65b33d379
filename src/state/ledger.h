/* The ledger: everything optsync knows, in an embedded LMDB environment.
 *
 * It knows nothing of HTTP or Salesforce's wire format; src/connector/
 * calls it. Handles (struct ledger, struct ledger_txn) are opaque; the
 * records exchanged with it are plain structs defined here.
 *
 * Transactions. All access happens inside ledger_read() or ledger_write(),
 * which run a callback in a read or write transaction. Many processes (the
 * daemon, a CLI) and threads may use one ledger at once: readers never
 * block the writer, writers are serialized. A write callback may be run
 * more than once: when the memory map is full the ledger aborts the
 * transaction, grows the map (up to max_map_size) and runs the callback
 * again, so a callback must not change its context in a way that a re-run
 * would see. Nothing is visible to others, and nothing is durable, until
 * ledger_write() returns 0; then all of it is (one LMDB commit, fsynced).
 *
 * Memory. Values returned by *_get functions are copies owned by the
 * caller; pointers into LMDB never leave this module.
 *
 * Errors: 0 or a negative ERR_* code (util/err.h); ERR_NOTFOUND for a
 * missing entry; ERR_LEDGER for a missing, locked, newer, corrupt or full
 * ledger, with a message that says which and names the path. */
#ifndef OPTSYNC_STATE_LEDGER_H
#define OPTSYNC_STATE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* 2: per-purpose statuses (the purposes table); 3: events hashed from their
 * stored bytes (hash version 2, event field 20); 4: a person's Salesforce
 * records in an index of their own (person_records) instead of inside the
 * person, and at most one open conflict per record, field and purpose
 * (open_conflicts); 5: the outbox's due index, the open conflicts by
 * person and the counts of both in meta; 6: persons keyed by the email normalization of
 * docs/sync-rules.md (rekey.c); 7: steps 3->4 and 4->5 run again for a
 * ledger that an optsync with empty ones wrote at schema 6 */
#define LEDGER_SCHEMA_VERSION 7

#define LEDGER_KEY_LEN   32   /* person key: HMAC-SHA256 */
#define LEDGER_EMAIL_MAX 254  /* bytes, RFC 5321 path limit */
#define LEDGER_ID_MAX    18   /* Salesforce record id */
#define LEDGER_TEXT_MAX  1000 /* free texts: purpose, other, reason, evidence */
#define LEDGER_ACTOR_MAX 64   /* admin name or "salesforce", "local" */
#define LEDGER_TAG_MAX   64   /* a campaign id, a purpose's name */
#define LEDGER_ERROR_MAX 300  /* last push error */
#define LEDGER_NAME_MAX  120  /* names, company, title, phone from Salesforce */
#define LEDGER_IDEM_MAX  200  /* idempotency key */

/* ---- domain enums; the numbers are stored, never renumber ---- */

enum ledger_auth {
	LEDGER_AUTH_NONE = 0,
	LEDGER_AUTH_CONSENT = 1,
	LEDGER_AUTH_LEGITIMATE_INTEREST = 2,
	LEDGER_AUTH_CONTRACT = 3,
	LEDGER_AUTH_LEGAL_OBLIGATION = 4,
	LEDGER_AUTH_VITAL_INTERESTS = 5,
	LEDGER_AUTH_PUBLIC_INTEREST = 6,
	LEDGER_AUTH_OTHER = 7,
};

enum ledger_source {
	LEDGER_SOURCE_NONE = 0,
	LEDGER_SOURCE_CRM_SYNC = 1,
	LEDGER_SOURCE_IMPORT = 2,
	LEDGER_SOURCE_MANUAL_UPLOAD = 3,
	LEDGER_SOURCE_BROWSER_EXTENSION = 4,
	LEDGER_SOURCE_OTHER = 5,
};

enum ledger_object {
	LEDGER_OBJ_NONE = 0,
	LEDGER_OBJ_CONTACT = 1,
	LEDGER_OBJ_LEAD = 2,
	LEDGER_OBJ_CONSENT = 3, /* ContactPointTypeConsent: a person's consent row for a purpose */
	LEDGER_OBJ_INDIVIDUAL = 4, /* Individual: the party of a person's consent rows */
	/* a push only: an Individual to create for a person who has none, linked
	 * to the Contact or Lead whose id the push carries (create_individuals) */
	LEDGER_OBJ_NEW_INDIVIDUAL = 5,
};

enum ledger_origin {
	LEDGER_ORIGIN_SALESFORCE = 1,
	LEDGER_ORIGIN_LOCAL = 2,
	LEDGER_ORIGIN_ADMIN = 3,
	LEDGER_ORIGIN_LINK = 4 /* an unsubscribe link */
};

enum ledger_event_kind {
	LEDGER_EV_OPTOUT = 1,
	LEDGER_EV_OPTIN = 2,
	LEDGER_EV_AUTHORIZATION = 3,
	LEDGER_EV_SOURCE = 4,
	LEDGER_EV_CONFLICT = 5,
	LEDGER_EV_ERASURE = 6,
	LEDGER_EV_REFUSED = 7,   /* an admin action refused (bad credentials or evidence) */
	LEDGER_EV_RECORD = 8,    /* a Salesforce record linked to the person */
	LEDGER_EV_RETENTION = 9, /* a retention run; count: events it purged */
	LEDGER_EV_UNLINKED = 10, /* a Salesforce record deleted or merged away: unlinked */
	LEDGER_EV_ACCESS = 11,   /* a person's data read: history or export (the access trail) */
	LEDGER_EV_MERGE = 12,    /* two persons found to be one address (schema 6): merged_prev */
};

/* Names as the README and the API spell them ("legitimate_interest", "crm_sync", "Lead",
 * "salesforce", "optout"); NULL for an unknown number. parse returns -1 for
 * an unknown name. */
const char *ledger_auth_name(int v);
int ledger_auth_parse(const char *s);
const char *ledger_source_name(int v);
int ledger_source_parse(const char *s);
const char *ledger_object_name(int v);
int ledger_object_parse(const char *s);
const char *ledger_origin_name(int v);
const char *ledger_event_kind_name(int v);

/* ---- the compliance facts, shared by persons, records, events, pushes ---- */

#define LEDGER_F_OPTED_OUT    (1u << 0)
#define LEDGER_F_AUTH_TYPE    (1u << 1)
#define LEDGER_F_AUTH_OTHER   (1u << 2)
#define LEDGER_F_CONSENT_DATE (1u << 3)
#define LEDGER_F_PURPOSE      (1u << 4)
#define LEDGER_F_SOURCE_TYPE  (1u << 5)
#define LEDGER_F_SOURCE_OTHER (1u << 6)
#define LEDGER_F_ALL          0x7fu

struct ledger_facts {
	uint32_t mask; /* LEDGER_F_* of the fields that are set */
	bool opted_out;
	uint8_t auth_type;    /* enum ledger_auth */
	uint8_t source_type;  /* enum ledger_source */
	int64_t consent_date; /* ms since the epoch */
	char purpose[LEDGER_TEXT_MAX + 1];
	char auth_other[LEDGER_TEXT_MAX + 1];
	char source_other[LEDGER_TEXT_MAX + 1];
};

/* Set the mask to 0 and the texts to "" without clearing 3 KB. */
void ledger_facts_init(struct ledger_facts *f);

struct ledger_recref {
	uint8_t object; /* enum ledger_object */
	char id[LEDGER_ID_MAX + 1];
};

#define LEDGER_PERSON_ERASED 1u

struct ledger_person {
	uint8_t key[LEDGER_KEY_LEN];
	char email[LEDGER_EMAIL_MAX + 1]; /* normalized; "" once erased */
	struct ledger_facts facts;        /* the current state */
	int64_t opted_out_at;             /* when the current opt-out took effect */
	int64_t optout_changed_at;        /* last change of opted_out, either way */
	int64_t auth_changed_at, source_changed_at;
	int64_t created_at, updated_at;
	uint64_t last_event; /* the person's newest history event (0: none) */
	uint32_t flags;      /* LEDGER_PERSON_* */
	/* the key of its Contacts and Leads in person_records (0: it has never
	 * had one), numbered in the order persons got their first record:
	 * ledger_person_record_add assigns it */
	uint64_t records_no;
	char individual_id[LEDGER_ID_MAX + 1]; /* the Individual of its consent rows, "" if none */
};

#define LEDGER_RECORD_DELETED        1u
#define LEDGER_RECORD_CONVERTED      2u
#define LEDGER_RECORD_INVALID_AUTH   4u /* an invalid authorization was raised as a conflict */
#define LEDGER_RECORD_INVALID_SOURCE 8u /* likewise for the source */
/* The survivor of a merge, not read yet: its person field names the
 * person of the record merged into it, whose opt-outs it carries to its own
 * person when it is first read (it is linked to no person until then). */
#define LEDGER_RECORD_MERGE_PENDING 16u

#define LEDGER_PURPOSE_NAME_MAX 32 /* [a-z0-9_]{1,32} */

/* The checkboxes of field-mapped purposes (salesforce = { field = ... }) on
 * one Salesforce record, by purpose name; out = the box is ticked. */
#define LEDGER_PFLAGS_MAX 16
struct ledger_pflag {
	char name[LEDGER_PURPOSE_NAME_MAX + 1];
	bool out;
};
struct ledger_pflags {
	uint8_t n;
	struct ledger_pflag v[LEDGER_PFLAGS_MAX];
};
/* 1: ticked, 0: not, -1: not known. */
int ledger_pflags_get(const struct ledger_pflags *f, const char *name);
/* Set (or add) name; -1 when the set is full or name too long. */
int ledger_pflags_set(struct ledger_pflags *f, const char *name, bool out);

struct ledger_record {
	uint8_t object;
	char id[LEDGER_ID_MAX + 1];
	uint8_t person[LEDGER_KEY_LEN];
	int64_t modstamp;                   /* SystemModstamp last seen */
	struct ledger_facts seen;           /* values last read from Salesforce */
	struct ledger_facts written;        /* values optsync last wrote and Salesforce accepted */
	struct ledger_pflags seen_purposes; /* purpose checkboxes last read (or written) */
	int64_t written_at;
	uint32_t flags; /* LEDGER_RECORD_* */
	/* personal data from Salesforce, kept for the right of access */
	char first_name[LEDGER_NAME_MAX + 1], last_name[LEDGER_NAME_MAX + 1];
	char company[LEDGER_NAME_MAX + 1], title[LEDGER_NAME_MAX + 1], phone[LEDGER_NAME_MAX + 1];
	int64_t sf_created, sf_modified;
};

/* A history event. The public part (everything but the personal fields
 * named below) is kept forever; the personal part (facts.purpose,
 * facts.auth_other, facts.source_other, reason, evidence_ref,
 * evidence_sha256) is removed by erasure. */
struct ledger_event {
	uint64_t seq; /* assigned by ledger_event_append */
	int64_t at;
	uint8_t kind;   /* enum ledger_event_kind */
	uint8_t origin; /* enum ledger_origin */
	uint8_t person[LEDGER_KEY_LEN];
	uint64_t person_prev; /* the person's previous event: a per-person list */
	char actor[LEDGER_ACTOR_MAX + 1];
	struct ledger_recref record; /* the Salesforce record involved, if any */
	uint64_t conflict_id;
	struct ledger_facts facts; /* values the event set (mask says which) */
	char reason[LEDGER_TEXT_MAX + 1];
	char evidence_ref[LEDGER_TEXT_MAX + 1];
	char evidence_sha256[64 + 1];
	bool erased; /* the personal part was removed */
	uint8_t prev_hash[32];
	char campaign[LEDGER_TAG_MAX + 1];     /* the email campaign of a link's opt-out */
	char purpose_name[LEDGER_TAG_MAX + 1]; /* the purpose it is about; "": all email */
	char access_what[LEDGER_TAG_MAX + 1];  /* LEDGER_EV_ACCESS: "history", "export" */
	char access_via[LEDGER_TAG_MAX + 1];   /* and through which route or command */
	uint64_t count;                        /* LEDGER_EV_RETENTION: the events it purged */
	bool purged;                           /* only a stub is left (seq, prev_hash and hash) */
	uint64_t purged_by;                    /* the stub's retention event */
	/* LEDGER_EV_MERGE: the newest event of the person merged in, whose
	 * list (person_prev from there) is the merged person's too */
	uint64_t merged_prev;
};

void ledger_event_init(struct ledger_event *ev);

/* An entry of the application's change feed. It holds no personal data:
 * the email is joined from the person when the feed is read. */
struct ledger_change {
	uint64_t seq;
	uint64_t event_seq;
	int64_t at;
	uint8_t kind, origin;
	uint8_t person[LEDGER_KEY_LEN];
	bool opted_out;
	uint8_t auth_type, source_type;
	int64_t consent_date;
	char purpose_name[LEDGER_TAG_MAX + 1]; /* a purpose's change: its name */
	uint8_t purpose_status;                /* and its new status */
};

enum ledger_conflict_kind {
	LEDGER_CONFLICT_RESUBSCRIBE = 1,   /* opted in in Salesforce without evidence */
	LEDGER_CONFLICT_INVALID_VALUE = 2, /* a value Salesforce holds is not valid */
	LEDGER_CONFLICT_CONCURRENT = 3,    /* both sides changed a field; newer won */
};
enum ledger_conflict_status { LEDGER_CONFLICT_OPEN = 1, LEDGER_CONFLICT_RESOLVED = 2 };
const char *ledger_conflict_kind_name(int v);

struct ledger_conflict {
	uint64_t id; /* assigned by ledger_conflict_add */
	uint8_t person[LEDGER_KEY_LEN];
	struct ledger_recref record;
	uint32_t field; /* LEDGER_F_* */
	uint8_t kind, status;
	bool auto_resolved;
	char local_value[LEDGER_TEXT_MAX + 1]; /* as text; personal, scrubbed by erasure */
	char sf_value[LEDGER_TEXT_MAX + 1];
	int64_t detected_at, resolved_at;
	char resolution[64];
	char resolved_by[LEDGER_ACTOR_MAX + 1];
	char purpose_name[LEDGER_PURPOSE_NAME_MAX +
	                  1]; /* about a purpose's opt-out; "": all email */
};

/* A queued write to one Salesforce record; several changes to one record
 * coalesce into one entry (version counts them). */
struct ledger_push {
	struct ledger_recref record;
	uint8_t person[LEDGER_KEY_LEN];
	struct ledger_facts want;           /* mask: the fields to write */
	struct ledger_pflags want_purposes; /* purpose checkboxes to write */
	uint64_t version;
	uint32_t attempts;
	int64_t enqueued_at, next_try;
	bool parked; /* failed permanently: tried again when its record changes, on
	              * `pushes retry`, or after its backoff (next_try) */
	char last_error[LEDGER_ERROR_MAX + 1];
};

struct ledger_cursor {
	int64_t modstamp; /* greatest SystemModstamp applied */
	char last_id[LEDGER_ID_MAX + 1];
	int64_t updated_at;
	uint64_t pulled;      /* records applied since the cursor was created */
	bool full_done;       /* a first full read completed */
	int64_t caught_up_at; /* start of the last pull that read to the end: every
	                         change made before it has been read */
};

/* ---- opening ---- */

struct ledger;
struct ledger_txn;

struct ledger_options {
	const char *path;         /* directory; created 0700 when create is set */
	uint64_t map_size;        /* initial map size */
	uint64_t max_map_size;    /* growth limit */
	bool create;              /* create a missing ledger (else ERR_LEDGER) */
	bool no_migration_backup; /* an older schema is migrated without first
	                             taking a backup (a restore: the file is one) */
};

/* Open (or create) the ledger. A ledger of an older schema is migrated in
 * the opening transaction, after a backup of it is taken beside it, as
 * PATH.schemaN-YYYYmmddTHHMMSSZ.backup (unless opt->no_migration_backup);
 * ledger_migration_backup() names it. */
int ledger_open(struct ledger **out, const struct ledger_options *opt, struct err *e);
/* The backup taken before this open migrated the ledger, or NULL. */
const char *ledger_migration_backup(const struct ledger *l);
void ledger_close(struct ledger *l); /* NULL is fine */

/* The person key of a normalized email: HMAC-SHA256(ledger key, email). */
void ledger_person_key(const struct ledger *l, const char *email, size_t len,
                       uint8_t out[LEDGER_KEY_LEN]);

typedef int (*ledger_fn)(struct ledger_txn *t, void *ctx, struct err *e);
int ledger_read(struct ledger *l, ledger_fn fn, void *ctx, struct err *e);
int ledger_write(struct ledger *l, ledger_fn fn, void *ctx, struct err *e);

/* Serialize sync cycles across processes: `optsync run` holds it for its
 * whole life, a `sync --once` for its cycle. who ("optsync run") is written
 * with the pid into sync.lock for the refusal others get: ERR_LEDGER naming
 * the holder and its pid. Held already by this handle: 0. */
int ledger_sync_lock(struct ledger *l, const char *who, struct err *e);
void ledger_sync_unlock(struct ledger *l);

/* ---- persons and records ---- */

int ledger_person_get(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN],
                      struct ledger_person *out, struct err *e);
int ledger_person_put(struct ledger_txn *t, const struct ledger_person *p, struct err *e);
/* Visit every person in key order; fn returns nonzero to stop (passed on). */
int ledger_person_each(struct ledger_txn *t, int (*fn)(const struct ledger_person *, void *),
                       void *ctx, struct err *e);

int ledger_record_get(struct ledger_txn *t, int object, const char *id, struct ledger_record *out,
                      struct err *e);
int ledger_record_put(struct ledger_txn *t, const struct ledger_record *r, struct err *e);
/* Forget a record (deleted in Salesforce; the history keeps its id).
 * ERR_NOTFOUND when absent. */
int ledger_record_delete(struct ledger_txn *t, int object, const char *id, struct err *e);

/* A person's Salesforce records (schema 4): the Contacts and Leads of the
 * person's email, as many as Salesforce holds. They are an index the
 * ledger keeps apart from the person (table person_records), keyed by the
 * person's records_no, the object and the id: linking a record costs the
 * same for a person of one record as for a person of 100,000, the person's
 * own value stays small, and a first pull, which numbers its new persons
 * in turn, appends to the index instead of writing all over it. Each
 * record (ledger_record_get) names its person too; the caller keeps the
 * two in step, in one transaction. */

/* Link ref (a Contact or a Lead) to p; linking it again is 0. A person's
 * first record gives it its records_no: then p is changed, and the caller
 * stores it (ledger_person_put) before the transaction ends. */
int ledger_person_record_add(struct ledger_txn *t, struct ledger_person *p,
                             const struct ledger_recref *ref, struct err *e);
/* Unlink it; ERR_NOTFOUND when it was not linked to p. */
int ledger_person_record_remove(struct ledger_txn *t, const struct ledger_person *p,
                                const struct ledger_recref *ref, struct err *e);
/* p's records in (object, id) order: Contacts first, then Leads. fn's
 * nonzero return stops the walk and is returned. fn may write to any other
 * table, but must not link or unlink records of p. */
int ledger_person_records_each(struct ledger_txn *t, const struct ledger_person *p,
                               int (*fn)(const struct ledger_recref *, void *), void *ctx,
                               struct err *e);
/* *first: p's first record in that order; ERR_NOTFOUND when it has none. */
int ledger_person_record_first(struct ledger_txn *t, const struct ledger_person *p,
                               struct ledger_recref *first, struct err *e);
/* *n: how many records p has, counted up to max (0: no limit). */
int ledger_person_records_count(struct ledger_txn *t, const struct ledger_person *p, uint64_t max,
                                uint64_t *n, struct err *e);

/* Erasure: remove the person's personal data (clear email, free texts,
 * names from Salesforce, the personal part of every history event and the
 * values of its conflicts) and keep the key, the opt-out, the facts'
 * enums and the history chain. */
int ledger_person_erase(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], struct err *e);
/* Remove a person record (retention of stale persons; never an opt-out). */
int ledger_person_delete(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], struct err *e);

/* ---- history ---- */

/* Append ev about person p and store p: assigns ev->seq, ev->prev_hash,
 * ev->person and ev->person_prev, sets p->last_event, then puts p. Events
 * about a person and the person's new state are thus written together.
 * p may be NULL for an event about no person. */
int ledger_event_append(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                        struct err *e);
/* The same without storing p: the caller stores it (ledger_person_put)
 * before its transaction ends. For a record that causes several events,
 * one store of the person instead of one per event. */
int ledger_event_append_held(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                             struct err *e);
int ledger_event_get(struct ledger_txn *t, uint64_t seq, struct ledger_event *out, struct err *e);
/* A person's events in order; fn returns nonzero to stop. */
int ledger_event_each_of(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                         int (*fn)(const struct ledger_event *, void *), void *ctx, struct err *e);

struct ledger_verify_report {
	uint64_t events;    /* events checked: the head's seq when the chain holds */
	uint64_t purged;    /* of those, stubs left by retention runs */
	uint64_t first_bad; /* seq of the first event that fails, 0 if none */
	char why[200];
	uint8_t head_hash[32]; /* H(events): record it elsewhere to detect a rewrite */
	bool at_found;         /* ledger_verify_at: event `at` is in the chain */
	uint8_t at_hash[32];   /* ... and its hash H(at) */
};
/* Recompute the chain from the first event (each event by its hash
 * version: docs/ledger-format.md); ERR_LEDGER "history chain broken at
 * event N" (with report->first_bad and why) when any event was altered,
 * removed or reordered. A stub left by retention keeps its link and hash,
 * so the events around it are still checked, and the stubs that name a
 * retention event must be exactly as many as that event (itself in the
 * chain) says it purged. No verdict, report->first_bad 0: ERR_NOMEM when
 * memory ran out, ERR_LEDGER when LMDB failed or an event was written by a
 * newer optsync (a hash version this one does not know). */
int ledger_verify(struct ledger *l, struct ledger_verify_report *rep, struct err *e);
/* The same, also giving H(at) of event at (rep->at_found, rep->at_hash):
 * a head recorded elsewhere must still be in the chain with its hash. */
int ledger_verify_at(struct ledger *l, uint64_t at, struct ledger_verify_report *rep,
                     struct err *e);

/* The B-trees themselves (walk.c): every page of every table read from the
 * file with each bound checked before it is followed (page numbers, kinds,
 * node offsets, key order within the bounds of the branch above, depths,
 * overflow lengths, each page used once, the counts each table's header
 * states), and every stored value decoded as its table's entity. */
struct ledger_tree_report {
	uint64_t pages;        /* branch, leaf and overflow pages walked */
	uint64_t entries;      /* records in them */
	uint64_t free_pages;   /* pages on LMDB's free list */
	uint64_t leaked_pages; /* neither: lost space, not lost data */
	unsigned tables;
	char damage[256]; /* "tree T, page N: what", when damaged */
};
/* Check the ledger's trees as of a read transaction. ERR_LEDGER, the
 * damage in the message and in rep->damage, when a tree is damaged;
 * ERR_NOMEM when memory ran out (no verdict); ERR_BUSY when writes went on
 * so fast that no snapshot could be read. */
int ledger_check_trees(struct ledger *l, struct ledger_tree_report *rep, struct err *e);
/* The same for a closed ledger's data.mdb (its newest snapshot). */
int ledger_check_file(const char *data_mdb, struct ledger_tree_report *rep, struct err *e);

/* ---- backups (backup.c) ---- */

/* A backup file is LMDB's compacted copy of the ledger followed by a
 * trailer holding its length, schema version and SHA-256
 * (docs/ledger-format.md). */
struct ledger_backup_info {
	uint64_t bytes;          /* size of the backup file */
	uint32_t schema_version; /* of the ledger in it */
	bool compacted;          /* false: LMDB could not compact (page leak), a plain copy */
	int64_t took_ms;
};

/* Copy the open ledger to file, consistently (one read transaction: writers
 * go on meanwhile), into a temporary file beside it (mode 0600), fsynced,
 * then renamed over file. Errors: ERR_IO naming the file (cannot create,
 * write, rename), ERR_LEDGER when LMDB cannot copy, ERR_NOMEM. On failure
 * nothing is left at file or beside it, and *info is zero. */
int ledger_backup(struct ledger *l, const char *file, struct ledger_backup_info *info,
                  struct err *e);

/* A compacted copy of the open ledger as dir/data.mdb (dir exists, holds
 * no ledger), to be opened as a ledger of its own: what a dry run works on.
 * Not synced to disk. ERR_IO naming the file, ERR_LEDGER. */
int ledger_copy(struct ledger *l, const char *dir, struct err *e);

/* Remove a closed ledger's directory (what a dry run's copy or a restore's
 * staging leaves): its files, then the directory. -1 when the directory
 * stays (it held something else, or could not be removed); a missing one
 * is fine. */
int ledger_remove_dir(const char *dir);

/* Check that file is a whole, undamaged backup of a schema this optsync
 * reads. ERR_LEDGER names what is wrong (cut short, damaged, newer schema,
 * not a backup); ERR_IO when it cannot be read. */
int ledger_backup_check(const char *file, struct ledger_backup_info *info, struct err *e);

/* Fill opt->path, which must be missing or empty, from file: the file is
 * checked (ledger_backup_check), copied into a staging directory inside
 * opt->path, opened there (an older schema is migrated), and its history
 * chain verified (*rep); only then does it become opt->path's data.mdb.
 * ERR_LEDGER when opt->path already holds a ledger or anything else, or
 * when the backup is bad or does not verify: then opt->path is as it was
 * (created empty if it was missing). */
int ledger_restore(const char *file, const struct ledger_options *opt,
                   struct ledger_backup_info *info, struct ledger_verify_report *rep,
                   struct err *e);

/* ---- retention ---- */

/* What a retention run may remove; a cutoff of 0 disables its rule. An
 * opted-out person, their events and their suppression are never removed. */
struct ledger_retention {
	int64_t conflicts_before; /* resolved conflicts resolved before this */
	int64_t events_before;    /* events older than this, of persons not opted out */
	int64_t persons_before;   /* persons with no Salesforce record, not opted out,
	                             not updated since this (with all their events) */
	bool dry_run;             /* count only; write nothing */
	int64_t now;              /* the retention event's time */
	const char *actor;
};
struct ledger_retention_report {
	uint64_t conflicts, events, persons;
	uint64_t event_seq; /* the run's history event; 0 when nothing was removed */
};
/* Called inside the run's write transaction, after the removal (also when
 * nothing was removed): the caller's bookkeeping, atomic with the run. */
typedef int (*ledger_retention_hook)(struct ledger_txn *t,
                                     const struct ledger_retention_report *rep, void *ctx,
                                     struct err *e);
/* One run: a read transaction scans every person and conflict; a write
 * transaction looks again at just the ones picked (state may have moved),
 * replaces each removed event with a stub, removes the persons and
 * conflicts, and appends one LEDGER_EV_RETENTION event counting the stubs
 * when anything was removed; then calls hook. dry_run: the scan only. */
int ledger_retention(struct ledger *l, const struct ledger_retention *r, ledger_retention_hook hook,
                     void *hook_ctx, struct ledger_retention_report *rep, struct err *e);

/* ---- change feed ---- */

int ledger_change_append(struct ledger_txn *t, struct ledger_change *c, struct err *e);
/* Entries with seq > after, at most limit; fn returns nonzero to stop. */
int ledger_change_list(struct ledger_txn *t, uint64_t after, size_t limit,
                       int (*fn)(const struct ledger_change *, void *), void *ctx, struct err *e);
uint64_t ledger_change_last(struct ledger_txn *t);

/* ---- cursors ---- */

int ledger_cursor_get(struct ledger_txn *t, int object, struct ledger_cursor *out, struct err *e);
int ledger_cursor_put(struct ledger_txn *t, int object, const struct ledger_cursor *c,
                      struct err *e);

/* ---- conflicts ----
 *
 * A record has at most one open conflict per field (LEDGER_F_OPTED_OUT,
 * LEDGER_F_AUTH_TYPE or LEDGER_F_SOURCE_TYPE) and purpose (schema 4): the
 * ledger keeps the open ones in an index by record (open_conflicts),
 * updated by add, put and delete. add and put refuse to open a second one
 * (ERR_CONFLICT naming the one open); ledger_conflict_open_get finds it. A
 * conflict about no record is not in the index. */

/* Every put and delete keeps, in the same transaction, an index of the
 * open conflicts by person and by record, and their counts by the object of
 * their record (schema 5): finding a record's or a person's open conflicts
 * and counting them reads no other conflict. */
int ledger_conflict_add(struct ledger_txn *t, struct ledger_conflict *c, struct err *e);
/* The open conflict of ref about field and purpose ("" or NULL: all
 * email); ERR_NOTFOUND when there is none. */
int ledger_conflict_open_get(struct ledger_txn *t, const struct ledger_recref *ref, uint32_t field,
                             const char *purpose, struct ledger_conflict *out, struct err *e);
/* The open conflicts of ref, whatever their field and purpose, in the
 * index's order; fn may close them (ledger_conflict_put); its nonzero
 * return stops the walk and is returned. */
int ledger_conflict_open_each(struct ledger_txn *t, const struct ledger_recref *ref,
                              int (*fn)(struct ledger_conflict *, void *), void *ctx,
                              struct err *e);
int ledger_conflict_get(struct ledger_txn *t, uint64_t id, struct ledger_conflict *out,
                        struct err *e);
int ledger_conflict_put(struct ledger_txn *t, const struct ledger_conflict *c, struct err *e);
int ledger_conflict_delete(struct ledger_txn *t, uint64_t id, struct err *e);
int ledger_conflict_each(struct ledger_txn *t, int (*fn)(const struct ledger_conflict *, void *),
                         void *ctx, struct err *e);
/* The open conflicts of one person, in id order, from the index (those of
 * a record: ledger_conflict_open_each); fn's nonzero return stops the walk
 * and is returned. The ids are read before fn is first called, so fn may
 * change conflicts (close them) in a write transaction. */
int ledger_conflict_each_open_of_person(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                                        int (*fn)(const struct ledger_conflict *, void *),
                                        void *ctx, struct err *e);

/* Counts by object byte (LEDGER_OBJ_*); the last slot holds any larger. */
#define LEDGER_OBJ_SLOTS 8
/* The open conflicts, by the object of their record (0: none). */
int ledger_conflict_open_counts(struct ledger_txn *t, uint64_t out[LEDGER_OBJ_SLOTS],
                                struct err *e);

/* ---- push outbox ----
 *
 * Every put and delete keeps, in the same transaction, an index of the
 * pushes by (object, next_try, id) and their counts by object and state
 * (schema 5): a drain reads the due pushes only, status reads the counts. */

int ledger_push_get(struct ledger_txn *t, int object, const char *id, struct ledger_push *out,
                    struct err *e);
/* The version of the push queued for a record, without decoding the rest
 * (what a drain compares with the version it sent); ERR_NOTFOUND. */
int ledger_push_version(struct ledger_txn *t, int object, const char *id, uint64_t *version,
                        struct err *e);
int ledger_push_put(struct ledger_txn *t, const struct ledger_push *p, struct err *e);
/* A push whose values changed: a new version, due now, its failures and
 * parking forgotten (the caller then puts it). */
void ledger_push_renew(struct ledger_push *p);
int ledger_push_delete(struct ledger_txn *t, int object, const char *id, struct err *e);
int ledger_push_each(struct ledger_txn *t, int (*fn)(const struct ledger_push *, void *), void *ctx,
                     struct err *e);

/* A place in the due index: the last push ledger_push_each_due gave. */
struct ledger_push_mark {
	bool set; /* false: the index's start */
	int64_t next_try;
	char id[LEDGER_ID_MAX + 1];
};
/* The pushes of one object whose next_try is at most due_by, parked or
 * not, in (next_try, id) order, from the index: the pushes not due are not
 * read. With mark->set, only those after the mark. fn's nonzero return
 * stops the walk and is returned; mark (NULL: none kept) is moved to each
 * push fn returned 0 for, so that a later walk goes on after the pushes
 * taken. fn must not change the outbox (collect, then change). */
int ledger_push_each_due(struct ledger_txn *t, int object, int64_t due_by,
                         struct ledger_push_mark *mark,
                         int (*fn)(const struct ledger_push *, void *), void *ctx, struct err *e);

/* The same into out[*n..cap), each push decoded in place (no copy), *n
 * counting them: the walk stops when out is full. */
int ledger_push_due(struct ledger_txn *t, int object, int64_t due_by, struct ledger_push_mark *mark,
                    struct ledger_push *out, size_t cap, size_t *n, struct err *e);

struct ledger_push_counts {
	uint64_t queued[LEDGER_OBJ_SLOTS]; /* not parked, by object */
	uint64_t parked[LEDGER_OBJ_SLOTS];
};
int ledger_push_counts(struct ledger_txn *t, struct ledger_push_counts *out, struct err *e);

/* ---- per-purpose statuses (schema 2) ---- */

/* Consent rows remembered per person and purpose: at most 8, so that
 * every row of a push's purposes (LEDGER_PFLAGS_MAX of them) fits in one
 * collection call of 200. */
#define LEDGER_PURPOSE_ROWS_MAX 8

enum ledger_purpose_status {
	LEDGER_PURPOSE_NONE = 0,
	LEDGER_PURPOSE_IN = 1,  /* opted in: consent date and evidence */
	LEDGER_PURPOSE_OUT = 2, /* opted out: when and where from */
};
struct ledger_purpose {
	char name[LEDGER_PURPOSE_NAME_MAX + 1];
	uint8_t status;                         /* enum ledger_purpose_status */
	int64_t changed_at;                     /* ms */
	uint8_t origin;                         /* enum ledger_origin of the change */
	int64_t consent_date;                   /* LEDGER_PURPOSE_IN: when consent was given (ms) */
	char evidence_ref[LEDGER_TEXT_MAX + 1]; /* personal: "" once erased */
	uint64_t event_seq;                     /* the history event of the change */
	/* a purpose on Salesforce's consent objects: the person's
	 * ContactPointTypeConsent rows (one on each Individual of theirs, and
	 * any more Salesforce users made), each with the status it was last
	 * read or written with (LEDGER_PURPOSE_IN: OptIn, LEDGER_PURPOSE_OUT:
	 * OptOut, 0: unknown); the first is the one optsync made or read first */
	uint8_t nrows;
	struct ledger_purpose_row {
		char id[LEDGER_ID_MAX + 1];
		uint8_t status;
	} rows[LEDGER_PURPOSE_ROWS_MAX];
};
/* The row of p with that id, or NULL. */
struct ledger_purpose_row *ledger_purpose_row_find(struct ledger_purpose *p, const char *id);
/* Remember row id at status (added when new): 0, or ERR_LIMIT when p holds
 * LEDGER_PURPOSE_ROWS_MAX rows already (the row is then not remembered). */
int ledger_purpose_row_note(struct ledger_purpose *p, const char *id, uint8_t status,
                            struct err *e);
/* A person's status for one purpose; ERR_NOTFOUND when none was ever set. */
int ledger_purpose_get(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN], const char *name,
                       struct ledger_purpose *out, struct err *e);
/* Set it (a write transaction). ERR_INVALID for a name that is not
 * [a-z0-9_]{1,32}. */
int ledger_purpose_put(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                       const struct ledger_purpose *p, struct err *e);
/* A person's purposes, in name order; fn's nonzero return stops the walk
 * and is returned. */
int ledger_purpose_each(struct ledger_txn *t, const uint8_t person[LEDGER_KEY_LEN],
                        int (*fn)(const struct ledger_purpose *, void *), void *ctx, struct err *e);
/* Every person's status for one purpose (the suppression index), with the
 * person's key. */
int ledger_purpose_scan(struct ledger_txn *t,
                        int (*fn)(const uint8_t person[LEDGER_KEY_LEN],
                                  const struct ledger_purpose *, void *),
                        void *ctx, struct err *e);

/* ---- idempotency keys (local API) ---- */

int ledger_idem_get(struct ledger_txn *t, const char *key, uint64_t *event_seq, struct err *e);
int ledger_idem_put(struct ledger_txn *t, const char *key, uint64_t event_seq, int64_t at,
                    struct err *e);

/* ---- small named values for the layers above (last cycle report, ...) ---- */

/* name is 1-64 bytes; values up to LEDGER_META_MAX bytes. put refuses a
 * larger value with ERR_LIMIT (nothing is cut). get copies into buf (cap
 * bytes) and sets *len; ERR_NOTFOUND when absent, ERR_LIMIT when the value
 * is larger than cap. */
#define LEDGER_META_MAX (16u << 10)
int ledger_meta_get(struct ledger_txn *t, const char *name, void *buf, size_t cap, size_t *len,
                    struct err *e);
int ledger_meta_put(struct ledger_txn *t, const char *name, const void *data, size_t len,
                    struct err *e);
/* Remove a named value; ERR_NOTFOUND when absent. */
int ledger_meta_delete(struct ledger_txn *t, const char *name, struct err *e);
/* The named values whose names start with prefix (1-64 bytes), in name
 * order: fn gets the whole name and the value, valid during the call; its
 * nonzero return stops the walk and is returned. Nothing may be put or
 * deleted during the walk. */
int ledger_meta_each(struct ledger_txn *t, const char *prefix,
                     int (*fn)(const char *name, const void *data, size_t len, void *ctx),
                     void *ctx, struct err *e);

/* ---- statistics ---- */

struct ledger_stats {
	uint64_t persons, records, events, changes, conflicts, pushes;
	uint64_t person_records; /* links of records to persons */
	uint64_t open_conflicts; /* those about a record */
	uint64_t map_size, used_bytes;
	uint32_t schema_version;
};
int ledger_stats(struct ledger_txn *t, struct ledger_stats *out, struct err *e);

#endif
