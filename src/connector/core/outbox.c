/* The outbox: queueing a write to a record, coalescing it with what is
 * queued, correcting it, releasing a parked one, and spreading a person's
 * change to all of their records (rules 1, 6, 7). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/log.h"
#include "util/timefmt.h"

/* Queue a write to one record, coalescing with what is queued already:
 * the fields in mask (from p's facts, the opt-out as opted_out_value) and,
 * when purpose is given, that purpose's checkbox as purpose_out. */
static int push_queue(struct ledger_txn *t, const struct ledger_person *p,
                      const struct ledger_recref *ref, uint32_t mask, bool opted_out_value,
                      const char *purpose, bool purpose_out, struct apply_stats *st, struct err *e)
{
	struct ledger_push *q = malloc(sizeof(*q));
	if (q == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_push_get(t, ref->object, ref->id, q, e);
	if (rc == ERR_NOTFOUND) {
		memset(q, 0, sizeof(*q));
		q->record = *ref;
		ledger_facts_init(&q->want);
		q->enqueued_at = time_now_ms();
		rc = 0;
	}
	if (rc == 0 && purpose && ledger_pflags_set(&q->want_purposes, purpose, purpose_out))
		rc = err_set(e, ERR_LIMIT, "a push to %s %s names more than %d purposes",
		             ledger_object_name(ref->object), ref->id, LEDGER_PFLAGS_MAX);
	if (rc == 0) {
		memcpy(q->person, p->key, LEDGER_KEY_LEN);
		facts_copy_group(&q->want, &p->facts, mask & ~LEDGER_F_OPTED_OUT);
		if (mask & LEDGER_F_OPTED_OUT) {
			q->want.mask |= LEDGER_F_OPTED_OUT;
			q->want.opted_out = opted_out_value;
		}
		ledger_push_renew(q);
		rc = ledger_push_put(t, q, e);
		if (rc == 0 && st)
			st->pushes_queued++;
	}
	free(q);
	return rc;
}

int push_enqueue(struct ledger_txn *t, const struct ledger_person *p,
                 const struct ledger_recref *ref, uint32_t mask, bool opted_out_value,
                 struct apply_stats *st, struct err *e)
{
	return push_queue(t, p, ref, mask, opted_out_value, NULL, false, st, e);
}

int push_enqueue_purpose(struct ledger_txn *t, const struct ledger_person *p,
                         const struct ledger_recref *ref, const char *purpose, bool out,
                         struct apply_stats *st, struct err *e)
{
	return push_queue(t, p, ref, 0, false, purpose, out, st, e);
}

/* A write still queued for ref that says the other value than the person
 * now holds (of all email: purpose NULL; or of a purpose) is made to say
 * the person's: it was queued before a later change (an opt-out, then a
 * re-subscribe; an opt-in, then an opt-out read from Salesforce), and
 * written as it was it would undo that change. q is scratch. */
static int queued_correct(struct ledger_txn *t, const struct ledger_person *p,
                          const struct ledger_recref *ref, const char *purpose, bool out,
                          struct ledger_push *q, struct apply_stats *st, struct err *e)
{
	int rc = ledger_push_get(t, ref->object, ref->id, q, e);
	if (rc)
		return rc == ERR_NOTFOUND ? 0 : rc;
	if (purpose == NULL)
		return (q->want.mask & LEDGER_F_OPTED_OUT) && q->want.opted_out != out
		           ? push_enqueue(t, p, ref, LEDGER_F_OPTED_OUT, out, st, e)
		           : 0;
	int w = ledger_pflags_get(&q->want_purposes, purpose); /* 1: out */
	return w >= 0 && (w == 1) != out ? push_enqueue_purpose(t, p, ref, purpose, out, st, e) : 0;
}

int push_queued_correct(struct ledger_txn *t, const struct ledger_person *p,
                        const struct ledger_recref *ref, const char *purpose, bool out,
                        struct apply_stats *st, struct err *e)
{
	struct ledger_push *q = malloc(sizeof(*q));
	if (q == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = queued_correct(t, p, ref, purpose, out, q, st, e);
	free(q);
	return rc;
}

int push_release(struct ledger_txn *t, const struct ledger_recref *ref, bool *released,
                 struct err *e)
{
	*released = false;
	struct ledger_push *q = malloc(sizeof(*q));
	if (q == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_push_get(t, ref->object, ref->id, q, e);
	if (rc == ERR_NOTFOUND) {
		rc = 0;
	} else if (rc == 0 && q->parked) {
		q->parked = false;
		q->next_try = 0;
		rc = ledger_push_put(t, q, e);
		*released = rc == 0;
	}
	free(q);
	return rc;
}

/* A read of ref's record at modstamp (not older than the last read): its
 * parked push, if any, back in the queue when the record changed since
 * Salesforce refused the push, or may have. changed: it did (a greater
 * SystemModstamp, other values). Otherwise, as SystemModstamp keeps whole
 * seconds, an edit in the second of the refusal or later may be one made
 * after it: tried once more (a refusal again parks it anew, at a later
 * time). */
int push_release_on_read(struct ledger_txn *t, const struct ledger_recref *ref, int64_t modstamp,
                         bool changed, struct err *e)
{
	struct ledger_push *q = malloc(sizeof(*q));
	if (q == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_push_get(t, ref->object, ref->id, q, e);
	if (rc == ERR_NOTFOUND) {
		rc = 0;
	} else if (rc == 0 && q->parked &&
	           (changed || modstamp / 1000 >= push_parked_at(q) / 1000)) {
		q->parked = false;
		q->next_try = 0;
		rc = ledger_push_put(t, q, e);
	}
	free(q);
	return rc;
}

/* ref into r when optsync may write to it: 1, or 0 when it is except,
 * converted or deleted; an ERR_* code on failure. A record linked but never
 * read counts as writable (the push will tell). */
static int writable_record(struct ledger_txn *t, const struct ledger_recref *ref,
                           const struct ledger_recref *except, struct ledger_record *r,
                           struct err *e)
{
	if (except && except->object == ref->object && strcmp(except->id, ref->id) == 0)
		return 0;
	int rc = ledger_record_get(t, ref->object, ref->id, r, e);
	if (rc == ERR_NOTFOUND) {
		r->flags = 0;
		ledger_facts_init(&r->seen);
		r->seen_purposes.n = 0;
		return 1;
	}
	if (rc)
		return rc;
	return (r->flags & (LEDGER_RECORD_CONVERTED | LEDGER_RECORD_DELETED)) ? 0 : 1;
}

/* A spread over the person's records (push_spread, purpose_push_spread):
 * one record read and at most one push per record, whatever their number. */
struct spread {
	struct ledger_txn *t;
	const struct ledger_person *p;
	const struct ledger_recref *except;
	struct ledger_record *r;
	struct ledger_push *q; /* push_spread: scratch */
	uint32_t mask;         /* push_spread: the fields */
	const char *purpose;   /* purpose_push_spread: the purpose, and */
	bool out;              /* its checkbox */
	bool opt_in_box;       /* and whether that box is an opt-in one */
	struct apply_stats *st;
	struct err *e;
};

static int spread_facts(const struct ledger_recref *ref, void *ctx)
{
	struct spread *x = ctx;
	const struct ledger_person *p = x->p;
	struct ledger_record *r = x->r;
	int w = writable_record(x->t, ref, x->except, r, x->e);
	if (w <= 0)
		return w;
	uint32_t need = 0, mask = x->mask;
	if ((mask & LEDGER_F_OPTED_OUT) &&
	    !((r->seen.mask & LEDGER_F_OPTED_OUT) && r->seen.opted_out == p->facts.opted_out))
		need |= LEDGER_F_OPTED_OUT;
	if ((mask & LEDGER_F_AUTH_TYPE) &&
	    !facts_group_equal(&r->seen, &p->facts, LEDGER_F_AUTH_TYPE))
		need |= AUTH_GROUP;
	if ((mask & LEDGER_F_SOURCE_TYPE) &&
	    !facts_group_equal(&r->seen, &p->facts, LEDGER_F_SOURCE_TYPE))
		need |= SOURCE_GROUP;
	int rc = need ? push_enqueue(x->t, p, ref, need, p->facts.opted_out, x->st, x->e) : 0;
	/* the record says what the person says, but a write still queued for
	 * it may say the other (an opt-out not sent yet, then a re-subscribe) */
	if (rc == 0 && (mask & LEDGER_F_OPTED_OUT) && !(need & LEDGER_F_OPTED_OUT))
		rc = queued_correct(x->t, p, ref, NULL, p->facts.opted_out, x->q, x->st, x->e);
	return rc;
}

static int spread_purpose(const struct ledger_recref *ref, void *ctx)
{
	struct spread *x = ctx;
	int w = writable_record(x->t, ref, x->except, x->r, x->e);
	if (w <= 0)
		return w;
	/* an opt-out goes wherever the record is not known to say out; an
	 * opt-in unticks only opt-out boxes known ticked, and ticks an opt-in
	 * box (with its date) wherever it is not known ticked */
	int box = ledger_pflags_get(&x->r->seen_purposes, x->purpose); /* 1: says out */
	if (x->out ? box != 1 : x->opt_in_box ? box != 0 : box == 1)
		return push_enqueue_purpose(x->t, x->p, ref, x->purpose, x->out, x->st, x->e);
	/* as spread_facts: a queued write that says the other value */
	return queued_correct(x->t, x->p, ref, x->purpose, x->out, x->q, x->st, x->e);
}

/* fn over each of x->p's records, with the spread's scratch. */
static int spread_each(struct spread *x, int (*fn)(const struct ledger_recref *, void *))
{
	x->r = malloc(sizeof(*x->r));
	x->q = malloc(sizeof(*x->q));
	int rc = x->r && x->q ? ledger_person_records_each(x->t, x->p, fn, x, x->e)
	                      : err_set(x->e, ERR_NOMEM, "out of memory");
	free(x->r);
	free(x->q);
	return rc;
}

int push_spread(struct ledger_txn *t, const struct ledger_person *p,
                const struct ledger_recref *except, uint32_t mask, struct apply_stats *st,
                struct err *e)
{
	struct spread x = {.t = t, .p = p, .except = except, .mask = mask, .st = st, .e = e};
	return spread_each(&x, spread_facts);
}

int purpose_push_spread(struct ledger_txn *t, const struct ledger_person *p,
                        const struct ledger_recref *except, const char *purpose, bool out,
                        bool opt_in_box, struct apply_stats *st, struct err *e)
{
	struct spread x = {.t = t,
	                   .p = p,
	                   .except = except,
	                   .purpose = purpose,
	                   .out = out,
	                   .opt_in_box = opt_in_box,
	                   .st = st,
	                   .e = e};
	return spread_each(&x, spread_purpose);
}
