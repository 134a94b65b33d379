/* Internal to src/api: what the HTTP API's files share (responses.c,
 * bodies.c, routes.c, metrics.c, server.c). */
#ifndef OPTSYNC_API_HTTP_H
#define OPTSYNC_API_HTTP_H

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "api/internal.h"

/* Routes, for metrics. */
enum route {
	R_HEALTH,
	R_READY,
	R_METRICS,
	R_CONTACT,
	R_SUPPRESSION,
	R_OPTOUTS,
	R_AUTH,
	R_SOURCE,
	R_BATCH,
	R_RESUB,
	R_HISTORY,
	R_EXPORT,
	R_ERASE,
	R_CHANGES,
	R_CONFLICTS,
	R_PUSHES,
	R_STATUS,
	R_LINKS,
	R_CONSENT,
	R_ACCESS,
	R_OTHER
};
_Static_assert(R_OTHER + 1 == N_ROUTES, "N_ROUTES counts the routes");

/* One request being answered. */
struct ctx {
	struct sidecar *s;
	struct MHD_Connection *con;
	const char *method, *url;
	cJSON *body;
	struct err e;
	enum route route;
	int retry_after;                 /* seconds, for a 429 or 503 that says when to come back */
	const struct api_client *client; /* who the bearer token says */
	struct conn_actor actor;         /* that client, as the actor of its changes */
};

/* ---- responses (responses.c) ---- */

/* The Retry-After (seconds) of every 503 that gives none of its own: the
 * ledger or its disk is full, or a bounded resource is in use, on the
 * local API and on the public listener alike. Short, because service
 * comes back by itself once there is room; a client that retries sooner
 * gets another 503, nothing worse. */
#define HTTP_RETRY_AFTER "5"

/* The statuses the API answers with, counted by /metrics; anything else
 * counts as "other". */
extern const unsigned http_statuses[N_STATUS - 1];

int64_t http_now_us(void);
/* Count a request of route r answered with status, begun at start (us). */
void http_count(struct sidecar *s, const struct api_client *client, enum route r, unsigned status,
                int64_t start);
/* text is malloc'ed and handed over; header/value, when set, go with it. */
enum MHD_Result http_send_text(struct MHD_Connection *con, unsigned status, const char *ctype,
                               char *text, size_t len, const char *header, const char *value);
/* doc is handed over. */
enum MHD_Result http_send_json(struct MHD_Connection *con, unsigned status, cJSON *doc);
/* The one table from error codes to HTTP statuses, and their codes. */
unsigned http_status_of(int code);
const char *http_code_of(unsigned status);
enum MHD_Result http_send_error_with(struct MHD_Connection *con, unsigned status, const char *msg,
                                     const char *header, const char *value);
enum MHD_Result http_send_error(struct MHD_Connection *con, unsigned status, const char *msg);
/* doc (handed over) with ok_status, or c->e as the error rc gives. */
enum MHD_Result http_reply(struct ctx *c, int rc, cJSON *doc, unsigned ok_status);

/* ---- authentication (routes.c) ---- */

const struct api_client *http_client_of(struct sidecar *s, struct MHD_Connection *con);
/* What url takes: the methods it allows (NULL: no such path; the same as
 * api_allowed_methods) and, in *scope, the scope (enum config_scope) that
 * method needs there (0: none). One parse of the path for both. */
const char *api_route_lookup(const char *url, const char *method, unsigned *scope);
size_t http_client_key(struct MHD_Connection *con, uint8_t key[RATELIMIT_KEY_MAX]);
int http_admin_of(struct sidecar *s, struct MHD_Connection *con, const char *email,
                  struct conn_actor *who, char *name, size_t cap, int *retry_after, struct err *e);

/* ---- request bodies (bodies.c) ---- */

/* A string member of o, or NULL. */
const char *http_jstr(const cJSON *o, const char *k);
/* An RFC 3339 member of o into *ms (0 when absent); ERR_INVALID naming k. */
int http_jtime(const cJSON *o, const char *k, int64_t *ms, struct err *e);
/* o is an object with only the allowed members, each a string or null. */
int http_check_keys(const cJSON *o, const char *const *allowed, struct err *e);
int http_parse_authorization(const cJSON *o, struct conn_facts_change *ch, const char *missing,
                             struct err *e);
int http_parse_source(const cJSON *o, struct conn_facts_change *ch, const char *missing,
                      struct err *e);
void http_batch_row(const cJSON *it, struct conn_set_row *r, char *msg, size_t cap);

/* ---- routing (routes.c) and metrics (metrics.c) ---- */

enum MHD_Result http_route(struct ctx *c);
/* The Prometheus text of s (malloc'ed, *len bytes), or NULL when memory
 * ran out. Safe on any number of threads at once: the counters are copied
 * under s->mu, and nothing is kept between calls. */
char *http_metrics_text(struct sidecar *s, size_t *len);
enum MHD_Result http_metrics(struct ctx *c);

#endif
