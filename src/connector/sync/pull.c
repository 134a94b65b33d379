/* The pull of one object: SOQL pages from its cursor, held and applied
 * several at a time, the cursor moved in the same commit (rules 6-8). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "connector/internal.h"
#include "connector/sync/sync.h"
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

/* Reading a held page back (held.c writes it): per record, so here,
 * where the pull's loop can inline it. */
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
