/* Every suppressed email in clear, for loading into an email service's
 * own suppression list (optsync suppressions export). */
#include <string.h>

#include "connector/internal.h"

struct supp_walk {
	conn_suppression_fn fn;
	void *ctx;
	struct conn_suppressions_stats *st;
	int stopped; /* fn's nonzero answer */
};

static int each_person(const struct ledger_person *p, void *ctx)
{
	struct supp_walk *w = ctx;
	if (!p->facts.opted_out)
		return 0;
	if ((p->flags & LEDGER_PERSON_ERASED) || p->email[0] == '\0') {
		w->st->erased++; /* suppressed by key only: no address to hand over */
		return 0;
	}
	w->st->listed++;
	int rc = w->fn(p->email, p->opted_out_at, w->ctx);
	if (rc)
		w->stopped = rc;
	return rc;
}

static int walk_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct supp_walk *w = ctx;
	memset(w->st, 0, sizeof(*w->st)); /* a re-run starts over */
	return ledger_person_each(t, each_person, w, e);
}

int conn_suppressions_each(struct conn *c, conn_suppression_fn fn, void *ctx,
                           struct conn_suppressions_stats *st, struct err *e)
{
	struct supp_walk w = {fn, ctx, st, 0};
	int rc = ledger_read(c->l, walk_txn, &w, e);
	if (w.stopped)
		return w.stopped < 0 ? w.stopped : err_set(e, ERR_IO, "the export was stopped");
	return rc;
}
