/* The use cases' shared context (usecase.h). */
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

void *uc_new(struct conn *c, const struct conn_actor *who, const char *email, size_t size,
             struct err *e)
{
	struct uc *u = calloc(1, size < sizeof(*u) ? sizeof(*u) : size);
	if (u == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	u->c = c;
	u->who = who;
	if (email) {
		if (conn_person_key(c, email, u->email, u->key, e)) {
			free(u);
			return NULL;
		}
	}
	return u;
}

int uc_fail(struct uc *u, int rc)
{
	free(u);
	return rc;
}

struct refs_ctx {
	const struct ledger_person *p;
	struct person_refs refs;
};

static int refs_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct refs_ctx *x = ctx;
	return person_refs_read(t, x->p, &x->refs, e);
}

int uc_person_result(struct uc *u, int rc, cJSON **result, struct err *e)
{
	if (rc)
		return uc_fail(u, rc);
	/* the person's records, read after the change (which leaves them as
	 * they were) */
	struct refs_ctx x = {&u->p, {0}};
	if ((rc = ledger_read(u->c->l, refs_txn, &x, e))) {
		person_refs_free(&x.refs);
		return uc_fail(u, rc);
	}
	json_mark();
	cJSON *r = render_person(&u->p, &x.refs);
	person_refs_free(&x.refs);
	free(u);
	return json_result(r, 0, result, e);
}

/* Load the person (or a fresh one): u->found says which. */
int uc_load_person(struct ledger_txn *t, struct uc *u, struct err *e)
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

void uc_event_by(struct ledger_event *ev, const struct conn_actor *who, int kind)
{
	ledger_event_init(ev);
	ev->kind = (uint8_t)kind;
	ev->origin = (uint8_t)who->origin;
	ev->at = time_now_ms();
	snprintf(ev->actor, sizeof(ev->actor), "%s", who->name);
}
