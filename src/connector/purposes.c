/* Purposes (rules P1-P3, docs/sync-rules.md): a person's opt-in and
 * opt-out of each configured use of their email, beside the global
 * opt-out that overrides them all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/usecase.h"
#include "util/log.h"
#include "util/timefmt.h"

int purpose_check(const struct config *cfg, const char *name, struct err *e)
{
	if (config_purpose_find(cfg, name))
		return 0;
	char list[CONFIG_PURPOSES_MAX * 36] = "";
	size_t o = 0;
	for (size_t i = 0; i < cfg->npurposes && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
		                      cfg->purposes[i].name);
	if (cfg->npurposes == 0)
		return err_set(e, ERR_INVALID,
		               "unknown purpose '%.40s': the configuration names no purposes "
		               "([[purposes]])",
		               name);
	return err_set(e, ERR_INVALID, "unknown purpose '%.40s' (configured: %s)", name, list);
}

int purpose_status_put(struct ledger_txn *t, const uint8_t key[LEDGER_KEY_LEN], const char *name,
                       uint8_t status, int64_t at, int origin, int64_t consent_date,
                       const char *evidence_ref, uint64_t event_seq, struct err *e)
{
	struct ledger_purpose np;
	int rc = ledger_purpose_get(t, key, name, &np, e); /* keeps its consent row */
	if (rc == ERR_NOTFOUND) {
		memset(&np, 0, sizeof(np));
		snprintf(np.name, sizeof(np.name), "%s", name);
	} else if (rc) {
		return rc;
	}
	np.status = status;
	np.changed_at = at;
	np.origin = (uint8_t)origin;
	np.consent_date = consent_date;
	snprintf(np.evidence_ref, sizeof(np.evidence_ref), "%s", evidence_ref ? evidence_ref : "");
	np.event_seq = event_seq;
	return ledger_purpose_put(t, key, &np, e);
}

int purpose_box_dates(struct ledger_txn *t, const struct config *cfg, const struct ledger_push *q,
                      int64_t out[LEDGER_PFLAGS_MAX], struct err *e)
{
	for (uint8_t k = 0; k < LEDGER_PFLAGS_MAX; k++)
		out[k] = 0;
	for (uint8_t k = 0; k < q->want_purposes.n && k < LEDGER_PFLAGS_MAX; k++) {
		const struct ledger_pflag *f = &q->want_purposes.v[k];
		const struct config_purpose *cp = config_purpose_find(cfg, f->name);
		if (f->out || cp == NULL || cp->sf_opt_in_field == NULL)
			continue;
		struct ledger_purpose cur;
		int rc = ledger_purpose_get(t, q->person, f->name, &cur, e);
		if (rc == ERR_NOTFOUND)
			continue;
		if (rc)
			return rc;
		if (cur.status == LEDGER_PURPOSE_IN)
			out[k] = cur.consent_date;
	}
	return 0;
}

/* The person's new status for purpose, after u->ev recorded the change,
 * and P1/P2's writes to the checkboxes of a field-mapped purpose. */
static int purpose_store(struct ledger_txn *t, struct uc *u, const char *purpose, uint8_t status,
                         int64_t at, int64_t consent_date, const char *evidence_ref, struct err *e)
{
	u->event_seq = u->ev.seq;
	int rc = purpose_status_put(t, u->key, purpose, status, at, u->who->origin, consent_date,
	                            evidence_ref, u->ev.seq, e);
	if (rc == 0)
		rc = purpose_spread(t, u->c->cfg, &u->p, NULL, purpose,
		                    status == LEDGER_PURPOSE_OUT, &u->st, e);
	return rc;
}

int purpose_optout_apply(struct ledger_txn *t, struct uc *u, const char *purpose, int64_t at,
                         const char *reason, const char *campaign, struct err *e)
{
	struct ledger_purpose cur;
	int rc = ledger_purpose_get(t, u->key, purpose, &cur, e);
	if (rc == 0 && cur.status == LEDGER_PURPOSE_OUT) {
		u->already = 1;
		u->event_seq = cur.event_seq;
		return 0;
	}
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	uc_event_by(&u->ev, u->who, LEDGER_EV_OPTOUT);
	snprintf(u->ev.purpose_name, sizeof(u->ev.purpose_name), "%s", purpose);
	if (reason)
		snprintf(u->ev.reason, sizeof(u->ev.reason), "%s", reason);
	if (campaign)
		snprintf(u->ev.campaign, sizeof(u->ev.campaign), "%s", campaign);
	u->p.updated_at = time_now_ms();
	if ((rc = event_record(t, &u->p, &u->ev, e)))
		return rc;
	return purpose_store(t, u, purpose, LEDGER_PURPOSE_OUT, at, 0, NULL, e);
}

/* ---- consent: an opt-in to a purpose ---- */

int purpose_optin_apply(struct ledger_txn *t, struct uc *u, const char *purpose,
                        int64_t consent_date, const char *evidence_ref, const char *evidence_sha256,
                        struct err *e)
{
	struct ledger_purpose cur;
	int rc = ledger_purpose_get(t, u->key, purpose, &cur, e);
	if (rc == ERR_NOTFOUND) {
		memset(&cur, 0, sizeof(cur));
		rc = 0;
	}
	if (rc)
		return rc;
	if (cur.status == LEDGER_PURPOSE_IN) {
		u->already = 1;
		u->event_seq = cur.event_seq;
		return 0;
	}
	/* P2: a re-opt-in, or an opt-in while opted out of all email, is an
	 * admin's, with evidence newer than the opt-out */
	bool global_out = u->p.facts.opted_out;
	if (global_out || cur.status == LEDGER_PURPOSE_OUT) {
		if (u->who->origin != LEDGER_ORIGIN_ADMIN)
			return err_set(e, ERR_REFUSED,
			               "%s opted out %s; an opt-in to '%s' now needs admin "
			               "credentials and new consent evidence (rule P2)",
			               u->email, global_out ? "of all email" : "of this purpose",
			               purpose);
		/* the evidence postdates every opt-out that stands: of all email,
		 * and of this purpose (out of both, the later one) */
		int64_t out_at = global_out ? u->p.opted_out_at : 0;
		if (cur.status == LEDGER_PURPOSE_OUT && cur.changed_at > out_at)
			out_at = cur.changed_at;
		if ((rc = evidence_after(consent_date, out_at, "opt in again", e)))
			return rc;
	}
	uc_event_by(&u->ev, u->who, LEDGER_EV_OPTIN);
	snprintf(u->ev.purpose_name, sizeof(u->ev.purpose_name), "%s", purpose);
	u->ev.facts.mask = LEDGER_F_CONSENT_DATE;
	u->ev.facts.consent_date = consent_date;
	snprintf(u->ev.evidence_ref, sizeof(u->ev.evidence_ref), "%s", evidence_ref);
	if (evidence_sha256)
		snprintf(u->ev.evidence_sha256, sizeof(u->ev.evidence_sha256), "%s",
		         evidence_sha256);
	u->p.updated_at = time_now_ms();
	if ((rc = event_record(t, &u->p, &u->ev, e)))
		return rc;
	if ((rc = purpose_store(t, u, purpose, LEDGER_PURPOSE_IN, u->ev.at, consent_date,
	                        evidence_ref, e)))
		return rc;
	/* the re-opt-in settles the purpose's re-subscribe conflicts */
	return uc_resolve_resubscribe_conflicts(t, u, purpose, "resubscribed", e);
}

struct consent_uc {
	struct uc u;
	const struct conn_consent *in;
};

static int consent_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct consent_uc *x = ctx;
	struct uc *u = &x->u;
	const struct conn_consent *in = x->in;
	u->already = 0;
	memset(&u->st, 0, sizeof(u->st));
	int rc = uc_load_person(t, u, e);
	if (rc)
		return rc;
	return purpose_optin_apply(t, u, in->purpose, in->consent_date, in->evidence_ref,
	                           in->evidence_sha256, e);
}

int conn_consent(struct conn *c, const struct conn_actor *who, const struct conn_consent *in,
                 cJSON **result, struct err *e)
{
	*result = NULL;
	if (in->purpose == NULL || in->purpose[0] == '\0')
		return err_set(e, ERR_INVALID, "a consent names its purpose");
	if (purpose_check(c->cfg, in->purpose, e))
		return e->code;
	if (in->evidence_ref == NULL || in->evidence_ref[0] == '\0')
		return err_set(e, ERR_EVIDENCE,
		               "an opt-in needs consent evidence: an evidence reference (where the "
		               "consent is kept)");
	if (strlen(in->evidence_ref) > LEDGER_TEXT_MAX)
		return err_set(e, ERR_INVALID, "evidence reference longer than %d bytes",
		               LEDGER_TEXT_MAX);
	if (in->consent_date <= 0)
		return err_set(e, ERR_EVIDENCE, "an opt-in needs the date the consent was given");
	if (in->consent_date > time_now_ms() + FUTURE_TOLERANCE_MS)
		return err_set(e, ERR_INVALID, "the consent date is in the future");
	if (evidence_check_sha256(in->evidence_sha256, e))
		return e->code;
	struct consent_uc *x = uc_new(c, who, in->email, sizeof(*x), e);
	if (x == NULL)
		return e->code;
	x->in = in;
	struct uc *u = &x->u;
	int rc = ledger_write(c->l, consent_txn, x, e);
	if (rc)
		return uc_fail(u, rc);
	json_mark();
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "email", u->email);
	cJSON_AddStringToObject(r, "purpose", in->purpose);
	cJSON_AddStringToObject(r, "status", "opted_in");
	cJSON_AddBoolToObject(r, "already", u->already);
	cJSON_AddNumberToObject(r, "event_seq", (double)u->event_seq);
	log_info("contact.consent", "opt-in to a purpose recorded%s",
	         u->already ? " (already opted in)" : "");
	free(u);
	return json_result(r, 0, result, e);
}
