/* Internal to the sync (connector/sync/): the pull's state and its held
 * pages (pull.c, held.c), the push drain (push.c), the cycle (cycle.c). */
#ifndef OPTSYNC_CONNECTOR_SYNC_H
#define OPTSYNC_CONNECTOR_SYNC_H

#include <string.h>

#include "connector/internal.h"

/* A page kept past its callback, compactly (a quarter of the parsed form):
 * its field names once, then each record as
 *   u32 nvalues, type NUL, id NUL, u8 flaw (enum sf_flaw) and, when not
 *   0, the flawed field's name NUL; and per value: u8 name, u8 kind, then
 *   a string's u32 length and bytes with their NUL, or a number's 8 bytes.
 * Offsets, not pointers, so that the block may grow while it is written. */
struct page_copy {
	struct page_copy *next;
	size_t n;         /* records */
	size_t cap, used; /* bytes of data[] */
	size_t names;     /* offset of the names: u32 count, then each NUL-ended */
	unsigned char *data;
};

enum { HELD_NULL, HELD_FALSE, HELD_TRUE, HELD_STRING, HELD_NUMBER };
#define PAGE_NAMES_MAX 255 /* a value's name is a byte */

/* The names of the page being copied (nm of them). The records of a page
 * name the same fields in the same order, and the parse shares such a name
 * with the previous record (one pointer): last_ptr[k] and last_idx[k]
 * remember the pointer at place k and its index. */
struct name_map {
	const char *names[PAGE_NAMES_MAX];
	unsigned nm;
	const char *last_ptr[PAGE_NAMES_MAX];
	unsigned char last_idx[PAGE_NAMES_MAX];
};

/* A record parked when the pull began: one read again at this SystemModstamp
 * is the version refused, and is not tried again. */
struct parked_id {
	char id[LEDGER_ID_MAX + 1];
	int64_t modstamp;
};

/* A held record to refuse (its place among the records held). */
struct refusal {
	uint64_t at;
	uint8_t reason; /* enum conn_park_reason */
	char error[LEDGER_ERROR_MAX + 1];
};

struct pull {
	struct conn *c;
	int object;
	struct page_copy *head, *tail; /* pages read, not yet applied */
	struct page_copy *spare;       /* blocks of applied pages, for the next ones */
	size_t held;                   /* their records */
	size_t held_bytes;             /* and their size */
	uint64_t held_pages;
	int64_t held_since;
	bool full;
	struct apply_stats page, total;
	uint64_t pages;
	int64_t started;
	bool progress;
	bool cb_failed; /* on_page stopped the query (a ledger error, a signal) */
	/* rule 8: the object's records parked when the pull began (id order),
	 * and the held records that a run of page_txn could not apply after it
	 * had written some of them: refused on the next run (held order) */
	struct parked_id *parked;
	size_t nparked;
	struct refusal *refused;
	size_t nrefused, refused_cap;
	bool redo;              /* page_txn failed on a held record after writing: */
	struct refusal pending; /* that record, to refuse on the next run */
	/* one held record, as apply_sf_record takes it */
	struct sf_record rec;
	struct sf_value *vals;
	size_t vcap;
	const char *name_at[PAGE_NAMES_MAX];
	struct name_map map; /* the page being copied */
};

/* A u32 of the held form (host order, unaligned). */
static inline uint32_t get_u32(const unsigned char *p)
{
	uint32_t u;
	memcpy(&u, p, 4);
	return u;
}

/* A copy of recs[0..n) (a page of pl's object), from a spare block when
 * there is one; NULL with e set when it does not fit (more than
 * PAGE_NAMES_MAX names) or memory ran out. */
struct page_copy *page_copy(struct pull *pl, const struct sf_record *recs, size_t n, struct err *e);
/* The pages held are done with: their blocks are kept for the next pages,
 * or with all freed too. */
void drop_pages(struct pull *pl, bool all);

/* Drain the outbox's due writes of Contacts and Leads to Salesforce (the
 * dry run: list them), into report's push part. */
int push_drain(struct conn *c, struct sf_client *sf, const struct conn_sync_opts *o,
               struct conn_cycle_report *report, struct err *e);

#endif
