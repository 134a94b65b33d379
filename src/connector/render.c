/* The contract's JSON shapes, rendered from ledger structs: the only place
 * a person, record, event or conflict becomes JSON. */
#include <stdio.h>
#include <string.h>

#include "connector/internal.h"
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

cJSON *render_person(const struct ledger_person *p, bool refs)
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
	for (uint32_t i = 0; refs && i < p->nrecords; i++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "object", ledger_object_name(p->records[i].object));
		cJSON_AddStringToObject(r, "id", p->records[i].id);
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

cJSON *render_pull_stats(const struct apply_stats *s, uint64_t pages)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "records", (double)s->records);
	cJSON_AddNumberToObject(o, "pages", (double)pages);
	cJSON_AddNumberToObject(o, "optouts_from_salesforce", (double)s->optouts_in);
	cJSON_AddNumberToObject(o, "facts_applied", (double)s->facts_applied);
	cJSON_AddNumberToObject(o, "resubscribe_conflicts", (double)s->resubscribe_conflicts);
	cJSON_AddNumberToObject(o, "invalid_value_conflicts", (double)s->invalid_conflicts);
	cJSON_AddNumberToObject(o, "concurrent_edit_conflicts", (double)s->concurrent_conflicts);
	cJSON_AddNumberToObject(o, "new_records_suppressed", (double)s->suppressed_new);
	cJSON_AddNumberToObject(o, "unchanged", (double)s->echoes);
	cJSON_AddNumberToObject(o, "skipped_without_email", (double)s->skipped_no_email);
	cJSON_AddNumberToObject(o, "pushes_queued", (double)s->pushes_queued);
	return o;
}

cJSON *render_bad_row(size_t row, const char *email, const char *error)
{
	cJSON *b = cJSON_CreateObject();
	if (b == NULL)
		return NULL;
	cJSON_AddNumberToObject(b, "row", (double)row);
	cJSON_AddStringToObject(b, "email", email ? email : "");
	cJSON_AddStringToObject(b, "error", error);
	return b;
}
