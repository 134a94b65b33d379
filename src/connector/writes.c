/* The use cases that change a person: opt-outs (one and many), compliance
 * facts (one and many), re-subscribes and erasure. */
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

/* ---- opt-out ---- */

int optout_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct optout_uc *x = ctx;
	struct uc *u = &x->u;
	const struct conn_optout *o = x->o;
	u->already = 0;
	memset(&u->st, 0, sizeof(u->st));
	if (o->idempotency_key) {
		int rc = ledger_idem_get(t, o->idempotency_key, &u->event_seq, e);
		if (rc == 0) {
			u->already = 1;
			return 0;
		}
		if (rc != ERR_NOTFOUND)
			return rc;
	}
	int rc = uc_load_person(t, u, e);
	if (rc)
		return rc;
	struct ledger_person *p = &u->p;
	if (o->purpose) {
		rc = purpose_optout_apply(t, u, o->purpose,
		                          o->occurred_at ? o->occurred_at : time_now_ms(),
		                          o->reason, x->campaign, e);
		if (rc == 0 && o->idempotency_key)
			rc = ledger_idem_put(t, o->idempotency_key, u->event_seq, time_now_ms(), e);
		return rc;
	}
	if (p->facts.opted_out) {
		u->already = 1;
		u->event_seq = p->last_event;
	} else {
		int64_t at = o->occurred_at ? o->occurred_at : time_now_ms();
		p->facts.mask |= LEDGER_F_OPTED_OUT;
		p->facts.opted_out = true;
		p->opted_out_at = at;
		p->optout_changed_at = at;
		p->updated_at = time_now_ms();
		uc_event_by(&u->ev, u->who, LEDGER_EV_OPTOUT);
		u->ev.facts.mask = LEDGER_F_OPTED_OUT;
		u->ev.facts.opted_out = true;
		if (o->source) {
			p->facts.mask |= LEDGER_F_SOURCE_TYPE;
			p->facts.source_type = (uint8_t)ledger_source_parse(o->source);
			p->source_changed_at = at;
			u->ev.facts.mask |= LEDGER_F_SOURCE_TYPE;
			u->ev.facts.source_type = p->facts.source_type;
		}
		if (o->reason)
			snprintf(u->ev.reason, sizeof(u->ev.reason), "%s", o->reason);
		if (x->campaign)
			snprintf(u->ev.campaign, sizeof(u->ev.campaign), "%s", x->campaign);
		if ((rc = event_record(t, p, &u->ev, e)))
			return rc;
		u->event_seq = u->ev.seq;
		uint32_t mask = LEDGER_F_OPTED_OUT | (o->source ? LEDGER_F_SOURCE_TYPE : 0);
		if ((rc = push_spread(t, p, NULL, mask, &u->st, e)))
			return rc;
	}
	if (o->idempotency_key)
		rc = ledger_idem_put(t, o->idempotency_key, u->event_seq, time_now_ms(), e);
	return rc;
}

/* An opt-out's own source type: one that needs no free text. */
static int optout_source_check(const char *source, struct err *e)
{
	if (source && (ledger_source_parse(source) < 0 || strcmp(source, "other") == 0))
		return err_set(e, ERR_INVALID,
		               "source '%.40s' is not one of crm_sync, import, manual_upload, "
		               "browser_extension (use contact set for other)",
		               source);
	return 0;
}

int conn_optout(struct conn *c, const struct conn_actor *who, const struct conn_optout *o,
                cJSON **result, struct err *e)
{
	*result = NULL;
	if (optout_source_check(o->source, e))
		return e->code;
	if (o->occurred_at > time_now_ms() + FUTURE_TOLERANCE_MS)
		return err_set(e, ERR_INVALID, "occurred_at is in the future");
	if (o->reason && strlen(o->reason) > LEDGER_TEXT_MAX)
		return err_set(e, ERR_INVALID, "reason longer than %d bytes", LEDGER_TEXT_MAX);
	if (o->purpose && purpose_check(c->cfg, o->purpose, e))
		return e->code;
	struct optout_uc *x = uc_new(c, who, o->email, sizeof(*x), e);
	if (x == NULL)
		return e->code;
	struct uc *u = &x->u;
	x->o = o;
	int rc = ledger_write(c->l, optout_txn, x, e);
	if (rc)
		return uc_fail(u, rc);
	json_mark();
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "email", u->email);
	/* out of all email; a purpose's opt-out leaves that as it was */
	cJSON_AddBoolToObject(r, "opted_out", o->purpose ? u->p.facts.opted_out : true);
	if (o->purpose) {
		cJSON_AddStringToObject(r, "purpose", o->purpose);
		cJSON_AddStringToObject(r, "purpose_status", "opted_out");
	}
	cJSON_AddBoolToObject(r, "already", u->already);
	cJSON_AddNumberToObject(r, "event_seq", (double)u->event_seq);
	cJSON_AddNumberToObject(r, "pushes_queued", (double)u->st.pushes_queued);
	log_info("contact.optout", "opt-out recorded%s (%llu Salesforce writes queued)",
	         u->already ? " (already opted out)" : "", (unsigned long long)u->st.pushes_queued);
	free(u);
	return json_result(r, 0, result, e);
}

/* ---- many rows through one use case ---- */

/* A bulk use case over rows: prepare loads row i into u (email, key,
 * inputs) or says why it is invalid; describe gives the row number and
 * email a report names; apply (optout_txn, facts_txn) writes the prepared
 * row in a transaction and sets u->already. */
struct many {
	struct uc *u;
	const void *rows;
	int (*prepare)(struct uc *u, const void *rows, size_t i, struct err *e);
	size_t (*describe)(const void *rows, size_t i, const char **email);
	ledger_fn apply;
	/* the batch in hand */
	const size_t *idx; /* its valid rows */
	size_t k, applied, unchanged;
};

static int many_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct many *m = ctx;
	m->applied = m->unchanged = 0;
	for (size_t i = 0; i < m->k; i++) {
		/* prepared again rather than kept: a prepared row holds whole
		 * facts (three 1,000-byte texts), too much to keep per row */
		struct err ie;
		if (m->prepare(m->u, m->rows, m->idx[i], &ie))
			return err_set(e, ERR_INTERNAL, "a row valid before is not: %s", ie.msg);
		int rc = m->apply(t, m->u, e);
		if (rc)
			return rc;
		if (m->u->already)
			m->unchanged++;
		else
			m->applied++;
	}
	return 0;
}

void conn_bulk_result_free(struct conn_bulk_result *res)
{
	cJSON_Delete(res->bad);
	free(res->ok);
	memset(res, 0, sizeof(*res));
}

/* Check every row (all or none must know before anything is written),
 * then apply the valid ones in one ledger transaction per 2,000. */
static int run_many(struct conn *c, struct many *m, size_t n, const struct conn_bulk_opts *o,
                    struct conn_bulk_result *res, struct err *e)
{
	enum { BATCH = 2000 };
	memset(res, 0, sizeof(*res));
	size_t cap = n ? n : 1;
	json_mark();
	res->bad = cJSON_CreateArray();
	res->ok = calloc(cap, sizeof(*res->ok));
	size_t *idx = malloc((n < BATCH ? cap : BATCH) * sizeof(*idx));
	int rc = 0;
	if (res->bad == NULL || res->ok == NULL || idx == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct err ie = {0};
		if (m->prepare(m->u, m->rows, i, &ie) == 0) {
			res->ok[i] = true;
			continue;
		}
		const char *email = NULL;
		size_t row = m->describe(m->rows, i, &email);
		res->invalid++;
		json_append(res->bad, render_bad_row(row, email, ie.msg));
	}
	if (json_failed()) { /* the report of the invalid rows would be cut */
		rc = err_set(e, ERR_NOMEM, "out of memory");
		memset(res->ok, 0, cap * sizeof(*res->ok));
		goto out;
	}
	if (o && o->all_or_none && res->invalid) {
		rc = err_set(e, ERR_INVALID,
		             "%zu of %zu rows are invalid; nothing applied (all or none)",
		             res->invalid, n);
		memset(res->ok, 0, cap * sizeof(*res->ok));
		goto out;
	}
	for (size_t start = 0; start < n; start += BATCH) {
		size_t end = start + BATCH < n ? start + BATCH : n;
		m->idx = idx;
		m->k = 0;
		for (size_t i = start; i < end; i++)
			if (res->ok[i])
				idx[m->k++] = i;
		if (m->k > 0 && (rc = ledger_write(c->l, many_txn, m, e))) {
			for (size_t i = start; i < n; i++)
				res->ok[i] = false; /* this batch and the rest were not applied */
			break;
		}
		res->applied += m->applied;
		res->unchanged += m->unchanged;
		m->applied = m->unchanged = 0;
		if (o && o->progress)
			o->progress(end, n, o->arg);
	}
out:
	free(idx);
	return rc;
}

/* ---- many opt-outs ---- */

struct optout_rows {
	const char *const *emails;
	const char *const *sources; /* per row, NULL: none */
	const size_t *rownums;
	struct conn_optout o;    /* what every row shares (the reason) */
	struct conn_optout *row; /* the row in hand: o with its source */
};

static int optout_prepare(struct uc *u, const void *rows, size_t i, struct err *e)
{
	const struct optout_rows *r = rows;
	*r->row = r->o;
	r->row->source = r->sources && r->sources[i] && r->sources[i][0] ? r->sources[i] : NULL;
	int rc = conn_person_key(u->c, r->emails[i], u->email, u->key, e);
	if (rc == 0)
		rc = optout_source_check(r->row->source, e);
	((struct optout_uc *)u)->o = r->row;
	return rc;
}

static size_t optout_describe(const void *rows, size_t i, const char **email)
{
	const struct optout_rows *r = rows;
	*email = r->emails[i];
	return r->rownums ? r->rownums[i] : i + 1;
}

int conn_optout_many(struct conn *c, const struct conn_actor *who, const char *const *emails,
                     const char *const *sources, const size_t *rownums, size_t n,
                     const char *reason, const char *purpose, const struct conn_bulk_opts *o,
                     struct conn_bulk_result *res, struct err *e)
{
	struct conn_optout row;
	struct optout_rows rows = {
	    emails, sources, rownums, {.reason = reason, .purpose = purpose}, &row};
	if (purpose && purpose_check(c->cfg, purpose, e)) {
		memset(res, 0, sizeof(*res));
		return e->code;
	}
	struct uc *u = uc_new(c, who, NULL, sizeof(struct optout_uc), e);
	if (u == NULL) {
		memset(res, 0, sizeof(*res));
		return e->code;
	}
	struct many m = {u, &rows, optout_prepare, optout_describe, optout_txn, NULL, 0, 0, 0};
	int rc = run_many(c, &m, n, o, res, e);
	free(u);
	return rc;
}

/* ---- compliance fields ---- */

struct set_uc {
	struct uc u;
	struct ledger_facts want; /* validated new facts */
	uint32_t groups;          /* LEDGER_F_AUTH_TYPE and/or LEDGER_F_SOURCE_TYPE */
};

static int facts_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct set_uc *x = ctx;
	struct uc *u = &x->u;
	memset(&u->st, 0, sizeof(u->st));
	int rc = uc_load_person(t, u, e);
	if (rc)
		return rc;
	struct ledger_person *p = &u->p;
	int64_t now = time_now_ms();
	static const struct {
		uint32_t tb, group;
		int kind;
	} g[] = {{LEDGER_F_AUTH_TYPE, AUTH_GROUP, LEDGER_EV_AUTHORIZATION},
	         {LEDGER_F_SOURCE_TYPE, SOURCE_GROUP, LEDGER_EV_SOURCE}};
	u->already = 1; /* until a group changes */
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		if (!(x->groups & g[i].tb))
			continue;
		if (u->found && (p->facts.mask & g[i].tb) &&
		    facts_group_equal(&p->facts, &x->want, g[i].tb))
			continue; /* the person holds these values already */
		u->already = 0;
		facts_copy_group(&p->facts, &x->want, g[i].group);
		if (g[i].tb == LEDGER_F_AUTH_TYPE)
			p->auth_changed_at = now;
		else
			p->source_changed_at = now;
		p->updated_at = now;
		uc_event_by(&u->ev, u->who, g[i].kind);
		facts_copy_group(&u->ev.facts, &x->want, g[i].group);
		if ((rc = event_record(t, p, &u->ev, e)))
			break;
		rc = push_spread(t, p, NULL, g[i].tb, &u->st, e);
	}
	return rc;
}

static int validate_change(const struct conn_facts_change *ch, struct ledger_facts *want,
                           uint32_t *groups, struct err *e)
{
	ledger_facts_init(want);
	*groups = 0;
	if (ch->authorization) {
		int type = ledger_auth_parse(ch->authorization);
		if (type < 0)
			return err_set(e, ERR_INVALID,
			               "authorization type '%s' is not one of consent, "
			               "legitimate_interest, contract, legal_obligation, "
			               "vital_interests, public_interest, other",
			               ch->authorization);
		*groups |= LEDGER_F_AUTH_TYPE;
		want->mask |= LEDGER_F_AUTH_TYPE;
		want->auth_type = (uint8_t)type;
		if (ch->consent_date) {
			want->mask |= LEDGER_F_CONSENT_DATE;
			want->consent_date = ch->consent_date;
		}
		if (ch->purpose && *ch->purpose) {
			if (strlen(ch->purpose) > LEDGER_TEXT_MAX)
				return err_set(e, ERR_INVALID, "purpose longer than %d bytes",
				               LEDGER_TEXT_MAX);
			want->mask |= LEDGER_F_PURPOSE;
			snprintf(want->purpose, sizeof(want->purpose), "%s", ch->purpose);
		}
		if (ch->other && *ch->other) {
			if (strlen(ch->other) > LEDGER_TEXT_MAX)
				return err_set(e, ERR_INVALID, "other longer than %d bytes",
				               LEDGER_TEXT_MAX);
			want->mask |= LEDGER_F_AUTH_OTHER;
			snprintf(want->auth_other, sizeof(want->auth_other), "%s", ch->other);
		}
	} else if (ch->consent_date || ch->purpose || ch->other) {
		return err_set(e, ERR_INVALID,
		               "consent_date, purpose and other go with an authorization type");
	}
	if (ch->source) {
		int type = ledger_source_parse(ch->source);
		if (type < 0)
			return err_set(e, ERR_INVALID,
			               "source type '%s' is not one of crm_sync, import, "
			               "manual_upload, browser_extension, other",
			               ch->source);
		*groups |= LEDGER_F_SOURCE_TYPE;
		want->mask |= LEDGER_F_SOURCE_TYPE;
		want->source_type = (uint8_t)type;
		if (ch->source_other && *ch->source_other) {
			if (strlen(ch->source_other) > LEDGER_TEXT_MAX)
				return err_set(e, ERR_INVALID, "source other longer than %d bytes",
				               LEDGER_TEXT_MAX);
			want->mask |= LEDGER_F_SOURCE_OTHER;
			snprintf(want->source_other, sizeof(want->source_other), "%s",
			         ch->source_other);
		}
	}
	if (*groups == 0)
		return err_set(e, ERR_INVALID,
		               "nothing to change: give an authorization or a source");
	char why[200];
	if (!facts_valid(want, *groups, time_now_ms(), why, sizeof(why)))
		return err_set(e, ERR_INVALID, "%s", why);
	return 0;
}

int conn_contact_set(struct conn *c, const struct conn_actor *who, const char *email,
                     const struct conn_facts_change *ch, cJSON **result, struct err *e)
{
	*result = NULL;
	struct set_uc *x = uc_new(c, who, email, sizeof(*x), e);
	if (x == NULL)
		return e->code;
	int rc = validate_change(ch, &x->want, &x->groups, e);
	if (rc == 0)
		rc = ledger_write(c->l, facts_txn, x, e);
	return uc_person_result(&x->u, rc, result, e);
}

/* ---- many compliance updates ---- */

/* Validate row i into u, a struct set_uc (email, key, want, groups). */
static int set_prepare(struct uc *u, const void *rows, size_t i, struct err *e)
{
	struct set_uc *x = (struct set_uc *)u;
	const struct conn_set_row *r = (const struct conn_set_row *)rows + i;
	if (r->error)
		return err_set(e, ERR_INVALID, "%s", r->error);
	if (r->email == NULL)
		return err_set(e, ERR_INVALID, "email is required");
	int rc = conn_person_key(u->c, r->email, u->email, u->key, e);
	if (rc == 0)
		rc = validate_change(&r->ch, &x->want, &x->groups, e);
	return rc;
}

static size_t set_describe(const void *rows, size_t i, const char **email)
{
	const struct conn_set_row *r = (const struct conn_set_row *)rows + i;
	*email = r->email;
	return r->row;
}

int conn_contact_set_many(struct conn *c, const struct conn_actor *who,
                          const struct conn_set_row *rows, size_t n, const struct conn_bulk_opts *o,
                          struct conn_bulk_result *res, struct err *e)
{
	struct uc *u = uc_new(c, who, NULL, sizeof(struct set_uc), e);
	if (u == NULL) {
		memset(res, 0, sizeof(*res));
		return e->code;
	}
	struct many m = {u, rows, set_prepare, set_describe, facts_txn, NULL, 0, 0, 0};
	int rc = run_many(c, &m, n, o, res, e);
	free(u);
	if (rc == 0)
		log_info("contact.set_many", "%zu persons changed, %zu unchanged, %zu invalid rows",
		         res->applied, res->unchanged, res->invalid);
	return rc;
}

/* ---- re-subscribe ---- */

int uc_resub_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct resub_uc *x = ctx;
	struct uc *u = &x->u;
	memset(&u->st, 0, sizeof(u->st));
	int rc = uc_load_person(t, u, e);
	if (rc)
		return rc;
	struct ledger_person *p = &u->p;
	const struct conn_evidence *ev = x->ev;
	if (!u->found || !p->facts.opted_out)
		return err_set(e, ERR_CONFLICT, "%s is not opted out: nothing to re-subscribe",
		               u->email);
	if ((rc = evidence_after(ev->consent_date, p->opted_out_at, "re-subscribe", e)))
		return rc;
	int64_t now = time_now_ms();
	p->facts.opted_out = false;
	p->opted_out_at = 0;
	p->optout_changed_at = now;
	p->facts.mask |= AUTH_GROUP | LEDGER_F_OPTED_OUT;
	p->facts.auth_type = LEDGER_AUTH_CONSENT;
	p->facts.consent_date = ev->consent_date;
	snprintf(p->facts.purpose, sizeof(p->facts.purpose), "%s", ev->purpose);
	p->facts.auth_other[0] = '\0';
	p->auth_changed_at = now;
	p->updated_at = now;
	uc_event_by(&u->ev, u->who, LEDGER_EV_OPTIN);
	u->ev.facts = p->facts;
	snprintf(u->ev.evidence_ref, sizeof(u->ev.evidence_ref), "%s", ev->evidence_ref);
	if (ev->evidence_sha256)
		snprintf(u->ev.evidence_sha256, sizeof(u->ev.evidence_sha256), "%s",
		         ev->evidence_sha256);
	if ((rc = event_record(t, p, &u->ev, e)))
		return rc;
	u->event_seq = u->ev.seq;
	if ((rc = push_spread(t, p, NULL, LEDGER_F_OPTED_OUT | LEDGER_F_AUTH_TYPE, &u->st, e)))
		return rc;
	return uc_resolve_resubscribe_conflicts(t, u, NULL, "resubscribed", e);
}

int conn_resubscribe(struct conn *c, const struct conn_actor *who, const char *email,
                     const struct conn_evidence *ev, cJSON **result, struct err *e)
{
	*result = NULL;
	if (who->origin != LEDGER_ORIGIN_ADMIN)
		return err_set(e, ERR_REFUSED, "a re-subscribe needs admin credentials");
	int rc = evidence_check(ev, time_now_ms(), e);
	if (rc)
		return rc;
	struct resub_uc *x = uc_new(c, who, email, sizeof(*x), e);
	if (x == NULL)
		return e->code;
	x->ev = ev;
	rc = ledger_write(c->l, uc_resub_txn, x, e);
	return uc_person_result(&x->u, rc, result, e);
}

/* ---- erasure ---- */

static int erase_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct uc *u = ctx;
	int rc = ledger_person_erase(t, u->key, e);
	if (rc)
		return rc;
	if ((rc = ledger_person_get(t, u->key, &u->p, e)))
		return rc;
	uc_event_by(&u->ev, u->who, LEDGER_EV_ERASURE);
	return event_record(t, &u->p, &u->ev, e);
}

int conn_contact_erase(struct conn *c, const struct conn_actor *who, const char *email,
                       cJSON **result, struct err *e)
{
	*result = NULL;
	if (who->origin != LEDGER_ORIGIN_ADMIN)
		return err_set(e, ERR_REFUSED, "an erasure needs admin credentials");
	struct uc *u = uc_new(c, who, email, sizeof(*u), e);
	if (u == NULL)
		return e->code;
	int rc = ledger_write(c->l, erase_txn, u, e);
	if (rc == ERR_NOTFOUND)
		rc = err_set(e, ERR_NOTFOUND, "no person with email %s", u->email);
	return uc_person_result(u, rc, result, e);
}
