/* Retention: data kept no longer than [retention] allows. The ledger does
 * the removal (ledger_retention); this file turns the configuration
 * into cutoffs, runs it from the CLI and from sync cycles, and keeps the
 * totals that status and /metrics show (meta "retention", JSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/log.h"
#include "util/timefmt.h"

struct ret_txn {
	struct ledger_retention r;
	struct ledger_retention_report rep;
};

bool conn_retention_configured(const struct config *cfg)
{
	return cfg->retention.resolved_conflicts_ms > 0 || cfg->retention.history_ms > 0 ||
	       cfg->retention.stale_persons_ms > 0;
}

static cJSON *load_meta(struct ledger_txn *t, struct err *e, int *rc)
{
	char buf[1025];
	size_t n;
	*rc = ledger_meta_get(t, META_RETENTION, buf, sizeof(buf) - 1, &n, e);
	if (*rc && *rc != ERR_NOTFOUND)
		return NULL;
	cJSON *o = NULL;
	bool was = json_begin();
	if (*rc == 0) {
		buf[n] = '\0';
		o = cJSON_Parse(buf);
	}
	/* none yet, or unreadable: the totals start again (not for a parse
	 * that ran out of memory: that would lose them) */
	if (o == NULL && !json_failed())
		o = cJSON_CreateObject();
	if (json_end(was) || o == NULL) {
		cJSON_Delete(o);
		*rc = err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	*rc = 0;
	return o;
}

static void add_count(cJSON *o, const char *k, uint64_t v)
{
	cJSON *old = cJSON_GetObjectItemCaseSensitive(o, k);
	double total = (cJSON_IsNumber(old) ? old->valuedouble : 0) + (double)v;
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddNumberToObject(o, k, total);
}

/* Inside the run's write transaction: the totals status and /metrics show. */
static int save_totals(struct ledger_txn *t, const struct ledger_retention_report *rep, void *ctx,
                       struct err *e)
{
	const struct ret_txn *x = ctx;
	int rc;
	cJSON *m = load_meta(t, e, &rc);
	if (m == NULL)
		return rc;
	bool was = json_begin();
	cJSON_DeleteItemFromObjectCaseSensitive(m, "last_run_at");
	cJSON_AddNumberToObject(m, "last_run_at", (double)x->r.now);
	cJSON *tot = cJSON_GetObjectItemCaseSensitive(m, "purged_total");
	if (!cJSON_IsObject(tot)) {
		cJSON_DeleteItemFromObjectCaseSensitive(m, "purged_total");
		tot = cJSON_AddObjectToObject(m, "purged_total");
	}
	add_count(tot, "events", rep->events);
	add_count(tot, "persons", rep->persons);
	add_count(tot, "conflicts", rep->conflicts);
	char *text = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	/* totals with a member missing would be saved as the new totals */
	if (json_end(was) || text == NULL) {
		free(text);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	rc = ledger_meta_put(t, META_RETENTION, text, strlen(text), e);
	free(text);
	return rc;
}

/* A run, typed: conn_retention_run renders it, a sync cycle keeps it. */
static int retention_run(struct conn *c, const struct conn_actor *who, bool dry_run,
                         struct ledger_retention_report *out, struct err *e)
{
	const struct config *cfg = c->cfg;
	struct ret_txn x;
	memset(&x, 0, sizeof(x));
	memset(out, 0, sizeof(*out));
	if (!conn_retention_configured(cfg))
		return 0;
	int64_t now = time_now_ms();
	x.r.now = now;
	x.r.dry_run = dry_run;
	x.r.actor = who->name;
	if (cfg->retention.resolved_conflicts_ms > 0)
		x.r.conflicts_before = now - cfg->retention.resolved_conflicts_ms;
	if (cfg->retention.history_ms > 0)
		x.r.events_before = now - cfg->retention.history_ms;
	if (cfg->retention.stale_persons_ms > 0)
		x.r.persons_before = now - cfg->retention.stale_persons_ms;
	int rc = ledger_retention(c->l, &x.r, save_totals, &x, &x.rep, e);
	if (rc)
		return rc;
	*out = x.rep;
	if (!dry_run && x.rep.event_seq)
		log_info("retention.run",
		         "purged %llu history events, %llu stale persons, %llu resolved conflicts",
		         (unsigned long long)x.rep.events, (unsigned long long)x.rep.persons,
		         (unsigned long long)x.rep.conflicts);
	return 0;
}

int conn_retention_run(struct conn *c, const struct conn_actor *who, bool dry_run, cJSON **report,
                       struct err *e)
{
	*report = NULL;
	struct ledger_retention_report rep;
	int rc = retention_run(c, who, dry_run, &rep, e);
	if (rc)
		return rc;
	json_mark();
	cJSON *o = render_retention(conn_retention_configured(c->cfg), dry_run, rep.events,
	                            rep.persons, rep.conflicts, rep.event_seq);
	return json_result(o, 0, report, e);
}

static int due_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	int64_t *last = ctx;
	int rc;
	cJSON *m = load_meta(t, e, &rc);
	if (m == NULL)
		return rc;
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(m, "last_run_at");
	*last = cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0;
	cJSON_Delete(m);
	return 0;
}

int conn_retention_if_due(struct conn *c, bool *ran, struct ledger_retention_report *rep,
                          struct err *e)
{
	static const struct conn_actor sync_actor = {LEDGER_ORIGIN_LOCAL, "retention"};
	*ran = false;
	memset(rep, 0, sizeof(*rep));
	if (!conn_retention_configured(c->cfg))
		return 0;
	int64_t last = 0;
	int rc = ledger_read(c->l, due_txn, &last, e);
	if (rc || (last && time_now_ms() - last < c->cfg->retention.every_ms))
		return rc;
	*ran = true;
	return retention_run(c, &sync_actor, false, rep, e);
}

int conn_retention_totals(struct ledger_txn *t, uint64_t totals[3], int64_t *last_run,
                          struct err *e)
{
	int rc;
	cJSON *m = load_meta(t, e, &rc);
	if (m == NULL)
		return rc;
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(m, "last_run_at");
	*last_run = cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0;
	const cJSON *tot = cJSON_GetObjectItemCaseSensitive(m, "purged_total");
	static const char *const keys[] = {"events", "persons", "conflicts"};
	for (int i = 0; i < 3; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(tot, keys[i]);
		totals[i] = cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
	}
	cJSON_Delete(m);
	return 0;
}
