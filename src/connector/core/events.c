/* The person's history as the sync writes it: events of Salesforce's
 * changes, purpose statuses taken from Salesforce (docs/sync-rules.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/log.h"
#include "util/timefmt.h"

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
int event_record_held(struct ledger_txn *t, struct ledger_person *p, struct ledger_event *ev,
                      struct err *e)
{
	return record_event(t, p, ev, false, e);
}

void event_about(struct ledger_event *ev, int kind, int origin, const char *actor,
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
