/* One sync cycle: pull every object from its cursor, then drain the outbox. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "connector/internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

/* While catching up, pages are applied several at a time: one commit (and
 * one msync of the map) per BATCH_RECORDS records, per BATCH_BYTES of them
 * held, or per the pages read in BATCH_MS, whichever comes first. Each
 * commit holds its records and their cursor move together, so a crash loses
 * nothing: the cursor comes back with the data. Local writers wait at most
 * one such commit (about a second for 100,000 records). A commit dirties
 * leaves all over the persons tree (its keys are keyed hashes), so fewer,
 * larger commits write fewer pages in all: a first pull of 1M records took
 * 1.24-1.28 CPU s per 100,000 in commits of 40,000 and 1.08-1.11 in commits
 * of 80,000 (docs/performance.md). The held pages are compact (a quarter of
 * their parsed form), so 100,000 records take about 25 MiB. */
#define BATCH_RECORDS 100000
#define BATCH_BYTES   (40u << 20)
#define BATCH_MS      5000

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

static int held_room(struct page_copy *pc, size_t more)
{
	if (pc->cap - pc->used >= more)
		return 0;
	size_t cap = pc->cap ? pc->cap : 1u << 16;
	while (cap - pc->used < more)
		cap *= 2;
	unsigned char *d = realloc(pc->data, cap);
	if (d == NULL)
		return -1;
	pc->data = d;
	pc->cap = cap;
	return 0;
}

static int held_put(struct page_copy *pc, const void *p, size_t n)
{
	if (held_room(pc, n))
		return -1;
	memcpy(pc->data + pc->used, p, n);
	pc->used += n;
	return 0;
}

static int held_u32(struct page_copy *pc, size_t v)
{
	uint32_t u = (uint32_t)v;
	return v > UINT32_MAX ? -1 : held_put(pc, &u, 4);
}

static int held_byte(struct page_copy *pc, unsigned v)
{
	unsigned char b = (unsigned char)v;
	return held_put(pc, &b, 1);
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t u;
	memcpy(&u, p, 4);
	return u;
}

/* The index of name among m's names, added if new. */
static int name_index(struct name_map *m, size_t k, const char *name)
{
	if (k < PAGE_NAMES_MAX && m->last_ptr[k] == name)
		return m->last_idx[k];
	unsigned i = 0;
	while (i < m->nm && strcmp(m->names[i], name) != 0)
		i++;
	if (i == m->nm) {
		if (m->nm == PAGE_NAMES_MAX)
			return -1;
		m->names[m->nm++] = name;
	}
	if (k < PAGE_NAMES_MAX) {
		m->last_ptr[k] = name;
		m->last_idx[k] = (unsigned char)i;
	}
	return (int)i;
}

/* -1 when memory ran out (or a count does not fit), -2 when the page names
 * more fields than a held page keeps. */
static int page_copy_fill(struct page_copy *pc, const struct sf_record *recs, size_t n,
                          struct name_map *m)
{
	for (size_t i = 0; i < n; i++) {
		const struct sf_record *r = &recs[i];
		if (held_u32(pc, r->nvalues) || held_put(pc, r->type, strlen(r->type) + 1) ||
		    held_put(pc, r->id, strlen(r->id) + 1) || held_byte(pc, r->flaw) ||
		    (r->flaw && held_put(pc, r->flaw_field, strlen(r->flaw_field) + 1)))
			return -1;
		for (size_t k = 0; k < r->nvalues; k++) {
			const struct sf_value *v = &r->values[k];
			int ni = name_index(m, k, v->name);
			if (ni < 0)
				return -2;
			unsigned char h[2] = {(unsigned char)ni, HELD_NULL};
			size_t len = 0;
			switch (v->type) {
			case SF_BOOL:
				h[1] = v->b ? HELD_TRUE : HELD_FALSE;
				break;
			case SF_STRING:
				h[1] = HELD_STRING;
				len = strlen(v->str);
				break;
			case SF_NUMBER:
				h[1] = HELD_NUMBER;
				break;
			default:
				break;
			}
			if (held_put(pc, h, 2) ||
			    (h[1] == HELD_STRING &&
			     (held_u32(pc, len) || held_put(pc, v->str, len + 1))) ||
			    (h[1] == HELD_NUMBER && held_put(pc, &v->num, sizeof(v->num))))
				return -1;
		}
	}
	pc->names = pc->used;
	if (held_u32(pc, m->nm))
		return -1;
	for (unsigned i = 0; i < m->nm; i++)
		if (held_put(pc, m->names[i], strlen(m->names[i]) + 1))
			return -1;
	return 0;
}

/* The blocks of applied pages are kept for the next pages rather than
 * freed: given back, they would be faulted in again for every commit. */
static struct page_copy *page_copy(struct pull *pl, const struct sf_record *recs, size_t n,
                                   struct err *e)
{
	struct page_copy *pc = pl->spare;
	if (pc) {
		pl->spare = pc->next;
	} else if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	pc->next = NULL;
	pc->n = n;
	pc->used = 0;
	pl->map.nm = 0;
	memset(pl->map.last_ptr, 0, sizeof(pl->map.last_ptr));
	int frc = page_copy_fill(pc, recs, n, &pl->map);
	if (frc) {
		free(pc->data);
		free(pc);
		if (frc == -2)
			err_set(e, ERR_LIMIT, "a %s query page names more than %d fields",
			        ledger_object_name(pl->object), PAGE_NAMES_MAX);
		else
			err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	return pc;
}

/* Point pl->name_at[] at the names of pc. */
static void held_names(struct pull *pl, const struct page_copy *pc)
{
	const unsigned char *p = pc->data + pc->names;
	uint32_t nm = get_u32(p);
	const char *s = (const char *)p + 4;
	for (uint32_t i = 0; i < nm; i++) {
		pl->name_at[i] = s;
		s += strlen(s) + 1;
	}
}

/* The held record at *at, into pl->rec; *at moves past it. */
static int held_record(struct pull *pl, const struct page_copy *pc, size_t *at, struct err *e)
{
	const unsigned char *p = pc->data + *at;
	uint32_t nv = get_u32(p);
	p += 4;
	if (nv > pl->vcap) {
		struct sf_value *v = realloc(pl->vals, nv * sizeof(*v));
		if (v == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		pl->vals = v;
		pl->vcap = nv;
	}
	pl->rec.type = (const char *)p;
	p += strlen(pl->rec.type) + 1;
	pl->rec.id = (const char *)p;
	p += strlen(pl->rec.id) + 1;
	pl->rec.flaw = (enum sf_flaw) * p++;
	pl->rec.flaw_field = NULL;
	if (pl->rec.flaw) {
		pl->rec.flaw_field = (const char *)p;
		p += strlen(pl->rec.flaw_field) + 1;
	}
	for (uint32_t k = 0; k < nv; k++) {
		struct sf_value *v = &pl->vals[k];
		v->name = pl->name_at[p[0]];
		v->str = NULL;
		v->b = false;
		v->num = 0;
		switch (p[1]) {
		case HELD_FALSE:
		case HELD_TRUE:
			v->type = SF_BOOL;
			v->b = p[1] == HELD_TRUE;
			p += 2;
			break;
		case HELD_STRING:
			v->type = SF_STRING;
			v->str = (const char *)p + 6;
			p += 6 + get_u32(p + 2) + 1;
			break;
		case HELD_NUMBER:
			v->type = SF_NUMBER;
			memcpy(&v->num, p + 2, sizeof(v->num));
			p += 2 + sizeof(v->num);
			break;
		default:
			v->type = SF_NULL;
			p += 2;
		}
	}
	pl->rec.nvalues = nv;
	pl->rec.values = pl->vals;
	*at = (size_t)(p - pc->data);
	return 0;
}

/* The pages held are done with: their blocks are kept for the next pages,
 * or with all freed too. */
static void drop_pages(struct pull *pl, bool all)
{
	if (pl->tail) {
		pl->tail->next = pl->spare;
		pl->spare = pl->head;
	}
	pl->head = pl->tail = NULL;
	while (all && pl->spare) {
		struct page_copy *next = pl->spare->next;
		free(pl->spare->data);
		free(pl->spare);
		pl->spare = next;
	}
	if (all) {
		free(pl->vals);
		pl->vals = NULL;
		pl->vcap = 0;
	}
	pl->held = 0;
	pl->held_bytes = 0;
	pl->held_pages = 0;
}

/* A field's name or a record's id as a message may hold it: printable
 * ASCII, '?' for anything else (the bytes of a flawed one are no text). */
static void safe_copy(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (; src[n] && n + 1 < cap; n++)
		dst[n] = src[n] >= 0x20 && src[n] < 0x7f ? src[n] : '?';
	dst[n] = '\0';
}

/* Whether a record deleted in Salesforce (IsDeleted: what queryAll reads)
 * can be applied with its flaw: its deletion takes only its Id and
 * MasterRecordId. */
static bool deletion_unflawed(const struct sf_record *r)
{
	const struct sf_value *d = sf_record_get(r, "IsDeleted");
	return d && d->type == SF_BOOL && d->b && strcmp(r->flaw_field, "Id") != 0 &&
	       strcmp(r->flaw_field, "MasterRecordId") != 0;
}

/* Why r cannot be applied as it came (enum conn_park_reason, its words in
 * error), or 0. */
static int record_flaw(const struct sf_record *r, char *error, size_t cap)
{
	static const char *const what[] = {NULL, "a NUL character (\\u0000)",
	                                   "an unpaired surrogate (half of a character)",
	                                   "bytes that are not UTF-8"};
	if (r->flaw > SF_FLAW_NONE && r->flaw <= SF_FLAW_UTF8 && !deletion_unflawed(r)) {
		char field[101];
		safe_copy(field, sizeof(field), r->flaw_field);
		snprintf(error, cap,
		         "field %s holds %s, which optsync cannot store: correct the value in "
		         "Salesforce",
		         field, what[r->flaw]);
		return r->flaw == SF_FLAW_NUL ? CONN_PARK_NUL : CONN_PARK_INVALID_UTF8;
	}
	if (strlen(r->id) > LEDGER_ID_MAX) {
		snprintf(error, cap, "its Id is longer than the %d characters of a Salesforce Id",
		         LEDGER_ID_MAX);
		return CONN_PARK_TOO_LONG;
	}
	return 0;
}

static const struct parked_id *parked_find(const struct pull *pl, const char *id)
{
	size_t lo = 0, hi = pl->nparked;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(pl->parked[mid].id, id);
		if (c == 0)
			return &pl->parked[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Rule 8: r, which cannot be applied, parked with why. */
static int park_record(struct ledger_txn *t, struct pull *pl, const struct sf_record *r,
                       int64_t modstamp, int reason, const char *why, struct err *e)
{
	struct parked_record p = {.object = (uint8_t)pl->object,
	                          .modstamp = modstamp,
	                          .parked_at = time_now_ms(),
	                          .reason = (uint8_t)reason};
	safe_copy(p.id, sizeof(p.id), r->id);
	str_copy(p.error, sizeof(p.error), why);
	int rc = parked_put(t, &p, e);
	if (rc == 0)
		rc = forget_moved_parked(t, pl->c->l, pl->object, r, e);
	if (rc == 0) {
		pl->page.parked++;
		log_warn("sync.parked_record",
		         "%s %s cannot be applied and is parked (tried again when it changes in "
		         "Salesforce): %s",
		         ledger_object_name(pl->object), p.id, p.error);
	}
	return rc;
}

static int page_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct pull *pl = ctx;
	/* the callback may run again; the undated opt-ins' names stay (each once) */
	pl->page = (struct apply_stats){.undated = pl->page.undated};
	pl->redo = false;
	struct ledger_cursor cur;
	int rc = ledger_cursor_get(t, pl->object, &cur, e);
	if (rc == ERR_NOTFOUND) {
		memset(&cur, 0, sizeof(cur));
		rc = 0;
	}
	if (rc)
		return rc;
	uint64_t at = 0;     /* the record's place among those held */
	size_t next_ref = 0; /* the next of pl->refused */
	char why[LEDGER_ERROR_MAX + 1];
	for (const struct page_copy *pc = pl->head; pc && rc == 0; pc = pc->next) {
		held_names(pl, pc);
		size_t off = 0;
		for (size_t i = 0; i < pc->n && rc == 0; i++, at++) {
			if ((rc = held_record(pl, pc, &off, e)))
				break;
			const struct sf_record *r = &pl->rec;
			int64_t m = record_time(r, "SystemModstamp");
			const struct parked_id *was = pl->nparked ? parked_find(pl, r->id) : NULL;
			int reason = 0;
			if (next_ref < pl->nrefused && pl->refused[next_ref].at == at) {
				/* a run before this one failed on it */
				reason = pl->refused[next_ref].reason;
				str_copy(why, sizeof(why), pl->refused[next_ref++].error);
				pl->page.records++;
			} else if (was && was->modstamp == m && !pl->full) {
				/* the version refused, read again: it stays parked */
				pl->page.records++;
				pl->page.parked++;
			} else if ((reason = record_flaw(r, why, sizeof(why))) != 0) {
				pl->page.records++;
			} else {
				pl->page.refused = 0;
				rc = pl->object == LEDGER_OBJ_CONSENT
				         ? apply_sf_consent(t, pl->c, r, &pl->page, e)
				         : apply_sf_record(t, pl->c->l, pl->c->cfg, pl->object, r,
				                           &pl->page, e);
				if (rc == ERR_INVALID && pl->page.refused) {
					/* refused before anything was written */
					reason = pl->page.refused;
					str_copy(why, sizeof(why), e->msg);
					rc = 0;
				} else if (rc == ERR_INVALID || rc == ERR_LIMIT) {
					/* some of it may be written: the whole run is undone,
					 * and the next one refuses this record */
					pl->redo = true;
					pl->pending.at = at;
					pl->pending.reason =
					    rc == ERR_LIMIT ? CONN_PARK_LIMIT : CONN_PARK_INVALID;
					str_copy(pl->pending.error, sizeof(pl->pending.error),
					         e->msg);
					break;
				} else if (rc == 0 && was) {
					rc = parked_delete(t, pl->object, r->id,
					                   e); /* applied now */
				}
			}
			if (rc == 0 && reason)
				rc = park_record(t, pl, r, m, reason, why, e);
			if (rc == 0 && m &&
			    (m > cur.modstamp ||
			     (m == cur.modstamp && strcmp(r->id, cur.last_id) > 0))) {
				cur.modstamp = m;
				str_copy(cur.last_id, sizeof(cur.last_id), r->id);
			}
		}
	}
	if (rc)
		return rc;
	cur.pulled += pl->held;
	cur.updated_at = time_now_ms();
	return ledger_cursor_put(t, pl->object, &cur, e);
}

/* The record page_txn could not apply, among those to refuse (held order). */
static int refusal_add(struct pull *pl, struct err *e)
{
	if (pl->nrefused == pl->refused_cap) {
		size_t cap = pl->refused_cap ? pl->refused_cap * 2 : 8;
		struct refusal *r = realloc(pl->refused, cap * sizeof(*r));
		if (r == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		pl->refused = r;
		pl->refused_cap = cap;
	}
	size_t i = pl->nrefused++;
	for (; i > 0 && pl->refused[i - 1].at > pl->pending.at; i--)
		pl->refused[i] = pl->refused[i - 1];
	pl->refused[i] = pl->pending;
	return 0;
}

static void add_stats(struct apply_stats *a, const struct apply_stats *b)
{
	const uint64_t *src = (const uint64_t *)b;
	uint64_t *dst = (uint64_t *)a;
	for (size_t i = 0; i < offsetof(struct apply_stats, undated) / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

/* Apply the pages held, in one commit. A record that fails after some of
 * it was written (a limit) undoes the commit: it is run again with that
 * record refused, the others applied (rule 8). */
static int flush_pages(struct pull *pl, struct err *e)
{
	if (pl->head == NULL)
		return 0;
	int rc;
	while ((rc = ledger_write(pl->c->l, page_txn, pl, e)) != 0 && pl->redo &&
	       (rc = refusal_add(pl, e)) == 0)
		log_debug("sync.page", "%s: the batch is applied again without record %llu of it",
		          ledger_object_name(pl->object), (unsigned long long)pl->pending.at);
	pl->nrefused = 0; /* places in this batch */
	uint64_t n = pl->held, pages = pl->held_pages;
	drop_pages(pl, false);
	if (rc)
		return rc;
	add_stats(&pl->total, &pl->page);
	pl->pages += pages;
	log_debug("sync.page", "%s: %llu records of %llu page(s) applied in one commit",
	          ledger_object_name(pl->object), (unsigned long long)n, (unsigned long long)pages);
	if (pl->progress) {
		double secs = (double)(time_now_ms() - pl->started) / 1000.0;
		fprintf(stderr, "\r%s: %llu records, %llu pages, %.0f records/s   ",
		        ledger_object_name(pl->object), (unsigned long long)pl->total.records,
		        (unsigned long long)pl->pages,
		        secs > 0 ? (double)pl->total.records / secs : 0.0);
	}
	return 0;
}

static int on_page(void *ctx, const struct sf_record *recs, size_t n, struct err *e)
{
	struct pull *pl = ctx;
	struct page_copy *pc = page_copy(pl, recs, n, e);
	if (pc == NULL) {
		pl->cb_failed = true;
		return e->code;
	}
	if (pl->head == NULL)
		pl->held_since = time_now_ms();
	if (pl->tail)
		pl->tail->next = pc;
	else
		pl->head = pc;
	pl->tail = pc;
	pl->held += n;
	pl->held_bytes += pc->used;
	pl->held_pages++;
	int rc = 0;
	if (pl->held >= BATCH_RECORDS || pl->held_bytes >= BATCH_BYTES ||
	    time_now_ms() - pl->held_since >= BATCH_MS || (pl->c->stop && *pl->c->stop))
		rc = flush_pages(pl, e);
	if (rc == 0 && pl->c->stop && *pl->c->stop)
		rc = err_set(e, ERR_RETRY, "stopped by a signal after page %llu (committed)",
		             (unsigned long long)pl->pages);
	pl->cb_failed = rc != 0;
	return rc;
}

struct cursor_read {
	int object;
	struct ledger_cursor cur;
	int found;
};

static int read_cursor(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct cursor_read *cr = ctx;
	int rc = ledger_cursor_get(t, cr->object, &cr->cur, e);
	cr->found = rc == 0;
	return rc == ERR_NOTFOUND ? 0 : rc;
}

struct caught_up {
	int object;
	int64_t at;
};

/* A pull read to the end: every change made before it started is in. */
static int mark_caught_up(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct caught_up *cu = ctx;
	struct ledger_cursor cur;
	int rc = ledger_cursor_get(t, cu->object, &cur, e);
	if (rc == ERR_NOTFOUND) {
		memset(&cur, 0, sizeof(cur));
		rc = 0;
	}
	if (rc)
		return rc;
	cur.caught_up_at = cu->at;
	cur.updated_at = time_now_ms();
	return ledger_cursor_put(t, cu->object, &cur, e);
}

/* The query of object from since; skip: the purposes (bit i: cfg->purposes[i])
 * whose checkbox the object lacks, left out. */
static int build_soql(const struct config *cfg, int object, int64_t since, bool with_individual,
                      unsigned skip, struct buf *q, struct err *e)
{
	const struct config_fields *f = &cfg->salesforce.fields;
	int rc = buf_printf(q, e,
	                    "SELECT Id, Email, FirstName, LastName, Title, Phone, CreatedDate, "
	                    "LastModifiedDate, SystemModstamp, IsDeleted, MasterRecordId%s, %s, "
	                    "%s, %s, %s, %s, %s, %s",
	                    object == LEDGER_OBJ_LEAD ? ", Company, IsConverted" : "", f->opted_out,
	                    f->authorization_type, f->authorization_other, f->consent_date,
	                    f->purpose, f->source_type, f->source_other);
	for (size_t i = 0; rc == 0 && i < cfg->npurposes; i++)
		if (cfg->purposes[i].sf_field && !(skip & (1u << i)))
			rc = buf_printf(q, e, ", %s", cfg->purposes[i].sf_field);
		else if (cfg->purposes[i].sf_opt_in_field)
			rc = buf_printf(q, e, ", %s, %s", cfg->purposes[i].sf_opt_in_field,
			                cfg->purposes[i].sf_consent_date_field);
	if (rc == 0 && with_individual)
		rc = buf_puts(q, ", IndividualId", e); /* exists with Data Protection and Privacy */
	rc = rc ? rc : buf_printf(q, e, " FROM %s", ledger_object_name(object));
	if (rc == 0 && since > 0) {
		char t[TIME_STR_MAX];
		time_format(since / 1000 * 1000, t); /* SOQL literals: whole seconds, Z */
		rc = buf_printf(q, e, " WHERE SystemModstamp >= %s", t);
	}
	if (rc == 0)
		rc = buf_puts(q, " ORDER BY SystemModstamp, Id", e);
	return rc;
}

/* The field Salesforce says a query names but the object lacks (INVALID_FIELD,
 * "No such column 'X'"), into field; false when e says nothing of the kind. */
static bool invalid_field(const struct err *e, char field[128])
{
	const char *q = strstr(e->msg, "No such column '");
	if (e->code != ERR_REMOTE || strstr(e->msg, "INVALID_FIELD") == NULL || q == NULL)
		return false;
	q += 16;
	size_t n = strcspn(q, "'");
	if (n == 0 || n >= 128)
		return false;
	memcpy(field, q, n);
	field[n] = '\0';
	return true;
}

/* The purpose whose checkbox is the field e says is missing (its index in
 * cfg->purposes), or -1: another field, or none. */
static int missing_purpose(const struct config *cfg, const struct err *e)
{
	char field[128];
	if (!invalid_field(e, field))
		return -1;
	struct field_key keys[CONFIG_FIELD_KEYS];
	config_field_keys(cfg, keys);
	for (size_t i = 0; i < CONFIG_FIELD_KEYS; i++)
		if (keys[i].field && strcasecmp(keys[i].field, field) == 0)
			return -1; /* a field every record needs */
	for (size_t i = 0; i < cfg->npurposes; i++)
		if (cfg->purposes[i].sf_field && strcasecmp(cfg->purposes[i].sf_field, field) == 0)
			return (int)i;
	return -1;
}

/* An unknown field in the query: say which key names it and what to do,
 * in place of Salesforce's words (kept at the end). */
static void explain_invalid_field(const struct config *cfg, int object, struct err *e)
{
	char field[128];
	if (!invalid_field(e, field))
		return;
	struct field_key keys[CONFIG_FIELD_KEYS];
	config_field_keys(cfg, keys);
	const char *key = NULL;
	char pkey[128];
	for (size_t i = 0; i < CONFIG_FIELD_KEYS; i++)
		if (keys[i].field && strcasecmp(keys[i].field, field) == 0) {
			snprintf(pkey, sizeof(pkey), "salesforce.fields.%s", keys[i].key);
			key = pkey;
		}
	for (size_t i = 0; key == NULL && i < cfg->npurposes; i++) {
		const struct config_purpose *cp = &cfg->purposes[i];
		const char *which =
		    cp->sf_field && strcasecmp(cp->sf_field, field) == 0 ? "field"
		    : cp->sf_opt_in_field && strcasecmp(cp->sf_opt_in_field, field) == 0
		        ? "opt_in_field"
		    : cp->sf_consent_date_field && strcasecmp(cp->sf_consent_date_field, field) == 0
		        ? "consent_date_field"
		        : NULL;
		if (which) {
			snprintf(pkey, sizeof(pkey), "the salesforce.%s of purpose '%s'", which,
			         cp->name);
			key = pkey;
		}
	}
	char orig[ERR_MSG_MAX];
	snprintf(orig, sizeof(orig), "%s", e->msg);
	if (key)
		err_set(e, ERR_REMOTE,
		        "Salesforce has no field %s on %s, or the integration user cannot see it "
		        "(%s names it): deploy the fields and the permission set "
		        "optsync ships (its salesforce/ folder: sf project deploy start "
		        "--source-dir salesforce/force-app) and assign the permission set to the "
		        "integration user, or set %s to the field's API name. "
		        "Salesforce said: %s",
		        field, ledger_object_name(object), key, key, orig);
	else
		err_set(e, ERR_REMOTE,
		        "Salesforce has no field %s on %s, or the integration user cannot see it; "
		        "optsync always reads it: give the integration user read access to it. "
		        "Salesforce said: %s",
		        field, ledger_object_name(object), orig);
}

/* Opt-ins read without their date: one line naming them (the first ones). */
static void log_undated(int object, uint64_t n, const struct conn_undated_list *l)
{
	char names[CONN_UNDATED_MAX * 80] = "";
	size_t o = 0, named = 0;
	for (size_t i = 0; i < l->n && o < sizeof(names); i++)
		if ((int)l->v[i].object == object) {
			o += (size_t)snprintf(names + o, sizeof(names) - o,
			                      "%s%s (purpose '%s', no %s)", o ? ", " : "",
			                      l->v[i].id, l->v[i].purpose, l->v[i].missing);
			named++;
		}
	log_warn("sync.undated",
	         "%s: %llu opt-in(s) without a consent date are not evidence, so the person's "
	         "status for the purpose stays none: %s%s; add the date in Salesforce (or record "
	         "the consent with optsync consent)",
	         ledger_object_name(object), (unsigned long long)n, names,
	         n > named ? ", and more" : "");
}

static int add_parked(const struct parked_record *p, void *ctx)
{
	struct pull *pl = ctx;
	if (pl->nparked % 64 == 0) {
		struct parked_id *v = realloc(pl->parked, (pl->nparked + 64) * sizeof(*v));
		if (v == NULL)
			return ERR_NOMEM;
		pl->parked = v;
	}
	struct parked_id *x = &pl->parked[pl->nparked++];
	str_copy(x->id, sizeof(x->id), p->id);
	x->modstamp = p->modstamp;
	return 0;
}

/* The object's parked records, in id order (as the ledger keeps them). */
static int read_parked(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct pull *pl = ctx;
	pl->nparked = 0; /* the callback may run again */
	int rc = parked_each(t, pl->object, add_parked, pl, e);
	return rc == ERR_NOMEM ? err_set(e, ERR_NOMEM, "out of memory") : rc;
}

int pull_object(struct conn *c, struct sf_client *sf, int object, const struct conn_sync_opts *o,
                struct conn_cycle_report *r, struct err *e)
{
	struct cursor_read cr = {object, {0}, 0};
	int rc = ledger_read(c->l, read_cursor, &cr, e);
	if (rc)
		return rc;
	int64_t since = 0;
	if (cr.found && !o->full && cr.cur.modstamp > 0)
		since = cr.cur.modstamp - c->cfg->sync.overlap_ms;
	struct buf q;
	buf_init(&q, 8192);
	struct pull pl = {.c = c,
	                  .object = object,
	                  .full = o->full,
	                  .started = time_now_ms(),
	                  .progress = o->progress,
	                  .page = {.undated = &r->undated}};
	rc = ledger_read(c->l, read_parked, &pl, e);
	/* a purpose's checkbox the object lacks: the object is pulled without it
	 * (its opt-outs and facts still come), and the cycle says so */
	unsigned skip = 0;
	struct err skipped = {0};
	while (rc == 0) {
		buf_reset(&q);
		rc = object == LEDGER_OBJ_CONSENT
		         ? consent_soql(c, since, &q, e)
		         : build_soql(c->cfg, object, since, c->consent_ok, skip, &q, e);
		/* queryAll: records deleted or merged since the cursor come too */
		if (rc ||
		    (rc = sf_query(sf, q.data, object != LEDGER_OBJ_CONSENT, on_page, &pl, e)) == 0)
			break;
		int pi = pl.head == NULL && pl.pages == 0 && !pl.cb_failed
		             ? missing_purpose(c->cfg, e)
		             : -1;
		explain_invalid_field(c->cfg, object, e);
		if (pi < 0 || (skip & (1u << pi)))
			break;
		skip |= 1u << pi;
		if (skipped.code == 0)
			err_set(&skipped, ERR_REMOTE,
			        "purpose '%s' is not synced with %s (the rest is): %s",
			        c->cfg->purposes[pi].name, ledger_object_name(object), e->msg);
		rc = 0;
	}
	/* the pages read before the end (or before Salesforce failed) are whole:
	 * they are applied, and the next cycle goes on from them */
	if (!pl.cb_failed) {
		struct err fe = {0};
		int frc = flush_pages(&pl, &fe);
		if (frc && rc == 0) {
			*e = fe;
			rc = frc;
		}
	}
	drop_pages(&pl, true);
	free(pl.parked);
	free(pl.refused);
	buf_free(&q);
	struct caught_up cu = {object, pl.started};
	if (rc == 0)
		rc = ledger_write(c->l, mark_caught_up, &cu, e);
	if (rc == 0 && skipped.code) {
		*e = skipped; /* part of the configured work not done */
		rc = skipped.code;
	}
	if (o->progress && pl.pages)
		fputc('\n', stderr);
	if (object > 0 && object < 4) {
		struct conn_pull_report *p = &r->pull[object];
		const struct apply_stats *t = &pl.total;
		*p = (struct conn_pull_report){.pulled = true,
		                               .since = since,
		                               .records = t->records,
		                               .pages = pl.pages,
		                               .optouts_in = t->optouts_in,
		                               .purpose_optouts_in = t->purpose_optouts_in,
		                               .purpose_optins_in = t->purpose_optins_in,
		                               .purpose_optins_nodate = t->purpose_optins_nodate,
		                               .facts_applied = t->facts_applied,
		                               .resubscribe_conflicts = t->resubscribe_conflicts,
		                               .invalid_conflicts = t->invalid_conflicts,
		                               .concurrent_conflicts = t->concurrent_conflicts,
		                               .suppressed_new = t->suppressed_new,
		                               .unchanged = t->echoes,
		                               .skipped_no_email = t->skipped_no_email,
		                               .pushes_queued = t->pushes_queued,
		                               .unlinked = t->unlinked,
		                               .parked = t->parked};
		if (rc)
			str_copy(p->error, sizeof(p->error), e->msg);
		r->order[r->norder++] = (enum conn_object)object;
	}
	if (pl.total.purpose_optins_nodate)
		log_undated(object, pl.total.purpose_optins_nodate, &r->undated);
	log_info("sync.pull",
	         "%s: %llu records in %llu pages, %llu opt-outs in, %llu pushes queued%s",
	         ledger_object_name(object), (unsigned long long)pl.total.records,
	         (unsigned long long)pl.pages, (unsigned long long)pl.total.optouts_in,
	         (unsigned long long)pl.total.pushes_queued, o->dry_run ? " (dry run)" : "");
	return rc;
}

/* ---- drain ---- */

#define DRY_LIST_MAX 10000

struct due {
	struct ledger_push *items;
	size_t n, cap;
	int64_t now;
	struct ledger_push_mark *marks; /* per object: where the next round goes on */
	struct conn_push_list *list;    /* dry run: the due pushes (the first DRY_LIST_MAX) */
	size_t due_total, due_by_object[3];
	size_t due_consent; /* dry run: consent rows (and Individuals) due */
	bool nomem;         /* the dry run's list could not grow */
	const struct config *cfg;
	struct push_texts *texts; /* by item: the opt-in boxes' dates to write */
};

/* The texts of a push's values: the consent date, and each opt-in box's
 * date (by want_purposes index, read with the push: the person's
 * consent date for the purpose when they are opted in). */
struct push_texts {
	char date[TIME_STR_MAX];
	int64_t box_ms[LEDGER_PFLAGS_MAX];
	char box[LEDGER_PFLAGS_MAX][TIME_STR_MAX];
};

/* A dry run's list of what would be written now. */
static int dry_list(struct due *d, const struct ledger_push *q)
{
	struct conn_push_list *l = d->list;
	if (l->n == l->cap && l->cap < DRY_LIST_MAX) {
		size_t cap = l->cap ? l->cap * 4 : 64;
		if (cap > DRY_LIST_MAX)
			cap = DRY_LIST_MAX;
		struct ledger_push *m = realloc(l->items, cap * sizeof(*m));
		if (m == NULL) {
			d->nomem = true;
			return 1;
		}
		l->items = m;
		l->cap = cap;
	}
	if (l->n < l->cap)
		l->items[l->n++] = *q;
	return 0;
}

/* A dry run counts every due push and lists the first DRY_LIST_MAX. */
static int collect_due(const struct ledger_push *q, void *ctx)
{
	struct due *d = ctx;
	if (q->record.object > LEDGER_OBJ_LEAD) {
		d->due_consent++; /* consent_drain's, which a dry run does not run */
	} else {
		d->due_total++;
		d->due_by_object[q->record.object]++;
	}
	return dry_list(d, q);
}

/* The due pushes (parked ones too: tried again at next_try,
 * push_park_backoff, when the record changes in Salesforce, or on `pushes
 * retry`) from the outbox's due index: a round reads the ones it sends,
 * however many others wait, and goes on after those the rounds before
 * took (whose results may not be written yet). A dry run reads them all,
 * the consent rows' too. */
static int read_due(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct due *d = ctx;
	d->n = 0;
	d->due_total = d->due_by_object[0] = d->due_by_object[1] = d->due_by_object[2] = 0;
	d->due_consent = 0;
	int rc = 0;
	if (d->list) {
		d->list->n = 0; /* the callback may run again */
		for (int object = LEDGER_OBJ_CONTACT;
		     rc == 0 && object <= LEDGER_OBJ_NEW_INDIVIDUAL; object++)
			rc = ledger_push_each_due(t, object, d->now, NULL, collect_due, d, e);
		return d->nomem ? err_set(e, ERR_NOMEM, "out of memory") : rc < 0 ? rc : 0;
	}
	struct ledger_push_mark marks[LEDGER_OBJ_LEAD + 1];
	memcpy(marks, d->marks, sizeof(marks));
	for (int object = LEDGER_OBJ_CONTACT; rc == 0 && object <= LEDGER_OBJ_LEAD; object++)
		rc = ledger_push_due(t, object, d->now, &marks[object], d->items, d->cap, &d->n, e);
	for (size_t i = 0; rc == 0 && i < d->n; i++)
		rc = purpose_box_dates(t, d->cfg, &d->items[i], d->texts[i].box_ms, e);
	if (rc == 0)
		memcpy(d->marks, marks, sizeof(marks));
	return rc;
}

/* Each push lands at most its opt-out and one opt-out per purpose. */
#define REVERTED_PER_PUSH (1 + LEDGER_PFLAGS_MAX)

struct results {
	const struct ledger_push *sent;
	const struct sf_result *res;
	size_t n;
	int request_failed;
	const char *request_error;
	int64_t now;
	size_t ok, retry, parked;
	size_t ok_by_object[3];
	/* opt-outs that landed: record and purpose ("": all email) */
	struct ledger_recref *rev_refs;
	const char **rev_names;
	size_t nreverted, conflicts_reverted;
};

/* Rule 2 under "revert": once Salesforce holds the opt-out again, the
 * re-subscribe conflicts of those records are settled: closed as reverted,
 * so that open conflicts are the ones a human must decide. A record has one
 * open conflict per purpose at most, found by the ledger's index of open
 * conflicts (no scan of the conflicts). */
int close_reverted_pairs(struct ledger_txn *t, const struct ledger_recref *refs,
                         const char *const *purposes, size_t n, int64_t now, size_t *closed,
                         struct err *e)
{
	struct ledger_conflict *cf = malloc(sizeof(*cf));
	int rc = cf ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = ledger_conflict_open_get(t, &refs[i], LEDGER_F_OPTED_OUT, purposes[i], cf, e);
		if (rc == ERR_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc || cf->kind != LEDGER_CONFLICT_RESUBSCRIBE)
			continue;
		cf->status = LEDGER_CONFLICT_RESOLVED;
		cf->auto_resolved = true;
		cf->resolved_at = now;
		snprintf(cf->resolution, sizeof(cf->resolution), "%s", CONFLICT_REVERTED);
		snprintf(cf->resolved_by, sizeof(cf->resolved_by), "optsync");
		if ((rc = ledger_conflict_put(t, cf, e)) == 0)
			(*closed)++;
	}
	free(cf);
	return rc;
}

static int64_t push_backoff(uint32_t attempts)
{
	int64_t ms = 5000;
	for (uint32_t i = 1; i < attempts && ms < 3600000; i++)
		ms *= 2;
	return ms > 3600000 ? 3600000 : ms;
}

int64_t push_park_backoff(uint32_t attempts)
{
	int64_t ms = PUSH_PARK_FIRST_MS;
	for (uint32_t i = 1; i < attempts && ms < PUSH_PARK_MAX_MS; i++)
		ms *= 2;
	return ms > PUSH_PARK_MAX_MS ? PUSH_PARK_MAX_MS : ms;
}

int64_t push_parked_at(const struct ledger_push *q)
{
	return q->next_try - push_park_backoff(q->attempts); /* as push_failed set it */
}

static const char *up_type(const struct ledger_push *s)
{
	return ledger_object_name(s->record.object);
}

bool push_failed(struct ledger_push *q, const char *request_error, const struct sf_result *x,
                 int64_t now)
{
	q->attempts++;
	if (request_error || x->retryable) {
		q->next_try = now + push_backoff(q->attempts);
		snprintf(q->last_error, sizeof(q->last_error), "%s",
		         request_error ? request_error : x->status_code);
		return false;
	}
	q->parked = true;
	q->next_try = now + push_park_backoff(q->attempts);
	snprintf(q->last_error, sizeof(q->last_error), "%.63s: %.180s%s%.40s%s", x->status_code,
	         x->message, x->fields[0] ? " (fields " : "", x->fields, x->fields[0] ? ")" : "");
	return true;
}

static int results_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct results *r = ctx;
	r->ok = r->retry = r->parked = 0;
	r->nreverted = r->conflicts_reverted = 0; /* the callback may run again */
	memset(r->ok_by_object, 0, sizeof(r->ok_by_object));
	struct ledger_push *cur = malloc(sizeof(*cur));
	struct ledger_record *rec = malloc(sizeof(*rec));
	int rc = cur && rec ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		const struct ledger_push *s = &r->sent[i];
		bool ok = !r->request_failed && r->res[i].success;
		uint64_t version = 0; /* of the push queued now: changed meanwhile? */
		rc = ok ? ledger_push_version(t, s->record.object, s->record.id, &version, e)
		        : ledger_push_get(t, s->record.object, s->record.id, cur, e);
		if (rc == ERR_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		if (ok) {
			/* Salesforce holds what we wrote: it is what we will read back */
			int g = ledger_record_get(t, s->record.object, s->record.id, rec, e);
			if (g == 0) {
				uint32_t m = s->want.mask;
				facts_copy_group(&rec->seen, &s->want, m & ~LEDGER_F_OPTED_OUT);
				facts_copy_group(&rec->written, &s->want, m & ~LEDGER_F_OPTED_OUT);
				if (m & LEDGER_F_OPTED_OUT) {
					rec->seen.mask |= LEDGER_F_OPTED_OUT;
					rec->seen.opted_out = s->want.opted_out;
					rec->written.mask |= LEDGER_F_OPTED_OUT;
					rec->written.opted_out = s->want.opted_out;
				}
				for (uint8_t k = 0; k < s->want_purposes.n && rc == 0; k++)
					if (ledger_pflags_set(&rec->seen_purposes,
					                      s->want_purposes.v[k].name,
					                      s->want_purposes.v[k].out))
						rc = err_set(
						    e, ERR_LIMIT,
						    "%s %s: more than %d purpose checkboxes",
						    up_type(s), s->record.id, LEDGER_PFLAGS_MAX);
				rec->written_at = r->now;
				if (rc == 0)
					rc = ledger_record_put(t, rec, e);
			} else if (g != ERR_NOTFOUND) {
				rc = g;
			}
			if (rc == 0 && version == s->version)
				rc = ledger_push_delete(t, s->record.object, s->record.id, e);
			if (rc == 0 && (s->want.mask & LEDGER_F_OPTED_OUT) && s->want.opted_out) {
				r->rev_refs[r->nreverted] = s->record;
				r->rev_names[r->nreverted++] = "";
			}
			for (uint8_t k = 0; rc == 0 && k < s->want_purposes.n; k++)
				if (s->want_purposes.v[k].out) {
					r->rev_refs[r->nreverted] = s->record;
					r->rev_names[r->nreverted++] = s->want_purposes.v[k].name;
				}
			r->ok++;
			if (s->record.object < 3)
				r->ok_by_object[s->record.object]++;
			continue;
		}
		if (push_failed(cur, r->request_failed ? r->request_error : NULL, &r->res[i],
		                r->now))
			r->parked++;
		else
			r->retry++;
		rc = ledger_push_put(t, cur, e);
	}
	if (rc == 0 && r->nreverted)
		rc = close_reverted_pairs(t, r->rev_refs, r->rev_names, r->nreverted, r->now,
		                          &r->conflicts_reverted, e);
	free(cur);
	free(rec);
	return rc;
}

/* The opt-out, 4 authorization fields, 2 source fields, the purposes (an
 * opt-in box with its date). */
#define PUSH_VALUES_MAX (7 + 2 * LEDGER_PFLAGS_MAX)

static void fill_values(const struct config *cfg, const struct ledger_push *q, struct sf_value *v,
                        size_t *n, struct push_texts *x)
{
	char *date = x->date;
	const struct config_fields *f = &cfg->salesforce.fields;
	const struct ledger_facts *w = &q->want;
	*n = 0;
#define PUT_STR(field, s)                                                                          \
	do {                                                                                       \
		v[*n].name = (field);                                                              \
		v[*n].str = (s);                                                                   \
		v[*n].type = (s) && (s)[0] ? SF_STRING : SF_NULL;                                  \
		(*n)++;                                                                            \
	} while (0)
	if (w->mask & LEDGER_F_OPTED_OUT) {
		v[*n].name = f->opted_out;
		v[*n].type = SF_BOOL;
		v[*n].b = w->opted_out;
		(*n)++;
	}
	/* a basis is written whole or not at all: consent without its date or
	 * purpose, other without its description, would be invalid in
	 * Salesforce and read back as a conflict (rules 4, 5) */
	bool auth_whole = w->auth_type == LEDGER_AUTH_CONSENT
	                      ? w->consent_date && w->purpose[0]
	                      : w->auth_type != LEDGER_AUTH_OTHER || w->auth_other[0];
	bool source_whole = w->source_type != LEDGER_SOURCE_OTHER || w->source_other[0];
	if ((w->mask & LEDGER_F_AUTH_TYPE) && auth_whole) {
		PUT_STR(f->authorization_type, map_auth_to_sf(cfg, w->auth_type));
		if (w->auth_type == LEDGER_AUTH_CONSENT && w->consent_date)
			time_format_sf(w->consent_date, date);
		else
			date[0] = '\0';
		PUT_STR(f->consent_date, date);
		PUT_STR(f->purpose, w->auth_type == LEDGER_AUTH_CONSENT ? w->purpose : "");
		PUT_STR(f->authorization_other,
		        w->auth_type == LEDGER_AUTH_OTHER ? w->auth_other : "");
	}
	if ((w->mask & LEDGER_F_SOURCE_TYPE) && source_whole) {
		PUT_STR(f->source_type, map_source_to_sf(cfg, w->source_type));
		PUT_STR(f->source_other,
		        w->source_type == LEDGER_SOURCE_OTHER ? w->source_other : "");
	}
#undef PUT_STR
	for (uint8_t i = 0; i < q->want_purposes.n; i++) {
		/* a purpose taken out of the configuration since: not written */
		const struct config_purpose *cp =
		    config_purpose_find(cfg, q->want_purposes.v[i].name);
		bool out = q->want_purposes.v[i].out;
		if (cp && cp->sf_opt_in_field) {
			/* true = in; an opt-in sets its consent date too */
			v[*n].name = cp->sf_opt_in_field;
			v[*n].type = SF_BOOL;
			v[*n].b = !out;
			(*n)++;
			if (!out) {
				if (x->box_ms[i])
					time_format_sf(x->box_ms[i], x->box[i]);
				v[*n].name = cp->sf_consent_date_field;
				v[*n].type = x->box_ms[i] ? SF_STRING : SF_NULL;
				v[*n].str = x->box[i];
				(*n)++;
			}
			continue;
		}
		if (cp == NULL || cp->sf_field == NULL)
			continue;
		v[*n].name = cp->sf_field;
		v[*n].type = SF_BOOL;
		v[*n].b = out;
		(*n)++;
	}
}

/* The results of the rounds sent since the last write go in one write:
 * up to DRAIN_HOLD_ROUNDS rounds or DRAIN_HOLD_MS, whichever comes first.
 * A durable commit (an msync of the map) cost more than a round's changes:
 * at 1,000,000 pushes, one write per 4 rounds spent as much CPU in the
 * kernel as in optsync. What a crash loses of them is written again by a
 * later drain: the same writes, sent twice (at-least-once, as before). */
#define DRAIN_HOLD_ROUNDS 16
#define DRAIN_HOLD_MS     1000

struct drain_tally {
	size_t ok, retry, parked, reverted, by_object[3];
};

/* Write the results of sent[0..n) (res, or the request's failure). */
static int drain_record(struct conn *c, struct results *r, const struct ledger_push *sent,
                        const struct sf_result *res, size_t n, const char *request_error,
                        struct drain_tally *tl, struct err *e)
{
	r->sent = sent;
	r->res = res;
	r->n = n;
	r->request_failed = request_error != NULL;
	r->request_error = request_error;
	r->now = time_now_ms();
	int rc = ledger_write(c->l, results_txn, r, e);
	tl->ok += r->ok;
	tl->reverted += r->conflicts_reverted;
	for (int k = 0; k < 3; k++)
		tl->by_object[k] += r->ok_by_object[k];
	tl->retry += r->retry;
	tl->parked += r->parked;
	if (r->parked)
		log_warn("sync.parked",
		         "%zu push(es) failed permanently: parked, tried again when "
		         "the record changes in Salesforce, on `optsync pushes retry`, or "
		         "by themselves after a backoff (see optsync status)",
		         r->parked);
	return rc;
}

static int drain(struct conn *c, struct sf_client *sf, const struct conn_sync_opts *o,
                 struct conn_cycle_report *report, struct err *e)
{
	const size_t hold = SF_COLLECTION_MAX * DRAIN_HOLD_ROUNDS;
	struct due d = {0};
	struct ledger_push_mark marks[LEDGER_OBJ_LEAD + 1];
	memset(marks, 0, sizeof(marks));
	d.cap = SF_COLLECTION_MAX;
	struct ledger_push *sent = malloc(hold * sizeof(*sent));
	struct sf_result *res = malloc(hold * sizeof(*res));
	struct sf_update *up = malloc(SF_COLLECTION_MAX * sizeof(*up));
	struct sf_value(*vals)[PUSH_VALUES_MAX] = malloc(SF_COLLECTION_MAX * sizeof(*vals));
	struct push_texts *texts = malloc(SF_COLLECTION_MAX * sizeof(*texts));
	d.cfg = c->cfg;
	d.texts = texts;
	struct results r = {.rev_refs = malloc(hold * REVERTED_PER_PUSH * sizeof(*r.rev_refs)),
	                    .rev_names = malloc(hold * REVERTED_PER_PUSH * sizeof(*r.rev_names))};
	struct drain_tally tl = {0};
	size_t calls = 0;
	int rc = sent && res && up && vals && texts && r.rev_refs && r.rev_names
	             ? 0
	             : err_set(e, ERR_NOMEM, "out of memory");
	if (rc == 0 && o->dry_run) {
		d.items = sent;
		d.list = report->would_push = calloc(1, sizeof(*d.list));
		if (d.list == NULL) {
			rc = err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		d.now = time_now_ms();
		rc = ledger_read(c->l, read_due, &d, e);
		/* the consent rows go in calls of their own (at least; creates and
		 * updates are separate calls) */
		calls = (d.due_total + SF_COLLECTION_MAX - 1) / SF_COLLECTION_MAX +
		        (d.due_consent + SF_COLLECTION_MAX - 1) / SF_COLLECTION_MAX;
		d.due_total += d.due_consent;
		memcpy(tl.by_object, d.due_by_object, sizeof(tl.by_object));
		goto out;
	}
	d.marks = marks;
	size_t held = 0;
	int64_t held_since = 0;
	for (int round = 0; rc == 0 && round < 100000 && !(c->stop && *c->stop); round++) {
		d.now = time_now_ms();
		d.items = sent + held;
		if ((rc = ledger_read(c->l, read_due, &d, e)) || d.n == 0)
			break;
		for (size_t i = 0; i < d.n; i++) {
			up[i].type = ledger_object_name(d.items[i].record.object);
			up[i].id = d.items[i].record.id;
			up[i].values = vals[i];
			fill_values(c->cfg, &d.items[i], vals[i], &up[i].nvalues, &texts[i]);
		}
		calls++;
		struct err se = {0};
		int src = sf_update(sf, up, d.n, res + held, &se);
		if (src) {
			/* the rounds held, then this one with the request's failure */
			if (held)
				rc = drain_record(c, &r, sent, res, held, NULL, &tl, e);
			int frc =
			    rc ? rc : drain_record(c, &r, d.items, res + held, d.n, se.msg, &tl, e);
			if (rc == 0 && frc == 0) {
				*e = se;
				rc = src;
			} else if (rc == 0) {
				rc = frc;
			}
			held = 0;
			break;
		}
		if (held == 0)
			held_since = time_now_ms();
		held += d.n;
		if (held + SF_COLLECTION_MAX > hold ||
		    time_now_ms() - held_since >= DRAIN_HOLD_MS) {
			rc = drain_record(c, &r, sent, res, held, NULL, &tl, e);
			held = 0;
		}
	}
	if (held) {
		struct err we = {0};
		int wrc = drain_record(c, &r, sent, res, held, NULL, &tl, &we);
		if (rc == 0 && wrc) {
			*e = we;
			rc = wrc;
		}
	}
out:
	report->pushed = true;
	report->push.would_push = d.due_total;
	report->push.collection_calls = calls;
	report->push.succeeded = tl.ok;
	for (int k = 0; k < 3; k++)
		report->push.by_object[k] = tl.by_object[k];
	report->push.retrying = tl.retry;
	report->push.parked_now = tl.parked;
	report->push.conflicts_reverted = tl.reverted;
	free(r.rev_refs);
	free(r.rev_names);
	free(sent);
	free(up);
	free(vals);
	free(texts);
	free(res);
	return rc;
}

/* ---- the cycle ---- */

struct save_report {
	const char *json;   /* the cycle's report, NULL when there is none */
	struct sf_stats st; /* api_max 0: no Salesforce usage known */
	int rc;             /* the cycle's result */
	const char *error;  /* its message when it failed */
	int64_t started;
};

static int save_report(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct save_report *s = ctx;
	int rc = 0;
	if (s->json)
		rc = ledger_meta_put(t, META_LAST_CYCLE, s->json, strlen(s->json), e);
	if (rc == 0 && s->st.api_max > 0) {
		char u[64];
		int l = snprintf(u, sizeof(u), "%ld/%ld", s->st.api_used, s->st.api_max);
		rc = ledger_meta_put(t, META_API_USAGE, u, (size_t)l, e);
	}
	struct conn_health h;
	if (rc == 0)
		rc = health_get(t, &h, e);
	if (rc == 0) {
		if (s->rc == 0) {
			h.last_success_at = s->started;
			h.failures_in_a_row = 0;
		} else {
			h.failures_in_a_row++;
			h.last_error_at = s->started;
			snprintf(h.last_error, sizeof(h.last_error), "%s", s->error);
		}
		rc = health_put(t, &h, e);
	}
	return rc;
}

/* Save the report (whole, or its summary when too large: never cut, cut
 * JSON would read back as nothing), the API usage and the health. */
static void save_cycle(struct conn *c, const struct conn_cycle_report *r, const struct sf_stats *st)
{
	cJSON *doc = NULL;
	struct err re;
	char *json = NULL;
	if (conn_render_cycle(r, c->cfg, &doc, &re) == 0) {
		json = cJSON_PrintUnformatted(doc);
		cJSON_Delete(doc);
	}
	if (json && strlen(json) > LEDGER_META_MAX) {
		log_warn("sync.report",
		         "the cycle report is %zu bytes, more than the ledger keeps (%u); "
		         "keeping its summary",
		         strlen(json), LEDGER_META_MAX);
		cJSON *sum = render_cycle_summary(r, strlen(json));
		free(json);
		json = sum ? cJSON_PrintUnformatted(sum) : NULL;
		cJSON_Delete(sum);
	}
	if (json == NULL)
		log_warn("sync.report", "out of memory: the cycle report is not saved");
	struct save_report s = {json, {0}, r->result, r->error, r->started_at};
	if (st)
		s.st = *st;
	struct err se;
	if (ledger_write(c->l, save_report, &s, &se))
		log_warn("sync.report", "could not save the cycle report: %s", se.msg);
	free(json);
}

/* A cycle's parts (the consent objects' lookup, each object's pull, the
 * drains) each do their own work: one that fails leaves the others to do
 * theirs (rules 7 and 8: pushes drain whenever Salesforce answers, even in
 * a cycle whose pull failed), unless its failure is one the next part
 * would meet too. */
struct cycle_run {
	struct conn *c;
	struct sf_client *sf;
	struct conn_cycle_report *r;
	struct err *e; /* the cycle's error: its first failure, or the one that stopped it */
	int rc;
	bool stopped;
};

/* Why nothing more is tried after a part failed with rc, or NULL: the
 * ledger fails, memory ran out, a signal came, or Salesforce itself does
 * not answer. */
static const char *stop_reason(const struct cycle_run *x, int rc)
{
	if (x->c->stop && *x->c->stop)
		return "stopped by a signal";
	if (rc == ERR_LEDGER)
		return "the ledger failed";
	if (rc == ERR_NOMEM)
		return "out of memory";
	if (rc != ERR_REMOTE && rc != ERR_RETRY && rc != ERR_LIMIT)
		return "an error optsync did not expect";
	switch (x->sf ? sf_last_reach(x->sf) : SF_ANSWERED) {
	case SF_UNREACHABLE:
		return "Salesforce does not answer";
	case SF_NO_SESSION:
		return "Salesforce refuses optsync's session";
	case SF_OUT_OF_CALLS:
		return "the org's API requests for the day are used up";
	default:
		return NULL;
	}
}

/* The outcome of one part: rc, with its message in pe. The first failure
 * is the cycle's (one that stops the cycle takes its place: what stopped
 * the cycle is what to fix first), and its message is kept unchanged. */
static void cycle_part(struct cycle_run *x, int rc, const struct err *pe)
{
	if (rc == 0 || x->stopped)
		return;
	const char *why = stop_reason(x, rc);
	if (x->rc == 0 || why) {
		x->rc = rc;
		*x->e = *pe;
	}
	if (why) {
		x->stopped = true;
		x->r->stopped = why;
	}
}

/* The configured objects the cycle stopped before: named as skipped. */
static void note_skipped(struct conn_cycle_report *r, int object)
{
	for (size_t i = 0; i < r->norder; i++)
		if ((int)r->order[i] == object)
			return;
	if (object > 0 && object < 4 && r->norder < 4) {
		r->pull[object].skipped = true;
		r->order[r->norder++] = (enum conn_object)object;
	}
}

/* One cycle on c; a dry run (o->dry_run) is this on a copy of the ledger
 * (conn_sync_once), where it writes nothing to Salesforce. */
static int cycle(struct conn *c, const struct conn_sync_opts *o, struct conn_cycle_report *r,
                 struct err *e)
{
	int64_t started = time_now_ms();
	r->started_at = started;
	r->dry_run = o->dry_run;
	r->full = o->full;
	struct cycle_run x = {c, NULL, r, e, 0, false};
	struct err pe = {0};
	int rc = o->dry_run ? 0 : ledger_sync_lock(c->l, "optsync sync", &pe);
	if (rc == 0)
		rc = conn_sf(c, &x.sf, &pe);
	if (rc) {
		x.rc = rc;
		*e = pe;
		x.stopped = true;
	}
	/* the consent objects first (the pulls select IndividualId when they
	 * are there): missing, they are named in plain words, and the rest of
	 * the cycle goes on */
	if (!x.stopped && (rc = consent_prepare(c, x.sf, r, &pe)) && !r->consent_error[0]) {
		str_copy(r->pull[CONN_OBJ_CONSENT].error, sizeof(r->pull[CONN_OBJ_CONSENT].error),
		         pe.msg);
		r->order[r->norder++] = CONN_OBJ_CONSENT;
	}
	cycle_part(&x, rc, &pe);
	for (size_t i = 0; !x.stopped && i < c->cfg->salesforce.nobjects; i++)
		cycle_part(
		    &x, pull_object(c, x.sf, object_of(c->cfg->salesforce.objects[i]), o, r, &pe),
		    &pe);
	if (!x.stopped)
		cycle_part(&x, consent_pull(c, x.sf, o, r, &pe), &pe);
	if (r->consent_error[0])
		log_error("sync.consent", "%s", r->consent_error);
	if (!x.stopped)
		cycle_part(&x, drain(c, x.sf, o, r, &pe), &pe);
	if (!x.stopped && !o->dry_run)
		cycle_part(&x, consent_drain(c, x.sf, r, &pe), &pe);
	if (x.stopped && r->stopped) {
		for (size_t i = 0; i < c->cfg->salesforce.nobjects; i++)
			note_skipped(r, object_of(c->cfg->salesforce.objects[i]));
	}
	r->partial = x.rc != 0 && !x.stopped;
	if (!x.stopped && !o->dry_run) {
		/* housekeeping: a failure is reported, the cycle itself succeeded */
		struct err re = {0};
		struct ledger_retention_report rep;
		if (conn_retention_if_due(c, &r->retention.ran, &rep, &re)) {
			log_warn("retention.run", "retention failed: %s", re.msg);
			r->retention.failed = true;
			snprintf(r->retention.error, sizeof(r->retention.error), "%s", re.msg);
		} else if (r->retention.ran) {
			r->retention.events = rep.events;
			r->retention.persons = rep.persons;
			r->retention.conflicts = rep.conflicts;
			r->retention.event_seq = rep.event_seq;
		}
	}
	rc = x.rc;
	if (!o->dry_run && !c->owns_ledger)
		ledger_sync_unlock(c->l);
	r->finished_at = time_now_ms();
	r->result = rc;
	if (rc)
		snprintf(r->error, sizeof(r->error), "%s", e->msg);
	struct sf_stats st;
	if (x.sf) {
		sf_stats_get(x.sf, &st);
		r->api_known = true;
		r->api.requests = st.requests;
		r->api.token_calls = st.token_calls;
		r->api.retries = st.retries;
		r->api.daily_used = st.api_max > 0 ? st.api_used : 0;
		r->api.daily_max = st.api_max > 0 ? st.api_max : 0;
	}
	if (!o->dry_run && rc != ERR_LEDGER)
		save_cycle(c, r, x.sf ? &st : NULL);
	if (rc && r->partial)
		log_warn("sync.cycle", "cycle failed in part after %lld ms (the rest was done): %s",
		         (long long)(time_now_ms() - started), e->msg);
	else if (rc)
		log_warn("sync.cycle", "cycle failed after %lld ms: %s",
		         (long long)(time_now_ms() - started), e->msg);
	else
		log_info("sync.cycle", "cycle done in %lld ms",
		         (long long)(time_now_ms() - started));
	return rc;
}

int conn_own_ledger(struct conn *c, struct err *e)
{
	int rc = ledger_sync_lock(c->l, "optsync run", e);
	if (rc == 0)
		c->owns_ledger = true;
	return rc;
}

/* A dry run: the real cycle on a compacted copy of the ledger, beside it,
 * with Salesforce writes left out. Page after page the copy changes as the
 * ledger would, so the report names every write the real cycle would make,
 * those the pull itself queues included. */
static int dry_cycle(struct conn *c, const struct conn_sync_opts *o, struct conn_cycle_report *r,
                     struct err *e)
{
	size_t pl = strlen(c->cfg->state.path);
	char *dir = malloc(pl + 32);
	if (dir == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	snprintf(dir, pl + 32, "%s.dry-run-XXXXXX", c->cfg->state.path);
	if (mkdtemp(dir) == NULL) {
		int rc =
		    err_sys(e, ERR_IO, errno,
		            "a dry run works on a copy of the ledger, and cannot make %s", dir);
		free(dir);
		return rc;
	}
	struct sf_client *sf = NULL;
	struct conn *copy = NULL;
	struct config cfg = *c->cfg;
	cfg.state.path = dir;
	int rc = conn_sf(c, &sf, e);
	if (rc == 0)
		rc = ledger_copy(c->l, dir, e);
	if (rc == 0)
		rc = conn_open(&copy, &cfg, false, c->stop, e);
	if (rc == 0) {
		copy->sf = sf; /* borrowed: one login for both */
		rc = cycle(copy, o, r, e);
		copy->sf = NULL;
	}
	conn_close(copy);
	if (ledger_remove_dir(dir))
		log_warn("sync.dry_run", "could not remove the dry run's copy %s", dir);
	free(dir);
	return rc;
}

void conn_cycle_report_free(struct conn_cycle_report *r)
{
	if (r == NULL)
		return;
	if (r->would_push)
		free(r->would_push->items);
	free(r->would_push);
	free(r);
}

int conn_sync_once(struct conn *c, const struct conn_sync_opts *o,
                   struct conn_cycle_report **report, struct err *e)
{
	struct conn_cycle_report *r = *report = calloc(1, sizeof(*r));
	if (r == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	return o->dry_run ? dry_cycle(c, o, r, e) : cycle(c, o, r, e);
}
