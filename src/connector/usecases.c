/* The use cases the CLI and the local API share. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/csv.h"
#include "util/timefmt.h"

/* Scratch space for one use case; everything a write callback needs, so
 * that the callback can run again from the same inputs. */
struct uc {
	struct conn *c;
	const struct conn_actor *who;
	char email[LEDGER_EMAIL_MAX + 1];
	uint8_t key[LEDGER_KEY_LEN];
	struct ledger_person p;
	struct ledger_event ev;
	struct apply_stats st;
	/* inputs */
	const struct conn_optout *optout;
	const struct conn_facts_change *change;
	struct ledger_facts want; /* validated new facts */
	uint32_t groups;          /* LEDGER_F_AUTH_TYPE and/or LEDGER_F_SOURCE_TYPE */
	const struct conn_evidence *evidence;
	uint64_t conflict_id;
	enum conn_resolution how;
	bool full; /* reads: the records in full and the history */
	/* outputs */
	int found, already;
	uint64_t event_seq;
	cJSON *out;
};

static struct uc *uc_new(struct conn *c, const struct conn_actor *who, const char *email,
                         struct err *e)
{
	struct uc *u = calloc(1, sizeof(*u));
	if (u == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	u->c = c;
	u->who = who;
	if (email) {
		if (conn_email_normalize(email, u->email, e)) {
			free(u);
			return NULL;
		}
		ledger_person_key(c->l, u->email, strlen(u->email), u->key);
	}
	return u;
}

static int uc_fail(struct uc *u, int rc)
{
	free(u);
	return rc;
}

/* Load the person (or a fresh one): u->found says which. */
static int load_person(struct ledger_txn *t, struct uc *u, struct err *e)
{
	int rc = ledger_person_get(t, u->key, &u->p, e);
	u->found = rc == 0;
	if (rc == ERR_NOTFOUND) {
		memset(&u->p, 0, sizeof(u->p));
		memcpy(u->p.key, u->key, LEDGER_KEY_LEN);
		ledger_facts_init(&u->p.facts);
		snprintf(u->p.email, sizeof(u->p.email), "%s", u->email);
		u->p.created_at = time_now_ms();
		rc = 0;
	}
	return rc;
}

static void event_by(struct ledger_event *ev, const struct conn_actor *who, int kind)
{
	ledger_event_init(ev);
	ev->kind = (uint8_t)kind;
	ev->origin = (uint8_t)who->origin;
	ev->at = time_now_ms();
	snprintf(ev->actor, sizeof(ev->actor), "%s", who->name);
}

/* ---- opt-out ---- */

static int optout_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct uc *u = ctx;
	const struct conn_optout *o = u->optout;
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
	int rc = load_person(t, u, e);
	if (rc)
		return rc;
	struct ledger_person *p = &u->p;
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
		event_by(&u->ev, u->who, LEDGER_EV_OPTOUT);
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
	struct uc *u = uc_new(c, who, o->email, e);
	if (u == NULL)
		return e->code;
	u->optout = o;
	int rc = ledger_write(c->l, optout_txn, u, e);
	if (rc)
		return uc_fail(u, rc);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "email", u->email);
	cJSON_AddBoolToObject(r, "opted_out", true);
	cJSON_AddBoolToObject(r, "already", u->already);
	cJSON_AddNumberToObject(r, "event_seq", (double)u->event_seq);
	cJSON_AddNumberToObject(r, "pushes_queued", (double)u->st.pushes_queued);
	*result = r;
	log_info("contact.optout", "opt-out recorded%s (%llu Salesforce writes queued)",
	         u->already ? " (already opted out)" : "", (unsigned long long)u->st.pushes_queued);
	free(u);
	return 0;
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
		cJSON *b = cJSON_CreateObject();
		cJSON_AddNumberToObject(b, "row", (double)row);
		cJSON_AddStringToObject(b, "email", email ? email : "");
		cJSON_AddStringToObject(b, "error", ie.msg);
		cJSON_AddItemToArray(res->bad, b);
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
	int rc = conn_email_normalize(r->emails[i], u->email, e);
	if (rc == 0)
		rc = optout_source_check(r->row->source, e);
	if (rc == 0)
		ledger_person_key(u->c->l, u->email, strlen(u->email), u->key);
	u->optout = r->row;
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
                     const char *reason, const struct conn_bulk_opts *o,
                     struct conn_bulk_result *res, struct err *e)
{
	struct conn_optout row;
	struct optout_rows rows = {emails, sources, rownums, {.reason = reason}, &row};
	struct uc *u = uc_new(c, who, NULL, e);
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

static int facts_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct uc *u = ctx;
	memset(&u->st, 0, sizeof(u->st));
	int rc = load_person(t, u, e);
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
		if (!(u->groups & g[i].tb))
			continue;
		if (u->found && (p->facts.mask & g[i].tb) &&
		    facts_group_equal(&p->facts, &u->want, g[i].tb))
			continue; /* the person holds these values already */
		u->already = 0;
		facts_copy_group(&p->facts, &u->want, g[i].group);
		if (g[i].tb == LEDGER_F_AUTH_TYPE)
			p->auth_changed_at = now;
		else
			p->source_changed_at = now;
		p->updated_at = now;
		event_by(&u->ev, u->who, g[i].kind);
		facts_copy_group(&u->ev.facts, &u->want, g[i].group);
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
	struct uc *u = uc_new(c, who, email, e);
	if (u == NULL)
		return e->code;
	int rc = validate_change(ch, &u->want, &u->groups, e);
	if (rc == 0)
		rc = ledger_write(c->l, facts_txn, u, e);
	if (rc)
		return uc_fail(u, rc);
	*result = render_person(c->cfg, &u->p);
	free(u);
	return 0;
}

/* ---- many compliance updates ---- */

/* Validate row i into u (email, key, want, groups). */
static int set_prepare(struct uc *u, const void *rows, size_t i, struct err *e)
{
	const struct conn_set_row *r = (const struct conn_set_row *)rows + i;
	if (r->error)
		return err_set(e, ERR_INVALID, "%s", r->error);
	if (r->email == NULL)
		return err_set(e, ERR_INVALID, "email is required");
	int rc = conn_email_normalize(r->email, u->email, e);
	if (rc == 0)
		rc = validate_change(&r->ch, &u->want, &u->groups, e);
	if (rc == 0)
		ledger_person_key(u->c->l, u->email, strlen(u->email), u->key);
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
	struct uc *u = uc_new(c, who, NULL, e);
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

static int resolve_resubscribe_conflicts(struct ledger_txn *t, struct uc *u, const char *how,
                                         struct err *e);

static int resub_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct uc *u = ctx;
	memset(&u->st, 0, sizeof(u->st));
	int rc = load_person(t, u, e);
	if (rc)
		return rc;
	struct ledger_person *p = &u->p;
	const struct conn_evidence *ev = u->evidence;
	if (!u->found || !p->facts.opted_out)
		return err_set(e, ERR_CONFLICT, "%s is not opted out: nothing to re-subscribe",
		               u->email);
	if (ev->consent_date <= p->opted_out_at) {
		char out_at[TIME_STR_MAX], given[TIME_STR_MAX];
		time_format(p->opted_out_at, out_at);
		time_format(ev->consent_date, given);
		return err_set(e, ERR_EVIDENCE,
		               "the consent date %s is not later than the opt-out of %s; evidence "
		               "of consent given before the opt-out cannot re-subscribe",
		               given, out_at);
	}
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
	event_by(&u->ev, u->who, LEDGER_EV_OPTIN);
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
	return resolve_resubscribe_conflicts(t, u, "resubscribed", e);
}

static int check_evidence(const struct conn_evidence *ev, struct err *e)
{
	if (ev->consent_date == 0 || ev->purpose == NULL || !*ev->purpose ||
	    ev->evidence_ref == NULL || !*ev->evidence_ref)
		return err_set(e, ERR_EVIDENCE,
		               "a re-subscribe needs new consent evidence: a consent date, a "
		               "purpose and an evidence reference");
	if (ev->consent_date > time_now_ms() + FUTURE_TOLERANCE_MS)
		return err_set(e, ERR_EVIDENCE, "the consent date is in the future");
	if (strlen(ev->purpose) > LEDGER_TEXT_MAX || strlen(ev->evidence_ref) > LEDGER_TEXT_MAX)
		return err_set(e, ERR_INVALID, "purpose or evidence reference longer than %d bytes",
		               LEDGER_TEXT_MAX);
	if (ev->evidence_sha256) {
		size_t n = strlen(ev->evidence_sha256);
		for (size_t i = 0; i < n; i++)
			if (!isxdigit((unsigned char)ev->evidence_sha256[i]))
				n = 0;
		if (n != 64)
			return err_set(e, ERR_INVALID, "evidence SHA-256 must be 64 hex digits");
	}
	return 0;
}

int conn_resubscribe(struct conn *c, const struct conn_actor *who, const char *email,
                     const struct conn_evidence *ev, cJSON **result, struct err *e)
{
	*result = NULL;
	if (who->origin != LEDGER_ORIGIN_ADMIN)
		return err_set(e, ERR_REFUSED, "a re-subscribe needs admin credentials");
	int rc = check_evidence(ev, e);
	if (rc)
		return rc;
	struct uc *u = uc_new(c, who, email, e);
	if (u == NULL)
		return e->code;
	u->evidence = ev;
	rc = ledger_write(c->l, resub_txn, u, e);
	if (rc)
		return uc_fail(u, rc);
	*result = render_person(c->cfg, &u->p);
	free(u);
	return 0;
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
	event_by(&u->ev, u->who, LEDGER_EV_ERASURE);
	return event_record(t, &u->p, &u->ev, e);
}

int conn_contact_erase(struct conn *c, const struct conn_actor *who, const char *email,
                       cJSON **result, struct err *e)
{
	*result = NULL;
	if (who->origin != LEDGER_ORIGIN_ADMIN)
		return err_set(e, ERR_REFUSED, "an erasure needs admin credentials");
	struct uc *u = uc_new(c, who, email, e);
	if (u == NULL)
		return e->code;
	int rc = ledger_write(c->l, erase_txn, u, e);
	if (rc == ERR_NOTFOUND)
		rc = err_set(e, ERR_NOTFOUND, "no person with email %s", u->email);
	if (rc)
		return uc_fail(u, rc);
	*result = render_person(c->cfg, &u->p);
	free(u);
	return 0;
}

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

/* ---- conflicts ---- */

struct list_ctx {
	enum conn_conflict_filter f;
	cJSON *arr;
	uint64_t open;
	struct ledger_txn *t;
	struct ledger_person *p; /* scratch: the conflict's person, for the email */
};

static int list_conflict(const struct ledger_conflict *cf, void *ctx)
{
	struct list_ctx *l = ctx;
	l->open += cf->status == LEDGER_CONFLICT_OPEN;
	if (l->arr == NULL || (l->f == CONN_CONFLICTS_OPEN && cf->status != LEDGER_CONFLICT_OPEN) ||
	    (l->f == CONN_CONFLICTS_RESOLVED && cf->status != LEDGER_CONFLICT_RESOLVED))
		return 0;
	cJSON *o = render_conflict(cf);
	struct err pe;
	if (l->p && ledger_person_get(l->t, cf->person, l->p, &pe) == 0 &&
	    !(l->p->flags & LEDGER_PERSON_ERASED))
		cJSON_AddStringToObject(o, "email", l->p->email);
	else
		cJSON_AddStringToObject(o, "email", "erased");
	cJSON_AddItemToArray(l->arr, o);
	return 0;
}

static int list_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct list_ctx *l = ctx;
	l->t = t;
	return ledger_conflict_each(t, list_conflict, ctx, e);
}

int conn_conflicts_list(struct conn *c, enum conn_conflict_filter f, cJSON **out, struct err *e)
{
	*out = NULL;
	struct list_ctx l = {f, cJSON_CreateArray(), 0, NULL, malloc(sizeof(struct ledger_person))};
	int rc = l.p ? ledger_read(c->l, list_txn, &l, e) : err_set(e, ERR_NOMEM, "out of memory");
	free(l.p);
	if (rc) {
		cJSON_Delete(l.arr);
		return rc;
	}
	*out = cJSON_CreateObject();
	cJSON_AddItemToObject(*out, "conflicts", l.arr);
	return 0;
}

struct one_conflict {
	uint64_t id;
	struct ledger_conflict cf;
	struct ledger_person p;
	int person_found;
};

static int conflict_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct one_conflict *o = ctx;
	int rc = ledger_conflict_get(t, o->id, &o->cf, e);
	if (rc == ERR_NOTFOUND)
		return err_set(e, ERR_NOTFOUND, "no conflict %llu", (unsigned long long)o->id);
	if (rc)
		return rc;
	rc = ledger_person_get(t, o->cf.person, &o->p, e);
	o->person_found = rc == 0;
	return rc == ERR_NOTFOUND ? 0 : rc;
}

int conn_conflict_show(struct conn *c, uint64_t id, cJSON **out, struct err *e)
{
	struct one_conflict *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	o->id = id;
	int rc = ledger_read(c->l, conflict_txn, o, e);
	if (rc == 0) {
		*out = render_conflict(&o->cf);
		if (o->person_found)
			cJSON_AddItemToObject(*out, "person_state", render_person(c->cfg, &o->p));
	}
	free(o);
	return rc;
}

static int close_conflict(struct ledger_txn *t, struct uc *u, struct ledger_conflict *cf,
                          const char *how, struct err *e)
{
	cf->status = LEDGER_CONFLICT_RESOLVED;
	cf->resolved_at = time_now_ms();
	snprintf(cf->resolution, sizeof(cf->resolution), "%s", how);
	snprintf(cf->resolved_by, sizeof(cf->resolved_by), "%s", u->who->name);
	return ledger_conflict_put(t, cf, e);
}

struct resub_scan {
	const uint8_t *person;
	uint64_t *ids; /* every open resubscribe conflict of the person */
	size_t n, cap;
	int nomem;
};

static int find_resub(const struct ledger_conflict *cf, void *ctx)
{
	struct resub_scan *s = ctx;
	if (cf->status != LEDGER_CONFLICT_OPEN || cf->kind != LEDGER_CONFLICT_RESUBSCRIBE ||
	    memcmp(cf->person, s->person, LEDGER_KEY_LEN) != 0)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		uint64_t *g = realloc(s->ids, cap * sizeof(*g));
		if (g == NULL) {
			s->nomem = 1;
			return 1; /* stop */
		}
		s->ids = g;
		s->cap = cap;
	}
	s->ids[s->n++] = cf->id;
	return 0;
}

static int resolve_resubscribe_conflicts(struct ledger_txn *t, struct uc *u, const char *how,
                                         struct err *e)
{
	struct resub_scan s = {u->key, NULL, 0, 0, 0};
	int rc = ledger_conflict_each(t, find_resub, &s, e);
	if (s.nomem)
		rc = err_set(e, ERR_NOMEM, "out of memory");
	struct ledger_conflict *cf = rc == 0 ? malloc(sizeof(*cf)) : NULL;
	if (rc == 0 && cf == NULL)
		rc = err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < s.n; i++) {
		rc = ledger_conflict_get(t, s.ids[i], cf, e);
		if (rc == 0)
			rc = close_conflict(t, u, cf, how, e);
	}
	free(cf);
	free(s.ids);
	return rc;
}

static int resolve_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct uc *u = ctx;
	memset(&u->st, 0, sizeof(u->st));
	struct ledger_conflict *cf = malloc(sizeof(*cf));
	if (cf == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_conflict_get(t, u->conflict_id, cf, e);
	if (rc == ERR_NOTFOUND)
		rc = err_set(e, ERR_NOTFOUND, "no conflict %llu",
		             (unsigned long long)u->conflict_id);
	if (rc == 0 && cf->status != LEDGER_CONFLICT_OPEN)
		rc = err_set(e, ERR_CONFLICT, "conflict %llu is already resolved (%s)",
		             (unsigned long long)u->conflict_id, cf->resolution);
	if (rc == 0) {
		memcpy(u->key, cf->person, LEDGER_KEY_LEN);
		rc = ledger_person_get(t, u->key, &u->p, e);
	}
	if (rc) {
		free(cf);
		return rc;
	}
	memcpy(u->email, u->p.email, sizeof(u->email));
	switch (u->how) {
	case CONN_KEEP_OPTOUT:
		if (cf->kind != LEDGER_CONFLICT_RESUBSCRIBE) {
			rc = err_set(e, ERR_INVALID,
			             "--keep-optout resolves re-subscribe conflicts");
			break;
		}
		/* Salesforce goes back to opted out (what "hold" left alone) */
		rc = push_enqueue(t, &u->p, &cf->record, LEDGER_F_OPTED_OUT, true, &u->st, e);
		if (rc == 0)
			rc = close_conflict(t, u, cf, "keep_optout", e);
		break;
	case CONN_RESUBSCRIBE:
		if (cf->kind != LEDGER_CONFLICT_RESUBSCRIBE) {
			rc = err_set(e, ERR_INVALID,
			             "--resubscribe resolves re-subscribe conflicts");
			break;
		}
		rc = resub_txn(t, u, e); /* closes this conflict too */
		break;
	case CONN_TAKE_LOCAL: {
		/* write optsync's value over Salesforce's */
		uint32_t mask = cf->field == LEDGER_F_OPTED_OUT   ? LEDGER_F_OPTED_OUT
		                : cf->field == LEDGER_F_AUTH_TYPE ? AUTH_GROUP
		                                                  : SOURCE_GROUP;
		rc = push_enqueue(t, &u->p, &cf->record, mask, u->p.facts.opted_out, &u->st, e);
		if (rc == 0)
			rc = close_conflict(t, u, cf, "take_local", e);
		break;
	}
	case CONN_TAKE_SALESFORCE:
		if (cf->kind == LEDGER_CONFLICT_RESUBSCRIBE)
			rc = err_set(
			    e, ERR_EVIDENCE,
			    "taking Salesforce's opt-in would re-subscribe without evidence; "
			    "use --resubscribe with new consent evidence, or --keep-optout");
		else if (cf->kind == LEDGER_CONFLICT_INVALID_VALUE)
			rc = err_set(
			    e, ERR_INVALID,
			    "Salesforce's value is not valid and cannot be taken; fix it in "
			    "Salesforce (the next sync applies it) or use --take local");
		else
			rc = close_conflict(t, u, cf, "take_salesforce", e);
		break;
	}
	free(cf);
	return rc;
}

int conn_conflict_resolve(struct conn *c, const struct conn_actor *who, uint64_t id,
                          enum conn_resolution how, const struct conn_evidence *ev, cJSON **result,
                          struct err *e)
{
	*result = NULL;
	if (who->origin != LEDGER_ORIGIN_ADMIN)
		return err_set(e, ERR_REFUSED, "resolving a conflict needs admin credentials");
	if (how == CONN_RESUBSCRIBE) {
		int rc = check_evidence(ev, e);
		if (rc)
			return rc;
	}
	struct uc *u = uc_new(c, who, NULL, e);
	if (u == NULL)
		return e->code;
	u->conflict_id = id;
	u->how = how;
	u->evidence = ev;
	int rc = ledger_write(c->l, resolve_txn, u, e);
	if (rc)
		return uc_fail(u, rc);
	free(u);
	return conn_conflict_show(c, id, result, e);
}

/* ---- status and audit ---- */

struct status_ctx {
	const struct config *cfg;
	cJSON *out;
	uint64_t queued, parked;
	cJSON *parked_list;
	struct ledger_txn *t;
	struct ledger_person *p; /* scratch: the person of a parked push */
};

static int count_push(const struct ledger_push *q, void *ctx)
{
	struct status_ctx *s = ctx;
	if (q->parked) {
		s->parked++;
		if (cJSON_GetArraySize(s->parked_list) < 100) {
			cJSON *o = cJSON_CreateObject();
			struct err pe;
			cJSON_AddStringToObject(o, "object", ledger_object_name(q->record.object));
			cJSON_AddStringToObject(o, "id", q->record.id);
			if (ledger_person_get(s->t, q->person, s->p, &pe) == 0 &&
			    !(s->p->flags & LEDGER_PERSON_ERASED))
				cJSON_AddStringToObject(o, "email", s->p->email);
			else
				cJSON_AddStringToObject(o, "email", "erased");
			cJSON_AddStringToObject(o, "error", q->last_error);
			cJSON_AddNumberToObject(o, "attempts", q->attempts);
			add_time(o, "next_try", q->next_try);
			cJSON_AddItemToArray(s->parked_list, o);
		}
	} else {
		s->queued++;
	}
	return 0;
}

static int status_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct status_ctx *s = ctx;
	cJSON *o = s->out;
	cJSON *cursors = cJSON_AddObjectToObject(o, "cursors");
	for (size_t i = 0; i < s->cfg->salesforce.nobjects; i++) {
		int obj = object_of(s->cfg->salesforce.objects[i]);
		struct ledger_cursor cur;
		int rc = ledger_cursor_get(t, obj, &cur, e);
		cJSON *c = cJSON_AddObjectToObject(cursors, ledger_object_name(obj));
		if (rc == ERR_NOTFOUND) {
			cJSON_AddNullToObject(c, "system_modstamp");
			continue;
		}
		if (rc)
			return rc;
		add_time(c, "system_modstamp", cur.modstamp);
		cJSON_AddStringToObject(c, "last_id", cur.last_id);
		cJSON_AddNumberToObject(c, "records_pulled", (double)cur.pulled);
		add_time(c, "updated_at", cur.updated_at);
		/* how far behind Salesforce optsync may be: every change made
		 * before the last complete pull started has been read, so a quiet
		 * Salesforce does not make this grow; failing cycles do */
		add_time(c, "caught_up_at", cur.caught_up_at);
		if (cur.caught_up_at)
			cJSON_AddNumberToObject(
			    c, "lag_seconds", (double)(time_now_ms() - cur.caught_up_at) / 1000.0);
	}
	struct conn_health h;
	int hrc = health_get(t, &h, e);
	if (hrc)
		return hrc;
	cJSON *hj = cJSON_AddObjectToObject(o, "health");
	add_time(hj, "last_success_at", h.last_success_at);
	cJSON_AddNumberToObject(hj, "failures_in_a_row", (double)h.failures_in_a_row);
	add_time(hj, "last_error_at", h.last_error_at);
	/* unhealthy: cycles have failed for longer than sync.unready_after */
	int64_t failing_since = h.last_success_at > 0 ? h.last_success_at : h.last_error_at;
	cJSON_AddBoolToObject(hj, "healthy",
	                      h.failures_in_a_row == 0 ||
	                          time_now_ms() - failing_since <= s->cfg->sync.unready_after_ms);
	if (h.last_error[0])
		cJSON_AddStringToObject(hj, "last_error", h.last_error);
	else
		cJSON_AddNullToObject(hj, "last_error");
	char *buf = malloc(LEDGER_META_MAX + 1);
	size_t n;
	int rc = buf ? ledger_meta_get(t, META_LAST_CYCLE, buf, LEDGER_META_MAX, &n, e)
	             : err_set(e, ERR_NOMEM, "out of memory");
	cJSON *last = NULL;
	if (rc == 0) {
		buf[n] = '\0';
		if ((last = cJSON_Parse(buf)) == NULL)
			rc = err_set(e, ERR_LEDGER,
			             "the saved report of the last cycle is not JSON");
	}
	free(buf);
	if (rc == 0)
		cJSON_AddItemToObject(o, "last_cycle", last);
	else if (rc == ERR_NOTFOUND)
		cJSON_AddNullToObject(o, "last_cycle");
	else
		return rc;
	char usage[64];
	s->parked_list = cJSON_CreateArray();
	s->t = t;
	s->p = malloc(sizeof(*s->p));
	rc = s->p ? ledger_push_each(t, count_push, s, e) : err_set(e, ERR_NOMEM, "out of memory");
	free(s->p);
	s->p = NULL;
	if (rc) {
		cJSON_Delete(s->parked_list);
		return rc;
	}
	cJSON *p = cJSON_AddObjectToObject(o, "pushes");
	cJSON_AddNumberToObject(p, "queued", (double)s->queued);
	cJSON_AddNumberToObject(p, "parked", (double)s->parked);
	cJSON_AddItemToObject(p, "parked_records", s->parked_list);
	struct list_ctx l = {CONN_CONFLICTS_OPEN, NULL, 0, NULL, NULL};
	if ((rc = ledger_conflict_each(t, list_conflict, &l, e)))
		return rc;
	cJSON_AddNumberToObject(o, "open_conflicts", (double)l.open);
	rc = ledger_meta_get(t, META_API_USAGE, usage, sizeof(usage) - 1, &n, e);
	if (rc == 0) {
		usage[n] = '\0';
		long used, max;
		cJSON *api = cJSON_AddObjectToObject(o, "salesforce_api");
		if (sscanf(usage, "%ld/%ld", &used, &max) == 2) {
			cJSON_AddNumberToObject(api, "daily_used", (double)used);
			cJSON_AddNumberToObject(api, "daily_max", (double)max);
		}
	} else if (rc != ERR_NOTFOUND) {
		return rc;
	}
	struct ledger_stats st;
	if ((rc = ledger_stats(t, &st, e)))
		return rc;
	cJSON *lg = cJSON_AddObjectToObject(o, "ledger");
	cJSON_AddNumberToObject(lg, "persons", (double)st.persons);
	cJSON_AddNumberToObject(lg, "salesforce_records", (double)st.records);
	cJSON_AddNumberToObject(lg, "history_events", (double)st.events);
	cJSON_AddNumberToObject(lg, "changes", (double)st.changes);
	cJSON_AddNumberToObject(lg, "used_bytes", (double)st.used_bytes);
	cJSON_AddNumberToObject(lg, "map_size", (double)st.map_size);
	cJSON_AddNumberToObject(lg, "schema_version", st.schema_version);
	return conn_retention_status(t, s->cfg, o, e);
}

int conn_status(struct conn *c, cJSON **out, struct err *e)
{
	struct status_ctx s = {c->cfg, cJSON_CreateObject(), 0, 0, NULL, NULL, NULL};
	int rc = ledger_read(c->l, status_txn, &s, e);
	if (rc) {
		cJSON_Delete(s.out);
		return rc;
	}
	*out = s.out;
	return 0;
}

static int ping_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	(void)ctx;
	struct ledger_stats st;
	return ledger_stats(t, &st, e);
}

int conn_ping(struct conn *c, struct err *e)
{
	return ledger_read(c->l, ping_txn, NULL, e);
}

int conn_audit_verify(struct conn *c, const char *expect, cJSON **out, struct err *e)
{
	*out = NULL;
	uint64_t at = 0;
	uint8_t want[32];
	if (expect) {
		/* SEQ:HASH, as a previous audit verify printed it */
		char *end;
		errno = 0;
		unsigned long long v = strtoull(expect, &end, 10);
		int ok = expect[0] >= '1' && expect[0] <= '9' && errno == 0 && *end == ':' &&
		         strlen(end + 1) == 64;
		for (int i = 0; ok && i < 32; i++) {
			unsigned b;
			ok = sscanf(end + 1 + 2 * i, "%2x", &b) == 1 &&
			     strchr("0123456789abcdefABCDEF", end[1 + 2 * i]) &&
			     strchr("0123456789abcdefABCDEF", end[2 + 2 * i]);
			want[i] = (uint8_t)b;
		}
		if (!ok)
			return err_set(
			    e, ERR_USAGE,
			    "--expect '%.80s' is not SEQ:HASH (a sequence number and 64 hex "
			    "digits, as audit verify prints the head)",
			    expect);
		at = v;
	}
	struct ledger_verify_report rep;
	int rc = ledger_verify_at(c->l, at, &rep, e);
	char hex[65];
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", rc == 0);
	cJSON_AddNumberToObject(o, "events_checked", (double)rep.events);
	cJSON_AddNumberToObject(o, "purged_events", (double)rep.purged);
	if (rc == 0) {
		/* record it elsewhere; audit verify --expect checks it later */
		cJSON *h = cJSON_AddObjectToObject(o, "head");
		hex32(rep.head_hash, hex);
		cJSON_AddNumberToObject(h, "seq", (double)rep.events);
		cJSON_AddStringToObject(h, "hash", hex);
		char line[96];
		snprintf(line, sizeof(line), "%llu:%s", (unsigned long long)rep.events, hex);
		cJSON_AddStringToObject(h, "expect", line);
	}
	if (rc == 0 && expect) {
		cJSON *x = cJSON_AddObjectToObject(o, "expected");
		cJSON_AddStringToObject(x, "head", expect);
		if (!rep.at_found)
			rc = err_set(
			    e, ERR_LEDGER,
			    "the recorded head %llu is not in the chain, which ends at %llu: "
			    "events were removed",
			    (unsigned long long)at, (unsigned long long)rep.events);
		else if (CRYPTO_memcmp(rep.at_hash, want, 32) != 0)
			rc = err_set(
			    e, ERR_LEDGER,
			    "event %llu's hash differs from the recorded head: the chain was "
			    "rewritten up to there",
			    (unsigned long long)at);
		cJSON_AddBoolToObject(x, "found", rc == 0);
		if (rc)
			cJSON_ReplaceItemInObject(o, "ok", cJSON_CreateFalse());
	}
	if (rc == ERR_LEDGER && rep.first_bad) {
		cJSON_AddNumberToObject(o, "first_bad_event", (double)rep.first_bad);
		cJSON_AddStringToObject(o, "why", rep.why);
	}
	*out = o;
	return rc;
}

/* ---- change feed ---- */

struct feed_ctx {
	struct ledger_txn *t;
	cJSON *arr;
	struct ledger_person p;
	struct err *e;
	uint64_t last;
	size_t limit;
};

static int feed_one(const struct ledger_change *ch, void *ctx)
{
	struct feed_ctx *f = ctx;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "seq", (double)ch->seq);
	add_time(o, "at", ch->at);
	cJSON_AddStringToObject(o, "kind", ledger_event_kind_name(ch->kind));
	cJSON_AddStringToObject(o, "origin", ledger_origin_name(ch->origin));
	if (ledger_person_get(f->t, ch->person, &f->p, f->e) == 0 &&
	    !(f->p.flags & LEDGER_PERSON_ERASED))
		cJSON_AddStringToObject(o, "email", f->p.email);
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
	cJSON_AddItemToArray(f->arr, o);
	f->last = ch->seq;
	return 0;
}

static int feed_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct feed_ctx *f = ctx;
	f->t = t;
	f->e = e;
	return ledger_change_list(t, f->last, f->limit, feed_one, f, e);
}

int conn_changes(struct conn *c, uint64_t after, size_t limit, cJSON **out, struct err *e)
{
	struct feed_ctx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	f->arr = cJSON_CreateArray();
	f->last = after;
	f->limit = limit ? limit : 100;
	int rc = ledger_read(c->l, feed_txn, f, e);
	if (rc) {
		cJSON_Delete(f->arr);
		free(f);
		return rc;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "changes", f->arr);
	cJSON_AddNumberToObject(o, "next_after", (double)f->last);
	*out = o;
	free(f);
	return 0;
}

/* ---- suppression check ---- */

int conn_suppressed(struct conn *c, const char *const *emails, size_t n, bool *out, bool *valid,
                    struct err *e)
{
	uint8_t(*keys)[LEDGER_KEY_LEN] = malloc((n ? n : 1) * sizeof(*keys));
	size_t *at = malloc((n ? n : 1) * sizeof(*at));
	bool *hit = malloc((n ? n : 1) * sizeof(*hit));
	int rc = keys && at && hit ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	size_t k = 0; /* the valid ones, in keys[0..k) */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char norm[LEDGER_EMAIL_MAX + 1];
		struct err ie;
		out[i] = false;
		if (conn_email_normalize(emails[i], norm, valid ? &ie : e)) {
			if (valid == NULL)
				rc = ERR_INVALID;
			else
				valid[i] = false;
			continue;
		}
		if (valid)
			valid[i] = true;
		ledger_person_key(c->l, norm, strlen(norm), keys[k]);
		at[k++] = i;
	}
	if (rc == 0)
		rc = supp_index_check(c->supp, c->l, (const uint8_t(*)[LEDGER_KEY_LEN])keys, k, hit,
		                      e);
	for (size_t j = 0; rc == 0 && j < k; j++)
		out[at[j]] = hit[j];
	free(keys);
	free(at);
	free(hit);
	return rc;
}

/* ---- webhook position ---- */

struct wpos {
	uint64_t seq;
	int write;
};

static int wpos_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct wpos *p = ctx;
	char b[33];
	if (p->write) {
		int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)p->seq);
		return ledger_meta_put(t, META_WEBHOOK_DELIVERED, b, (size_t)n, e);
	}
	size_t n;
	int rc = ledger_meta_get(t, META_WEBHOOK_DELIVERED, b, sizeof(b) - 1, &n, e);
	if (rc == ERR_NOTFOUND) {
		p->seq = 0;
		return 0;
	}
	if (rc)
		return rc;
	b[n] = '\0';
	p->seq = strtoull(b, NULL, 10);
	return 0;
}

int conn_webhook_position(struct conn *c, uint64_t *seq, struct err *e)
{
	struct wpos p = {0, 0};
	int rc = ledger_read(c->l, wpos_txn, &p, e);
	*seq = p.seq;
	return rc;
}

int conn_webhook_advance(struct conn *c, uint64_t seq, struct err *e)
{
	struct wpos p = {seq, 1};
	return ledger_write(c->l, wpos_txn, &p, e);
}
