/* The conflict use cases: list, show and resolve. */
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

/* ---- conflicts ---- */

struct list_ctx {
	enum conn_conflict_filter f;
	cJSON *arr;
	struct ledger_txn *t;
	struct ledger_person *p; /* scratch: the conflict's person, for the email */
};

static int list_conflict(const struct ledger_conflict *cf, void *ctx)
{
	struct list_ctx *l = ctx;
	if ((l->f == CONN_CONFLICTS_OPEN && cf->status != LEDGER_CONFLICT_OPEN) ||
	    (l->f == CONN_CONFLICTS_RESOLVED && cf->status != LEDGER_CONFLICT_RESOLVED))
		return 0;
	cJSON *o = render_conflict(cf);
	cJSON_AddStringToObject(o, "email", person_email(l->t, cf->person, l->p));
	json_append(l->arr, o);
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
	json_mark();
	struct list_ctx l = {f, cJSON_CreateArray(), NULL, malloc(sizeof(struct ledger_person))};
	int rc = l.p ? ledger_read(c->l, list_txn, &l, e) : err_set(e, ERR_NOMEM, "out of memory");
	free(l.p);
	cJSON *o = rc == 0 ? cJSON_CreateObject() : NULL;
	json_attach(o, "conflicts", l.arr);
	return json_result(o, rc, out, e);
}

struct one_conflict {
	uint64_t id;
	struct ledger_conflict cf;
	struct ledger_person p;
	struct person_refs refs;
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
	if (rc == 0)
		rc = person_refs_read(t, &o->p, &o->refs, e);
	return rc == ERR_NOTFOUND ? 0 : rc;
}

int conn_conflict_show(struct conn *c, uint64_t id, cJSON **out, struct err *e)
{
	*out = NULL;
	struct one_conflict *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	o->id = id;
	json_mark();
	int rc = ledger_read(c->l, conflict_txn, o, e);
	cJSON *r = NULL;
	if (rc == 0) {
		r = render_conflict(&o->cf);
		if (o->person_found)
			json_attach(r, "person_state", render_person(&o->p, &o->refs));
	}
	person_refs_free(&o->refs);
	free(o);
	return json_result(r, rc, out, e);
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
	const char *purpose; /* the purpose's conflicts; NULL: those about all email */
	uint64_t *ids;       /* every open resubscribe conflict of the person */
	size_t n, cap;
	int nomem;
};

static int find_resub(const struct ledger_conflict *cf, void *ctx)
{
	struct resub_scan *s = ctx;
	if (cf->kind != LEDGER_CONFLICT_RESUBSCRIBE ||
	    strcmp(cf->purpose_name, s->purpose ? s->purpose : "") != 0)
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

int uc_resolve_resubscribe_conflicts(struct ledger_txn *t, struct uc *u, const char *purpose,
                                     const char *how, struct err *e)
{
	struct resub_scan s = {purpose, NULL, 0, 0, 0};
	int rc = ledger_conflict_each_open_of_person(t, u->key, find_resub, &s, e);
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

/* Write a purpose's status back where its conflict arose: the record's
 * checkbox, or the consent row (through the person's Individual). */
static int purpose_conflict_push(struct ledger_txn *t, struct uc *u,
                                 const struct ledger_conflict *cf, bool out, struct err *e)
{
	if (cf->record.object != LEDGER_OBJ_CONSENT)
		return push_enqueue_purpose(t, &u->p, &cf->record, cf->purpose_name, out, &u->st,
		                            e);
	if (u->p.individual_id[0] == '\0')
		return 0;
	struct ledger_recref ind = {LEDGER_OBJ_INDIVIDUAL, ""};
	snprintf(ind.id, sizeof(ind.id), "%s", u->p.individual_id);
	return push_enqueue_purpose(t, &u->p, &ind, cf->purpose_name, out, &u->st, e);
}

/* Resolving a conflict: a re-subscribe's context (for --resubscribe) and
 * the conflict with the action. */
struct resolve_uc {
	struct resub_uc r;
	uint64_t id;
	enum conn_resolution how;
};

static int resolve_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct resolve_uc *x = ctx;
	struct uc *u = &x->r.u;
	memset(&u->st, 0, sizeof(u->st));
	u->already = 0; /* the callback may run again */
	struct ledger_conflict *cf = malloc(sizeof(*cf));
	if (cf == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_conflict_get(t, x->id, cf, e);
	if (rc == ERR_NOTFOUND)
		rc = err_set(e, ERR_NOTFOUND, "no conflict %llu", (unsigned long long)x->id);
	if (rc == 0 && cf->status != LEDGER_CONFLICT_OPEN)
		rc = err_set(e, ERR_CONFLICT, "conflict %llu is already resolved (%s)",
		             (unsigned long long)x->id, cf->resolution);
	if (rc == 0) {
		memcpy(u->key, cf->person, LEDGER_KEY_LEN);
		rc = ledger_person_get(t, u->key, &u->p, e);
	}
	if (rc) {
		free(cf);
		return rc;
	}
	memcpy(u->email, u->p.email, sizeof(u->email));
	switch (x->how) {
	case CONN_KEEP_OPTOUT:
		if (cf->kind != LEDGER_CONFLICT_RESUBSCRIBE) {
			rc = err_set(e, ERR_INVALID,
			             "--keep-optout resolves re-subscribe conflicts");
			break;
		}
		/* Salesforce goes back to opted out (what "hold" left alone) */
		rc = cf->purpose_name[0]
		         ? purpose_conflict_push(t, u, cf, true, e)
		         : push_enqueue(t, &u->p, &cf->record, LEDGER_F_OPTED_OUT, true, &u->st, e);
		if (rc == 0)
			rc = close_conflict(t, u, cf, "keep_optout", e);
		break;
	case CONN_RESUBSCRIBE:
		if (cf->kind != LEDGER_CONFLICT_RESUBSCRIBE) {
			rc = err_set(e, ERR_INVALID,
			             "--resubscribe resolves re-subscribe conflicts");
			break;
		}
		if (cf->purpose_name[0]) {
			/* a purpose's re-opt-in (rule P2), with the new evidence */
			const struct conn_evidence *ev = x->r.ev;
			rc = purpose_optin_apply(t, u, cf->purpose_name, ev->consent_date,
			                         ev->evidence_ref, ev->evidence_sha256, e);
			/* already opted in by other means: the conflict is settled */
			if (rc == 0 && u->already)
				rc = close_conflict(t, u, cf, "resubscribed", e);
			break;
		}
		rc = uc_resub_txn(t, &x->r, e); /* closes this conflict too */
		break;
	case CONN_TAKE_LOCAL: {
		if (cf->purpose_name[0]) {
			struct ledger_purpose cur;
			int g = ledger_purpose_get(t, u->key, cf->purpose_name, &cur, e);
			if (g && g != ERR_NOTFOUND) {
				rc = g;
				break;
			}
			rc = purpose_conflict_push(t, u, cf,
			                           g == 0 && cur.status == LEDGER_PURPOSE_OUT, e);
			if (rc == 0)
				rc = close_conflict(t, u, cf, "take_local", e);
			break;
		}
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
		int rc = evidence_check(ev, time_now_ms(), e);
		if (rc)
			return rc;
	}
	struct resolve_uc *x = uc_new(c, who, NULL, sizeof(*x), e);
	if (x == NULL)
		return e->code;
	x->id = id;
	x->how = how;
	x->r.ev = ev;
	int rc = ledger_write(c->l, resolve_txn, x, e);
	free(x);
	if (rc)
		return rc;
	return conn_conflict_show(c, id, result, e);
}
