/* Raising a conflict of the sync (rules 2, 5, 9; P2): one open per record,
 * field and purpose. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/log.h"
#include "util/timefmt.h"

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

int conflict_add(struct ledger_txn *t, struct ledger_person *p, const struct ledger_recref *ref,
                 int kind, uint32_t field, const char *local, const char *sf, bool auto_resolved,
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
