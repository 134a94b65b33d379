/* status, readiness and the audit of the history chain. */
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
			json_append(s->parked_list, o);
		}
	} else {
		s->queued++;
	}
	return 0;
}

static int count_open(const struct ledger_conflict *cf, void *ctx)
{
	*(uint64_t *)ctx += cf->status == LEDGER_CONFLICT_OPEN;
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
		bool was = json_begin();
		last = cJSON_Parse(buf);
		if (json_end(was))
			rc = err_set(e, ERR_NOMEM, "out of memory");
		else if (last == NULL)
			rc = err_set(e, ERR_LEDGER,
			             "the saved report of the last cycle is not JSON");
	}
	free(buf);
	if (rc == 0)
		json_attach(o, "last_cycle", last);
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
	json_attach(p, "parked_records", s->parked_list);
	uint64_t open = 0;
	if ((rc = ledger_conflict_each(t, count_open, &open, e)))
		return rc;
	cJSON_AddNumberToObject(o, "open_conflicts", (double)open);
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

/* ---- the typed numbers /metrics shows ---- */

static int count_pushes(const struct ledger_push *q, void *ctx)
{
	struct conn_status_info *in = ctx;
	if (q->parked)
		in->pushes_parked++;
	else
		in->pushes_queued++;
	return 0;
}

struct info_ctx {
	const struct config *cfg;
	struct conn_status_info *in;
};

static int info_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct info_ctx *x = ctx;
	struct conn_status_info *in = x->in;
	memset(in, 0, sizeof(*in)); /* a re-run starts over */
	in->api_used = in->api_max = -1;
	int rc = ledger_push_each(t, count_pushes, in, e);
	if (rc == 0)
		rc = ledger_conflict_each(t, count_open, &in->open_conflicts, e);
	char usage[64];
	size_t n;
	if (rc == 0 &&
	    (rc = ledger_meta_get(t, META_API_USAGE, usage, sizeof(usage) - 1, &n, e)) == 0) {
		usage[n] = '\0';
		if (sscanf(usage, "%ld/%ld", &in->api_used, &in->api_max) != 2)
			in->api_used = in->api_max = -1;
	} else if (rc == ERR_NOTFOUND) {
		rc = 0;
	}
	for (size_t i = 0; rc == 0 && i < x->cfg->salesforce.nobjects; i++) {
		int obj = object_of(x->cfg->salesforce.objects[i]);
		struct ledger_cursor cur;
		int crc = ledger_cursor_get(t, obj, &cur, e);
		if (crc == 0 && cur.caught_up_at && obj > 0 && obj < 3) {
			in->lag[obj].known = true;
			in->lag[obj].lag_seconds =
			    (double)(time_now_ms() - cur.caught_up_at) / 1000.0;
		} else if (crc && crc != ERR_NOTFOUND) {
			rc = crc;
		}
	}
	struct conn_health h;
	if (rc == 0 && (rc = health_get(t, &h, e)) == 0) {
		in->last_success_at = h.last_success_at;
		in->failures_in_a_row = h.failures_in_a_row;
	}
	int64_t last_run;
	if (rc == 0)
		rc = conn_retention_totals(t, in->retention_purged, &last_run, e);
	return rc;
}

int conn_status_info(struct conn *c, struct conn_status_info *out, struct err *e)
{
	struct info_ctx x = {c->cfg, out};
	int rc = ledger_read(c->l, info_txn, &x, e);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

int conn_status(struct conn *c, cJSON **out, struct err *e)
{
	*out = NULL;
	json_mark();
	struct status_ctx s = {c->cfg, cJSON_CreateObject(), 0, 0, NULL, NULL, NULL};
	int rc = s.out ? ledger_read(c->l, status_txn, &s, e) : 0;
	return json_result(s.out, rc, out, e);
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
	if (rc && rc != ERR_LEDGER)
		return rc; /* not a verdict on the chain */
	char hex[65];
	json_mark();
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
	/* a broken chain is reported with its description */
	int drc = json_result(o, 0, out, e);
	return drc ? drc : rc;
}
