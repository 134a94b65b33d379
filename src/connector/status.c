/* status, readiness and the audit of the history chain. */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/usecase.h"
#include "util/log.h"
#include "util/timefmt.h"

/* ---- status ---- */

struct status_ctx {
	const struct config *cfg;
	bool details; /* the last cycle and the parked pushes one by one */
	struct conn_status *s;
	struct ledger_txn *t;
	struct ledger_person *p; /* scratch: the person of a parked push */
};

/* The parked pushes one by one (status --details), up to CONN_PARKED_SHOWN:
 * the walk stops once it has them (the counts say how many there are). */
static int list_parked(const struct ledger_push *q, void *ctx)
{
	struct status_ctx *x = ctx;
	struct conn_status *s = x->s;
	if (!q->parked)
		return 0;
	struct conn_parked_push *o = &s->parked[s->nparked++];
	o->object = (enum conn_object)q->record.object;
	snprintf(o->id, sizeof(o->id), "%s", q->record.id);
	snprintf(o->email, sizeof(o->email), "%s", person_email(x->t, q->person, x->p));
	snprintf(o->error, sizeof(o->error), "%s", q->last_error);
	o->attempts = q->attempts;
	o->next_try = q->next_try;
	return s->nparked == CONN_PARKED_SHOWN || s->nparked == s->pushes_parked;
}

static int count_parked_record(const struct parked_record *p, void *ctx)
{
	struct status_ctx *x = ctx;
	struct conn_status *s = x->s;
	s->records_parked++;
	if (p->object < 4)
		s->records_parked_by[p->object][p->reason < CONN_PARK_REASONS ? p->reason : 0]++;
	if (!x->details || s->nparked_records == CONN_PARKED_RECORDS_SHOWN)
		return 0;
	struct conn_parked_record *o = &s->parked_records[s->nparked_records++];
	o->object = (enum conn_object)p->object;
	str_copy(o->id, sizeof(o->id), p->id);
	o->reason = (enum conn_park_reason)p->reason;
	str_copy(o->error, sizeof(o->error), p->error);
	o->modstamp = p->modstamp;
	o->parked_at = p->parked_at;
	return 0;
}

/* The outbox's and the open conflicts' counts, which the ledger keeps
 * with them: no walk of either. */
static int read_counts(struct ledger_txn *t, struct status_ctx *x, struct err *e)
{
	struct conn_status *s = x->s;
	struct ledger_push_counts pc;
	uint64_t open[LEDGER_OBJ_SLOTS];
	int rc = ledger_push_counts(t, &pc, e);
	if (rc == 0)
		rc = ledger_conflict_open_counts(t, open, e);
	if (rc)
		return rc;
	for (size_t i = 0; i < LEDGER_OBJ_SLOTS; i++) {
		s->pushes_queued += pc.queued[i];
		s->pushes_parked += pc.parked[i];
		s->open_conflicts += open[i];
	}
	if (x->details && s->pushes_parked > 0)
		rc = ledger_push_each(t, list_parked, x, e);
	return rc < 0 ? rc : 0;
}

static int read_cursors(struct ledger_txn *t, const struct config *cfg, struct conn_status *s,
                        struct err *e)
{
	for (size_t i = 0; i < cfg->salesforce.nobjects && i < 3; i++) {
		struct conn_status_cursor *o = &s->cursor[s->ncursors++];
		o->object = (enum conn_object)object_of(cfg->salesforce.objects[i]);
		struct ledger_cursor cur;
		int rc = ledger_cursor_get(t, (int)o->object, &cur, e);
		if (rc == ERR_NOTFOUND)
			continue;
		if (rc)
			return rc;
		o->found = true;
		o->modstamp = cur.modstamp;
		snprintf(o->last_id, sizeof(o->last_id), "%s", cur.last_id);
		o->pulled = cur.pulled;
		o->updated_at = cur.updated_at;
		o->caught_up_at = cur.caught_up_at;
	}
	return 0;
}

static int read_health(struct ledger_txn *t, const struct config *cfg, struct conn_status *s,
                       struct err *e)
{
	struct conn_health h;
	int rc = health_get(t, &h, e);
	if (rc)
		return rc;
	s->health.last_success_at = h.last_success_at;
	s->health.last_error_at = h.last_error_at;
	s->health.failures_in_a_row = h.failures_in_a_row;
	snprintf(s->health.last_error, sizeof(s->health.last_error), "%s", h.last_error);
	/* unhealthy: cycles have failed for longer than sync.unready_after */
	int64_t failing_since = h.last_success_at > 0 ? h.last_success_at : h.last_error_at;
	s->health.healthy =
	    h.failures_in_a_row == 0 || s->now - failing_since <= cfg->sync.unready_after_ms;
	return 0;
}

static int read_meta_text(struct ledger_txn *t, const char *key, char **out, struct err *e)
{
	char *buf = malloc(LEDGER_META_MAX + 1);
	if (buf == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	size_t n;
	int rc = ledger_meta_get(t, key, buf, LEDGER_META_MAX, &n, e);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

static int status_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct status_ctx *x = ctx;
	struct conn_status *s = x->s;
	/* a re-run (a busy reader slot) starts over */
	struct conn_parked_push *parked = s->parked;
	struct conn_parked_record *parked_records = s->parked_records;
	free(s->last_cycle);
	memset(s, 0, sizeof(*s));
	s->parked = parked;
	s->parked_records = parked_records;
	s->now = time_now_ms();
	s->api_used = s->api_max = -1;
	x->t = t;
	int rc = read_cursors(t, x->cfg, s, e);
	if (rc == 0)
		rc = read_health(t, x->cfg, s, e);
	if (rc == 0 && x->details &&
	    (rc = read_meta_text(t, META_LAST_CYCLE, &s->last_cycle, e)) == ERR_NOTFOUND)
		rc = 0;
	if (rc == 0)
		rc = read_counts(t, x, e);
	if (rc == 0)
		rc = parked_each(t, 0, count_parked_record, x, e);
	char usage[64];
	size_t n;
	if (rc == 0 &&
	    (rc = ledger_meta_get(t, META_API_USAGE, usage, sizeof(usage) - 1, &n, e)) == 0) {
		usage[n] = '\0';
		if (sscanf(usage, "%ld/%ld", &s->api_used, &s->api_max) != 2)
			s->api_used = s->api_max = -1;
	} else if (rc == ERR_NOTFOUND) {
		rc = 0;
	}
	struct ledger_stats st;
	if (rc == 0 && (rc = ledger_stats(t, &st, e)) == 0) {
		s->ledger.persons = st.persons;
		s->ledger.records = st.records;
		s->ledger.events = st.events;
		s->ledger.changes = st.changes;
		s->ledger.used_bytes = st.used_bytes;
		s->ledger.map_size = st.map_size;
		s->ledger.schema_version = st.schema_version;
	}
	s->retention.configured = conn_retention_configured(x->cfg);
	if (rc == 0)
		rc = conn_retention_totals(t, s->retention.purged, &s->retention.last_run_at, e);
	return rc;
}

void conn_status_free(struct conn_status *s)
{
	if (s == NULL)
		return;
	free(s->parked);
	free(s->parked_records);
	free(s->last_cycle);
	free(s);
}

int conn_status(struct conn *c, bool details, struct conn_status **out, struct err *e)
{
	*out = NULL;
	struct conn_status *s = calloc(1, sizeof(*s));
	struct status_ctx x = {c->cfg, details, s, NULL,
	                       details ? malloc(sizeof(struct ledger_person)) : NULL};
	int rc = 0;
	if (s == NULL || (details && x.p == NULL) ||
	    (details && (s->parked = malloc(CONN_PARKED_SHOWN * sizeof(*s->parked))) == NULL) ||
	    (details && (s->parked_records = malloc(CONN_PARKED_RECORDS_SHOWN *
	                                            sizeof(*s->parked_records))) == NULL))
		rc = err_set(e, ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = ledger_read(c->l, status_txn, &x, e);
	free(x.p);
	if (rc) {
		conn_status_free(s);
		return rc;
	}
	*out = s;
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
	/* the trees first: the chain is read through them */
	struct ledger_tree_report tr;
	struct ledger_verify_report rep;
	memset(&rep, 0, sizeof(rep));
	int rc = ledger_check_trees(c->l, &tr, e);
	if (rc && rc != ERR_LEDGER)
		return rc; /* out of memory, busy: not a verdict */
	bool trees_ok = rc == 0;
	if (trees_ok) {
		rc = ledger_verify_at(c->l, at, &rep, e);
		if (rc && rc != ERR_LEDGER)
			return rc; /* not a verdict on the chain */
	}
	char hex[65];
	json_mark();
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", rc == 0);
	cJSON *tj = cJSON_AddObjectToObject(o, "trees");
	cJSON_AddBoolToObject(tj, "ok", trees_ok);
	cJSON_AddNumberToObject(tj, "tables", tr.tables);
	cJSON_AddNumberToObject(tj, "pages", (double)tr.pages);
	cJSON_AddNumberToObject(tj, "entries", (double)tr.entries);
	cJSON_AddNumberToObject(tj, "free_pages", (double)tr.free_pages);
	cJSON_AddNumberToObject(tj, "leaked_pages", (double)tr.leaked_pages);
	if (!trees_ok)
		cJSON_AddStringToObject(tj, "damage", tr.damage);
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
	/* a broken chain is reported with its description */
	int drc = json_result(o, 0, out, e);
	return drc ? drc : rc;
}
