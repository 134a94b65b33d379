/* The contract's JSON shapes, rendered from typed results: the only place
 * a person, record, event, conflict, status or cycle report becomes JSON. */
#include <stdio.h>
#include <string.h>

#include "connector/internal.h"
#include "util/email.h"
#include "util/timefmt.h"

void hex32(const uint8_t in[32], char out[65])
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[64] = '\0';
}

int add_time(cJSON *o, const char *name, int64_t ms)
{
	if (ms == 0)
		return cJSON_AddNullToObject(o, name) != NULL;
	char t[TIME_STR_MAX];
	time_format(ms, t);
	return cJSON_AddStringToObject(o, name, t) != NULL;
}

static cJSON *render_auth(const struct ledger_facts *f)
{
	cJSON *a = cJSON_CreateObject();
	int type = (f->mask & LEDGER_F_AUTH_TYPE) ? f->auth_type : 0;
	if (type)
		cJSON_AddStringToObject(a, "type", ledger_auth_name(type));
	else
		cJSON_AddNullToObject(a, "type");
	if (type == LEDGER_AUTH_CONSENT) {
		add_time(a, "consent_date", f->consent_date);
		cJSON_AddStringToObject(a, "purpose", f->purpose);
	}
	if (type == LEDGER_AUTH_OTHER)
		cJSON_AddStringToObject(a, "other", f->auth_other);
	return a;
}

static cJSON *render_source(const struct ledger_facts *f)
{
	cJSON *s = cJSON_CreateObject();
	int type = (f->mask & LEDGER_F_SOURCE_TYPE) ? f->source_type : 0;
	if (type)
		cJSON_AddStringToObject(s, "type", ledger_source_name(type));
	else
		cJSON_AddNullToObject(s, "type");
	if (type == LEDGER_SOURCE_OTHER)
		cJSON_AddStringToObject(s, "other", f->source_other);
	return s;
}

cJSON *render_person(const struct ledger_person *p, const struct person_refs *refs)
{
	cJSON *o = cJSON_CreateObject();
	char key[65];
	hex32(p->key, key);
	if (p->flags & LEDGER_PERSON_ERASED)
		cJSON_AddNullToObject(o, "email");
	else
		cJSON_AddStringToObject(o, "email", p->email);
	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddBoolToObject(o, "opted_out", p->facts.opted_out);
	add_time(o, "opted_out_at", p->facts.opted_out ? p->opted_out_at : 0);
	json_attach(o, "authorization", render_auth(&p->facts));
	json_attach(o, "source", render_source(&p->facts));
	cJSON *recs = refs ? cJSON_AddArrayToObject(o, "salesforce_records") : NULL;
	for (size_t i = 0; refs && i < refs->n; i++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "object", ledger_object_name(refs->v[i].object));
		cJSON_AddStringToObject(r, "id", refs->v[i].id);
		json_append(recs, r);
	}
	cJSON_AddBoolToObject(o, "erased", (p->flags & LEDGER_PERSON_ERASED) != 0);
	add_time(o, "created_at", p->created_at);
	add_time(o, "updated_at", p->updated_at);
	return o;
}

cJSON *render_record(const struct ledger_record *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "object", ledger_object_name(r->object));
	cJSON_AddStringToObject(o, "id", r->id);
	cJSON_AddBoolToObject(o, "opted_out", r->seen.opted_out);
	json_attach(o, "authorization", render_auth(&r->seen));
	json_attach(o, "source", render_source(&r->seen));
	cJSON_AddStringToObject(o, "first_name", r->first_name);
	cJSON_AddStringToObject(o, "last_name", r->last_name);
	cJSON_AddStringToObject(o, "company", r->company);
	cJSON_AddStringToObject(o, "title", r->title);
	cJSON_AddStringToObject(o, "phone", r->phone);
	add_time(o, "created", r->sf_created);
	add_time(o, "modified", r->sf_modified);
	add_time(o, "system_modstamp", r->modstamp);
	add_time(o, "last_written", r->written_at);
	cJSON_AddBoolToObject(o, "converted", (r->flags & LEDGER_RECORD_CONVERTED) != 0);
	return o;
}

const char *person_email(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN],
                         struct ledger_person *scratch)
{
	struct err pe;
	if (scratch && ledger_person_get(t, key, scratch, &pe) == 0 &&
	    !(scratch->flags & LEDGER_PERSON_ERASED))
		return scratch->email;
	return "erased";
}

cJSON *render_event(const struct ledger_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "seq", (double)ev->seq);
	add_time(o, "at", ev->at);
	cJSON_AddStringToObject(
	    o, "kind", ledger_event_kind_name(ev->kind) ? ledger_event_kind_name(ev->kind) : "?");
	cJSON_AddStringToObject(
	    o, "origin", ledger_origin_name(ev->origin) ? ledger_origin_name(ev->origin) : "?");
	cJSON_AddStringToObject(o, "actor", ev->actor);
	if (ev->record.object) {
		cJSON *r = cJSON_AddObjectToObject(o, "record");
		cJSON_AddStringToObject(r, "object", ledger_object_name(ev->record.object));
		cJSON_AddStringToObject(r, "id", ev->record.id);
	}
	if (ev->facts.mask & LEDGER_F_OPTED_OUT)
		cJSON_AddBoolToObject(o, "opted_out", ev->facts.opted_out);
	if (ev->facts.mask & LEDGER_F_AUTH_TYPE)
		json_attach(o, "authorization", render_auth(&ev->facts));
	if (ev->facts.mask & LEDGER_F_SOURCE_TYPE)
		json_attach(o, "source", render_source(&ev->facts));
	if (ev->conflict_id)
		cJSON_AddNumberToObject(o, "conflict_id", (double)ev->conflict_id);
	if (ev->reason[0])
		cJSON_AddStringToObject(o, "reason", ev->reason);
	if (ev->evidence_ref[0] || ev->evidence_sha256[0]) {
		cJSON *x = cJSON_AddObjectToObject(o, "evidence");
		cJSON_AddStringToObject(x, "ref", ev->evidence_ref);
		if (ev->evidence_sha256[0])
			cJSON_AddStringToObject(x, "sha256", ev->evidence_sha256);
	}
	if (ev->campaign[0])
		cJSON_AddStringToObject(o, "campaign", ev->campaign);
	if (ev->purpose_name[0]) {
		cJSON_AddStringToObject(o, "purpose", ev->purpose_name);
		if (ev->facts.mask & LEDGER_F_CONSENT_DATE)
			add_time(o, "consent_date", ev->facts.consent_date);
	}
	if (ev->kind == LEDGER_EV_ACCESS) {
		cJSON *x = cJSON_AddObjectToObject(o, "access");
		cJSON_AddStringToObject(x, "what", ev->access_what);
		cJSON_AddStringToObject(x, "via", ev->access_via);
	}
	if (ev->erased)
		cJSON_AddBoolToObject(o, "erased", true);
	return o;
}

static const char *field_name(uint32_t f)
{
	switch (f) {
	case LEDGER_F_OPTED_OUT:
		return "opted_out";
	case LEDGER_F_AUTH_TYPE:
		return "authorization";
	case LEDGER_F_SOURCE_TYPE:
		return "source";
	default:
		return "field";
	}
}

cJSON *render_conflict(const struct ledger_conflict *cf)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)cf->id);
	cJSON_AddStringToObject(
	    o, "kind",
	    ledger_conflict_kind_name(cf->kind) ? ledger_conflict_kind_name(cf->kind) : "?");
	/* reverted: closed by optsync itself once Salesforce holds the opt-out
	 * again (resubscribe_policy = "revert"); open: a human must decide */
	cJSON_AddStringToObject(o, "status",
	                        cf->status == LEDGER_CONFLICT_OPEN               ? "open"
	                        : strcmp(cf->resolution, CONFLICT_REVERTED) == 0 ? "reverted"
	                                                                         : "resolved");
	cJSON_AddStringToObject(o, "field", field_name(cf->field));
	if (cf->purpose_name[0])
		cJSON_AddStringToObject(o, "purpose", cf->purpose_name);
	char key[65];
	hex32(cf->person, key);
	cJSON_AddStringToObject(o, "person", key);
	if (cf->record.object) {
		cJSON *r = cJSON_AddObjectToObject(o, "record");
		cJSON_AddStringToObject(r, "object", ledger_object_name(cf->record.object));
		cJSON_AddStringToObject(r, "id", cf->record.id);
	}
	cJSON_AddStringToObject(o, "local_value", cf->local_value);
	cJSON_AddStringToObject(o, "salesforce_value", cf->sf_value);
	add_time(o, "detected_at", cf->detected_at);
	cJSON_AddBoolToObject(o, "auto_resolved", cf->auto_resolved);
	if (cf->status == LEDGER_CONFLICT_RESOLVED) {
		cJSON_AddStringToObject(o, "resolution", cf->resolution);
		cJSON_AddStringToObject(o, "resolved_by", cf->resolved_by);
		add_time(o, "resolved_at", cf->resolved_at);
	}
	return o;
}

cJSON *render_change(const struct ledger_change *ch, const char *email)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "seq", (double)ch->seq);
	add_time(o, "at", ch->at);
	cJSON_AddStringToObject(o, "kind", ledger_event_kind_name(ch->kind));
	cJSON_AddStringToObject(o, "origin", ledger_origin_name(ch->origin));
	if (email)
		cJSON_AddStringToObject(o, "email", email);
	else
		cJSON_AddNullToObject(o, "email");
	cJSON_AddBoolToObject(o, "opted_out", ch->opted_out);
	if (ch->purpose_name[0]) {
		cJSON *p = cJSON_AddObjectToObject(o, "purpose");
		cJSON_AddStringToObject(p, "name", ch->purpose_name);
		cJSON_AddStringToObject(p, "status",
		                        ch->purpose_status == LEDGER_PURPOSE_IN ? "opted_in"
		                                                                : "opted_out");
	}
	cJSON *a = cJSON_AddObjectToObject(o, "authorization");
	if (ch->auth_type)
		cJSON_AddStringToObject(a, "type", ledger_auth_name(ch->auth_type));
	else
		cJSON_AddNullToObject(a, "type");
	if (ch->auth_type == LEDGER_AUTH_CONSENT)
		add_time(a, "consent_date", ch->consent_date);
	cJSON *s = cJSON_AddObjectToObject(o, "source");
	if (ch->source_type)
		cJSON_AddStringToObject(s, "type", ledger_source_name(ch->source_type));
	else
		cJSON_AddNullToObject(s, "type");
	return o;
}

cJSON *render_retention(bool configured, bool dry_run, uint64_t events, uint64_t persons,
                        uint64_t conflicts, uint64_t event_seq)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "configured", configured);
	cJSON_AddBoolToObject(o, "dry_run", dry_run);
	cJSON *p = cJSON_AddObjectToObject(o, dry_run ? "would_purge" : "purged");
	cJSON_AddNumberToObject(p, "events", (double)events);
	cJSON_AddNumberToObject(p, "persons", (double)persons);
	cJSON_AddNumberToObject(p, "resolved_conflicts", (double)conflicts);
	if (event_seq)
		cJSON_AddNumberToObject(o, "event_seq", (double)event_seq);
	return o;
}

cJSON *render_bad_row(size_t row, const char *email, const char *error)
{
	cJSON *b = cJSON_CreateObject();
	if (b == NULL)
		return NULL;
	char q[EMAIL_ECHO_MAX];
	cJSON_AddNumberToObject(b, "row", (double)row);
	cJSON_AddStringToObject(b, "email", email ? email_echo(email, q) : "");
	cJSON_AddStringToObject(b, "error", error);
	return b;
}

/* ---- status ---- */

static void render_cursors(cJSON *o, const struct conn_status *s)
{
	cJSON *cursors = cJSON_AddObjectToObject(o, "cursors");
	for (size_t i = 0; i < s->ncursors; i++) {
		const struct conn_status_cursor *cur = &s->cursor[i];
		cJSON *c = cJSON_AddObjectToObject(cursors, ledger_object_name((int)cur->object));
		if (!cur->found) {
			cJSON_AddNullToObject(c, "system_modstamp");
			continue;
		}
		add_time(c, "system_modstamp", cur->modstamp);
		cJSON_AddStringToObject(c, "last_id", cur->last_id);
		cJSON_AddNumberToObject(c, "records_pulled", (double)cur->pulled);
		add_time(c, "updated_at", cur->updated_at);
		/* how far behind Salesforce optsync may be: every change made
		 * before the last complete pull started has been read, so a quiet
		 * Salesforce does not make this grow; failing cycles do */
		add_time(c, "caught_up_at", cur->caught_up_at);
		if (cur->caught_up_at)
			cJSON_AddNumberToObject(c, "lag_seconds",
			                        (double)(s->now - cur->caught_up_at) / 1000.0);
	}
}

static void render_pushes(cJSON *o, const struct conn_status *s)
{
	cJSON *p = cJSON_AddObjectToObject(o, "pushes");
	cJSON_AddNumberToObject(p, "queued", (double)s->pushes_queued);
	cJSON_AddNumberToObject(p, "parked", (double)s->pushes_parked);
	cJSON *list = cJSON_AddArrayToObject(p, "parked_records");
	for (size_t i = 0; list && i < s->nparked; i++) {
		const struct conn_parked_push *q = &s->parked[i];
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "object", ledger_object_name((int)q->object));
		cJSON_AddStringToObject(r, "id", q->id);
		cJSON_AddStringToObject(r, "email", q->email);
		cJSON_AddStringToObject(r, "error", q->error);
		cJSON_AddNumberToObject(r, "attempts", q->attempts);
		add_time(r, "next_try", q->next_try);
		json_append(list, r);
	}
}

/* Rule 8: the pulled records that could not be applied, named. */
static void render_parked_records(cJSON *o, const struct conn_status *s)
{
	cJSON *p = cJSON_AddObjectToObject(o, "records_parked");
	cJSON_AddNumberToObject(p, "total", (double)s->records_parked);
	cJSON *by = cJSON_AddObjectToObject(p, "by_reason");
	for (int k = 1; k < CONN_PARK_REASONS; k++) {
		uint64_t n = 0;
		for (int obj = 0; obj < 4; obj++)
			n += s->records_parked_by[obj][k];
		if (n)
			cJSON_AddNumberToObject(by, conn_park_reason_name(k), (double)n);
	}
	cJSON *list = cJSON_AddArrayToObject(p, "records");
	for (size_t i = 0; list && i < s->nparked_records; i++) {
		const struct conn_parked_record *q = &s->parked_records[i];
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "object", ledger_object_name((int)q->object));
		cJSON_AddStringToObject(r, "id", q->id);
		cJSON_AddStringToObject(r, "reason", conn_park_reason_name((int)q->reason));
		cJSON_AddStringToObject(r, "error", q->error);
		add_time(r, "system_modstamp", q->modstamp);
		add_time(r, "parked_at", q->parked_at);
		json_append(list, r);
	}
}

int conn_render_status(const struct conn_status *s, cJSON **out, struct err *e)
{
	json_mark();
	cJSON *o = cJSON_CreateObject();
	render_cursors(o, s);
	cJSON *hj = cJSON_AddObjectToObject(o, "health");
	add_time(hj, "last_success_at", s->health.last_success_at);
	cJSON_AddNumberToObject(hj, "failures_in_a_row", (double)s->health.failures_in_a_row);
	add_time(hj, "last_error_at", s->health.last_error_at);
	cJSON_AddBoolToObject(hj, "healthy", s->health.healthy);
	if (s->health.last_error[0])
		cJSON_AddStringToObject(hj, "last_error", s->health.last_error);
	else
		cJSON_AddNullToObject(hj, "last_error");
	int rc = 0;
	if (s->last_cycle) {
		/* saved whole (a report too large is saved as its summary) */
		bool was = json_begin();
		cJSON *last = cJSON_Parse(s->last_cycle);
		if (json_end(was))
			rc = err_set(e, ERR_NOMEM, "out of memory");
		else if (last == NULL)
			rc = err_set(e, ERR_LEDGER,
			             "the saved report of the last cycle is not JSON");
		else
			json_attach(o, "last_cycle", last);
	} else {
		cJSON_AddNullToObject(o, "last_cycle");
	}
	render_pushes(o, s);
	render_parked_records(o, s);
	cJSON_AddNumberToObject(o, "open_conflicts", (double)s->open_conflicts);
	if (s->api_max >= 0) {
		cJSON *api = cJSON_AddObjectToObject(o, "salesforce_api");
		cJSON_AddNumberToObject(api, "daily_used", (double)s->api_used);
		cJSON_AddNumberToObject(api, "daily_max", (double)s->api_max);
	}
	cJSON *lg = cJSON_AddObjectToObject(o, "ledger");
	cJSON_AddNumberToObject(lg, "persons", (double)s->ledger.persons);
	cJSON_AddNumberToObject(lg, "salesforce_records", (double)s->ledger.records);
	cJSON_AddNumberToObject(lg, "history_events", (double)s->ledger.events);
	cJSON_AddNumberToObject(lg, "changes", (double)s->ledger.changes);
	cJSON_AddNumberToObject(lg, "used_bytes", (double)s->ledger.used_bytes);
	cJSON_AddNumberToObject(lg, "map_size", (double)s->ledger.map_size);
	cJSON_AddNumberToObject(lg, "schema_version", s->ledger.schema_version);
	cJSON *r = cJSON_AddObjectToObject(o, "retention");
	cJSON_AddBoolToObject(r, "configured", s->retention.configured);
	add_time(r, "last_run_at", s->retention.last_run_at);
	cJSON *t = cJSON_AddObjectToObject(r, "purged_total");
	static const char *const names[] = {"events", "persons", "resolved_conflicts"};
	for (int i = 0; i < 3; i++)
		cJSON_AddNumberToObject(t, names[i], (double)s->retention.purged[i]);
	return json_result(o, rc, out, e);
}

/* ---- the cycle report ---- */

static cJSON *render_pull(const struct conn_pull_report *s, const char *stopped)
{
	cJSON *o = cJSON_CreateObject();
	if (s->skipped) { /* the cycle stopped before it */
		cJSON_AddStringToObject(o, "skipped", stopped ? stopped : "");
		return o;
	}
	if (!s->pulled) { /* failed before it could read (the consent objects' lookup) */
		cJSON_AddStringToObject(o, "error", s->error);
		return o;
	}
	cJSON_AddNumberToObject(o, "records", (double)s->records);
	cJSON_AddNumberToObject(o, "pages", (double)s->pages);
	cJSON_AddNumberToObject(o, "optouts_from_salesforce", (double)s->optouts_in);
	cJSON_AddNumberToObject(o, "purpose_optouts_from_salesforce",
	                        (double)s->purpose_optouts_in);
	cJSON_AddNumberToObject(o, "purpose_optins_from_salesforce", (double)s->purpose_optins_in);
	cJSON_AddNumberToObject(o, "purpose_optins_without_date", (double)s->purpose_optins_nodate);
	cJSON_AddNumberToObject(o, "facts_applied", (double)s->facts_applied);
	cJSON_AddNumberToObject(o, "resubscribe_conflicts", (double)s->resubscribe_conflicts);
	cJSON_AddNumberToObject(o, "invalid_value_conflicts", (double)s->invalid_conflicts);
	cJSON_AddNumberToObject(o, "concurrent_edit_conflicts", (double)s->concurrent_conflicts);
	cJSON_AddNumberToObject(o, "new_records_suppressed", (double)s->suppressed_new);
	cJSON_AddNumberToObject(o, "unchanged", (double)s->unchanged);
	cJSON_AddNumberToObject(o, "skipped_without_email", (double)s->skipped_no_email);
	cJSON_AddNumberToObject(o, "pushes_queued", (double)s->pushes_queued);
	cJSON_AddNumberToObject(o, "records_unlinked", (double)s->unlinked);
	cJSON_AddNumberToObject(o, "records_parked", (double)s->parked);
	if (s->since)
		add_time(o, "since", s->since);
	if (s->error[0])
		cJSON_AddStringToObject(o, "error", s->error);
	return o;
}

/* "ok"; "partial": a part failed, the rest was done; "failed": stopped. */
static const char *cycle_result(const struct conn_cycle_report *r)
{
	return r->result == 0 ? "ok" : r->partial ? "partial" : "failed";
}

static cJSON *render_push(const struct config *cfg, const struct ledger_push *q)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "object", ledger_object_name(q->record.object));
	if (q->record.object == LEDGER_OBJ_NEW_INDIVIDUAL) /* to create, for that record */
		cJSON_AddStringToObject(o, "new_individual_for", q->record.id);
	else
		cJSON_AddStringToObject(o, "id", q->record.id);
	cJSON *set = cJSON_AddObjectToObject(o, "set");
	const struct config_fields *f = &cfg->salesforce.fields;
	if (q->want.mask & LEDGER_F_OPTED_OUT)
		cJSON_AddBoolToObject(set, f->opted_out, q->want.opted_out);
	if (q->want.mask & LEDGER_F_AUTH_TYPE) {
		const char *v = map_auth_to_sf(cfg, q->want.auth_type);
		json_attach(set, f->authorization_type,
		            v ? cJSON_CreateString(v) : cJSON_CreateNull());
	}
	if (q->want.mask & LEDGER_F_SOURCE_TYPE) {
		const char *v = map_source_to_sf(cfg, q->want.source_type);
		json_attach(set, f->source_type, v ? cJSON_CreateString(v) : cJSON_CreateNull());
	}
	for (uint8_t i = 0; i < q->want_purposes.n; i++) {
		const struct config_purpose *cp =
		    config_purpose_find(cfg, q->want_purposes.v[i].name);
		if (cp && cp->sf_field)
			cJSON_AddBoolToObject(set, cp->sf_field, q->want_purposes.v[i].out);
		else if (cp && cp->sf_opt_in_field) /* true = in; an opt-in with its date */
			cJSON_AddBoolToObject(set, cp->sf_opt_in_field, !q->want_purposes.v[i].out);
		else if (cp && cp->sf_data_use_purpose) {
			/* the Individual's consent row for that DataUsePurpose */
			char k[128];
			snprintf(k, sizeof(k), "ContactPointTypeConsent[%s].PrivacyConsentStatus",
			         cp->sf_data_use_purpose);
			cJSON_AddStringToObject(set, k,
			                        q->want_purposes.v[i].out ? "OptOut" : "OptIn");
		}
	}
	cJSON_AddNumberToObject(o, "attempts", q->attempts);
	if (q->parked)
		cJSON_AddStringToObject(o, "parked", q->last_error);
	else if (q->last_error[0])
		cJSON_AddStringToObject(o, "last_error", q->last_error);
	return o;
}

static void render_cycle_pushes(cJSON *o, const struct conn_cycle_report *r,
                                const struct config *cfg)
{
	if (r->would_push) {
		cJSON *list = cJSON_AddArrayToObject(o, "would_push");
		for (size_t i = 0; list && i < r->would_push->n; i++)
			json_append(list, render_push(cfg, &r->would_push->items[i]));
	}
	cJSON *p = cJSON_AddObjectToObject(o, "pushes");
	if (r->dry_run) /* by_object and collection_calls: what the real cycle would do */
		cJSON_AddNumberToObject(p, "would_push", (double)r->push.would_push);
	cJSON_AddNumberToObject(p, "collection_calls", (double)r->push.collection_calls);
	cJSON_AddNumberToObject(p, "succeeded", (double)r->push.succeeded);
	cJSON *by = cJSON_AddObjectToObject(p, "by_object");
	cJSON_AddNumberToObject(by, "Contact", (double)r->push.by_object[LEDGER_OBJ_CONTACT]);
	cJSON_AddNumberToObject(by, "Lead", (double)r->push.by_object[LEDGER_OBJ_LEAD]);
	cJSON_AddNumberToObject(p, "retrying", (double)r->push.retrying);
	cJSON_AddNumberToObject(p, "parked_now", (double)r->push.parked_now);
	cJSON_AddNumberToObject(p, "conflicts_reverted", (double)r->push.conflicts_reverted);
}

int conn_render_cycle(const struct conn_cycle_report *r, const struct config *cfg, cJSON **out,
                      struct err *e)
{
	json_mark();
	cJSON *o = cJSON_CreateObject();
	add_time(o, "started_at", r->started_at);
	cJSON_AddBoolToObject(o, "dry_run", r->dry_run);
	cJSON_AddBoolToObject(o, "full", r->full);
	cJSON *objs = cJSON_AddObjectToObject(o, "pulled");
	for (size_t i = 0; i < r->norder; i++)
		json_attach(objs, ledger_object_name((int)r->order[i]),
		            render_pull(&r->pull[r->order[i]], r->stopped));
	if (r->consent_error[0])
		cJSON_AddStringToObject(o, "consent_objects_error", r->consent_error);
	if (r->undated.n) {
		/* opt-ins read without their date: not evidence, not taken */
		cJSON *list = cJSON_AddArrayToObject(o, "optins_without_date");
		for (size_t i = 0; list && i < r->undated.n; i++) {
			const struct conn_undated *u = &r->undated.v[i];
			cJSON *x = cJSON_CreateObject();
			cJSON_AddStringToObject(x, "purpose", u->purpose);
			cJSON_AddStringToObject(x, "object", ledger_object_name((int)u->object));
			cJSON_AddStringToObject(x, "id", u->id);
			cJSON_AddStringToObject(x, "missing", u->missing);
			json_append(list, x);
		}
	}
	if (r->pushed)
		render_cycle_pushes(o, r, cfg);
	else if (r->stopped) /* what was queued waits for the next cycle */
		cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "pushes"), "skipped",
		                        r->stopped);
	if (r->retention.failed) {
		cJSON *ret = cJSON_AddObjectToObject(o, "retention");
		cJSON_AddStringToObject(ret, "error", r->retention.error);
	} else if (r->retention.ran) {
		json_attach(o, "retention",
		            render_retention(true, false, r->retention.events, r->retention.persons,
		                             r->retention.conflicts, r->retention.event_seq));
	}
	add_time(o, "finished_at", r->finished_at);
	cJSON_AddStringToObject(o, "result", cycle_result(r));
	if (r->result)
		cJSON_AddStringToObject(o, "error", r->error);
	if (r->api_known) {
		cJSON *api = cJSON_AddObjectToObject(o, "salesforce_api");
		cJSON_AddNumberToObject(api, "requests", (double)r->api.requests);
		cJSON_AddNumberToObject(api, "token_calls", (double)r->api.token_calls);
		cJSON_AddNumberToObject(api, "retries", (double)r->api.retries);
		if (r->api.daily_max > 0) {
			cJSON_AddNumberToObject(api, "daily_used", (double)r->api.daily_used);
			cJSON_AddNumberToObject(api, "daily_max", (double)r->api.daily_max);
		}
	}
	return json_result(o, 0, out, e);
}

cJSON *render_cycle_summary(const struct conn_cycle_report *r, size_t bytes)
{
	cJSON *o = cJSON_CreateObject();
	add_time(o, "started_at", r->started_at);
	add_time(o, "finished_at", r->finished_at);
	cJSON_AddBoolToObject(o, "dry_run", r->dry_run);
	cJSON_AddBoolToObject(o, "full", r->full);
	cJSON_AddStringToObject(o, "result", cycle_result(r));
	if (r->result)
		cJSON_AddStringToObject(o, "error", r->error);
	cJSON_AddNumberToObject(o, "report_bytes", (double)bytes);
	cJSON_AddStringToObject(o, "note", "the whole report was larger than the ledger keeps");
	return o;
}

/* ---- purposes ---- */

cJSON *render_purposes(const struct config *cfg, const struct ledger_person *person,
                       const struct ledger_purpose *set, size_t n)
{
	static const char *const status_names[] = {"none", "opted_in", "opted_out"};
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; o && i < cfg->npurposes; i++) {
		const struct config_purpose *cp = &cfg->purposes[i];
		const struct ledger_purpose *p = NULL;
		for (size_t j = 0; j < n && p == NULL; j++)
			if (strcmp(set[j].name, cp->name) == 0)
				p = &set[j];
		uint8_t status = p ? p->status : LEDGER_PURPOSE_NONE;
		/* P3: what the suppression check answers for this purpose */
		bool out =
		    purpose_out(person->facts.opted_out, status, cp->basis == CONFIG_BASIS_CONSENT);
		cJSON *q = cJSON_CreateObject();
		cJSON_AddStringToObject(q, "status", status_names[status <= 2 ? status : 0]);
		cJSON_AddStringToObject(q, "basis", config_basis_name(cp->basis));
		cJSON_AddBoolToObject(q, "suppressed", out);
		if (p && status != LEDGER_PURPOSE_NONE) { /* none: only a consent row known */
			add_time(q, "changed_at", p->changed_at);
			cJSON_AddStringToObject(
			    q, "origin",
			    ledger_origin_name(p->origin) ? ledger_origin_name(p->origin) : "?");
		}
		if (p && status == LEDGER_PURPOSE_IN) {
			add_time(q, "consent_date", p->consent_date);
			if (p->evidence_ref[0])
				cJSON_AddStringToObject(q, "evidence_ref", p->evidence_ref);
		}
		json_attach(o, cp->name, q);
	}
	return o;
}
