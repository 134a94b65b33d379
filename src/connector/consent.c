/* Purposes on Salesforce's consent objects (salesforce = { data_use_purpose
 * = ... }): a person's Contacts and Leads point (IndividualId) to an
 * Individual, whose ContactPointTypeConsent row per DataUsePurpose holds the
 * opt-in or opt-out (docs/sync-rules.md, "Purposes"). The rows are polled
 * by SystemModstamp with a cursor like Contacts and Leads, and written in
 * sObject Collections of 200: updated when the person's row is known,
 * created otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

bool consent_configured(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->npurposes; i++)
		if (cfg->purposes[i].sf_data_use_purpose)
			return true;
	return false;
}

/* ---- this cycle's DataUsePurpose Ids ---- */

static int on_purposes(void *ctx, const struct sf_record *recs, size_t n, struct err *e)
{
	(void)e;
	struct conn *c = ctx;
	for (size_t k = 0; k < n; k++) {
		const struct sf_value *name = sf_record_get(&recs[k], "Name");
		if (name == NULL || name->type != SF_STRING || strlen(recs[k].id) > LEDGER_ID_MAX)
			continue;
		for (size_t i = 0; i < c->cfg->npurposes; i++) {
			const char *want = c->cfg->purposes[i].sf_data_use_purpose;
			if (want && strcmp(want, name->str) == 0)
				snprintf(c->dup_id[i], sizeof(c->dup_id[i]), "%s", recs[k].id);
		}
	}
	return 0;
}

/* Salesforce says a consent object does not exist (INVALID_TYPE, "sObject
 * type ... is not supported"), and not anything else. */
static bool objects_missing(const struct err *e)
{
	return e->code == ERR_REMOTE && strstr(e->msg, "INVALID_TYPE") != NULL;
}

/* Salesforce says a consent object does not exist: say what to do, with
 * its words at the end. */
static int explain_missing(const struct config *cfg, struct err *e)
{
	char orig[ERR_MSG_MAX], names[CONFIG_PURPOSES_MAX * 36] = "";
	snprintf(orig, sizeof(orig), "%s", e->msg);
	size_t o = 0;
	for (size_t i = 0; i < cfg->npurposes && o < sizeof(names); i++)
		if (cfg->purposes[i].sf_data_use_purpose)
			o += (size_t)snprintf(names + o, sizeof(names) - o, "%s'%s'", o ? ", " : "",
			                      cfg->purposes[i].name);
	return err_set(
	    e, ERR_REMOTE,
	    "Salesforce's consent objects (Individual, ContactPointTypeConsent, "
	    "DataUsePurpose) are not available in this org, so purpose %s cannot be "
	    "synced: turn on Data Protection and Privacy (Setup, Data Protection and "
	    "Privacy, Edit, Make Data Protection Details Available in Records), give the "
	    "integration user the permission set optsync ships, or map the purpose to "
	    "a checkbox (salesforce = { field = \"...\" }). Salesforce said: %s",
	    names, orig);
}

/* Look the configured DataUsePurpose names up (one query per cycle). A
 * name Salesforce does not have is reported; its purpose waits. */
static int resolve_purposes(struct conn *c, struct sf_client *sf, char *missing, size_t cap,
                            struct err *e)
{
	const char *names[CONFIG_PURPOSES_MAX];
	size_t n = 0;
	memset(c->dup_id, 0, sizeof(c->dup_id));
	for (size_t i = 0; i < c->cfg->npurposes; i++)
		if (c->cfg->purposes[i].sf_data_use_purpose)
			names[n++] = c->cfg->purposes[i].sf_data_use_purpose;
	int rc = sf_query_in(sf, "SELECT Id, Name FROM DataUsePurpose WHERE Name IN (", names, n,
	                     ")", false, on_purposes, c, e);
	if (rc)
		return rc;
	missing[0] = '\0';
	size_t o = 0;
	for (size_t i = 0; i < c->cfg->npurposes; i++)
		if (c->cfg->purposes[i].sf_data_use_purpose && c->dup_id[i][0] == '\0' && o < cap)
			o += (size_t)snprintf(
			    missing + o, cap - o, "%s'%s' (purpose '%s')", o ? ", " : "",
			    c->cfg->purposes[i].sf_data_use_purpose, c->cfg->purposes[i].name);
	return 0;
}

int consent_soql(const struct conn *c, int64_t since, struct buf *q, struct err *e)
{
	int rc =
	    buf_puts(q,
	             "SELECT Id, PartyId, DataUsePurposeId, PrivacyConsentStatus, CaptureDate, "
	             "CaptureSource, LastModifiedDate, SystemModstamp FROM ContactPointTypeConsent "
	             "WHERE ContactPointType = 'Email' AND DataUsePurposeId IN (",
	             e);
	size_t k = 0;
	for (size_t i = 0; rc == 0 && i < c->cfg->npurposes; i++)
		if (c->dup_id[i][0]) {
			if (k++)
				rc = buf_puts(q, ", ", e);
			if (rc == 0)
				rc = sf_soql_quote(c->dup_id[i], q, e);
		}
	if (rc == 0)
		rc = buf_puts(q, ")", e);
	if (rc == 0 && since > 0) {
		char t[TIME_STR_MAX];
		time_format(since / 1000 * 1000, t);
		rc = buf_printf(q, e, " AND SystemModstamp >= %s", t);
	}
	if (rc == 0)
		rc = buf_puts(q, " ORDER BY SystemModstamp, Id", e);
	return rc;
}

int consent_prepare(struct conn *c, struct sf_client *sf, struct conn_cycle_report *r,
                    struct err *e)
{
	c->consent_ok = false;
	memset(c->dup_id, 0, sizeof(c->dup_id));
	if (!consent_configured(c->cfg))
		return 0;
	char missing[512];
	int rc = resolve_purposes(c, sf, missing, sizeof(missing), e);
	if (rc && objects_missing(e)) {
		/* a state of the org, in plain words: the purposes wait */
		rc = explain_missing(c->cfg, e);
		str_copy(r->consent_error, sizeof(r->consent_error), e->msg);
		return rc;
	}
	if (rc)
		return rc; /* any other failure, as it came */
	c->consent_ok = true;
	if (missing[0]) {
		rc =
		    err_set(e, ERR_REMOTE,
		            "Salesforce has no DataUsePurpose named %.300s: create it (Setup, Data "
		            "Use Purposes) or fix the purpose's data_use_purpose; until then that "
		            "purpose is kept in the ledger only",
		            missing);
		str_copy(r->consent_error, sizeof(r->consent_error), e->msg);
	}
	return rc;
}

int consent_pull(struct conn *c, struct sf_client *sf, const struct conn_sync_opts *o,
                 struct conn_cycle_report *r, struct err *e)
{
	bool any = false;
	for (size_t i = 0; i < c->cfg->npurposes; i++)
		any |= c->dup_id[i][0] != '\0';
	return c->consent_ok && any ? pull_object(c, sf, LEDGER_OBJ_CONSENT, o, r, e) : 0;
}

/* ---- reading a row ---- */

static int purpose_index(const struct conn *c, const char *dup_id)
{
	for (size_t i = 0; i < c->cfg->npurposes; i++)
		if (c->dup_id[i][0] && strcmp(c->dup_id[i], dup_id) == 0)
			return (int)i;
	return -1;
}

/* Remember a row of a person's purpose and the status it holds. A person
 * with LEDGER_PURPOSE_ROWS_MAX rows of the purpose already: the row is named
 * in the log and not remembered (read again, it is a new row: an OptOut
 * there still counts; optsync's writes go to the rows it remembers). */
static int note_row(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], const char *name,
                    const char *row, uint8_t status, struct err *e)
{
	struct ledger_purpose cur;
	int rc = ledger_purpose_get(t, key, name, &cur, e);
	if (rc == ERR_NOTFOUND) {
		memset(&cur, 0, sizeof(cur));
		snprintf(cur.name, sizeof(cur.name), "%s", name);
		rc = 0;
	}
	if (rc)
		return rc;
	struct err le = {0};
	if ((rc = ledger_purpose_row_note(&cur, row, status, &le)) == ERR_LIMIT) {
		log_warn("sync.consent", "%s", le.msg);
		return 0;
	}
	if (rc) {
		*e = le;
		return rc;
	}
	return ledger_purpose_put(t, key, &cur, e);
}

struct consent_work {
	struct ledger_person p;
	struct ledger_record ind;
	struct ledger_event ev;
};

int apply_sf_consent(struct ledger_txn *t, struct conn *c, const struct sf_record *r,
                     struct apply_stats *st, struct err *e)
{
	st->records++;
	const struct sf_value *party = sf_record_get(r, "PartyId");
	const struct sf_value *dup = sf_record_get(r, "DataUsePurposeId");
	const struct sf_value *status = sf_record_get(r, "PrivacyConsentStatus");
	int pi = dup && dup->type == SF_STRING ? purpose_index(c, dup->str) : -1;
	if (pi < 0 || party == NULL || party->type != SF_STRING || status == NULL ||
	    status->type != SF_STRING || strlen(r->id) > LEDGER_ID_MAX)
		return 0;
	if (strlen(party->str) > LEDGER_ID_MAX) {
		st->refused = CONN_PARK_TOO_LONG;
		return err_set(e, ERR_INVALID,
		               "field PartyId is longer than the %d characters of a Salesforce Id",
		               LEDGER_ID_MAX);
	}
	uint8_t now_status = strcmp(status->str, "OptOut") == 0  ? LEDGER_PURPOSE_OUT
	                     : strcmp(status->str, "OptIn") == 0 ? LEDGER_PURPOSE_IN
	                                                         : 0;
	if (now_status == 0 && strcmp(status->str, "NotSeen") != 0 &&
	    strcmp(status->str, "Seen") != 0) {
		/* rule 8: a picklist value optsync does not know (named when it is
		 * short plain text) */
		size_t n = strlen(status->str), k = 0;
		while (k < n && status->str[k] >= 0x20 && status->str[k] < 0x7f)
			k++;
		bool show = n <= 40 && k == n;
		st->refused = CONN_PARK_UNKNOWN_PICKLIST;
		return err_set(e, ERR_INVALID,
		               "field PrivacyConsentStatus holds %s%s%s, a value optsync does not "
		               "know (OptIn, OptOut, NotSeen, Seen)",
		               show ? "'" : "", show ? status->str : "another value",
		               show ? "'" : "");
	}
	if (now_status == 0)
		return 0; /* NotSeen, Seen: no decision either way */
	const char *name = c->cfg->purposes[pi].name;
	struct consent_work *w = malloc(sizeof(*w));
	if (w == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_record_get(t, LEDGER_OBJ_INDIVIDUAL, party->str, &w->ind, e);
	if (rc == ERR_NOTFOUND) {
		st->skipped_no_email++; /* an Individual of no known person */
		rc = 0;
		goto out;
	}
	if (rc || (rc = ledger_person_get(t, w->ind.person, &w->p, e)))
		goto out;
	struct ledger_purpose cur;
	rc = ledger_purpose_get(t, w->p.key, name, &cur, e);
	if (rc == ERR_NOTFOUND) {
		memset(&cur, 0, sizeof(cur));
		rc = 0;
	}
	if (rc)
		goto out;
	const struct ledger_purpose_row *known = ledger_purpose_row_find(&cur, r->id);
	uint8_t seen = known ? known->status : 0;
	int64_t now = time_now_ms();
	int64_t capture = record_time(r, "CaptureDate");
	struct flag_seen s = {.in = now_status == LEDGER_PURPOSE_IN,
	                      .dated = capture > 0 && capture <= now + FUTURE_TOLERANCE_MS,
	                      .before = seen == LEDGER_PURPOSE_IN    ? 1
	                                : seen == LEDGER_PURPOSE_OUT ? 0
	                                                             : -1,
	                      .status = cur.status,
	                      .global_out = w->p.facts.opted_out,
	                      .writable = true,
	                      .revert = c->cfg->sync.resubscribe_policy == CONFIG_RESUB_REVERT};
	unsigned a = flag_decide(FLAG_CONSENT_ROW, &s);
	if (a == 0) {
		st->echoes++; /* unchanged, or our own write read back */
		goto out;
	}
	struct ledger_recref ref = {LEDGER_OBJ_CONSENT, ""};
	snprintf(ref.id, sizeof(ref.id), "%s", r->id);
	int64_t changed = record_time(r, "LastModifiedDate");
	if (changed == 0)
		changed = now;
	/* the person's writes are queued on their first Individual, whichever
	 * of theirs the row is on: that push writes every row of theirs */
	struct ledger_recref ind = {LEDGER_OBJ_INDIVIDUAL, ""};
	snprintf(ind.id, sizeof(ind.id), "%s",
	         w->p.individual_id[0] ? w->p.individual_id : party->str);
	if (a & FLAG_OPT_OUT) {
		/* P1: an opt-out of the purpose made in Salesforce; an opt-in
		 * still queued for the Individual's rows would be written over
		 * it: it says out now */
		if ((rc = purpose_optout_from_sf(t, &w->p, &w->ev, &ref, name, NULL, changed, false,
		                                 st, e)) ||
		    (rc = push_queued_correct(t, &w->p, &ind, name, true, st, e)))
			goto out;
	}
	if (a & FLAG_OPT_IN) {
		/* consent given in Salesforce counts: the row is the evidence */
		char evidence[LEDGER_TEXT_MAX + 1], reason[LEDGER_TEXT_MAX + 1];
		const struct sf_value *src = sf_record_get(r, "CaptureSource");
		bool has_src = src && src->type == SF_STRING && src->str[0];
		snprintf(evidence, sizeof(evidence), "salesforce:ContactPointTypeConsent/%s",
		         r->id);
		snprintf(reason, sizeof(reason), "CaptureSource: %.900s", has_src ? src->str : "");
		if ((rc = purpose_optin_from_sf(t, &w->p, &w->ev, &ref, name, capture, evidence,
		                                has_src ? reason : NULL, changed, false, st, e)))
			goto out;
	}
	if (a & FLAG_UNDATED)
		undated_note(st, LEDGER_OBJ_CONSENT, r->id, name, "CaptureDate");
	if (a & FLAG_CONFLICT) {
		/* P2: back to OptIn in Salesforce without evidence given to optsync */
		if ((rc = sf_conflict_add(t, &w->p, &ref, LEDGER_CONFLICT_RESUBSCRIBE,
		                          LEDGER_F_OPTED_OUT, "opted_out", "opted_in", now, name,
		                          e)))
			goto out;
		st->resubscribe_conflicts++;
	}
	/* a row new to optsync that says OptIn for a person opted out of the
	 * purpose is set to OptOut, as rule 3 does for new records; a
	 * conflict's revert likewise */
	if ((a & (FLAG_REVERT | FLAG_SET_OUT)) &&
	    (rc = push_enqueue_purpose(t, &w->p, &ind, name, true, st, e)))
		goto out;
	rc = note_row(t, w->p.key, name, r->id, now_status, e);
	/* a change read on one row of the person's goes to their other rows */
	if (rc == 0 && (a & (FLAG_OPT_OUT | FLAG_OPT_IN)))
		rc = consent_spread(t, c->cfg, &w->p, name, (a & FLAG_OPT_OUT) != 0, st, e);
out:
	free(w);
	return rc;
}

/* ---- following IndividualId ---- */

/* Store Individual id as p's (optsync's record of it: whose it is). */
static int individual_put(struct ledger_txn *t, const struct ledger_person *p, const char *id,
                          struct err *e)
{
	struct ledger_record *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	m->object = LEDGER_OBJ_INDIVIDUAL;
	snprintf(m->id, sizeof(m->id), "%s", id);
	ledger_facts_init(&m->seen);
	ledger_facts_init(&m->written);
	memcpy(m->person, p->key, LEDGER_KEY_LEN);
	int rc = ledger_record_put(t, m, e);
	free(m);
	return rc;
}

/* Another Individual named by a record of a person who has one: its consent
 * rows are read as the person's too (unless it is another person's
 * already), and the person's writes go to every row (their push stays on
 * the first Individual, where optsync creates a row when there is none). */
static int also_individual(struct ledger_txn *t, const struct ledger_person *p, const char *id,
                           struct err *e)
{
	struct ledger_record *m = malloc(sizeof(*m));
	if (m == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_record_get(t, LEDGER_OBJ_INDIVIDUAL, id, m, e);
	free(m);
	return rc == ERR_NOTFOUND ? individual_put(t, p, id, e) : rc;
}

int consent_follow_individual(struct ledger_txn *t, const struct config *cfg,
                              struct ledger_person *p, const struct sf_record *r,
                              struct apply_stats *st, struct err *e)
{
	const struct sf_value *v = sf_record_get(r, "IndividualId");
	if (v == NULL || v->type != SF_STRING || v->str[0] == '\0' ||
	    strlen(v->str) > LEDGER_ID_MAX || strcmp(p->individual_id, v->str) == 0)
		return 0;
	if (p->individual_id[0])
		return also_individual(t, p, v->str, e);
	struct ledger_recref ind = {LEDGER_OBJ_INDIVIDUAL, ""};
	snprintf(ind.id, sizeof(ind.id), "%s", v->str);
	snprintf(p->individual_id, sizeof(p->individual_id), "%s", v->str);
	int rc = individual_put(t, p, v->str, e);
	/* what the person chose before the Individual was known goes to it */
	for (size_t i = 0; rc == 0 && i < cfg->npurposes; i++) {
		if (cfg->purposes[i].sf_data_use_purpose == NULL)
			continue;
		struct ledger_purpose cur;
		int g = ledger_purpose_get(t, p->key, cfg->purposes[i].name, &cur, e);
		if (g == ERR_NOTFOUND || (g == 0 && cur.status == LEDGER_PURPOSE_NONE))
			continue;
		if (g)
			return g;
		rc = push_enqueue_purpose(t, p, &ind, cfg->purposes[i].name,
		                          cur.status == LEDGER_PURPOSE_OUT, st, e);
	}
	return rc;
}

int consent_spread(struct ledger_txn *t, const struct config *cfg, const struct ledger_person *p,
                   const char *purpose, bool out, struct apply_stats *st, struct err *e)
{
	struct ledger_purpose cur;
	int rc = ledger_purpose_get(t, p->key, purpose, &cur, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	uint8_t want = out ? LEDGER_PURPOSE_OUT : LEDGER_PURPOSE_IN;
	bool all = rc == 0 && cur.nrows > 0;
	for (uint8_t i = 0; all && i < cur.nrows; i++)
		all = cur.rows[i].status == want;
	if (all)
		return 0; /* every row of theirs says so already */
	struct ledger_recref to = {LEDGER_OBJ_INDIVIDUAL, ""}, first;
	if (p->individual_id[0]) {
		snprintf(to.id, sizeof(to.id), "%s", p->individual_id);
	} else if (cfg->salesforce.create_individuals &&
	           (rc = ledger_person_record_first(t, p, &first, e)) != ERR_NOTFOUND) {
		if (rc)
			return rc;
		/* an Individual made for the person, linked to their first record
		 * (Contacts before Leads, then by id) */
		to.object = LEDGER_OBJ_NEW_INDIVIDUAL;
		snprintf(to.id, sizeof(to.id), "%s", first.id);
	} else {
		return 0; /* written once a record of the person names its Individual */
	}
	return push_enqueue_purpose(t, p, &to, purpose, out, st, e);
}

/* ---- creating Individuals (salesforce.create_individuals) ---- */

struct new_ind {
	struct ledger_push q;
	int object; /* of the record to link: Contact or Lead */
	char last_name[LEDGER_NAME_MAX + 1], first_name[LEDGER_NAME_MAX + 1];
	char adopt[LEDGER_ID_MAX + 1]; /* the person has an Individual by now */
};

struct new_round {
	struct new_ind *v;
	size_t n;
	int64_t now;
	struct ledger_push_mark mark; /* where the next round goes on in the due index */
	struct sf_result *created, *linked;
	size_t made, parked;
};

struct new_scan {
	struct new_round *x;
	struct ledger_txn *t;
	struct ledger_record *rec;
	struct ledger_person *p;
	int rc;
	struct err *e;
};

static int take_new(const struct ledger_push *q, void *ctx)
{
	struct new_scan *d = ctx;
	if (d->x->n == SF_COLLECTION_MAX)
		return 1;
	struct new_ind *ni = &d->x->v[d->x->n];
	memset(ni, 0, sizeof(*ni));
	ni->q = *q;
	int g = ledger_person_get(d->t, q->person, d->p, d->e);
	if (g == 0 && d->p->individual_id[0])
		snprintf(ni->adopt, sizeof(ni->adopt), "%s", d->p->individual_id);
	else if (g && g != ERR_NOTFOUND)
		return d->rc = g, 1;
	for (int obj = LEDGER_OBJ_CONTACT; obj <= LEDGER_OBJ_LEAD && ni->object == 0; obj++) {
		g = ledger_record_get(d->t, obj, q->record.id, d->rec, d->e);
		if (g == 0) {
			ni->object = obj;
			snprintf(ni->last_name, sizeof(ni->last_name), "%s", d->rec->last_name);
			snprintf(ni->first_name, sizeof(ni->first_name), "%s", d->rec->first_name);
		} else if (g != ERR_NOTFOUND) {
			return d->rc = g, 1;
		}
	}
	if (ni->object || ni->adopt[0])
		d->x->n++;
	return 0;
}

static int collect_new(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct new_round *x = ctx;
	x->n = 0;
	struct new_scan d = {
	    x, t, malloc(sizeof(struct ledger_record)), malloc(sizeof(struct ledger_person)), 0, e};
	/* on from the round before: what it took is written, backed off or
	 * skipped (no record to link) */
	struct ledger_push_mark mark = x->mark;
	int rc = d.rec && d.p ? ledger_push_each_due(t, LEDGER_OBJ_NEW_INDIVIDUAL, x->now, &mark,
	                                             take_new, &d, e)
	                      : err_set(e, ERR_NOMEM, "out of memory");
	free(d.rec);
	free(d.p);
	if (d.rc == 0 && rc >= 0)
		x->mark = mark;
	return d.rc ? d.rc : rc < 0 ? rc : 0;
}

/* The new Individuals in the ledger: each person's, its mapping, and the
 * purposes queued to it as to any Individual. */
static int new_results(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct new_round *x = ctx;
	x->made = x->parked = 0;
	struct ledger_person *p = malloc(sizeof(*p));
	struct ledger_record *m = calloc(1, sizeof(*m));
	int rc = p && m ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < x->n; i++) {
		struct new_ind *ni = &x->v[i];
		const char *id = ni->adopt[0]            ? ni->adopt
		                 : x->created[i].success ? x->created[i].id
		                                         : "";
		if (id[0] == '\0') {
			struct ledger_push cur;
			int g = ledger_push_get(t, ni->q.record.object, ni->q.record.id, &cur, e);
			if (g == ERR_NOTFOUND)
				continue;
			if ((rc = g))
				break;
			x->parked += push_failed(&cur, NULL, &x->created[i], x->now);
			rc = ledger_push_put(t, &cur, e);
			continue;
		}
		if ((rc = ledger_person_get(t, ni->q.person, p, e)))
			break;
		if (p->individual_id[0] == '\0') {
			snprintf(p->individual_id, sizeof(p->individual_id), "%s", id);
			m->object = LEDGER_OBJ_INDIVIDUAL;
			snprintf(m->id, sizeof(m->id), "%s", id);
			ledger_facts_init(&m->seen);
			ledger_facts_init(&m->written);
			memcpy(m->person, p->key, LEDGER_KEY_LEN);
			if ((rc = ledger_record_put(t, m, e)) || (rc = ledger_person_put(t, p, e)))
				break;
			x->made++;
		}
		struct ledger_recref ind = {LEDGER_OBJ_INDIVIDUAL, ""};
		snprintf(ind.id, sizeof(ind.id), "%s", p->individual_id);
		for (uint8_t k = 0; rc == 0 && k < ni->q.want_purposes.n; k++)
			rc = push_enqueue_purpose(t, p, &ind, ni->q.want_purposes.v[k].name,
			                          ni->q.want_purposes.v[k].out, NULL, e);
		if (rc == 0)
			rc = ledger_push_delete(t, ni->q.record.object, ni->q.record.id, e);
	}
	free(p);
	free(m);
	return rc;
}

/* Create the Individuals queued (one call), link each to its record (one
 * more), then let the rows go to them. */
static int create_individuals(struct conn *c, struct sf_client *sf,
                              struct conn_cycle_report *report, struct err *e)
{
	struct new_round x = {0};
	x.v = calloc(SF_COLLECTION_MAX, sizeof(*x.v));
	x.created = calloc(2 * SF_COLLECTION_MAX, sizeof(*x.created)); /* then the call's */
	x.linked = calloc(SF_COLLECTION_MAX, sizeof(*x.linked));
	struct sf_update *up = calloc(SF_COLLECTION_MAX, sizeof(*up));
	struct sf_value(*vals)[2] = calloc(SF_COLLECTION_MAX, sizeof(*vals));
	size_t *where = calloc(SF_COLLECTION_MAX, sizeof(*where));
	int rc = x.v && x.created && x.linked && up && vals && where
	             ? 0
	             : err_set(e, ERR_NOMEM, "out of memory");
	for (int round = 0; rc == 0 && round < 1000 && !(c->stop && *c->stop); round++) {
		x.now = time_now_ms();
		if ((rc = ledger_read(c->l, collect_new, &x, e)) || x.n == 0)
			break;
		size_t n = 0;
		for (size_t i = 0; i < x.n; i++) {
			memset(&x.created[i], 0, sizeof(x.created[i]));
			if (x.v[i].adopt[0])
				continue;
			/* Individual needs LastName; the record's, else a placeholder */
			vals[n][0] = (struct sf_value){.name = "LastName",
			                               .type = SF_STRING,
			                               .str = x.v[i].last_name[0] ? x.v[i].last_name
			                                                          : "(optsync)"};
			vals[n][1] =
			    (struct sf_value){.name = "FirstName",
			                      .type = x.v[i].first_name[0] ? SF_STRING : SF_NULL,
			                      .str = x.v[i].first_name};
			up[n] = (struct sf_update){"Individual", NULL, 2, vals[n]};
			where[n++] = i;
		}
		if (n && (rc = sf_create(sf, up, n, x.created + x.n, e)) == 0) {
			report->push.collection_calls++;
			for (size_t j = 0; j < n; j++)
				x.created[where[j]] = x.created[x.n + j];
		}
		/* link each new Individual to its record */
		size_t m = 0;
		for (size_t j = 0; rc == 0 && j < n; j++) {
			size_t i = where[j];
			if (!x.created[i].success)
				continue;
			vals[m][0] = (struct sf_value){
			    .name = "IndividualId", .type = SF_STRING, .str = x.created[i].id};
			up[m] = (struct sf_update){ledger_object_name(x.v[i].object),
			                           x.v[i].q.record.id, 1, vals[m]};
			m++;
		}
		struct err le = {0};
		if (rc == 0 && m) {
			report->push.collection_calls++;
			if (sf_update(sf, up, m, x.linked, &le) == 0) {
				for (size_t k = 0; k < m; k++)
					if (!x.linked[k].success)
						log_warn("sync.consent",
						         "an Individual was created but could not "
						         "be linked to "
						         "%s %s (%s); the person's consent rows go "
						         "to it",
						         up[k].type, up[k].id,
						         x.linked[k].status_code);
			} else {
				log_warn("sync.consent", "linking new Individuals failed: %s",
				         le.msg);
			}
		}
		if (rc)
			break;
		rc = ledger_write(c->l, new_results, &x, e);
		report->push.succeeded += x.made;
		report->push.parked_now += x.parked;
		if (x.made == 0)
			break; /* nothing changed: what is left waits for its backoff */
	}
	free(x.v);
	free(x.created);
	free(x.linked);
	free(up);
	free(vals);
	free(where);
	return rc;
}

/* ---- writing rows ---- */

struct row {
	size_t push; /* index in the round's pushes */
	int purpose; /* index in cfg->purposes */
	bool out, create;
	char row_id[LEDGER_ID_MAX + 1];
	int64_t capture; /* CaptureDate: the consent's date, or the opt-out's */
};

struct consent_round {
	struct conn *c;
	int64_t now;
	struct ledger_push_mark mark; /* where the next round goes on in the due index */
	struct ledger_push *pushes;
	size_t npushes;
	struct row rows[SF_COLLECTION_MAX];
	size_t nrows;
	bool failed[SF_COLLECTION_MAX]; /* per push: a row of it failed */
	/* results, by row */
	struct sf_result res[SF_COLLECTION_MAX];
	int request_failed;
	char request_error[ERR_MSG_MAX];
	size_t ok, retry, parked, reverted;
	struct ledger_recref *rev_refs;
	const char **rev_names;
	size_t nrev;
};

struct due_scan {
	struct consent_round *x;
	struct ledger_txn *t;
	int rc;
	struct err *e;
};

static int take_push(const struct ledger_push *q, void *ctx)
{
	struct due_scan *d = ctx;
	struct consent_round *x = d->x;
	if (x->npushes == SF_COLLECTION_MAX)
		return 1; /* the round is full */
	size_t pi = x->npushes, start = x->nrows;
	size_t added = 0;
	for (uint8_t k = 0; k < q->want_purposes.n; k++) {
		const struct ledger_pflag *f = &q->want_purposes.v[k];
		const struct config_purpose *cp = config_purpose_find(x->c->cfg, f->name);
		int idx = cp ? (int)(cp - x->c->cfg->purposes) : -1;
		if (idx < 0 || !cp->sf_data_use_purpose || !x->c->dup_id[idx][0])
			continue; /* not resolved this cycle: waits */
		struct ledger_purpose cur;
		int g = ledger_purpose_get(d->t, q->person, f->name, &cur, d->e);
		if (g && g != ERR_NOTFOUND) {
			d->rc = g;
			return 1;
		}
		if (g)
			memset(&cur, 0, sizeof(cur));
		/* every row of the person's purpose is written (a new one on their
		 * Individual when there is none); LEDGER_PURPOSE_ROWS_MAX rows for
		 * each of LEDGER_PFLAGS_MAX purposes fit in an empty round */
		size_t nrows = cur.nrows ? cur.nrows : 1;
		if (x->nrows + nrows > SF_COLLECTION_MAX) {
			x->nrows = start;
			return 1; /* the round is full: the push goes in the next */
		}
		for (size_t j = 0; j < nrows; j++) {
			struct row *r = &x->rows[x->nrows++];
			memset(r, 0, sizeof(*r));
			r->push = pi;
			r->purpose = idx;
			r->out = f->out;
			r->create = cur.nrows == 0;
			if (!r->create)
				snprintf(r->row_id, sizeof(r->row_id), "%s", cur.rows[j].id);
			r->capture = !f->out && cur.consent_date ? cur.consent_date
			             : cur.changed_at            ? cur.changed_at
			                                         : x->now;
		}
		added++;
	}
	if (added)
		x->pushes[x->npushes++] = *q;
	return 0;
}

static int collect_consent(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct consent_round *x = ctx;
	x->npushes = x->nrows = 0;
	struct due_scan d = {x, t, 0, e};
	/* on from the round before: what it took is written, backed off, or
	 * waits for a purpose not resolved this cycle (skipped until the next) */
	struct ledger_push_mark mark = x->mark;
	int rc = ledger_push_each_due(t, LEDGER_OBJ_INDIVIDUAL, x->now, &mark, take_push, &d, e);
	if (d.rc == 0 && rc >= 0)
		x->mark = mark;
	return d.rc ? d.rc : rc < 0 ? rc : 0;
}

/* The result of each row, in the ledger: rows noted, pushes done, retried
 * or parked. */
static int consent_results(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct consent_round *x = ctx;
	x->ok = x->retry = x->parked = x->nrev = x->reverted = 0;
	memset(x->failed, 0, sizeof(x->failed));
	struct ledger_push *cur = malloc(sizeof(*cur));
	if (cur == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < x->nrows; i++) {
		const struct row *r = &x->rows[i];
		const struct ledger_push *q = &x->pushes[r->push];
		const char *name = x->c->cfg->purposes[r->purpose].name;
		if (x->request_failed || !x->res[i].success) {
			x->failed[r->push] = true;
			continue;
		}
		const char *id = r->create ? x->res[i].id : r->row_id;
		rc = note_row(t, q->person, name, id,
		              r->out ? LEDGER_PURPOSE_OUT : LEDGER_PURPOSE_IN, e);
		if (rc == 0 && r->out) {
			x->rev_refs[x->nrev] = (struct ledger_recref){LEDGER_OBJ_CONSENT, ""};
			snprintf(x->rev_refs[x->nrev].id, sizeof(x->rev_refs[x->nrev].id), "%s",
			         id);
			x->rev_names[x->nrev++] = name;
		}
		x->ok++;
	}
	for (size_t p = 0; rc == 0 && p < x->npushes; p++) {
		const struct ledger_push *q = &x->pushes[p];
		int g = ledger_push_get(t, q->record.object, q->record.id, cur, e);
		if (g == ERR_NOTFOUND)
			continue;
		if ((rc = g))
			break;
		/* what was written leaves the push, unless changed meanwhile; what
		 * failed, or waits for its DataUsePurpose, stays */
		struct ledger_pflags left = {0};
		for (uint8_t k = 0; k < cur->want_purposes.n; k++) {
			const struct ledger_pflag *f = &cur->want_purposes.v[k];
			/* written: every row of it was, with what it says now */
			bool any = false, all = !x->request_failed;
			for (size_t i = 0; i < x->nrows && all; i++) {
				const struct row *r = &x->rows[i];
				if (r->push != p ||
				    strcmp(x->c->cfg->purposes[r->purpose].name, f->name) != 0)
					continue;
				any = true;
				all = x->res[i].success && r->out == f->out;
			}
			if (!(any && all))
				left.v[left.n++] = *f;
		}
		if (left.n == 0 && !x->failed[p]) {
			rc = ledger_push_delete(t, q->record.object, q->record.id, e);
			continue;
		}
		cur->want_purposes = left;
		if (!x->failed[p]) {
			rc = ledger_push_put(t, cur, e);
			continue;
		}
		/* the first failed row of the push says why */
		const struct sf_result *why = NULL;
		for (size_t i = 0; i < x->nrows && why == NULL; i++)
			if (x->rows[i].push == p && !x->request_failed && !x->res[i].success)
				why = &x->res[i];
		if (push_failed(cur, x->request_failed ? x->request_error : NULL, why, x->now))
			x->parked++;
		else
			x->retry++;
		rc = ledger_push_put(t, cur, e);
	}
	if (rc == 0 && x->nrev)
		rc = close_reverted_pairs(t, x->rev_refs, x->rev_names, x->nrev, x->now,
		                          &x->reverted, e);
	free(cur);
	return rc;
}

#define ROW_VALUES 9

int consent_drain(struct conn *c, struct sf_client *sf, struct conn_cycle_report *report,
                  struct err *e)
{
	if (!consent_configured(c->cfg))
		return 0;
	struct consent_round *x = calloc(1, sizeof(*x));
	struct sf_update *up = calloc(SF_COLLECTION_MAX, sizeof(*up));
	struct sf_value(*vals)[ROW_VALUES] = calloc(SF_COLLECTION_MAX, sizeof(*vals));
	char(*dates)[TIME_STR_MAX] = calloc(SF_COLLECTION_MAX, sizeof(*dates));
	char(*names)[96] = calloc(SF_COLLECTION_MAX, sizeof(*names));
	struct sf_result *res = calloc(SF_COLLECTION_MAX, sizeof(*res));
	size_t *where = calloc(SF_COLLECTION_MAX, sizeof(*where));
	int rc = x && up && vals && dates && names && res && where
	             ? 0
	             : err_set(e, ERR_NOMEM, "out of memory");
	if (rc == 0) {
		x->c = c;
		x->pushes = calloc(SF_COLLECTION_MAX, sizeof(*x->pushes));
		x->rev_refs = calloc(SF_COLLECTION_MAX, sizeof(*x->rev_refs));
		x->rev_names = calloc(SF_COLLECTION_MAX, sizeof(*x->rev_names));
		if (!x->pushes || !x->rev_refs || !x->rev_names)
			rc = err_set(e, ERR_NOMEM, "out of memory");
	}
	if (rc == 0 && c->cfg->salesforce.create_individuals && c->consent_ok)
		rc = create_individuals(c, sf, report, e);
	for (int round = 0; rc == 0 && round < 10000 && !(c->stop && *c->stop); round++) {
		x->now = time_now_ms();
		if ((rc = ledger_read(c->l, collect_consent, x, e)) || x->nrows == 0)
			break;
		/* creates and updates go in separate calls, each in row order */
		x->request_failed = 0;
		for (int pass = 0; pass < 2 && rc == 0; pass++) {
			bool create = pass == 0;
			size_t n = 0;
			for (size_t i = 0; i < x->nrows; i++) {
				const struct row *r = &x->rows[i];
				if (r->create != create)
					continue;
				const struct config_purpose *cp = &c->cfg->purposes[r->purpose];
				struct sf_value *v = vals[n];
				size_t k = 0;
				time_format_sf(r->capture, dates[n]);
#define PUT(nm, s) v[k++] = (struct sf_value){.name = (nm), .type = SF_STRING, .str = (s)}
				PUT("PrivacyConsentStatus", r->out ? "OptOut" : "OptIn");
				PUT("CaptureDate", dates[n]);
				PUT("CaptureSource", "optsync");
				PUT("EffectiveFrom", dates[n]);
				if (create) {
					snprintf(names[n], sizeof(names[n]), "%.60s email consent",
					         cp->sf_data_use_purpose);
					PUT("Name", names[n]);
					PUT("PartyId", x->pushes[r->push].record.id);
					PUT("ContactPointType", "Email");
					PUT("CaptureContactPointType", "Email");
					PUT("DataUsePurposeId", c->dup_id[r->purpose]);
				}
#undef PUT
				up[n] = (struct sf_update){"ContactPointTypeConsent",
				                           create ? NULL : r->row_id, k, v};
				where[n++] = i;
			}
			if (n == 0)
				continue;
			struct err se = {0};
			int src = create ? sf_create(sf, up, n, res, &se)
			                 : sf_update(sf, up, n, res, &se);
			report->push.collection_calls++;
			if (src) {
				x->request_failed = 1;
				snprintf(x->request_error, sizeof(x->request_error), "%s", se.msg);
				*e = se;
				rc = src;
				break;
			}
			for (size_t j = 0; j < n; j++)
				x->res[where[j]] = res[j];
		}
		/* the round's outcome recorded; a ledger failure in that is the
		 * one to report, with its own message (nothing was recorded) */
		struct err we = {0};
		int wrc = ledger_write(c->l, consent_results, x, &we);
		report->push.succeeded += x->ok;
		report->push.retrying += x->retry;
		report->push.parked_now += x->parked;
		report->push.conflicts_reverted += x->reverted;
		if (wrc) {
			*e = we;
			rc = wrc;
		}
		if (x->parked)
			log_warn("sync.parked",
			         "%zu consent row write(s) failed permanently: parked (see optsync "
			         "status)",
			         x->parked);
	}
	if (x) {
		free(x->pushes);
		free(x->rev_refs);
		free(x->rev_names);
	}
	free(x);
	free(up);
	free(vals);
	free(dates);
	free(names);
	free(res);
	free(where);
	return rc;
}
