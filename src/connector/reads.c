/* The use cases that read a person: show, history and the export (JSON and
 * CSV). */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/usecase.h"
#include "util/csv.h"
#include "util/log.h"
#include "util/timefmt.h"

/* ---- reading ---- */

static int collect_event(const struct ledger_event *ev, void *ctx)
{
	cJSON_AddItemToArray((cJSON *)ctx, render_event(ev));
	return 0;
}

static int show_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct uc *u = ctx;
	int rc = ledger_person_get(t, u->key, &u->p, e);
	if (rc == ERR_NOTFOUND)
		return err_set(e, ERR_NOTFOUND, "no person with email %s", u->email);
	if (rc)
		return rc;
	cJSON *o = render_person(u->c->cfg, &u->p);
	u->out = o;
	if (!u->full)
		return 0;
	/* export and history: the records in full and the history */
	cJSON *recs = cJSON_GetObjectItemCaseSensitive(o, "salesforce_records");
	struct ledger_record *r = malloc(sizeof(*r));
	if (r == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	while (cJSON_GetArraySize(recs) > 0)
		cJSON_DeleteItemFromArray(recs, 0);
	for (uint32_t i = 0; rc == 0 && i < u->p.nrecords; i++) {
		rc = ledger_record_get(t, u->p.records[i].object, u->p.records[i].id, r, e);
		if (rc == 0)
			cJSON_AddItemToArray(recs, render_record(r));
		else if (rc == ERR_NOTFOUND)
			rc = 0;
	}
	free(r);
	if (rc == 0)
		rc = ledger_event_each_of(t, u->key, collect_event,
		                          cJSON_AddArrayToObject(o, "history"), e);
	return rc;
}

static int read_person(struct conn *c, const char *email, int full, cJSON **out, struct err *e)
{
	*out = NULL;
	struct conn_actor none = {CONN_ORIGIN_LOCAL, "cli"};
	struct uc *u = uc_new(c, &none, email, e);
	if (u == NULL)
		return e->code;
	u->full = full != 0;
	int rc = ledger_read(c->l, show_txn, u, e);
	if (rc) {
		cJSON_Delete(u->out);
		return uc_fail(u, rc);
	}
	*out = u->out;
	free(u);
	return 0;
}

int conn_contact_show(struct conn *c, const char *email, cJSON **out, struct err *e)
{
	return read_person(c, email, 0, out, e);
}

int conn_contact_history(struct conn *c, const char *email, cJSON **out, struct err *e)
{
	cJSON *full;
	int rc = read_person(c, email, 1, &full, e);
	if (rc)
		return rc;
	*out = cJSON_DetachItemFromObject(full, "history");
	cJSON_Delete(full);
	return 0;
}

int conn_contact_export(struct conn *c, const char *email, cJSON **out, struct err *e)
{
	*out = NULL;
	cJSON *full;
	int rc = read_person(c, email, 1, &full, e);
	if (rc)
		return rc;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "email",
	                        cJSON_GetStringValue(cJSON_GetObjectItem(full, "email"))
	                            ? cJSON_GetStringValue(cJSON_GetObjectItem(full, "email"))
	                            : "");
	add_time(o, "exported_at", time_now_ms());
	cJSON_AddItemToObject(o, "salesforce_records",
	                      cJSON_DetachItemFromObject(full, "salesforce_records"));
	cJSON_AddItemToObject(o, "history", cJSON_DetachItemFromObject(full, "history"));
	cJSON_AddItemToObject(o, "state", full);
	*out = o;
	return 0;
}

#define EXPORT_CSV_MAX (64 << 20) /* bytes: one person's export */

static const char *str_of(const cJSON *o, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
	return s ? s : "";
}

/* The export as one CSV table: a row per Salesforce record (section
 * "record", the person's state on each, as a CRM export has it) and a row
 * per history event (section "event"), every row with the person id. */
int conn_contact_export_csv(struct conn *c, const char *email, char **out, struct err *e)
{
	*out = NULL;
	cJSON *x;
	int rc = conn_contact_export(c, email, &x, e);
	if (rc)
		return rc;
	struct buf b;
	buf_init(&b, EXPORT_CSV_MAX);
	static const char *const cols[] = {"section",       "person_id",       "first_name",
	                                   "last_name",     "company",         "title",
	                                   "email",         "phone",           "salesforce_object",
	                                   "salesforce_id", "created",         "updated",
	                                   "opted_out",     "opted_out_at",    "authorization_type",
	                                   "consent_date",  "purpose",         "source_type",
	                                   "event_seq",     "event_at",        "event_kind",
	                                   "event_origin",  "event_actor",     "event_reason",
	                                   "evidence_ref",  "evidence_sha256", "exported_at"};
	enum { NCOLS = sizeof(cols) / sizeof(cols[0]) };
	for (size_t i = 0; rc == 0 && i < NCOLS; i++)
		rc = csv_write_field(&b, cols[i], i + 1 == NCOLS, e);
	const cJSON *st = cJSON_GetObjectItem(x, "state");
	const cJSON *auth = cJSON_GetObjectItem(st, "authorization");
	const cJSON *src = cJSON_GetObjectItem(st, "source");
	const cJSON *recs = cJSON_GetObjectItem(x, "salesforce_records");
	const char *person = str_of(st, "key"), *exported = str_of(x, "exported_at");
	int n = cJSON_GetArraySize(recs);
	for (int i = 0; i < (n ? n : 1); i++) {
		const cJSON *r = n ? cJSON_GetArrayItem(recs, i) : NULL;
		const char *row[NCOLS] = {
		    "record",
		    person,
		    str_of(r, "first_name"),
		    str_of(r, "last_name"),
		    str_of(r, "company"),
		    str_of(r, "title"),
		    str_of(x, "email"),
		    str_of(r, "phone"),
		    str_of(r, "object"),
		    str_of(r, "id"),
		    r ? str_of(r, "created") : str_of(st, "created_at"),
		    r ? str_of(r, "modified") : str_of(st, "updated_at"),
		    cJSON_IsTrue(cJSON_GetObjectItem(st, "opted_out")) ? "true" : "false",
		    str_of(st, "opted_out_at"),
		    str_of(auth, "type"),
		    str_of(auth, "consent_date"),
		    str_of(auth, "purpose"),
		    str_of(src, "type"),
		    "",
		    "",
		    "",
		    "",
		    "",
		    "",
		    "",
		    "",
		    exported};
		for (size_t k = 0; rc == 0 && k < NCOLS; k++)
			rc = csv_write_field(&b, row[k], k + 1 == NCOLS, e);
	}
	const cJSON *ev;
	cJSON_ArrayForEach(ev, cJSON_GetObjectItem(x, "history"))
	{
		char seq[24];
		snprintf(seq, sizeof(seq), "%.0f",
		         cJSON_GetNumberValue(cJSON_GetObjectItem(ev, "seq")));
		const cJSON *rec = cJSON_GetObjectItem(ev, "record");
		const cJSON *ea = cJSON_GetObjectItem(ev, "authorization");
		const cJSON *es = cJSON_GetObjectItem(ev, "source");
		const cJSON *oo = cJSON_GetObjectItem(ev, "opted_out");
		const cJSON *evi = cJSON_GetObjectItem(ev, "evidence");
		const char *row[NCOLS] = {"event",
		                          person,
		                          "",
		                          "",
		                          "",
		                          "",
		                          str_of(x, "email"),
		                          "",
		                          str_of(rec, "object"),
		                          str_of(rec, "id"),
		                          "",
		                          "",
		                          oo ? (cJSON_IsTrue(oo) ? "true" : "false") : "",
		                          "",
		                          str_of(ea, "type"),
		                          str_of(ea, "consent_date"),
		                          str_of(ea, "purpose"),
		                          str_of(es, "type"),
		                          seq,
		                          str_of(ev, "at"),
		                          str_of(ev, "kind"),
		                          str_of(ev, "origin"),
		                          str_of(ev, "actor"),
		                          str_of(ev, "reason"),
		                          str_of(evi, "ref"),
		                          str_of(evi, "sha256"),
		                          exported};
		for (size_t k = 0; rc == 0 && k < NCOLS; k++)
			rc = csv_write_field(&b, row[k], k + 1 == NCOLS, e);
	}
	cJSON_Delete(x);
	if (rc) {
		/* never a cut export handed out as whole */
		buf_free(&b);
		if (rc == ERR_LIMIT)
			err_set(e, ERR_LIMIT, "the export of %s is larger than %d MiB", email,
			        EXPORT_CSV_MAX >> 20);
		return rc;
	}
	*out = buf_detach(&b, NULL);
	return 0;
}
