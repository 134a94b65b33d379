/* The sync rules (docs/sync-rules.md), applied inside ledger transactions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

/* ---- reading a Salesforce record ---- */

static int text_field(const struct sf_record *r, const char *name, char *dst, size_t cap,
                      uint32_t bit, struct ledger_facts *f, uint32_t *invalid, uint32_t group)
{
	const struct sf_value *v = sf_record_get(r, name);
	dst[0] = '\0';
	if (v == NULL || v->type == SF_NULL)
		return 0;
	if (v->type != SF_STRING || strlen(v->str) >= cap) {
		*invalid |= group;
		return 0;
	}
	memcpy(dst, v->str, strlen(v->str) + 1);
	if (dst[0])
		f->mask |= bit;
	return 1;
}

void read_sf_record(const struct config *cfg, const struct sf_record *r, int64_t now,
                    struct ledger_facts *f, uint32_t *invalid, char *raw, size_t rawcap)
{
	const struct config_fields *fl = &cfg->salesforce.fields;
	ledger_facts_init(f);
	*invalid = 0;
	raw[0] = '\0';
	const struct sf_value *v = sf_record_get(r, fl->opted_out);
	if (v && v->type == SF_BOOL) {
		f->mask |= LEDGER_F_OPTED_OUT;
		f->opted_out = v->b;
	}
	v = sf_record_get(r, fl->authorization_type);
	if (v && v->type == SF_STRING && v->str[0]) {
		int t = map_auth_from_sf(cfg, v->str);
		if (t < 0) {
			*invalid |= AUTH_GROUP;
			snprintf(raw, rawcap, "%s", v->str);
		} else {
			f->mask |= LEDGER_F_AUTH_TYPE;
			f->auth_type = (uint8_t)t;
		}
	}
	v = sf_record_get(r, fl->consent_date);
	if (v && v->type == SF_STRING && v->str[0]) {
		int64_t ms;
		if (time_parse(v->str, &ms)) {
			*invalid |= AUTH_GROUP;
			snprintf(raw, rawcap, "consent date %s", v->str);
		} else {
			f->mask |= LEDGER_F_CONSENT_DATE;
			f->consent_date = ms;
		}
	}
	text_field(r, fl->purpose, f->purpose, sizeof(f->purpose), LEDGER_F_PURPOSE, f, invalid,
	           AUTH_GROUP);
	text_field(r, fl->authorization_other, f->auth_other, sizeof(f->auth_other),
	           LEDGER_F_AUTH_OTHER, f, invalid, AUTH_GROUP);
	v = sf_record_get(r, fl->source_type);
	if (v && v->type == SF_STRING && v->str[0]) {
		int t = map_source_from_sf(cfg, v->str);
		if (t < 0) {
			*invalid |= SOURCE_GROUP;
			snprintf(raw, rawcap, "%s", v->str);
		} else {
			f->mask |= LEDGER_F_SOURCE_TYPE;
			f->source_type = (uint8_t)t;
		}
	}
	text_field(r, fl->source_other, f->source_other, sizeof(f->source_other),
	           LEDGER_F_SOURCE_OTHER, f, invalid, SOURCE_GROUP);
	char why[200];
	if (!(*invalid & AUTH_GROUP) &&
	    !facts_valid(f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why))) {
		*invalid |= AUTH_GROUP;
		facts_group_text(f, AUTH_GROUP, raw, rawcap);
		size_t n = strlen(raw);
		snprintf(raw + n, rawcap - n, " (%s)", why);
	}
	if (!(*invalid & SOURCE_GROUP) &&
	    !facts_valid(f, LEDGER_F_SOURCE_TYPE, now, why, sizeof(why))) {
		*invalid |= SOURCE_GROUP;
		facts_group_text(f, SOURCE_GROUP, raw, rawcap);
		size_t n = strlen(raw);
		snprintf(raw + n, rawcap - n, " (%s)", why);
	}
}

/* ---- events, the feed and pushes ---- */

static int record_event(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                        bool store_person, struct err *e)
{
	int rc =
	    store_person ? ledger_event_append(t, p, ev, e) : ledger_event_append_held(t, p, ev, e);
	if (rc || p == NULL)
		return rc;
	switch (ev->kind) {
	case LEDGER_EV_OPTOUT:
	case LEDGER_EV_OPTIN:
	case LEDGER_EV_AUTHORIZATION:
	case LEDGER_EV_SOURCE:
	case LEDGER_EV_ERASURE: {
		struct ledger_change ch;
		memset(&ch, 0, sizeof(ch));
		ch.event_seq = ev->seq;
		ch.at = ev->at;
		ch.kind = ev->kind;
		ch.origin = ev->origin;
		memcpy(ch.person, p->key, LEDGER_KEY_LEN);
		ch.opted_out = p->facts.opted_out;
		ch.auth_type = (p->facts.mask & LEDGER_F_AUTH_TYPE) ? p->facts.auth_type : 0;
		ch.consent_date =
		    (p->facts.mask & LEDGER_F_CONSENT_DATE) ? p->facts.consent_date : 0;
		ch.source_type = (p->facts.mask & LEDGER_F_SOURCE_TYPE) ? p->facts.source_type : 0;
		if (ev->purpose_name[0] && ev->kind != LEDGER_EV_ERASURE) {
			/* a purpose's change: the global opt-out above is unchanged */
			snprintf(ch.purpose_name, sizeof(ch.purpose_name), "%s", ev->purpose_name);
			ch.purpose_status =
			    ev->kind == LEDGER_EV_OPTIN ? LEDGER_PURPOSE_IN : LEDGER_PURPOSE_OUT;
		}
		return ledger_change_append(t, &ch, e);
	}
	default:
		return 0;
	}
}

int event_record(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                 struct err *e)
{
	return record_event(t, p, ev, true, e);
}

/* An event while applying a pulled record, whose person apply_sf_record
 * stores once at its end. */
static int event_record_held(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                             struct err *e)
{
	return record_event(t, p, ev, false, e);
}

static void event_about(struct ledger_event *ev, int kind, int origin, const char *actor,
                        const struct ledger_recref *ref, int64_t at)
{
	ledger_event_init(ev);
	ev->kind = (uint8_t)kind;
	ev->origin = (uint8_t)origin;
	ev->at = at;
	snprintf(ev->actor, sizeof(ev->actor), "%s", actor);
	if (ref)
		ev->record = *ref;
}

int purpose_optout_from_sf(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                           const struct ledger_recref *ref, const char *purpose, const char *reason,
                           int64_t at, bool held, struct apply_stats *st, struct err *e)
{
	int64_t now = time_now_ms();
	event_about(ev, LEDGER_EV_OPTOUT, LEDGER_ORIGIN_SALESFORCE, "salesforce", ref, now);
	snprintf(ev->purpose_name, sizeof(ev->purpose_name), "%s", purpose);
	if (reason)
		snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	p->updated_at = now;
	int rc = record_event(t, p, ev, !held, e);
	if (rc == 0)
		rc = purpose_status_put(t, p->key, purpose, LEDGER_PURPOSE_OUT, at ? at : now,
		                        LEDGER_ORIGIN_SALESFORCE, 0, NULL, ev->seq, e);
	if (rc == 0)
		st->purpose_optouts_in++;
	return rc;
}

int purpose_optin_from_sf(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                          const struct ledger_recref *ref, const char *purpose,
                          int64_t consent_date, const char *evidence_ref, const char *reason,
                          int64_t at, bool held, struct apply_stats *st, struct err *e)
{
	int64_t now = time_now_ms();
	event_about(ev, LEDGER_EV_OPTIN, LEDGER_ORIGIN_SALESFORCE, "salesforce", ref, now);
	snprintf(ev->purpose_name, sizeof(ev->purpose_name), "%s", purpose);
	ev->facts.mask = LEDGER_F_CONSENT_DATE;
	ev->facts.consent_date = consent_date;
	snprintf(ev->evidence_ref, sizeof(ev->evidence_ref), "%s", evidence_ref);
	if (reason)
		snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
	p->updated_at = now;
	int rc = record_event(t, p, ev, !held, e);
	if (rc == 0)
		rc = purpose_status_put(t, p->key, purpose, LEDGER_PURPOSE_IN, at ? at : now,
		                        LEDGER_ORIGIN_SALESFORCE, consent_date, evidence_ref,
		                        ev->seq, e);
	if (rc == 0)
		st->purpose_optins_in++;
	return rc;
}

void undated_note(struct apply_stats *st, int object, const char *id, const char *purpose,
                  const char *missing)
{
	st->purpose_optins_nodate++;
	struct conn_undated_list *l = st->undated;
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].object == (enum conn_object)object && strcmp(l->v[i].id, id) == 0 &&
		    strcmp(l->v[i].purpose, purpose) == 0)
			return; /* named already (a page applied again, an overlap read) */
	if (l->n == CONN_UNDATED_MAX)
		return;
	struct conn_undated *u = &l->v[l->n++];
	u->object = (enum conn_object)object;
	snprintf(u->id, sizeof(u->id), "%s", id);
	snprintf(u->purpose, sizeof(u->purpose), "%s", purpose);
	snprintf(u->missing, sizeof(u->missing), "%s", missing);
}

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
static int push_release_on_read(struct ledger_txn *t, const struct ledger_recref *ref,
                                int64_t modstamp, bool changed, struct err *e)
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

static const char *conflict_field_word(uint32_t field)
{
	return field == LEDGER_F_OPTED_OUT   ? "opt-out"
	       : field == LEDGER_F_AUTH_TYPE ? "authorization"
	                                     : "source";
}

/* A conflict seen again while it is still open (the record went back and
 * forth in Salesforce): the one open conflict of the record, field and
 * purpose is kept, with the values Salesforce and optsync hold now, and the
 * repeat is an event of the person's history naming it. */
static int conflict_again(struct ledger_txn *t, struct ledger_person *p, struct ledger_conflict *cf,
                          struct ledger_event *ev, const char *local, const char *sf, int64_t now,
                          struct err *e)
{
	int rc = 0;
	if (strcmp(cf->local_value, local) != 0 || strcmp(cf->sf_value, sf) != 0) {
		snprintf(cf->local_value, sizeof(cf->local_value), "%s", local);
		snprintf(cf->sf_value, sizeof(cf->sf_value), "%s", sf);
		if ((rc = ledger_conflict_put(t, cf, e)))
			return rc;
	}
	event_about(ev, LEDGER_EV_CONFLICT, LEDGER_ORIGIN_SALESFORCE, "salesforce", &cf->record,
	            now);
	ev->conflict_id = cf->id;
	if (cf->purpose_name[0])
		snprintf(ev->purpose_name, sizeof(ev->purpose_name), "%s", cf->purpose_name);
	snprintf(ev->reason, sizeof(ev->reason),
	         "%s conflict on %s%s%s seen again: Salesforce has %s, optsync has %s; still open "
	         "as conflict %llu",
	         ledger_conflict_kind_name(cf->kind), conflict_field_word(cf->field),
	         cf->purpose_name[0] ? " of " : "", cf->purpose_name, sf, local,
	         (unsigned long long)cf->id);
	return event_record(t, p, ev, e);
}

static int conflict_add(struct ledger_txn *t, struct ledger_person *p,
                        const struct ledger_recref *ref, int kind, uint32_t field,
                        const char *local, const char *sf, bool auto_resolved,
                        const char *resolution, int64_t now, const char *purpose, struct err *e)
{
	struct ledger_conflict *cf = calloc(1, sizeof(*cf));
	struct ledger_event *ev = malloc(sizeof(*ev));
	int rc = 0;
	if (cf == NULL || ev == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!auto_resolved) {
		/* one open conflict per record, field and purpose */
		rc = ledger_conflict_open_get(t, ref, field, purpose, cf, e);
		if (rc == 0) {
			rc = conflict_again(t, p, cf, ev, local, sf, now, e);
			goto out;
		}
		if (rc != ERR_NOTFOUND)
			goto out;
		memset(cf, 0, sizeof(*cf));
		rc = 0;
	}
	memcpy(cf->person, p->key, LEDGER_KEY_LEN);
	cf->record = *ref;
	cf->field = field;
	cf->kind = (uint8_t)kind;
	cf->status = auto_resolved ? LEDGER_CONFLICT_RESOLVED : LEDGER_CONFLICT_OPEN;
	cf->auto_resolved = auto_resolved;
	snprintf(cf->local_value, sizeof(cf->local_value), "%s", local);
	snprintf(cf->sf_value, sizeof(cf->sf_value), "%s", sf);
	cf->detected_at = now;
	if (purpose)
		snprintf(cf->purpose_name, sizeof(cf->purpose_name), "%s", purpose);
	if (auto_resolved) {
		cf->resolved_at = now;
		snprintf(cf->resolution, sizeof(cf->resolution), "%s", resolution);
		snprintf(cf->resolved_by, sizeof(cf->resolved_by), "optsync");
	}
	if ((rc = ledger_conflict_add(t, cf, e)))
		goto out;
	event_about(ev, LEDGER_EV_CONFLICT, LEDGER_ORIGIN_SALESFORCE, "salesforce", ref, now);
	ev->conflict_id = cf->id;
	if (purpose)
		snprintf(ev->purpose_name, sizeof(ev->purpose_name), "%s", purpose);
	snprintf(ev->reason, sizeof(ev->reason),
	         "%s conflict on %s%s%s: Salesforce has %s, optsync has %s%s%s",
	         ledger_conflict_kind_name(kind), conflict_field_word(field), purpose ? " of " : "",
	         purpose ? purpose : "", sf, local, auto_resolved ? "; " : "",
	         auto_resolved ? resolution : "");
	rc = event_record(t, p, ev, e);
out:
	free(cf);
	free(ev);
	return rc;
}

int sf_conflict_add(struct ledger_txn *t, struct ledger_person *p, const struct ledger_recref *ref,
                    int kind, uint32_t field, const char *local, const char *sf, int64_t now,
                    const char *purpose, struct err *e)
{
	return conflict_add(t, p, ref, kind, field, local, sf, false, "", now, purpose, e);
}

int purpose_spread(struct ledger_txn *t, const struct config *cfg, const struct ledger_person *p,
                   const struct ledger_recref *except, const char *purpose, bool out,
                   struct apply_stats *st, struct err *e)
{
	const struct config_purpose *cp = config_purpose_find(cfg, purpose);
	if (cp && (cp->sf_field || cp->sf_opt_in_field))
		return purpose_push_spread(t, p, except, purpose, out, cp->sf_opt_in_field != NULL,
		                           st, e);
	if (cp && cp->sf_data_use_purpose)
		return consent_spread(t, cfg, p, purpose, out, st, e);
	return 0;
}

/* ---- applying one Salesforce record ---- */

static void copy_str(char *dst, size_t cap, const struct sf_record *r, const char *name)
{
	const struct sf_value *v = sf_record_get(r, name);
	str_copy(dst, cap, v && v->type == SF_STRING ? v->str : "");
}

/* Whether copy_str would put into have something else than it holds. */
static bool str_differs(const char *have, size_t cap, const struct sf_record *r, const char *name)
{
	const struct sf_value *v = sf_record_get(r, name);
	const char *s = v && v->type == SF_STRING ? v->str : "";
	size_t n = strnlen(s, cap - 1);
	return n != strlen(have) || memcmp(have, s, n) != 0;
}

/* Whether r's names, company, title or phone differ from those rec keeps. */
static bool names_differ(const struct ledger_record *rec, const struct sf_record *r)
{
	return str_differs(rec->first_name, sizeof(rec->first_name), r, "FirstName") ||
	       str_differs(rec->last_name, sizeof(rec->last_name), r, "LastName") ||
	       str_differs(rec->company, sizeof(rec->company), r, "Company") ||
	       str_differs(rec->title, sizeof(rec->title), r, "Title") ||
	       str_differs(rec->phone, sizeof(rec->phone), r, "Phone");
}

/* A record's SystemModstamp, LastModifiedDate and CreatedDate are often the
 * same text, as are those of records saved in the same second: the last
 * text parsed (per thread) is not parsed again. */
int64_t record_time(const struct sf_record *r, const char *name)
{
	static _Thread_local char last[40];
	static _Thread_local int64_t last_ms;
	const struct sf_value *v = sf_record_get(r, name);
	if (v == NULL || v->type != SF_STRING)
		return 0;
	if (last[0] && strcmp(v->str, last) == 0)
		return last_ms;
	int64_t ms;
	if (time_parse(v->str, &ms))
		return 0;
	if (strlen(v->str) < sizeof(last)) {
		strcpy(last, v->str);
		last_ms = ms;
	}
	return ms;
}

struct work {
	struct ledger_person p, old;
	struct ledger_record rec;
	struct ledger_facts sf;
	struct ledger_push q;
	struct ledger_event ev;
};

/* A purpose's consent date on a record (the opt-in box's date field): 0
 * when it has none, or none that is valid (not a date, in the future). */
static int64_t box_date(const struct sf_record *r, const char *field, int64_t now)
{
	const struct sf_value *v = sf_record_get(r, field);
	int64_t ms;
	if (v == NULL || v->type != SF_STRING || time_parse(v->str, &ms) || ms <= 0 ||
	    ms > now + FUTURE_TOLERANCE_MS)
		return 0;
	return ms;
}

/* P1 and P2 for purposes on checkboxes (flag_decide): an opt-out box
 * (salesforce = { field = ... }) ticked in Salesforce is an opt-out of the
 * purpose, spread to the person's other records, and unticked after that a
 * re-opt-in without evidence, a conflict under sync.resubscribe_policy; an
 * opt-in box (opt_in_field) ticked with its date is consent given in
 * Salesforce, and unticked after that an opt-out; a new record of a person
 * out of (or in) the purpose gets its box set so. */
static int apply_purpose_boxes(struct ledger_txn *t, const struct config *cfg, struct work *w,
                               const struct sf_record *r, const struct ledger_recref *ref,
                               int is_new, int new_person, int writable, int64_t sf_changed,
                               int64_t now, int *any_change, struct apply_stats *st, struct err *e)
{
	struct ledger_person *p = &w->p;
	struct ledger_record *rec = &w->rec;
	for (size_t i = 0; i < cfg->npurposes; i++) {
		const struct config_purpose *cp = &cfg->purposes[i];
		bool in_box = cp->sf_opt_in_field != NULL;
		const char *field = in_box ? cp->sf_opt_in_field : cp->sf_field;
		const struct sf_value *v = field ? sf_record_get(r, field) : NULL;
		if (v == NULL || v->type != SF_BOOL)
			continue;
		struct flag_seen s = {.in = in_box == v->b,
		                      .global_out = p->facts.opted_out,
		                      .writable = writable,
		                      .revert =
		                          cfg->sync.resubscribe_policy == CONFIG_RESUB_REVERT};
		enum flag_map map = in_box ? FLAG_OPT_IN_BOX : FLAG_OPT_OUT_BOX;
		/* the record's flag says out (ledger_pflags): 1 out, 0 in */
		int seen = ledger_pflags_get(&rec->seen_purposes, cp->name);
		if (ledger_pflags_set(&rec->seen_purposes, cp->name, !s.in))
			return err_set(e, ERR_LIMIT, "%s %s: more than %d purpose checkboxes",
			               ledger_object_name(ref->object), ref->id, LEDGER_PFLAGS_MAX);
		s.before = is_new || seen < 0 ? -1 : seen == 0 ? 1 : 0;
		int64_t date = in_box && s.in ? box_date(r, cp->sf_consent_date_field, now) : 0;
		s.dated = date != 0;
		/* unchanged since last read (or our own write), and no dated
		 * opt-in: nothing the person's status could make news */
		if (!flag_is_news(map, &s))
			continue;
		struct ledger_purpose cur;
		int rc =
		    new_person ? ERR_NOTFOUND : ledger_purpose_get(t, p->key, cp->name, &cur, e);
		if (rc == ERR_NOTFOUND) {
			memset(&cur, 0, sizeof(cur));
			rc = 0;
		}
		if (rc)
			return rc;
		s.status = cur.status;
		unsigned a = flag_decide(map, &s);
		if (a & (FLAG_CHANGED | FLAG_OPT_IN))
			*any_change = 1;
		if (a & FLAG_OPT_IN) {
			char ref_text[LEDGER_TEXT_MAX + 1];
			snprintf(ref_text, sizeof(ref_text), "salesforce:%s/%s.%s",
			         ledger_object_name(ref->object), ref->id, cp->sf_opt_in_field);
			if ((rc = purpose_optin_from_sf(t, p, &w->ev, ref, cp->name, date, ref_text,
			                                NULL, sf_changed, true, st, e)) ||
			    (rc = purpose_push_spread(t, p, ref, cp->name, false, true, st, e)))
				return rc;
		}
		if (a & FLAG_UNDATED)
			undated_note(st, ref->object, ref->id, cp->name, cp->sf_consent_date_field);
		if ((a & FLAG_OPT_OUT) &&
		    ((rc = purpose_optout_from_sf(t, p, &w->ev, ref, cp->name, NULL, sf_changed,
		                                  true, st, e)) ||
		     (rc = purpose_push_spread(t, p, ref, cp->name, true, in_box, st, e)) ||
		     (rc = push_queued_correct(t, p, ref, cp->name, true, st, e))))
			return rc;
		/* a record that appears for a person out of (in) the purpose */
		if ((a & (FLAG_SET_OUT | FLAG_SET_IN)) &&
		    (rc =
		         push_enqueue_purpose(t, p, ref, cp->name, (a & FLAG_SET_OUT) != 0, st, e)))
			return rc;
		if (a & FLAG_CONFLICT) {
			/* P2: back in in Salesforce without admin and evidence */
			rc =
			    conflict_add(t, p, ref, LEDGER_CONFLICT_RESUBSCRIBE, LEDGER_F_OPTED_OUT,
			                 "opted_out", "opted_in", false, "", now, cp->name, e);
			if (rc)
				return rc;
			st->resubscribe_conflicts++;
			if ((a & FLAG_REVERT) &&
			    (rc = push_enqueue_purpose(t, p, ref, cp->name, true, st, e)))
				return rc;
		}
	}
	return 0;
}

/* The opt-outs a merge carries to its survivor: of all email, and of each
 * purpose (out: ticked in purposes). */
struct carried {
	bool out;
	struct ledger_pflags purposes;
};

static int carried_of_person(struct ledger_txn *t, const struct config *cfg,
                             const struct ledger_person *p, struct carried *c, struct err *e)
{
	c->out = p->facts.opted_out;
	c->purposes.n = 0;
	for (size_t i = 0; i < cfg->npurposes; i++) {
		struct ledger_purpose cur;
		int g = ledger_purpose_get(t, p->key, cfg->purposes[i].name, &cur, e);
		if (g && g != ERR_NOTFOUND)
			return g;
		if (g == 0 && cur.status == LEDGER_PURPOSE_OUT)
			ledger_pflags_set(&c->purposes, cfg->purposes[i].name, true);
	}
	return 0;
}

/* After a merge, the survivor's person (mp: another email, now known to be
 * the same human) takes over the opt-outs c, spread to all its records. */
static int carry_optouts(struct ledger_txn *t, const struct config *cfg, struct work *w,
                         const struct carried *c, struct ledger_person *mp,
                         const struct ledger_recref *master, struct apply_stats *st, struct err *e)
{
	int64_t now = time_now_ms();
	char why[LEDGER_TEXT_MAX + 1];
	if (w->ev.record.id[0])
		snprintf(why, sizeof(why), "carried over from %s %s, merged into %s %s",
		         ledger_object_name(w->ev.record.object), w->ev.record.id,
		         ledger_object_name(master->object), master->id);
	else
		snprintf(why, sizeof(why),
		         "carried over from a record merged into %s %s before optsync read it",
		         ledger_object_name(master->object), master->id);
	int rc = 0;
	if (c->out && !mp->facts.opted_out) {
		mp->facts.mask |= LEDGER_F_OPTED_OUT;
		mp->facts.opted_out = true;
		mp->opted_out_at = mp->optout_changed_at = mp->updated_at = now;
		event_about(&w->ev, LEDGER_EV_OPTOUT, LEDGER_ORIGIN_SALESFORCE, "salesforce",
		            master, now);
		w->ev.facts.mask = LEDGER_F_OPTED_OUT;
		w->ev.facts.opted_out = true;
		snprintf(w->ev.reason, sizeof(w->ev.reason), "%s", why);
		if ((rc = event_record(t, mp, &w->ev, e)) ||
		    (rc = push_spread(t, mp, NULL, LEDGER_F_OPTED_OUT, st, e)))
			return rc;
		st->optouts_in++;
	}
	for (size_t i = 0; rc == 0 && i < cfg->npurposes; i++) {
		const char *name = cfg->purposes[i].name;
		struct ledger_purpose theirs;
		if (ledger_pflags_get(&c->purposes, name) != 1)
			continue;
		int g = ledger_purpose_get(t, mp->key, name, &theirs, e);
		if (g == 0 && theirs.status == LEDGER_PURPOSE_OUT)
			continue;
		if (g && g != ERR_NOTFOUND)
			return g;
		if ((rc = purpose_optout_from_sf(t, mp, &w->ev, master, name, why, now, false, st,
		                                 e)))
			return rc;
		rc = purpose_spread(t, cfg, mp, NULL, name, true, st, e);
	}
	return rc;
}

/* The opt-outs c carried to a survivor that is no person's record yet, or
 * another person's (w->rec and w->old are scratch). A survivor not read
 * yet (created and merged into between two cycles) is kept as pending: a
 * record linked to no person, flagged LEDGER_RECORD_MERGE_PENDING, whose
 * seen facts hold the opt-outs of every person merged into it; its first
 * read carries them to the person of its email (apply_sf_record). */
static int carry_pending(struct ledger_txn *t, const struct config *cfg, struct work *w,
                         const struct ledger_recref *master, const struct carried *c,
                         struct apply_stats *st, struct err *e)
{
	struct ledger_record *m = &w->rec;
	int rc = ledger_record_get(t, master->object, master->id, m, e);
	if (rc == ERR_NOTFOUND) {
		memset(m, 0, sizeof(*m));
		m->object = master->object;
		str_copy(m->id, sizeof(m->id), master->id);
		memcpy(m->person, w->p.key, LEDGER_KEY_LEN); /* the first merged in */
		ledger_facts_init(&m->seen);
		ledger_facts_init(&m->written);
		m->flags = LEDGER_RECORD_MERGE_PENDING;
		m->seen.mask = LEDGER_F_OPTED_OUT;
		rc = 0;
	}
	if (rc || (m->flags & (LEDGER_RECORD_CONVERTED | LEDGER_RECORD_DELETED)))
		return rc;
	if (m->flags & LEDGER_RECORD_MERGE_PENDING) {
		m->seen.opted_out |= c->out;
		for (uint8_t i = 0; i < c->purposes.n; i++)
			if (c->purposes.v[i].out &&
			    ledger_pflags_set(&m->seen_purposes, c->purposes.v[i].name, true) < 0)
				return err_set(e, ERR_LIMIT, "more than %d purposes",
				               LEDGER_PFLAGS_MAX);
		return ledger_record_put(t, m, e);
	}
	rc = ledger_person_get(t, m->person, &w->old, e);
	if (rc)
		return rc == ERR_NOTFOUND ? 0 : rc;
	return carry_optouts(t, cfg, w, c, &w->old, master, st, e);
}

/* The person's opt-outs on the record that survived a merge: the global
 * one and each field-mapped purpose's. A survivor known as another
 * person's record, or not read yet, carries them to that person
 * (carry_pending); otherwise they are written to it where it is not known
 * to hold them already. */
static int carry_to_master(struct ledger_txn *t, const struct config *cfg, struct work *w,
                           const struct ledger_recref *master, struct apply_stats *st,
                           struct err *e)
{
	struct ledger_person *p = &w->p;
	struct ledger_record *m = &w->rec; /* the deleted record is no longer needed */
	int rc = ledger_record_get(t, master->object, master->id, m, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	if (rc == 0 && (m->flags & (LEDGER_RECORD_CONVERTED | LEDGER_RECORD_DELETED)))
		return 0;
	if (rc == ERR_NOTFOUND || (m->flags & LEDGER_RECORD_MERGE_PENDING) ||
	    memcmp(m->person, p->key, LEDGER_KEY_LEN) != 0) {
		struct carried c;
		if ((rc = carried_of_person(t, cfg, p, &c, e)))
			return rc;
		return carry_pending(t, cfg, w, master, &c, st, e);
	}
	if (p->facts.opted_out && !((m->seen.mask & LEDGER_F_OPTED_OUT) && m->seen.opted_out) &&
	    (rc = push_enqueue(t, p, master, LEDGER_F_OPTED_OUT, true, st, e)))
		return rc;
	for (size_t i = 0; rc == 0 && i < cfg->npurposes; i++) {
		const struct config_purpose *cp = &cfg->purposes[i];
		struct ledger_purpose cur;
		if ((cp->sf_field == NULL && cp->sf_opt_in_field == NULL) ||
		    ledger_pflags_get(&m->seen_purposes, cp->name) == 1)
			continue;
		int g = ledger_purpose_get(t, p->key, cp->name, &cur, e);
		if (g && g != ERR_NOTFOUND)
			return g;
		if (g == 0 && cur.status == LEDGER_PURPOSE_OUT)
			rc = push_enqueue_purpose(t, p, master, cp->name, true, st, e);
	}
	return rc;
}

/* The open conflicts of a record that is no longer its person's (moved to
 * another email, deleted): the question they ask is moot, and they are
 * closed by optsync with resolution why; *closed counts them. */
struct moot {
	struct ledger_txn *t;
	const char *why;
	int64_t now;
	size_t closed;
	struct err *e;
};

static int close_moot(struct ledger_conflict *cf, void *ctx)
{
	struct moot *m = ctx;
	cf->status = LEDGER_CONFLICT_RESOLVED;
	cf->auto_resolved = true;
	cf->resolved_at = m->now;
	snprintf(cf->resolution, sizeof(cf->resolution), "%s", m->why);
	snprintf(cf->resolved_by, sizeof(cf->resolved_by), "optsync");
	m->closed++;
	return ledger_conflict_put(m->t, cf, m->e);
}

static int close_moot_conflicts(struct ledger_txn *t, const struct ledger_recref *ref,
                                const char *why, int64_t now, size_t *closed, struct err *e)
{
	struct moot m = {t, why, now, 0, e};
	int rc = ledger_conflict_open_each(t, ref, close_moot, &m, e);
	*closed = m.closed;
	return rc;
}

/* Rule 9: a record whose email changed in Salesforce leaves its old person
 * (w->rec names it): it is unlinked from that person, with an event in the
 * old person's history; a push still queued for it (the old person's
 * values) is dropped, and the old person's open conflicts about it are
 * closed as moot ("record_moved"). What the record gets instead is derived
 * from its new person, as for any record new to that person. */
static int move_record(struct ledger_txn *t, struct work *w, const struct ledger_recref *ref,
                       int64_t now, struct err *e)
{
	struct ledger_person *old = &w->old;
	int rc = ledger_push_delete(t, ref->object, ref->id, e);
	bool dropped = rc == 0;
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	size_t closed;
	if ((rc = close_moot_conflicts(t, ref, CONFLICT_RECORD_MOVED, now, &closed, e)))
		return rc;
	/* what was raised about its values was raised for the old person */
	w->rec.flags &= ~(LEDGER_RECORD_INVALID_AUTH | LEDGER_RECORD_INVALID_SOURCE);
	rc = ledger_person_get(t, w->rec.person, old, e);
	if (rc)
		return rc == ERR_NOTFOUND ? 0 : rc; /* gone, and its links with it */
	rc = ledger_person_record_remove(t, old, ref, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	event_about(&w->ev, LEDGER_EV_UNLINKED, LEDGER_ORIGIN_SALESFORCE, "salesforce", ref, now);
	snprintf(w->ev.reason, sizeof(w->ev.reason),
	         "its email changed in Salesforce: another person's record now%s%s",
	         dropped ? "; the write queued for it dropped" : "",
	         closed ? "; its open conflicts closed" : "");
	old->updated_at = now;
	return event_record(t, old, &w->ev, e);
}

/* The person key of r's Email into key: 1, or 0 when it has none (absent
 * or blank), -1 when it is no address optsync takes. */
static int email_person_key(struct ledger *l, const struct sf_record *r,
                            uint8_t key[LEDGER_KEY_LEN])
{
	const struct sf_value *v = sf_record_get(r, "Email");
	if (v == NULL || v->type != SF_STRING || v->str[strspn(v->str, " \t\r\n\v\f")] == '\0')
		return 0;
	char email[LEDGER_EMAIL_MAX + 1];
	struct err ie;
	if (conn_email_normalize(v->str, email, &ie))
		return -1;
	ledger_person_key(l, email, strlen(email), key);
	return 1;
}

/* The survivor a deleted record names (MasterRecordId), "" when none. */
static void master_of(const struct sf_record *r, int object, struct ledger_recref *master)
{
	const struct sf_value *mv = sf_record_get(r, "MasterRecordId");
	master->object = (uint8_t)object;
	master->id[0] = '\0';
	if (mv && mv->type == SF_STRING && mv->str[0] && strlen(mv->str) <= LEDGER_ID_MAX)
		snprintf(master->id, sizeof(master->id), "%s", mv->str);
}

/* A record merged into another before optsync read it: the person of its
 * email (as the deleted row shows it), if the ledger knows them, has their
 * opt-outs carried to the survivor all the same (rules 1 and 9). A record
 * deleted on its own, never read, is skipped. */
static int merged_unseen(struct ledger_txn *t, struct ledger *l, const struct config *cfg,
                         struct work *w, const struct sf_record *r, const struct ledger_recref *ref,
                         struct apply_stats *st, struct err *e)
{
	struct ledger_recref master;
	master_of(r, ref->object, &master);
	if (master.id[0] == '\0' || email_person_key(l, r, w->p.key) != 1)
		return 0;
	int rc = ledger_person_get(t, w->p.key, &w->p, e);
	if (rc)
		return rc == ERR_NOTFOUND ? 0 : rc;
	w->ev.record = *ref;
	return carry_to_master(t, cfg, w, &master, st, e);
}

int forget_moved_parked(struct ledger_txn *t, struct ledger *l, int object,
                        const struct sf_record *r, struct err *e)
{
	if ((object != LEDGER_OBJ_CONTACT && object != LEDGER_OBJ_LEAD) || r->id == NULL ||
	    strlen(r->id) > LEDGER_ID_MAX)
		return 0;
	struct ledger_recref ref = {(uint8_t)object, ""};
	str_copy(ref.id, sizeof(ref.id), r->id);
	struct work *w = malloc(sizeof(*w));
	if (w == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_record_get(t, object, ref.id, &w->rec, e);
	if (rc || (w->rec.flags & LEDGER_RECORD_MERGE_PENDING))
		goto out;
	uint8_t key[LEDGER_KEY_LEN];
	int has = email_person_key(l, r, key);
	if (has == 0)
		goto out; /* no email: as for a record that is read, left where it is */
	if (has == 1 && memcmp(key, w->rec.person, LEDGER_KEY_LEN) == 0)
		goto out; /* still its person's */
	/* another person's record now, or no address: no longer the old one's */
	if ((rc = move_record(t, w, &ref, time_now_ms(), e)) == 0)
		rc = ledger_record_delete(t, object, ref.id, e);
out:
	free(w);
	return rc == ERR_NOTFOUND ? 0 : rc;
}

/* A record deleted in Salesforce (queryAll shows it with IsDeleted), on its
 * own or merged into another (MasterRecordId): it is unlinked from its
 * person and forgotten, the history keeps its id, a push still queued for
 * it is dropped, its open conflicts are closed ("record_deleted"), and
 * after a merge the surviving record gets the person's opt-outs. A record
 * never seen is skipped. */
static int apply_sf_deleted(struct ledger_txn *t, struct ledger *l, const struct config *cfg,
                            struct work *w, const struct sf_record *r,
                            const struct ledger_recref *ref, struct apply_stats *st, struct err *e)
{
	struct ledger_record *rec = &w->rec;
	int rc = ledger_record_get(t, ref->object, ref->id, rec, e);
	if (rc == ERR_NOTFOUND)
		return merged_unseen(t, l, cfg, w, r, ref, st, e);
	if (rc)
		return rc;
	if (rec->flags & LEDGER_RECORD_MERGE_PENDING) {
		/* a merge's survivor never read, deleted since: no person's; merged
		 * into another in turn, the opt-outs it carries go on to that one */
		struct carried c = {rec->seen.opted_out, rec->seen_purposes};
		memcpy(w->p.key, rec->person, LEDGER_KEY_LEN);
		rc = ledger_push_delete(t, ref->object, ref->id, e);
		if (rc && rc != ERR_NOTFOUND)
			return rc;
		if ((rc = ledger_record_delete(t, ref->object, ref->id, e)))
			return rc;
		struct ledger_recref master;
		master_of(r, ref->object, &master);
		if (master.id[0] == '\0' || (!c.out && c.purposes.n == 0))
			return 0;
		w->ev.record = *ref;
		return carry_pending(t, cfg, w, &master, &c, st, e);
	}
	struct ledger_person *p = &w->p;
	rc = ledger_person_get(t, rec->person, p, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	bool have_person = rc == 0;
	if ((rc = ledger_record_delete(t, ref->object, ref->id, e)))
		return rc;
	rc = ledger_push_delete(t, ref->object, ref->id, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	rc = have_person ? ledger_person_record_remove(t, p, ref, e) : 0;
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	int64_t now = time_now_ms();
	size_t closed;
	if ((rc = close_moot_conflicts(t, ref, CONFLICT_RECORD_DELETED, now, &closed, e)))
		return rc;
	st->unlinked++;
	if (!have_person)
		return 0;
	struct ledger_recref master;
	master_of(r, ref->object, &master);
	event_about(&w->ev, LEDGER_EV_UNLINKED, LEDGER_ORIGIN_SALESFORCE, "salesforce", ref, now);
	if (master.id[0])
		snprintf(w->ev.reason, sizeof(w->ev.reason), "merged into %s %s in Salesforce",
		         ledger_object_name(master.object), master.id);
	else
		snprintf(w->ev.reason, sizeof(w->ev.reason), "deleted in Salesforce");
	p->updated_at = now;
	if ((rc = event_record(t, p, &w->ev, e)))
		return rc;
	return master.id[0] ? carry_to_master(t, cfg, w, &master, st, e) : 0;
}

/* Rule 8: a record whose Email is no address optsync can take is refused
 * (parked by the caller), nothing written. The reason says what is wrong
 * without the value: a parked record belongs to no person whose erasure
 * would remove it. */
static int refuse_email(const struct err *ie, struct apply_stats *st, struct err *e)
{
	const char *why = strrchr(ie->msg, '(');
	size_t n = why ? strlen(why) : 0;
	st->refused = CONN_PARK_INVALID_EMAIL;
	return err_set(e, ERR_INVALID, "field Email holds no email address optsync can take%s%.*s",
	               n > 2 && why[n - 1] == ')' ? " " : "",
	               n > 2 && why[n - 1] == ')' ? (int)n : 0, why ? why : "");
}

int apply_sf_record(struct ledger_txn *t, struct ledger *l, const struct config *cfg, int object,
                    const struct sf_record *r, struct apply_stats *st, struct err *e)
{
	st->records++;
	const struct sf_value *deleted = sf_record_get(r, "IsDeleted");
	if (deleted && deleted->type == SF_BOOL && deleted->b) {
		struct work *w = malloc(sizeof(*w));
		if (w == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		struct ledger_recref ref = {(uint8_t)object, ""};
		str_copy(ref.id, sizeof(ref.id), r->id);
		int rc = apply_sf_deleted(t, l, cfg, w, r, &ref, st, e);
		free(w);
		return rc;
	}
	char email[LEDGER_EMAIL_MAX + 1], raw[LEDGER_TEXT_MAX + 1];
	const struct sf_value *ev_email = sf_record_get(r, "Email");
	if (ev_email == NULL || ev_email->type != SF_STRING ||
	    ev_email->str[strspn(ev_email->str, " \t\r\n\v\f")] == '\0') {
		st->skipped_no_email++;
		return 0;
	}
	struct err ie;
	if (conn_email_normalize(ev_email->str, email, &ie))
		return refuse_email(&ie, st, e);
	struct work *w = malloc(sizeof(*w));
	if (w == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = 0;
	int64_t now = time_now_ms();
	int64_t modstamp = record_time(r, "SystemModstamp");
	int64_t sf_changed = record_time(r, "LastModifiedDate");
	if (sf_changed == 0)
		sf_changed = modstamp;
	struct ledger_recref ref = {(uint8_t)object, ""};
	str_copy(ref.id, sizeof(ref.id), r->id);

	/* the person */
	struct ledger_person *p = &w->p;
	ledger_person_key(l, email, strlen(email), p->key);
	rc = ledger_person_get(t, p->key, p, e);
	int new_person = rc == ERR_NOTFOUND;
	if (rc == ERR_NOTFOUND) {
		uint8_t key[LEDGER_KEY_LEN];
		memcpy(key, p->key, sizeof(key));
		memset(p, 0, sizeof(*p));
		memcpy(p->key, key, sizeof(key));
		ledger_facts_init(&p->facts);
		p->created_at = now;
		rc = 0;
	}
	if (rc)
		goto out;
	if (!(p->flags & LEDGER_PERSON_ERASED))
		str_copy(p->email, sizeof(p->email), email);

	/* the record as last seen */
	struct ledger_record *rec = &w->rec;
	rc = ledger_record_get(t, object, ref.id, rec, e);
	int is_new = rc == ERR_NOTFOUND;
	if (is_new) {
		memset(rec, 0, sizeof(*rec));
		rec->object = (uint8_t)object;
		memcpy(rec->id, ref.id, sizeof(rec->id));
		ledger_facts_init(&rec->seen);
		ledger_facts_init(&rec->written);
		rc = 0;
	}
	if (rc)
		goto out;
	/* the survivor of a merge, read for the first time (carry_to_master) */
	bool merge_pending = !is_new && (rec->flags & LEDGER_RECORD_MERGE_PENDING);
	struct carried merged = {false, {0}};
	if (merge_pending) {
		merged.out = rec->seen.opted_out;
		merged.purposes = rec->seen_purposes;
		memset(rec, 0, sizeof(*rec));
		rec->object = (uint8_t)object;
		memcpy(rec->id, ref.id, sizeof(rec->id));
		ledger_facts_init(&rec->seen);
		ledger_facts_init(&rec->written);
		is_new = 1;
	}
	if (!is_new && memcmp(rec->person, p->key, LEDGER_KEY_LEN) != 0) {
		/* Rule 9: the email changed in Salesforce, the record moves to
		 * this person */
		if ((rc = move_record(t, w, &ref, now, e)))
			goto out;
		is_new = 1; /* new to this person */
	}
	/* a record new to the person is linked to it (an index entry of its
	 * own: no limit on a person's records, the same cost for each) */
	if (is_new && (rc = ledger_person_record_add(t, p, &ref, e)))
		goto out;
	if (merge_pending) {
		/* the opt-outs of the persons merged into it go to its person, and
		 * to it: the pending entry (whose seen facts held them) goes first,
		 * so that the spread sees a record never read */
		if ((rc = ledger_record_delete(t, object, ref.id, e)))
			goto out;
		w->ev.record.id[0] = '\0';
		if ((rc = carry_optouts(t, cfg, w, &merged, p, &ref, st, e)))
			goto out;
		new_person = 0; /* it holds what was carried: read its statuses */
	}
	bool was_converted = (rec->flags & LEDGER_RECORD_CONVERTED) != 0;
	const struct sf_value *conv = sf_record_get(r, "IsConverted");
	if (conv && conv->type == SF_BOOL && conv->b)
		rec->flags |= LEDGER_RECORD_CONVERTED;
	else
		rec->flags &= ~LEDGER_RECORD_CONVERTED;
	int writable = !(rec->flags & LEDGER_RECORD_CONVERTED);

	uint32_t invalid;
	struct ledger_facts *sf = &w->sf;
	read_sf_record(cfg, r, now, sf, &invalid, raw, sizeof(raw));
	struct ledger_facts *seen = &rec->seen;
	int any_change = is_new;

	/* Rule 1, 2 and 3: the opt-out (flag_decide) */
	bool sf_out = (sf->mask & LEDGER_F_OPTED_OUT) && sf->opted_out;
	bool seen_known = (seen->mask & LEDGER_F_OPTED_OUT) != 0;
	struct flag_seen fs = {.in = !sf_out,
	                       .before = is_new || !seen_known ? -1
	                                 : seen->opted_out     ? 0
	                                                       : 1,
	                       .status =
	                           p->facts.opted_out ? LEDGER_PURPOSE_OUT : LEDGER_PURPOSE_NONE,
	                       .writable = writable,
	                       .revert = cfg->sync.resubscribe_policy == CONFIG_RESUB_REVERT};
	unsigned act = flag_decide(FLAG_OPT_OUT_BOX, &fs);
	if (act & FLAG_CHANGED)
		any_change = 1;
	if (act & FLAG_OPT_OUT) {
		p->facts.mask |= LEDGER_F_OPTED_OUT;
		p->facts.opted_out = true;
		p->opted_out_at = sf_changed ? sf_changed : now;
		p->optout_changed_at = p->opted_out_at;
		p->updated_at = now;
		event_about(&w->ev, LEDGER_EV_OPTOUT, LEDGER_ORIGIN_SALESFORCE, "salesforce", &ref,
		            now);
		w->ev.facts.mask = LEDGER_F_OPTED_OUT;
		w->ev.facts.opted_out = true;
		if ((rc = event_record_held(t, p, &w->ev, e)))
			goto out;
		st->optouts_in++;
		/* to the person's other records; and a write queued for this one
		 * that says opted in (queued before this opt-out) would undo it */
		if ((rc = push_spread(t, p, &ref, LEDGER_F_OPTED_OUT, st, e)) ||
		    (rc = push_queued_correct(t, p, &ref, NULL, true, st, e)))
			goto out;
	}
	if (act & FLAG_SET_OUT) {
		/* Rule 3: a record that appears for a suppressed person */
		st->suppressed_new++;
		if ((rc = push_enqueue(t, p, &ref, LEDGER_F_OPTED_OUT, true, st, e)))
			goto out;
	}
	if (act & FLAG_CONFLICT) {
		/* Rule 2: opted in in Salesforce without evidence */
		rc = conflict_add(t, p, &ref, LEDGER_CONFLICT_RESUBSCRIBE, LEDGER_F_OPTED_OUT,
		                  "opted_out", "opted_in", false, "", now, NULL, e);
		if (rc)
			goto out;
		st->resubscribe_conflicts++;
		if ((act & FLAG_REVERT) &&
		    (rc = push_enqueue(t, p, &ref, LEDGER_F_OPTED_OUT, true, st, e)))
			goto out;
	}

	if ((rc = apply_purpose_boxes(t, cfg, w, r, &ref, is_new, new_person, writable, sf_changed,
	                              now, &any_change, st, e)))
		goto out;
	if (consent_configured(cfg) && (rc = consent_follow_individual(t, cfg, p, r, st, e)))
		goto out;

	/* Rule 5: the compliance fields, one group at a time */
	static const struct {
		uint32_t group, typebit;
		int kind;
	} groups[] = {{AUTH_GROUP, LEDGER_F_AUTH_TYPE, LEDGER_EV_AUTHORIZATION},
	              {SOURCE_GROUP, LEDGER_F_SOURCE_TYPE, LEDGER_EV_SOURCE}};
	/* an erased person takes no compliance facts from Salesforce: erasure
	 * left none (ledger_person_erase), and its free texts are not stored
	 * again, as its records' names are not */
	bool erased = (p->flags & LEDGER_PERSON_ERASED) != 0;
	for (size_t gi = 0; gi < 2 && !erased; gi++) {
		uint32_t g = groups[gi].group, tb = groups[gi].typebit;
		uint32_t invflag = tb == LEDGER_F_AUTH_TYPE ? LEDGER_RECORD_INVALID_AUTH
		                                            : LEDGER_RECORD_INVALID_SOURCE;
		char local[LEDGER_TEXT_MAX + 1]; /* written when a conflict needs it */
		int64_t local_at =
		    tb == LEDGER_F_AUTH_TYPE ? p->auth_changed_at : p->source_changed_at;
		struct facts_seen gs = {.invalid = (invalid & g) != 0,
		                        .raised = (rec->flags & invflag) != 0,
		                        .sf_has = (sf->mask & g) != 0,
		                        .seen_has = (seen->mask & g) != 0,
		                        .is_new = is_new,
		                        .unchanged = facts_group_equal(sf, seen, tb),
		                        .agrees = facts_group_equal(sf, &p->facts, tb),
		                        .person_has = (p->facts.mask & tb) != 0,
		                        .writable = writable,
		                        .queued = -1,
		                        .sf_newer = sf_changed > local_at};
		enum facts_action fa = facts_decide(&gs);
		if (fa == FACTS_NEED_QUEUED) {
			int rq = ledger_push_get(t, object, ref.id, &w->q, e);
			if (rq && rq != ERR_NOTFOUND) {
				rc = rq;
				goto out;
			}
			gs.queued = rq == 0 && (w->q.want.mask & tb);
			fa = facts_decide(&gs);
		}
		if (!gs.invalid)
			rec->flags &= ~invflag;
		if (fa != FACTS_KEEP && fa != FACTS_FILL)
			any_change = 1;
		if (fa == FACTS_KEEP || fa == FACTS_AGREES)
			continue;
		if (fa == FACTS_INVALID) {
			rec->flags |= invflag;
			facts_group_text(&p->facts, g, local, sizeof(local));
			rc = conflict_add(t, p, &ref, LEDGER_CONFLICT_INVALID_VALUE, tb, local, raw,
			                  false, "", now, NULL, e);
			if (rc)
				goto out;
			st->invalid_conflicts++;
			continue;
		}
		if (fa == FACTS_FILL) {
			if ((rc = push_enqueue(t, p, &ref, g, p->facts.opted_out, st, e)))
				goto out;
			continue;
		}
		if (fa == FACTS_CONCURRENT_SF || fa == FACTS_CONCURRENT_LOCAL) {
			bool sf_wins = fa == FACTS_CONCURRENT_SF;
			char sftext[LEDGER_TEXT_MAX + 1];
			facts_group_text(sf, g, sftext, sizeof(sftext));
			facts_group_text(&p->facts, g, local, sizeof(local));
			rc = conflict_add(t, p, &ref, LEDGER_CONFLICT_CONCURRENT, tb, local, sftext,
			                  true, sf_wins ? "salesforce_newer" : "local_newer", now,
			                  NULL, e);
			if (rc)
				goto out;
			st->concurrent_conflicts++;
			if (!sf_wins)
				continue; /* the queued local value will be written */
			w->q.want.mask &= ~g;
			rc = w->q.want.mask || w->q.want_purposes.n
			         ? ledger_push_put(t, &w->q, e)
			         : ledger_push_delete(t, object, ref.id, e);
			if (rc)
				goto out;
		}
		facts_copy_group(&p->facts, sf, g);
		if (tb == LEDGER_F_AUTH_TYPE)
			p->auth_changed_at = sf_changed;
		else
			p->source_changed_at = sf_changed;
		p->updated_at = now;
		event_about(&w->ev, groups[gi].kind, LEDGER_ORIGIN_SALESFORCE, "salesforce", &ref,
		            now);
		facts_copy_group(&w->ev.facts, sf, g);
		if ((rc = event_record_held(t, p, &w->ev, e)))
			goto out;
		st->facts_applied++;
		if ((rc = push_spread(t, p, &ref, tb, st, e)))
			goto out;
	}
	if (!any_change)
		st->echoes++; /* nothing new: often our own write read back */

	/* remember what Salesforce holds now (an invalid group keeps the last
	 * valid values seen) */
	if (invalid & AUTH_GROUP)
		facts_copy_group(sf, seen, AUTH_GROUP);
	if (invalid & SOURCE_GROUP)
		facts_copy_group(sf, seen, SOURCE_GROUP);
	if (erased) {
		sf->mask &= ~(AUTH_GROUP | SOURCE_GROUP);
		sf->auth_type = sf->source_type = 0;
		sf->consent_date = 0;
		sf->purpose[0] = sf->auth_other[0] = sf->source_other[0] = '\0';
	}
	/* the record changed in Salesforce since it was last read (an edit, a
	 * validation rule fixed): a push parked on it may go through now, so
	 * this cycle's drain tries it again. SystemModstamp keeps whole
	 * seconds: read again at the same one, the record changed when it
	 * reads otherwise, and may have when the push was refused in that
	 * second (push_release_on_read) */
	if (!writable) {
		/* a converted Lead takes no write (Salesforce refuses it:
		 * CANNOT_UPDATE_CONVERTED_LEAD): one queued before is dropped; the
		 * person's records that can be written got theirs */
		rc = ledger_push_delete(t, object, ref.id, e);
		if (rc && rc != ERR_NOTFOUND)
			goto out;
		rc = 0;
	} else if (!is_new && modstamp >= rec->modstamp) {
		bool reads_otherwise = any_change || sf_changed != rec->sf_modified ||
		                       was_converted != !writable ||
		                       (!(p->flags & LEDGER_PERSON_ERASED) && names_differ(rec, r));
		if ((rc = push_release_on_read(t, &ref, modstamp,
		                               modstamp > rec->modstamp || reads_otherwise, e)))
			goto out;
	}
	rec->seen = *sf;
	memcpy(rec->person, p->key, LEDGER_KEY_LEN);
	rec->modstamp = modstamp;
	rec->sf_created = record_time(r, "CreatedDate");
	rec->sf_modified = sf_changed;
	if (!(p->flags & LEDGER_PERSON_ERASED)) {
		copy_str(rec->first_name, sizeof(rec->first_name), r, "FirstName");
		copy_str(rec->last_name, sizeof(rec->last_name), r, "LastName");
		copy_str(rec->company, sizeof(rec->company), r, "Company");
		copy_str(rec->title, sizeof(rec->title), r, "Title");
		copy_str(rec->phone, sizeof(rec->phone), r, "Phone");
	}
	if ((rc = ledger_record_put(t, rec, e)))
		goto out;
	if (p->created_at == 0)
		p->created_at = now;
	rc = ledger_person_put(t, p, e);
out:
	free(w);
	return rc;
}
