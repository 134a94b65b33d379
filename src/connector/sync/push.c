/* The push drain: the due writes in collections of 200, their results in
 * one write per few rounds (rules 4, 6, 7). */
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

int push_drain(struct conn *c, struct sf_client *sf, const struct conn_sync_opts *o,
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
