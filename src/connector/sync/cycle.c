/* One sync cycle: the consent objects' lookup, the pull of every object
 * from its cursor, then the drain of the outbox; the dry run on a copy. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "connector/internal.h"
#include "connector/sync/sync.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

struct save_report {
	const char *json;   /* the cycle's report, NULL when there is none */
	struct sf_stats st; /* api_max 0: no Salesforce usage known */
	int rc;             /* the cycle's result */
	const char *error;  /* its message when it failed */
	int64_t started;
};

static int save_report(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct save_report *s = ctx;
	int rc = 0;
	if (s->json)
		rc = ledger_meta_put(t, META_LAST_CYCLE, s->json, strlen(s->json), e);
	if (rc == 0 && s->st.api_max > 0) {
		char u[64];
		int l = snprintf(u, sizeof(u), "%ld/%ld", s->st.api_used, s->st.api_max);
		rc = ledger_meta_put(t, META_API_USAGE, u, (size_t)l, e);
	}
	struct conn_health h;
	if (rc == 0)
		rc = health_get(t, &h, e);
	if (rc == 0) {
		if (s->rc == 0) {
			h.last_success_at = s->started;
			h.failures_in_a_row = 0;
		} else {
			h.failures_in_a_row++;
			h.last_error_at = s->started;
			snprintf(h.last_error, sizeof(h.last_error), "%s", s->error);
		}
		rc = health_put(t, &h, e);
	}
	return rc;
}

/* Save the report (whole, or its summary when too large: never cut, cut
 * JSON would read back as nothing), the API usage and the health. */
static void save_cycle(struct conn *c, const struct conn_cycle_report *r, const struct sf_stats *st)
{
	cJSON *doc = NULL;
	struct err re;
	char *json = NULL;
	if (conn_render_cycle(r, c->cfg, &doc, &re) == 0) {
		json = cJSON_PrintUnformatted(doc);
		cJSON_Delete(doc);
	}
	if (json && strlen(json) > LEDGER_META_MAX) {
		log_warn("sync.report",
		         "the cycle report is %zu bytes, more than the ledger keeps (%u); "
		         "keeping its summary",
		         strlen(json), LEDGER_META_MAX);
		cJSON *sum = render_cycle_summary(r, strlen(json));
		free(json);
		json = sum ? cJSON_PrintUnformatted(sum) : NULL;
		cJSON_Delete(sum);
	}
	if (json == NULL)
		log_warn("sync.report", "out of memory: the cycle report is not saved");
	struct save_report s = {json, {0}, r->result, r->error, r->started_at};
	if (st)
		s.st = *st;
	struct err se;
	if (ledger_write(c->l, save_report, &s, &se))
		log_warn("sync.report", "could not save the cycle report: %s", se.msg);
	free(json);
}

/* A cycle's parts (the consent objects' lookup, each object's pull, the
 * drains) each do their own work: one that fails leaves the others to do
 * theirs (rules 7 and 8: pushes drain whenever Salesforce answers, even in
 * a cycle whose pull failed), unless its failure is one the next part
 * would meet too. */
struct cycle_run {
	struct conn *c;
	struct sf_client *sf;
	struct conn_cycle_report *r;
	struct err *e; /* the cycle's error: its first failure, or the one that stopped it */
	int rc;
	bool stopped;
};

/* Why nothing more is tried after a part failed with rc, or NULL: the
 * ledger fails, memory ran out, a signal came, or Salesforce itself does
 * not answer. */
static const char *stop_reason(const struct cycle_run *x, int rc)
{
	if (x->c->stop && *x->c->stop)
		return "stopped by a signal";
	if (rc == ERR_LEDGER)
		return "the ledger failed";
	if (rc == ERR_NOMEM)
		return "out of memory";
	if (rc != ERR_REMOTE && rc != ERR_RETRY && rc != ERR_LIMIT)
		return "an error optsync did not expect";
	switch (x->sf ? sf_last_reach(x->sf) : SF_ANSWERED) {
	case SF_UNREACHABLE:
		return "Salesforce does not answer";
	case SF_NO_SESSION:
		return "Salesforce refuses optsync's session";
	case SF_OUT_OF_CALLS:
		return "the org's API requests for the day are used up";
	default:
		return NULL;
	}
}

/* The outcome of one part: rc, with its message in pe. The first failure
 * is the cycle's (one that stops the cycle takes its place: what stopped
 * the cycle is what to fix first), and its message is kept unchanged. */
static void cycle_part(struct cycle_run *x, int rc, const struct err *pe)
{
	if (rc == 0 || x->stopped)
		return;
	const char *why = stop_reason(x, rc);
	if (x->rc == 0 || why) {
		x->rc = rc;
		*x->e = *pe;
	}
	if (why) {
		x->stopped = true;
		x->r->stopped = why;
	}
}

/* The configured objects the cycle stopped before: named as skipped. */
static void note_skipped(struct conn_cycle_report *r, int object)
{
	for (size_t i = 0; i < r->norder; i++)
		if ((int)r->order[i] == object)
			return;
	if (object > 0 && object < 4 && r->norder < 4) {
		r->pull[object].skipped = true;
		r->order[r->norder++] = (enum conn_object)object;
	}
}

/* One cycle on c; a dry run (o->dry_run) is this on a copy of the ledger
 * (conn_sync_once), where it writes nothing to Salesforce. */
static int cycle(struct conn *c, const struct conn_sync_opts *o, struct conn_cycle_report *r,
                 struct err *e)
{
	int64_t started = time_now_ms();
	r->started_at = started;
	r->dry_run = o->dry_run;
	r->full = o->full;
	struct cycle_run x = {c, NULL, r, e, 0, false};
	struct err pe = {0};
	int rc = o->dry_run ? 0 : ledger_sync_lock(c->l, "optsync sync", &pe);
	if (rc == 0)
		rc = conn_sf(c, &x.sf, &pe);
	if (rc) {
		x.rc = rc;
		*e = pe;
		x.stopped = true;
	}
	/* the consent objects first (the pulls select IndividualId when they
	 * are there): missing, they are named in plain words, and the rest of
	 * the cycle goes on */
	if (!x.stopped && (rc = consent_prepare(c, x.sf, r, &pe)) && !r->consent_error[0]) {
		str_copy(r->pull[CONN_OBJ_CONSENT].error, sizeof(r->pull[CONN_OBJ_CONSENT].error),
		         pe.msg);
		r->order[r->norder++] = CONN_OBJ_CONSENT;
	}
	cycle_part(&x, rc, &pe);
	for (size_t i = 0; !x.stopped && i < c->cfg->salesforce.nobjects; i++)
		cycle_part(
		    &x, pull_object(c, x.sf, object_of(c->cfg->salesforce.objects[i]), o, r, &pe),
		    &pe);
	if (!x.stopped)
		cycle_part(&x, consent_pull(c, x.sf, o, r, &pe), &pe);
	if (r->consent_error[0])
		log_error("sync.consent", "%s", r->consent_error);
	if (!x.stopped)
		cycle_part(&x, push_drain(c, x.sf, o, r, &pe), &pe);
	if (!x.stopped && !o->dry_run)
		cycle_part(&x, consent_drain(c, x.sf, r, &pe), &pe);
	if (x.stopped && r->stopped) {
		for (size_t i = 0; i < c->cfg->salesforce.nobjects; i++)
			note_skipped(r, object_of(c->cfg->salesforce.objects[i]));
	}
	r->partial = x.rc != 0 && !x.stopped;
	if (!x.stopped && !o->dry_run) {
		/* housekeeping: a failure is reported, the cycle itself succeeded */
		struct err re = {0};
		struct ledger_retention_report rep;
		if (conn_retention_if_due(c, &r->retention.ran, &rep, &re)) {
			log_warn("retention.run", "retention failed: %s", re.msg);
			r->retention.failed = true;
			snprintf(r->retention.error, sizeof(r->retention.error), "%s", re.msg);
		} else if (r->retention.ran) {
			r->retention.events = rep.events;
			r->retention.persons = rep.persons;
			r->retention.conflicts = rep.conflicts;
			r->retention.event_seq = rep.event_seq;
		}
	}
	rc = x.rc;
	if (!o->dry_run && !c->owns_ledger)
		ledger_sync_unlock(c->l);
	r->finished_at = time_now_ms();
	r->result = rc;
	if (rc)
		snprintf(r->error, sizeof(r->error), "%s", e->msg);
	struct sf_stats st;
	if (x.sf) {
		sf_stats_get(x.sf, &st);
		r->api_known = true;
		r->api.requests = st.requests;
		r->api.token_calls = st.token_calls;
		r->api.retries = st.retries;
		r->api.daily_used = st.api_max > 0 ? st.api_used : 0;
		r->api.daily_max = st.api_max > 0 ? st.api_max : 0;
	}
	if (!o->dry_run && rc != ERR_LEDGER)
		save_cycle(c, r, x.sf ? &st : NULL);
	if (rc && r->partial)
		log_warn("sync.cycle", "cycle failed in part after %lld ms (the rest was done): %s",
		         (long long)(time_now_ms() - started), e->msg);
	else if (rc)
		log_warn("sync.cycle", "cycle failed after %lld ms: %s",
		         (long long)(time_now_ms() - started), e->msg);
	else
		log_info("sync.cycle", "cycle done in %lld ms",
		         (long long)(time_now_ms() - started));
	return rc;
}

int conn_own_ledger(struct conn *c, struct err *e)
{
	int rc = ledger_sync_lock(c->l, "optsync run", e);
	if (rc == 0)
		c->owns_ledger = true;
	return rc;
}

/* A dry run: the real cycle on a compacted copy of the ledger, beside it,
 * with Salesforce writes left out. Page after page the copy changes as the
 * ledger would, so the report names every write the real cycle would make,
 * those the pull itself queues included. */
static int dry_cycle(struct conn *c, const struct conn_sync_opts *o, struct conn_cycle_report *r,
                     struct err *e)
{
	size_t pl = strlen(c->cfg->state.path);
	char *dir = malloc(pl + 32);
	if (dir == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	snprintf(dir, pl + 32, "%s.dry-run-XXXXXX", c->cfg->state.path);
	if (mkdtemp(dir) == NULL) {
		int rc =
		    err_sys(e, ERR_IO, errno,
		            "a dry run works on a copy of the ledger, and cannot make %s", dir);
		free(dir);
		return rc;
	}
	struct sf_client *sf = NULL;
	struct conn *copy = NULL;
	struct config cfg = *c->cfg;
	cfg.state.path = dir;
	int rc = conn_sf(c, &sf, e);
	if (rc == 0)
		rc = ledger_copy(c->l, dir, e);
	if (rc == 0)
		rc = conn_open(&copy, &cfg, false, c->stop, e);
	if (rc == 0) {
		copy->sf = sf; /* borrowed: one login for both */
		rc = cycle(copy, o, r, e);
		copy->sf = NULL;
	}
	conn_close(copy);
	if (ledger_remove_dir(dir))
		log_warn("sync.dry_run", "could not remove the dry run's copy %s", dir);
	free(dir);
	return rc;
}

void conn_cycle_report_free(struct conn_cycle_report *r)
{
	if (r == NULL)
		return;
	if (r->would_push)
		free(r->would_push->items);
	free(r->would_push);
	free(r);
}

int conn_sync_once(struct conn *c, const struct conn_sync_opts *o,
                   struct conn_cycle_report **report, struct err *e)
{
	struct conn_cycle_report *r = *report = calloc(1, sizeof(*r));
	if (r == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	return o->dry_run ? dry_cycle(c, o, r, e) : cycle(c, o, r, e);
}
