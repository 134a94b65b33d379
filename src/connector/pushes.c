/* Parked pushes back into the queue on demand: `optsync pushes retry` and
 * POST /v1/pushes:retry. */
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"

struct retry_ctx {
	const char *id; /* NULL: every parked push */
	struct ledger_recref *refs;
	size_t n, cap;
	size_t released;
	int nomem;
};

static int collect_parked(const struct ledger_push *q, void *ctx)
{
	struct retry_ctx *r = ctx;
	if (!q->parked || (r->id && strcmp(q->record.id, r->id) != 0))
		return 0;
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 64;
		struct ledger_recref *g = realloc(r->refs, nc * sizeof(*g));
		if (g == NULL) {
			r->nomem = 1;
			return 1; /* stop */
		}
		r->refs = g;
		r->cap = nc;
	}
	r->refs[r->n++] = q->record;
	return 0;
}

static int retry_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct retry_ctx *r = ctx;
	r->n = r->released = 0; /* a re-run after map growth starts over */
	int rc = ledger_push_each(t, collect_parked, r, e);
	if (r->nomem) /* the walk stopped early */
		rc = err_set(e, ERR_NOMEM, "out of memory");
	/* the cursor of the walk is closed: now change what it found */
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		bool released;
		rc = push_release(t, &r->refs[i], &released, e);
		r->released += released;
	}
	return rc;
}

int conn_pushes_retry(struct conn *c, const char *record_id, size_t *released, struct err *e)
{
	*released = 0;
	if (record_id && (strlen(record_id) != 15 && strlen(record_id) != 18))
		return err_set(e, ERR_INVALID,
		               "'%.40s' is not a Salesforce record id (15 or 18 characters)",
		               record_id);
	struct retry_ctx r = {record_id, NULL, 0, 0, 0, 0};
	int rc = ledger_write(c->l, retry_txn, &r, e);
	free(r.refs);
	if (rc)
		return rc;
	if (record_id && r.released == 0)
		return err_set(e, ERR_NOTFOUND,
		               "no parked push for record %s (optsync status lists them)",
		               record_id);
	*released = r.released;
	return 0;
}
