/* GET /metrics: the Prometheus text format. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

static const char *const route_names[] = {"healthz",
                                          "readyz",
                                          "metrics",
                                          "contact",
                                          "suppression_check",
                                          "optouts",
                                          "authorization",
                                          "source",
                                          "batch",
                                          "resubscribe",
                                          "history",
                                          "export",
                                          "erase",
                                          "changes",
                                          "conflicts",
                                          "pushes_retry",
                                          "status",
                                          "unsubscribe_links",
                                          "consents",
                                          "access",
                                          "other"};
_Static_assert(sizeof(route_names) / sizeof(route_names[0]) == N_ROUTES, "a name per route");

/* ---- metrics ---- */

/* The label of status slot k ("404", or "other" for the last), in the
 * caller's buffer: the server answers /metrics on many threads at once, so
 * nothing here is cached in static memory. */
static const char *status_name(int k, char out[8])
{
	if (k == N_STATUS - 1)
		return "other";
	snprintf(out, 8, "%u", http_statuses[k]);
	return out;
}

char *http_metrics_text(struct sidecar *s, size_t *len)
{
	struct buf b;
	struct err e;
	buf_init(&b, 1 << 20);
	struct metrics m;
	size_t ncr = s->nclients * N_ROUTES;
	uint64_t *cr = calloc(ncr ? ncr : 1, sizeof(*cr));
	if (cr == NULL)
		return NULL;
	pthread_mutex_lock(&s->mu);
	m = s->m;
	if (s->client_requests)
		memcpy(cr, s->client_requests, ncr * sizeof(*cr));
	pthread_mutex_unlock(&s->mu);
	buf_printf(&b, &e,
	           "# HELP optsync_sync_cycles_total Sync cycles by result.\n"
	           "# TYPE optsync_sync_cycles_total counter\n"
	           "optsync_sync_cycles_total{result=\"ok\"} %llu\n"
	           "optsync_sync_cycles_total{result=\"failed\"} %llu\n"
	           "# HELP optsync_records_pulled_total Salesforce records read, by object.\n"
	           "# TYPE optsync_records_pulled_total counter\n"
	           "optsync_records_pulled_total{object=\"Contact\"} %llu\n"
	           "optsync_records_pulled_total{object=\"Lead\"} %llu\n"
	           "# HELP optsync_records_pushed_total Salesforce records written, by object.\n"
	           "# TYPE optsync_records_pushed_total counter\n"
	           "optsync_records_pushed_total{object=\"Contact\"} %llu\n"
	           "optsync_records_pushed_total{object=\"Lead\"} %llu\n"
	           "# HELP optsync_webhook_deliveries_total Webhook deliveries by result.\n"
	           "# TYPE optsync_webhook_deliveries_total counter\n"
	           "optsync_webhook_deliveries_total{result=\"ok\"} %llu\n"
	           "optsync_webhook_deliveries_total{result=\"failed\"} %llu\n"
	           "# HELP optsync_backups_total Backups run took on its own, by result.\n"
	           "# TYPE optsync_backups_total counter\n"
	           "optsync_backups_total{result=\"ok\"} %llu\n"
	           "optsync_backups_total{result=\"failed\"} %llu\n",
	           (unsigned long long)m.cycles_ok, (unsigned long long)m.cycles_failed,
	           (unsigned long long)m.pulled[CONN_OBJ_CONTACT],
	           (unsigned long long)m.pulled[CONN_OBJ_LEAD],
	           (unsigned long long)m.pushed[CONN_OBJ_CONTACT],
	           (unsigned long long)m.pushed[CONN_OBJ_LEAD], (unsigned long long)m.webhook_ok,
	           (unsigned long long)m.webhook_failed, (unsigned long long)m.backups_ok,
	           (unsigned long long)m.backups_failed);
	if (m.last_backup_at)
		buf_printf(&b, &e,
		           "# HELP optsync_last_backup_timestamp_seconds When the newest backup "
		           "run took started.\n"
		           "# TYPE optsync_last_backup_timestamp_seconds gauge\n"
		           "optsync_last_backup_timestamp_seconds %.3f\n"
		           "# HELP optsync_last_backup_size_bytes Size of the newest backup run "
		           "took.\n"
		           "# TYPE optsync_last_backup_size_bytes gauge\n"
		           "optsync_last_backup_size_bytes %llu\n",
		           (double)m.last_backup_at / 1000.0,
		           (unsigned long long)m.last_backup_bytes);
	/* the ledger's numbers, typed: nothing read back from JSON */
	struct conn_status *st;
	if (conn_status(s->conn, false, &st, &e) == 0) {
		buf_printf(&b, &e,
		           "# HELP optsync_pushes Salesforce writes waiting, by state.\n"
		           "# TYPE optsync_pushes gauge\n"
		           "optsync_pushes{state=\"queued\"} %llu\n"
		           "optsync_pushes{state=\"parked\"} %llu\n"
		           "# HELP optsync_open_conflicts Conflicts waiting for an admin.\n"
		           "# TYPE optsync_open_conflicts gauge\n"
		           "optsync_open_conflicts %llu\n"
		           "# HELP optsync_retention_purged_total What retention runs removed, by "
		           "kind.\n"
		           "# TYPE optsync_retention_purged_total counter\n"
		           "optsync_retention_purged_total{what=\"events\"} %llu\n"
		           "optsync_retention_purged_total{what=\"persons\"} %llu\n"
		           "optsync_retention_purged_total{what=\"resolved_conflicts\"} %llu\n",
		           (unsigned long long)st->pushes_queued,
		           (unsigned long long)st->pushes_parked,
		           (unsigned long long)st->open_conflicts,
		           (unsigned long long)st->retention.purged[0],
		           (unsigned long long)st->retention.purged[1],
		           (unsigned long long)st->retention.purged[2]);
		buf_printf(&b, &e,
		           "# HELP optsync_records_parked Salesforce records that could not be "
		           "applied (rule 8), by object and reason; each is tried again when it "
		           "changes.\n"
		           "# TYPE optsync_records_parked gauge\n");
		for (int obj = CONN_OBJ_CONTACT; obj <= CONN_OBJ_CONSENT; obj++)
			for (int k = 1; k < CONN_PARK_REASONS; k++)
				if (st->records_parked_by[obj][k])
					buf_printf(
					    &b, &e,
					    "optsync_records_parked{object=\"%s\",reason=\"%s\"} "
					    "%llu\n",
					    obj == CONN_OBJ_CONTACT ? "Contact"
					    : obj == CONN_OBJ_LEAD  ? "Lead"
					                            : "ContactPointTypeConsent",
					    conn_park_reason_name(k),
					    (unsigned long long)st->records_parked_by[obj][k]);
		if (st->api_max >= 0)
			buf_printf(&b, &e,
			           "# HELP optsync_salesforce_api_requests Daily API requests used "
			           "and allowed (Sforce-Limit-Info).\n"
			           "# TYPE optsync_salesforce_api_requests gauge\n"
			           "optsync_salesforce_api_requests{kind=\"used\"} %ld\n"
			           "optsync_salesforce_api_requests{kind=\"limit\"} %ld\n",
			           st->api_used, st->api_max);
		buf_printf(&b, &e,
		           "# HELP optsync_cursor_lag_seconds Time since the last pull that "
		           "read everything started, by object: every change in Salesforce "
		           "before that is in the ledger.\n"
		           "# TYPE optsync_cursor_lag_seconds gauge\n");
		static const char *const objects[3] = {NULL, "Contact", "Lead"};
		for (size_t i = 0; i < st->ncursors; i++) {
			const struct conn_status_cursor *cur = &st->cursor[i];
			if (cur->caught_up_at)
				buf_printf(&b, &e,
				           "optsync_cursor_lag_seconds{object=\"%s\"} %.0f\n",
				           objects[cur->object],
				           (double)(st->now - cur->caught_up_at) / 1000.0);
		}
		if (st->health.last_success_at)
			buf_printf(&b, &e,
			           "# HELP optsync_last_success_timestamp_seconds When the last "
			           "sync cycle that succeeded started.\n"
			           "# TYPE optsync_last_success_timestamp_seconds gauge\n"
			           "optsync_last_success_timestamp_seconds %.3f\n",
			           (double)st->health.last_success_at / 1000.0);
		buf_printf(&b, &e,
		           "# HELP optsync_sync_failures_in_a_row Sync cycles failed since the "
		           "last one that succeeded.\n"
		           "# TYPE optsync_sync_failures_in_a_row gauge\n"
		           "optsync_sync_failures_in_a_row %llu\n",
		           (unsigned long long)st->health.failures_in_a_row);
		conn_status_free(st);
	}
	if (s->cfg->unsubscribe.enabled) {
		static const char *const kinds[PUBLIC_KINDS] = {
		    "one_click", "form", "page", "invalid", "rate_limited", "unavailable"};
		buf_printf(&b, &e,
		           "# HELP optsync_unsubscribe_requests_total Requests to the public "
		           "unsubscribe listener, by kind.\n"
		           "# TYPE optsync_unsubscribe_requests_total counter\n");
		for (int k = 0; k < PUBLIC_KINDS; k++)
			buf_printf(&b, &e, "optsync_unsubscribe_requests_total{kind=\"%s\"} %llu\n",
			           kinds[k], (unsigned long long)m.public_requests[k]);
	}
	buf_printf(&b, &e,
	           "# HELP optsync_http_requests_total API requests by route and status.\n"
	           "# TYPE optsync_http_requests_total counter\n");
	char label[8];
	for (int r = 0; r <= R_OTHER; r++)
		for (int k = 0; k < N_STATUS; k++)
			if (m.requests[r][k])
				buf_printf(
				    &b, &e,
				    "optsync_http_requests_total{route=\"%s\",status=\"%s\"} "
				    "%llu\n",
				    route_names[r], status_name(k, label),
				    (unsigned long long)m.requests[r][k]);
	buf_printf(&b, &e,
	           "# HELP optsync_http_client_requests_total API requests by client and route.\n"
	           "# TYPE optsync_http_client_requests_total counter\n");
	for (size_t ci = 0; ci < s->nclients; ci++)
		for (int r = 0; r <= R_OTHER; r++)
			if (cr[ci * N_ROUTES + (size_t)r])
				buf_printf(&b, &e,
				           "optsync_http_client_requests_total{client=\"%s\",route="
				           "\"%s\"} "
				           "%llu\n",
				           s->clients[ci].name, route_names[r],
				           (unsigned long long)cr[ci * N_ROUTES + (size_t)r]);
	free(cr);
	static const char *const le[N_BUCKETS] = {"0.0005", "0.001", "0.002", "0.005", "0.01",
	                                          "0.025",  "0.05",  "0.1",   "0.5",   "1"};
	buf_printf(&b, &e,
	           "# HELP optsync_http_request_duration_seconds API request latency.\n"
	           "# TYPE optsync_http_request_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (int i = 0; i < N_BUCKETS; i++) {
		cum += m.latency[i];
		buf_printf(&b, &e, "optsync_http_request_duration_seconds_bucket{le=\"%s\"} %llu\n",
		           le[i], (unsigned long long)cum);
	}
	buf_printf(&b, &e,
	           "optsync_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	           "optsync_http_request_duration_seconds_sum %.6f\n"
	           "optsync_http_request_duration_seconds_count %llu\n",
	           (unsigned long long)(cum + m.latency[N_BUCKETS]), m.latency_sum,
	           (unsigned long long)m.latency_count);
	return buf_detach(&b, len);
}

enum MHD_Result http_metrics(struct ctx *c)
{
	size_t len;
	char *text = http_metrics_text(c->s, &len);
	if (text == NULL)
		return MHD_NO;
	return http_send_text(c->con, 200, "text/plain; version=0.0.4", text, len, NULL, NULL);
}
