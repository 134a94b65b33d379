/* The access trail: each read of a person's history or export through the
 * read or export scopes, or by an operator on the command line, is an
 * access event in that person's history (who, what, when, through which
 * route), hash-chained like every event. Suppression checks and the check
 * scope's state reads are not recorded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/usecase.h"
#include "util/log.h"
#include "util/timefmt.h"

struct access_uc {
	struct uc u;
	const char *what, *via;
};

static int access_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct access_uc *x = ctx;
	struct uc *u = &x->u;
	int rc = uc_load_person(t, u, e);
	if (rc || !u->found)
		return rc; /* an unknown person: nothing was read, nothing to record */
	uc_event_by(&u->ev, u->who, LEDGER_EV_ACCESS);
	snprintf(u->ev.access_what, sizeof(u->ev.access_what), "%s", x->what);
	snprintf(u->ev.access_via, sizeof(u->ev.access_via), "%s", x->via);
	if ((rc = event_record(t, &u->p, &u->ev, e)) == 0)
		u->event_seq = u->ev.seq;
	return rc;
}

int conn_access_record(struct conn *c, const struct conn_actor *who, const char *email,
                       const char *what, const char *via, struct err *e)
{
	struct access_uc *x = uc_new(c, who, email, sizeof(*x), e);
	if (x == NULL)
		return e->code;
	x->what = what;
	x->via = via;
	int rc = ledger_write(c->l, access_txn, x, e);
	if (rc)
		return uc_fail(&x->u, rc);
	free(x);
	return 0;
}

/* ---- listing ---- */

#define ACCESS_SCAN_MAX 100000 /* events looked at per call */

struct list_access {
	uint64_t after;
	size_t limit;
	cJSON *arr;
	uint64_t last;
	bool more;
	struct ledger_event ev;
	struct ledger_person p;
};

static int list_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct list_access *l = ctx;
	size_t n = 0;
	l->last = l->after;
	l->more = false;
	for (uint64_t seq = l->after + 1; seq <= l->after + ACCESS_SCAN_MAX; seq++) {
		int rc = ledger_event_get(t, seq, &l->ev, e);
		if (rc == ERR_NOTFOUND)
			return 0; /* the end of the history */
		if (rc)
			return rc;
		l->last = seq;
		if (l->ev.purged || l->ev.kind != LEDGER_EV_ACCESS)
			continue;
		if (n == l->limit) {
			l->last = seq - 1;
			l->more = true;
			return 0;
		}
		cJSON *o = render_event(&l->ev);
		cJSON_AddStringToObject(o, "email", person_email(t, l->ev.person, &l->p));
		json_append(l->arr, o);
		n++;
	}
	l->more = true; /* the scan stopped before the end */
	return 0;
}

int conn_access_list(struct conn *c, uint64_t after, size_t limit, cJSON **out, struct err *e)
{
	*out = NULL;
	struct list_access *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	json_mark();
	l->after = after;
	l->limit = limit ? limit : 1000;
	l->arr = cJSON_CreateArray();
	int rc = ledger_read(c->l, list_txn, l, e);
	cJSON *o = rc == 0 ? cJSON_CreateObject() : NULL;
	json_attach(o, "access", l->arr);
	if (o) {
		/* ask again with after = next_after while more is true */
		cJSON_AddNumberToObject(o, "next_after", (double)l->last);
		cJSON_AddBoolToObject(o, "more", l->more);
	}
	free(l);
	return json_result(o, rc, out, e);
}
