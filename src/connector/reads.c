/* The use cases that read a person: show, history and the export (JSON and
 * CSV). Each reads a typed view of the person in one read transaction; JSON
 * and CSV are both rendered from that view, never one from the other. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/buf.h"
#include "util/csv.h"
#include "util/timefmt.h"

/* What is read: the person always, its record references, the records in
 * full and the history when asked. */
enum view_part { VIEW_PERSON = 0, VIEW_RECORDS = 1, VIEW_HISTORY = 2, VIEW_REFS = 4 };

#define EXPORT_CSV_MAX (64 << 20) /* bytes: one person's export */

/* A record of the view, compact: a person may have thousands of records
 * (a role address's Leads), and a struct ledger_record is 7 KB; its texts
 * are kept in one arena. view_record() makes a struct ledger_record of it
 * again, one at a time, to render. */
enum {
	T_PURPOSE,
	T_AUTH_OTHER,
	T_SOURCE_OTHER,
	T_FIRST,
	T_LAST,
	T_COMPANY,
	T_TITLE,
	T_PHONE,
	NTEXTS
};
struct view_rec {
	uint8_t object, auth_type, source_type;
	bool opted_out;
	char id[LEDGER_ID_MAX + 1];
	uint32_t flags, mask;
	int64_t consent_date, sf_created, sf_modified, modstamp, written_at;
	size_t text[NTEXTS]; /* offsets into the arena */
};

struct person_view {
	struct conn *c;
	unsigned parts; /* enum view_part bits */
	char email[LEDGER_EMAIL_MAX + 1];
	uint8_t key[LEDGER_KEY_LEN];
	struct ledger_person p;
	struct person_refs refs; /* VIEW_REFS */
	struct view_rec *recs;   /* VIEW_RECORDS: the person's live records */
	size_t nrecs, caprecs;
	struct buf arena;          /* their texts */
	struct ledger_record *rec; /* scratch: one record read, or rendered */
	struct ledger_event *evs;  /* VIEW_HISTORY: oldest first */
	size_t nevs, capevs;
	struct ledger_purpose purposes[CONFIG_PURPOSES_MAX]; /* the configured ones set */
	size_t npurposes;
	struct ledger_txn *t; /* for the collectors */
	struct err *e;
};

static void view_free(struct person_view *v)
{
	if (v == NULL)
		return;
	person_refs_free(&v->refs);
	free(v->recs);
	buf_free(&v->arena);
	free(v->rec);
	free(v->evs);
	free(v);
}

static int collect_event(const struct ledger_event *ev, void *ctx)
{
	struct person_view *v = ctx;
	if (v->nevs == v->capevs) {
		size_t cap = v->capevs ? 2 * v->capevs : 16;
		struct ledger_event *n = realloc(v->evs, cap * sizeof(*n));
		if (n == NULL)
			return err_set(v->e, ERR_NOMEM, "out of memory");
		v->evs = n;
		v->capevs = cap;
	}
	v->evs[v->nevs++] = *ev;
	return 0;
}

static int collect_purpose(const struct ledger_purpose *p, void *ctx)
{
	struct person_view *v = ctx;
	if (config_purpose_find(v->c->cfg, p->name) && v->npurposes < CONFIG_PURPOSES_MAX)
		v->purposes[v->npurposes++] = *p;
	return 0;
}

static int collect_record(const struct ledger_recref *ref, void *ctx)
{
	struct person_view *v = ctx;
	struct ledger_record *r = v->rec;
	int rc = ledger_record_get(v->t, ref->object, ref->id, r, v->e);
	if (rc == ERR_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v->nrecs == v->caprecs) {
		size_t cap = v->caprecs ? 2 * v->caprecs : 16;
		struct view_rec *n = realloc(v->recs, cap * sizeof(*n));
		if (n == NULL)
			return err_set(v->e, ERR_NOMEM, "out of memory");
		v->recs = n;
		v->caprecs = cap;
	}
	struct view_rec *x = &v->recs[v->nrecs];
	x->object = r->object;
	memcpy(x->id, r->id, sizeof(x->id));
	x->flags = r->flags;
	x->mask = r->seen.mask;
	x->opted_out = r->seen.opted_out;
	x->auth_type = r->seen.auth_type;
	x->source_type = r->seen.source_type;
	x->consent_date = r->seen.consent_date;
	x->sf_created = r->sf_created;
	x->sf_modified = r->sf_modified;
	x->modstamp = r->modstamp;
	x->written_at = r->written_at;
	const char *texts[NTEXTS] = {r->seen.purpose,
	                             r->seen.auth_other,
	                             r->seen.source_other,
	                             r->first_name,
	                             r->last_name,
	                             r->company,
	                             r->title,
	                             r->phone};
	for (int i = 0; rc == 0 && i < NTEXTS; i++) {
		x->text[i] = v->arena.len;
		rc = buf_append(&v->arena, texts[i], strlen(texts[i]) + 1, v->e);
	}
	if (rc == ERR_LIMIT)
		return err_set(v->e, ERR_LIMIT,
		               "the Salesforce records of %s hold more than %d MiB of text",
		               v->email, EXPORT_CSV_MAX >> 20);
	if (rc == 0)
		v->nrecs++;
	return rc;
}

/* Record i of the view as a struct ledger_record, in v->rec (valid until
 * the next call). */
static const struct ledger_record *view_record(const struct person_view *v, size_t i)
{
	const struct view_rec *x = &v->recs[i];
	struct ledger_record *r = v->rec;
	memset(r, 0, sizeof(*r));
	ledger_facts_init(&r->seen);
	ledger_facts_init(&r->written);
	r->object = x->object;
	memcpy(r->id, x->id, sizeof(r->id));
	r->flags = x->flags;
	r->seen.mask = x->mask;
	r->seen.opted_out = x->opted_out;
	r->seen.auth_type = x->auth_type;
	r->seen.source_type = x->source_type;
	r->seen.consent_date = x->consent_date;
	r->sf_created = x->sf_created;
	r->sf_modified = x->sf_modified;
	r->modstamp = x->modstamp;
	r->written_at = x->written_at;
	char *dst[NTEXTS] = {r->seen.purpose,
	                     r->seen.auth_other,
	                     r->seen.source_other,
	                     r->first_name,
	                     r->last_name,
	                     r->company,
	                     r->title,
	                     r->phone};
	size_t cap[NTEXTS] = {sizeof(r->seen.purpose),
	                      sizeof(r->seen.auth_other),
	                      sizeof(r->seen.source_other),
	                      sizeof(r->first_name),
	                      sizeof(r->last_name),
	                      sizeof(r->company),
	                      sizeof(r->title),
	                      sizeof(r->phone)};
	for (int k = 0; k < NTEXTS; k++)
		str_copy(dst[k], cap[k], v->arena.data + x->text[k]);
	return r;
}

static int view_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct person_view *v = ctx;
	int rc = ledger_person_get(t, v->key, &v->p, e);
	if (rc == ERR_NOTFOUND)
		return err_set(e, ERR_NOTFOUND, "no person with email %s", v->email);
	if (rc)
		return rc;
	v->npurposes = v->nrecs = v->nevs = 0; /* the callback may run again */
	buf_reset(&v->arena);
	v->t = t;
	v->e = e;
	if ((rc = ledger_purpose_each(t, v->key, collect_purpose, v, e)))
		return rc;
	if ((v->parts & VIEW_REFS) && (rc = person_refs_read(t, &v->p, &v->refs, e)))
		return rc;
	if (v->parts & VIEW_RECORDS) {
		if (v->rec == NULL && (v->rec = malloc(sizeof(*v->rec))) == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		if ((rc = ledger_person_records_each(t, &v->p, collect_record, v, e)))
			return rc;
	}
	if (v->parts & VIEW_HISTORY)
		rc = ledger_event_each_of(t, v->key, collect_event, v, e);
	return rc;
}

/* ---- a person's record references ---- */

static int add_ref(const struct ledger_recref *ref, void *ctx)
{
	struct person_refs *r = ctx;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct ledger_recref *g = realloc(r->v, cap * sizeof(*g));
		if (g == NULL)
			return ERR_NOMEM;
		r->v = g;
		r->cap = cap;
	}
	r->v[r->n++] = *ref;
	return 0;
}

int person_refs_read(struct ledger_txn *t, const struct ledger_person *p, struct person_refs *r,
                     struct err *e)
{
	r->n = 0;
	int rc = ledger_person_records_each(t, p, add_ref, r, e);
	return rc == ERR_NOMEM ? err_set(e, ERR_NOMEM, "out of memory") : rc;
}

void person_refs_free(struct person_refs *r)
{
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

/* The view of email's person; *out is NULL on failure. */
static int view_read(struct conn *c, const char *email, unsigned parts, struct person_view **out,
                     struct err *e)
{
	*out = NULL;
	struct person_view *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	v->c = c;
	v->parts = parts;
	buf_init(&v->arena, EXPORT_CSV_MAX);
	int rc = conn_person_key(c, email, v->email, v->key, e);
	if (rc == 0)
		rc = ledger_read(c->l, view_txn, v, e);
	if (rc) {
		view_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

static cJSON *render_history(const struct person_view *v)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < v->nevs; i++)
		json_append(a, render_event(&v->evs[i]));
	return a;
}

int conn_contact_show(struct conn *c, const char *email, cJSON **out, struct err *e)
{
	*out = NULL;
	struct person_view *v;
	int rc = view_read(c, email, VIEW_REFS, &v, e);
	if (rc)
		return rc;
	json_mark();
	cJSON *o = render_person(&v->p, &v->refs);
	json_attach(o, "purposes", render_purposes(v->c->cfg, &v->p, v->purposes, v->npurposes));
	view_free(v);
	return json_result(o, 0, out, e);
}

int conn_contact_history(struct conn *c, const char *email, cJSON **out, struct err *e)
{
	*out = NULL;
	struct person_view *v;
	int rc = view_read(c, email, VIEW_HISTORY, &v, e);
	if (rc)
		return rc;
	json_mark();
	cJSON *a = render_history(v);
	view_free(v);
	return json_result(a, 0, out, e);
}

int conn_contact_export(struct conn *c, const char *email, cJSON **out, struct err *e)
{
	*out = NULL;
	struct person_view *v;
	int rc = view_read(c, email, VIEW_RECORDS | VIEW_HISTORY, &v, e);
	if (rc)
		return rc;
	/* {email, exported_at, salesforce_records (in full), history, state
	 * (the person without its record references)} */
	json_mark();
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "email", (v->p.flags & LEDGER_PERSON_ERASED) ? "" : v->p.email);
	add_time(o, "exported_at", time_now_ms());
	cJSON *recs = cJSON_AddArrayToObject(o, "salesforce_records");
	for (size_t i = 0; i < v->nrecs; i++)
		json_append(recs, render_record(view_record(v, i)));
	cJSON *hist = render_history(v);
	json_attach(o, "history", hist);
	cJSON *state = render_person(&v->p, NULL);
	json_attach(state, "purposes",
	            render_purposes(v->c->cfg, &v->p, v->purposes, v->npurposes));
	json_attach(o, "state", state);
	view_free(v);
	return json_result(o, 0, out, e);
}

/* The export's CSV columns, in order. */
enum col {
	C_SECTION,
	C_PERSON,
	C_FIRST,
	C_LAST,
	C_COMPANY,
	C_TITLE,
	C_EMAIL,
	C_PHONE,
	C_OBJECT,
	C_ID,
	C_CREATED,
	C_UPDATED,
	C_OPTED_OUT,
	C_OPTED_OUT_AT,
	C_AUTH,
	C_CONSENT_DATE,
	C_PURPOSE,
	C_AUTH_OTHER,
	C_SOURCE,
	C_SOURCE_OTHER,
	C_SEQ,
	C_AT,
	C_KIND,
	C_ORIGIN,
	C_ACTOR,
	C_REASON,
	C_EVIDENCE_REF,
	C_EVIDENCE_SHA,
	C_PURPOSE_NAME,
	C_PURPOSE_STATUS,
	C_EXPORTED,
	NCOLS
};

static const char *const col_names[NCOLS] = {
    "section",         "person_id",    "first_name",
    "last_name",       "company",      "title",
    "email",           "phone",        "salesforce_object",
    "salesforce_id",   "created",      "updated",
    "opted_out",       "opted_out_at", "authorization_type",
    "consent_date",    "purpose",      "authorization_other",
    "source_type",     "source_other", "event_seq",
    "event_at",        "event_kind",   "event_origin",
    "event_actor",     "event_reason", "evidence_ref",
    "evidence_sha256", "purpose_name", "purpose_status",
    "exported_at"};

/* Time cells: one buffer per column that can hold a time. */
struct csv_row {
	const char *cell[NCOLS];
	char created[TIME_STR_MAX], updated[TIME_STR_MAX], opted_out_at[TIME_STR_MAX];
	char consent[TIME_STR_MAX], at[TIME_STR_MAX], seq[24];
};

static const char *time_cell(int64_t ms, char buf[TIME_STR_MAX])
{
	if (ms == 0)
		return "";
	time_format(ms, buf);
	return buf;
}

/* The authorization and source cells of a set of facts, as the JSON shows
 * them: a consent date and purpose only with type consent, the free text
 * (authorization.other, source.other) only with type other. */
static void facts_cells(struct csv_row *r, const struct ledger_facts *f, int auth, int source)
{
	int type = (f->mask & LEDGER_F_AUTH_TYPE) ? f->auth_type : 0;
	if (auth && type) {
		r->cell[C_AUTH] = ledger_auth_name(type);
		if (type == LEDGER_AUTH_CONSENT) {
			r->cell[C_CONSENT_DATE] = time_cell(f->consent_date, r->consent);
			r->cell[C_PURPOSE] = f->purpose;
		}
		if (type == LEDGER_AUTH_OTHER)
			r->cell[C_AUTH_OTHER] = f->auth_other;
	}
	int st = (f->mask & LEDGER_F_SOURCE_TYPE) ? f->source_type : 0;
	if (source && st) {
		r->cell[C_SOURCE] = ledger_source_name(st);
		if (st == LEDGER_SOURCE_OTHER)
			r->cell[C_SOURCE_OTHER] = f->source_other;
	}
}

static int write_row(struct buf *b, struct csv_row *r, struct err *e)
{
	int rc = 0;
	for (size_t k = 0; rc == 0 && k < NCOLS; k++)
		rc = csv_write_field(b, r->cell[k] ? r->cell[k] : "", k + 1 == NCOLS, e);
	return rc;
}

/* The export as one CSV table: a row per Salesforce record (section
 * "record", the person's state on each, as a CRM export has it; one row
 * without a record when there is none), a row per configured purpose the
 * person has a status for (section "purpose"), and a row per history event
 * (section "event"), every row with the person id. */
static int export_csv(const struct person_view *v, struct buf *b, struct err *e)
{
	const struct ledger_person *p = &v->p;
	char person[65], exported[TIME_STR_MAX];
	hex32(p->key, person);
	time_format(time_now_ms(), exported);
	const char *email = (p->flags & LEDGER_PERSON_ERASED) ? "" : p->email;
	int rc = 0;
	for (size_t k = 0; rc == 0 && k < NCOLS; k++)
		rc = csv_write_field(b, col_names[k], k + 1 == NCOLS, e);
	for (size_t i = 0; rc == 0 && i < (v->nrecs ? v->nrecs : 1); i++) {
		const struct ledger_record *rec = v->nrecs ? view_record(v, i) : NULL;
		struct csv_row r = {.cell = {[C_SECTION] = "record",
		                             [C_PERSON] = person,
		                             [C_EMAIL] = email,
		                             [C_EXPORTED] = exported}};
		if (rec) {
			r.cell[C_FIRST] = rec->first_name;
			r.cell[C_LAST] = rec->last_name;
			r.cell[C_COMPANY] = rec->company;
			r.cell[C_TITLE] = rec->title;
			r.cell[C_PHONE] = rec->phone;
			r.cell[C_OBJECT] = ledger_object_name(rec->object);
			r.cell[C_ID] = rec->id;
		}
		r.cell[C_CREATED] = time_cell(rec ? rec->sf_created : p->created_at, r.created);
		r.cell[C_UPDATED] = time_cell(rec ? rec->sf_modified : p->updated_at, r.updated);
		r.cell[C_OPTED_OUT] = p->facts.opted_out ? "true" : "false";
		r.cell[C_OPTED_OUT_AT] =
		    time_cell(p->facts.opted_out ? p->opted_out_at : 0, r.opted_out_at);
		facts_cells(&r, &p->facts, 1, 1);
		rc = write_row(b, &r, e);
	}
	static const char *const pstatus[] = {"none", "opted_in", "opted_out"};
	for (size_t i = 0; rc == 0 && i < v->npurposes; i++) {
		const struct ledger_purpose *pp = &v->purposes[i];
		const char *origin = ledger_origin_name(pp->origin);
		struct csv_row r = {
		    .cell = {[C_SECTION] = "purpose",
		             [C_PERSON] = person,
		             [C_EMAIL] = email,
		             [C_PURPOSE_NAME] = pp->name,
		             [C_PURPOSE_STATUS] = pstatus[pp->status <= 2 ? pp->status : 0],
		             [C_ORIGIN] = origin ? origin : "?",
		             [C_EVIDENCE_REF] = pp->evidence_ref,
		             [C_EXPORTED] = exported}};
		r.cell[C_UPDATED] = time_cell(pp->changed_at, r.updated);
		if (pp->status == LEDGER_PURPOSE_IN)
			r.cell[C_CONSENT_DATE] = time_cell(pp->consent_date, r.consent);
		rc = write_row(b, &r, e);
	}
	for (size_t i = 0; rc == 0 && i < v->nevs; i++) {
		const struct ledger_event *ev = &v->evs[i];
		const char *kind = ledger_event_kind_name(ev->kind);
		const char *origin = ledger_origin_name(ev->origin);
		struct csv_row r = {.cell = {[C_SECTION] = "event",
		                             [C_PERSON] = person,
		                             [C_EMAIL] = email,
		                             [C_KIND] = kind ? kind : "?",
		                             [C_ORIGIN] = origin ? origin : "?",
		                             [C_ACTOR] = ev->actor,
		                             [C_REASON] = ev->reason,
		                             [C_EVIDENCE_REF] = ev->evidence_ref,
		                             [C_EVIDENCE_SHA] = ev->evidence_sha256,
		                             [C_PURPOSE_NAME] = ev->purpose_name,
		                             [C_EXPORTED] = exported}};
		snprintf(r.seq, sizeof(r.seq), "%" PRIu64, ev->seq);
		r.cell[C_SEQ] = r.seq;
		r.cell[C_AT] = time_cell(ev->at, r.at);
		if (ev->record.object) {
			r.cell[C_OBJECT] = ledger_object_name(ev->record.object);
			r.cell[C_ID] = ev->record.id;
		}
		if (ev->facts.mask & LEDGER_F_OPTED_OUT)
			r.cell[C_OPTED_OUT] = ev->facts.opted_out ? "true" : "false";
		facts_cells(&r, &ev->facts, (ev->facts.mask & LEDGER_F_AUTH_TYPE) != 0,
		            (ev->facts.mask & LEDGER_F_SOURCE_TYPE) != 0);
		rc = write_row(b, &r, e);
	}
	return rc;
}

int conn_contact_export_csv(struct conn *c, const char *email, char **out, struct err *e)
{
	*out = NULL;
	struct person_view *v;
	int rc = view_read(c, email, VIEW_RECORDS | VIEW_HISTORY, &v, e);
	if (rc)
		return rc;
	struct buf b;
	buf_init(&b, EXPORT_CSV_MAX);
	rc = export_csv(v, &b, e);
	view_free(v);
	if (rc) {
		/* never a cut export handed out as whole */
		buf_free(&b);
		if (rc == ERR_LIMIT)
			err_set(e, ERR_LIMIT, "the export of %s is larger than %d MiB", email,
			        EXPORT_CSV_MAX >> 20);
		return rc;
	}
	*out = buf_detach(&b, NULL);
	if (*out == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	return 0;
}
