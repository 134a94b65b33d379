/* The local HTTP API on libmicrohttpd. */
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

#include "api/internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

struct api {
	struct MHD_Daemon *d;
	struct sidecar *s;
	int fd;
	char *unix_path;
};

struct req {
	struct buf body;
	int too_big;
	int64_t start_us;
};

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
	R_OTHER
};
_Static_assert(R_OTHER + 1 == N_ROUTES, "N_ROUTES counts the routes");
static const char *const route_names[] = {
    "healthz",      "readyz",        "metrics", "contact", "suppression_check",
    "optouts",      "authorization", "source",  "batch",   "resubscribe",
    "history",      "export",        "erase",   "changes", "conflicts",
    "pushes_retry", "status",        "other"};
/* the statuses the API answers with; anything else counts as "other" */
static const unsigned statuses[N_STATUS - 1] = {200, 202, 400, 401, 403, 404, 405,
                                                409, 413, 422, 429, 500, 503};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void count(struct sidecar *s, enum route r, unsigned status, int64_t start)
{
	static const double bounds[N_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01,
	                                         0.025,  0.05,  0.1,   0.5,   1.0};
	double secs = (double)(now_us() - start) / 1e6;
	int ci = N_STATUS - 1;
	for (int i = 0; i < N_STATUS - 1; i++)
		if (statuses[i] == status)
			ci = i;
	pthread_mutex_lock(&s->mu);
	s->m.requests[r][ci]++;
	int b = N_BUCKETS;
	for (int i = 0; i < N_BUCKETS; i++)
		if (secs <= bounds[i]) {
			b = i;
			break;
		}
	s->m.latency[b]++;
	s->m.latency_sum += secs;
	s->m.latency_count++;
	pthread_mutex_unlock(&s->mu);
}

/* ---- responses ---- */

static enum MHD_Result send_text(struct MHD_Connection *con, unsigned status, const char *ctype,
                                 char *text, size_t len, const char *extra_header,
                                 const char *extra_value)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (extra_header)
		MHD_add_response_header(resp, extra_header, extra_value);
	enum MHD_Result r = MHD_queue_response(con, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result send_json(struct MHD_Connection *con, unsigned status, cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (text == NULL)
		return MHD_NO;
	return send_text(con, status, "application/json", text, strlen(text), NULL, NULL);
}

/* The one table from error codes to HTTP statuses. */
static unsigned status_of(int code)
{
	switch (code) {
	case ERR_INVALID:
	case ERR_EVIDENCE: /* a body without enough evidence, whatever the route */
		return 422;
	case ERR_USAGE:
		return 400;
	case ERR_NOTFOUND:
		return 404;
	case ERR_REFUSED:
		return 403;
	case ERR_CONFLICT:
		return 409;
	case ERR_LIMIT:
		return 413;
	case ERR_LEDGER:
	case ERR_BUSY:
	case ERR_NOMEM: /* passing: worth trying again */
		return 503;
	case ERR_RATE:
		return 429;
	default:
		return 500;
	}
}

static const char *code_of(unsigned status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 401:
		return "unauthorized";
	case 403:
		return "forbidden";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 409:
		return "conflict";
	case 413:
		return "too_large";
	case 422:
		return "invalid";
	case 429:
		return "rate_limited";
	case 503:
		return "unavailable";
	default:
		return "internal";
	}
}

/* An error document; header/value, when set, go with it (WWW-Authenticate
 * on 401, Allow on 405). */
static enum MHD_Result send_error_with(struct MHD_Connection *con, unsigned status, const char *msg,
                                       const char *header, const char *value)
{
	cJSON *doc = cJSON_CreateObject(), *er = cJSON_AddObjectToObject(doc, "error");
	cJSON_AddStringToObject(er, "code", code_of(status));
	cJSON_AddStringToObject(er, "message", msg);
	char *text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return text ? send_text(con, status, "application/json", text, strlen(text), header, value)
	            : MHD_NO;
}

static enum MHD_Result send_error(struct MHD_Connection *con, unsigned status, const char *msg)
{
	if (status == 401)
		return send_error_with(con, status, msg, "WWW-Authenticate", "Bearer");
	return send_error_with(con, status, msg, NULL, NULL);
}

/* ---- authentication ---- */

static int bearer_ok(struct sidecar *s, struct MHD_Connection *con)
{
	const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return 0;
	const char *tok = h + 7;
	size_t n = strlen(tok);
	if (n != s->token_len) {
		CRYPTO_memcmp(s->token, s->token, s->token_len); /* the same work either way */
		return 0;
	}
	return CRYPTO_memcmp(tok, s->token, n) == 0;
}

/* The client's address as a rate-limit key (all unix-socket clients are
 * one); its length. */
static size_t client_key(struct MHD_Connection *con, uint8_t key[RATELIMIT_KEY_MAX])
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa && sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		return 16;
	}
	memcpy(key, "unix", 4);
	return 4;
}

/* Admin credentials from X-Optsync-Admin, checked with scrypt (~60 ms and
 * 32 MiB each, on purpose). At most ADMIN_CHECKS_MAX run at once, so they
 * bound the memory they cost and leave the other requests their cores;
 * a request that finds no free slot soon gets ERR_BUSY. A client with
 * ADMIN_FAILS_PER_MINUTE refusals in its minute gets ERR_RATE, and no
 * scrypt runs for it. *retry_after: the seconds to tell the client. */
static int admin_of(struct sidecar *s, struct MHD_Connection *con, const char *email,
                    struct conn_actor *who, char *name, size_t cap, int *retry_after, struct err *e)
{
	uint8_t key[RATELIMIT_KEY_MAX];
	size_t kl = client_key(con, key);
	int64_t now = time_now_ms();
	int wait = ratelimit_blocked(s->admin_fails, key, kl, now);
	if (wait) {
		*retry_after = wait;
		return err_set(
		    e, ERR_RATE,
		    "too many refused admin attempts from this client; try again in %d s", wait);
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += ADMIN_SLOT_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int got;
	while ((got = sem_timedwait(&s->admin_slots, &until)) != 0 && errno == EINTR)
		;
	if (got != 0) {
		*retry_after = 1;
		return err_set(e, ERR_BUSY, "admin checks are all in use; try again in 1 s");
	}
	const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-Optsync-Admin");
	int rc = conn_admin_actor_header(s->conn, h, email, who, name, cap, e);
	sem_post(&s->admin_slots);
	if (rc == ERR_REFUSED)
		ratelimit_hit(s->admin_fails, key, kl, now);
	return rc;
}

/* ---- request bodies ---- */

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jtime(const cJSON *o, const char *k, int64_t *ms, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	*ms = 0;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || time_parse(v->valuestring, ms))
		return err_set(e, ERR_INVALID, "%s must be an RFC 3339 date-time", k);
	return 0;
}

/* Only the listed keys, each of the right JSON type (s: string or null). */
static int check_keys(const cJSON *o, const char *const *allowed, struct err *e)
{
	if (!cJSON_IsObject(o))
		return err_set(e, ERR_USAGE, "the body must be a JSON object");
	const cJSON *it;
	cJSON_ArrayForEach(it, o)
	{
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			ok |= strcmp(*a, it->string) == 0;
		if (!ok)
			return err_set(e, ERR_INVALID, "unknown field '%.60s'", it->string);
		if (!cJSON_IsString(it) && !cJSON_IsNull(it))
			return err_set(e, ERR_INVALID, "field '%s' must be a string", it->string);
	}
	return 0;
}

/* ---- routes ---- */

struct ctx {
	struct sidecar *s;
	struct MHD_Connection *con;
	const char *method, *url;
	cJSON *body;
	struct err e;
	enum route route;
	int retry_after; /* seconds, for a 429 or 503 that says when to come back */
};

static const struct conn_actor api_actor = {CONN_ORIGIN_LOCAL, "api"};

static enum MHD_Result reply(struct ctx *c, int rc, cJSON *doc, unsigned ok_status)
{
	if (rc) {
		cJSON_Delete(doc);
		if (c->retry_after > 0) {
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", c->retry_after);
			return send_error_with(c->con, status_of(rc), c->e.msg, "Retry-After", ra);
		}
		return send_error(c->con, status_of(rc), c->e.msg);
	}
	return send_json(c->con, ok_status, doc);
}

/* An authorization object {"type", "consent_date"?, "purpose"?, "other"?}
 * (PUT /authorization, a batch update's "authorization") into ch;
 * missing: the message when there is no type. */
static int parse_authorization(const cJSON *o, struct conn_facts_change *ch, const char *missing,
                               struct err *e)
{
	static const char *const keys[] = {"type", "consent_date", "purpose", "other", NULL};
	int rc = check_keys(o, keys, e);
	if (rc)
		return rc;
	ch->authorization = jstr(o, "type");
	ch->purpose = jstr(o, "purpose");
	ch->other = jstr(o, "other");
	if (ch->authorization == NULL)
		return err_set(e, ERR_INVALID, "%s", missing);
	return jtime(o, "consent_date", &ch->consent_date, e);
}

/* A source object {"type", "other"?} into ch, likewise. */
static int parse_source(const cJSON *o, struct conn_facts_change *ch, const char *missing,
                        struct err *e)
{
	static const char *const keys[] = {"type", "other", NULL};
	int rc = check_keys(o, keys, e);
	if (rc)
		return rc;
	ch->source = jstr(o, "type");
	ch->source_other = jstr(o, "other");
	return ch->source ? 0 : err_set(e, ERR_INVALID, "%s", missing);
}

int api_contact_path(char *rest, const char **email, const char **sub)
{
	static const char *const subs[] = {"/authorization", "/source", "/resubscribe",
	                                   "/history",       "/export", NULL};
	*sub = "";
	size_t rl = strlen(rest);
	for (const char *const *p = subs; *p; p++) {
		size_t sl = strlen(*p);
		if (rl > sl && strcmp(rest + rl - sl, *p) == 0) {
			*sub = *p;
			rest[rl - sl] = '\0';
			break;
		}
	}
	*email = rest;
	return rest[0] == '\0' || strchr(rest, '/') ? -1 : 0; /* an unknown sub-path */
}

int api_conflict_path(const char *rest, uint64_t *id)
{
	*id = 0;
	if (*rest == '\0')
		return API_CONFLICTS_LIST;
	if (*rest++ != '/')
		return -1;
	size_t n = strcspn(rest, "/");
	struct err e;
	if (conn_conflict_id_parse(rest, n, id, &e))
		return -1;
	if (rest[n] == '\0')
		return API_CONFLICT_SHOW;
	return strcmp(rest + n, "/resolve") == 0 ? API_CONFLICT_RESOLVE : -1;
}

static enum MHD_Result contact_routes(struct ctx *c, char *rest)
{
	const char *email, *sub;
	if (api_contact_path(rest, &email, &sub))
		return send_error(c->con, 404, "no such resource");
	cJSON *doc = NULL;
	int rc;
	const char *m = c->method;
	if (strcmp(sub, "") == 0 && strcmp(m, "GET") == 0) {
		c->route = R_CONTACT;
		rc = conn_contact_show(c->s->conn, email, &doc, &c->e);
		return reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "") == 0 && strcmp(m, "DELETE") == 0) {
		c->route = R_ERASE;
		struct conn_actor who;
		char name[128];
		rc =
		    admin_of(c->s, c->con, email, &who, name, sizeof(name), &c->retry_after, &c->e);
		if (rc == 0)
			rc = conn_contact_erase(c->s->conn, &who, email, &doc, &c->e);
		return reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/history") == 0 && strcmp(m, "GET") == 0) {
		c->route = R_HISTORY;
		rc = conn_contact_history(c->s->conn, email, &doc, &c->e);
		return reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/export") == 0 && strcmp(m, "GET") == 0) {
		c->route = R_EXPORT;
		const char *fmt =
		    MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "format");
		if (fmt && strcmp(fmt, "csv") == 0) {
			char *csv = NULL;
			rc = conn_contact_export_csv(c->s->conn, email, &csv, &c->e);
			if (rc)
				return send_error(c->con, status_of(rc), c->e.msg);
			return send_text(c->con, 200, "text/csv; charset=utf-8", csv, strlen(csv),
			                 "Content-Disposition",
			                 "attachment; filename=\"export.csv\"");
		}
		if (fmt && strcmp(fmt, "json") != 0)
			return send_error(c->con, 400, "format must be csv or json");
		rc = conn_contact_export(c->s->conn, email, &doc, &c->e);
		return reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/authorization") == 0 && strcmp(m, "PUT") == 0) {
		c->route = R_AUTH;
		struct conn_facts_change ch = {0};
		rc = parse_authorization(c->body, &ch, "type is required", &c->e);
		if (rc == 0)
			rc = conn_contact_set(c->s->conn, &api_actor, email, &ch, &doc, &c->e);
		if (rc == 0)
			sidecar_kick(c->s);
		return reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/source") == 0 && strcmp(m, "PUT") == 0) {
		c->route = R_SOURCE;
		struct conn_facts_change ch = {0};
		rc = parse_source(c->body, &ch, "type is required", &c->e);
		if (rc == 0)
			rc = conn_contact_set(c->s->conn, &api_actor, email, &ch, &doc, &c->e);
		if (rc == 0)
			sidecar_kick(c->s);
		return reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/resubscribe") == 0 && strcmp(m, "POST") == 0) {
		c->route = R_RESUB;
		static const char *const keys[] = {"consent_date", "purpose", "evidence_ref",
		                                   "evidence_sha256", NULL};
		struct conn_evidence ev = {0};
		struct conn_actor who;
		char name[128];
		rc =
		    admin_of(c->s, c->con, email, &who, name, sizeof(name), &c->retry_after, &c->e);
		if (rc == 0)
			rc = check_keys(c->body, keys, &c->e);
		if (rc == 0)
			rc = jtime(c->body, "consent_date", &ev.consent_date, &c->e);
		if (rc == 0) {
			ev.purpose = jstr(c->body, "purpose");
			ev.evidence_ref = jstr(c->body, "evidence_ref");
			ev.evidence_sha256 = jstr(c->body, "evidence_sha256");
			rc = conn_resubscribe(c->s->conn, &who, email, &ev, &doc, &c->e);
		}
		if (rc == 0)
			sidecar_kick(c->s);
		return reply(c, rc, doc, 200);
	}
	return send_error(c->con, 405, "method not allowed on this resource");
}

static enum MHD_Result suppression_check(struct ctx *c)
{
	c->route = R_SUPPRESSION;
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c->body, "emails");
	if (!cJSON_IsObject(c->body) || !cJSON_IsArray(arr))
		return send_error(c->con, 400, "the body must be {\"emails\": [...]}");
	int n = cJSON_GetArraySize(arr);
	if (n > 1000)
		return send_error(c->con, 413, "at most 1,000 emails per check");
	const char **emails = malloc((size_t)(n ? n : 1) * sizeof(*emails));
	bool *out = malloc((size_t)(n ? n : 1) * sizeof(*out));
	bool *valid = malloc((size_t)(n ? n : 1) * sizeof(*valid));
	int rc = emails && out && valid ? 0 : err_set(&c->e, ERR_NOMEM, "out of memory");
	int i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		if (!cJSON_IsString(it) && rc == 0)
			rc = err_set(&c->e, ERR_INVALID, "emails[%d] is not a string", i);
		if (rc == 0)
			emails[i++] = it->valuestring;
	}
	if (rc == 0)
		rc = conn_suppressed(c->s->conn, emails, (size_t)n, out, valid, &c->e);
	cJSON *doc = NULL;
	if (rc == 0) {
		/* one malformed address does not cost the others their answer */
		doc = cJSON_CreateObject();
		cJSON *res = cJSON_AddObjectToObject(doc, "results");
		cJSON *bad = cJSON_AddArrayToObject(doc, "invalid");
		for (int k = 0; k < n; k++)
			if (valid[k])
				cJSON_AddBoolToObject(res, emails[k], out[k]);
			else
				cJSON_AddItemToArray(bad, cJSON_CreateString(emails[k]));
	}
	free(emails);
	free(out);
	free(valid);
	return reply(c, rc, doc, 200);
}

int api_optout_parse(const cJSON *body, struct conn_optout *o, struct err *e)
{
	static const char *const keys[] = {"email",  "occurred_at",     "source",
	                                   "reason", "idempotency_key", NULL};
	memset(o, 0, sizeof(*o));
	int rc = check_keys(body, keys, e);
	if (rc)
		return rc;
	o->email = jstr(body, "email");
	o->source = jstr(body, "source");
	o->reason = jstr(body, "reason");
	o->idempotency_key = jstr(body, "idempotency_key");
	if (o->email == NULL)
		return err_set(e, ERR_INVALID, "email is required");
	return jtime(body, "occurred_at", &o->occurred_at, e);
}

static enum MHD_Result optouts(struct ctx *c)
{
	c->route = R_OPTOUTS;
	struct conn_optout o;
	int rc = api_optout_parse(c->body, &o, &c->e);
	cJSON *doc = NULL;
	if (rc == 0)
		rc = conn_optout(c->s->conn, &api_actor, &o, &doc, &c->e);
	if (rc == 0)
		sidecar_kick(c->s);
	return reply(c, rc, doc, 202); /* durable in the ledger */
}

/* One update of POST /v1/contacts:batch into r; a row that cannot be read
 * gets r->error (msg holds it). */
static void batch_row(const cJSON *it, struct conn_set_row *r, char *msg, size_t cap)
{
	static const char *const row_keys[] = {"email", "authorization", "source", NULL};
	struct err e = {0};
	if (!cJSON_IsObject(it)) {
		snprintf(msg, cap, "an update must be a JSON object");
		r->error = msg;
		return;
	}
	const cJSON *auth = cJSON_GetObjectItemCaseSensitive(it, "authorization");
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(it, "source");
	const cJSON *k;
	int rc = 0;
	cJSON_ArrayForEach(k, it)
	{
		int known = 0;
		for (const char *const *a = row_keys; *a; a++)
			known |= strcmp(*a, k->string) == 0;
		if (!known && rc == 0)
			rc = err_set(&e, ERR_INVALID, "unknown field '%.60s'", k->string);
	}
	r->email = jstr(it, "email");
	if (rc == 0 && auth)
		rc = parse_authorization(auth, &r->ch, "authorization needs a type", &e);
	if (rc == 0 && src)
		rc = parse_source(src, &r->ch, "source needs a type", &e);
	if (rc) {
		snprintf(msg, cap, "%.150s", e.msg);
		r->error = msg;
	}
}

static enum MHD_Result batch(struct ctx *c)
{
	enum { MSG = 160 };
	c->route = R_BATCH;
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(c->body, "updates");
	const cJSON *aon = cJSON_GetObjectItemCaseSensitive(c->body, "all_or_none");
	if (!cJSON_IsArray(rows))
		return send_error(c->con, 400, "the body must be {\"updates\": [...]}");
	if (aon && !cJSON_IsBool(aon))
		return send_error(c->con, 400, "all_or_none must be true or false");
	int n = cJSON_GetArraySize(rows);
	if (n > 1000)
		return send_error(c->con, 413, "at most 1,000 updates per call");
	struct conn_set_row *in = calloc((size_t)n + 1, sizeof(*in));
	char *msgs = malloc(((size_t)n + 1) * MSG);
	if (in == NULL || msgs == NULL) {
		free(in);
		free(msgs);
		return send_error(c->con, status_of(ERR_NOMEM), "out of memory");
	}
	int i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, rows)
	{
		in[i].row = (size_t)i;
		batch_row(it, &in[i], msgs + (size_t)i * MSG, MSG);
		i++;
	}
	struct conn_bulk_opts o = {cJSON_IsTrue(aon), NULL, NULL};
	struct conn_bulk_result res;
	int rc = conn_contact_set_many(c->s->conn, &api_actor, in, (size_t)n, &o, &res, &c->e);
	cJSON *doc = NULL;
	if (rc == 0 || rc == ERR_INVALID) {
		doc = cJSON_CreateObject();
		if (rc) {
			cJSON *er = cJSON_AddObjectToObject(doc, "error");
			cJSON_AddStringToObject(er, "code", code_of(422));
			cJSON_AddStringToObject(er, "message", c->e.msg);
		}
		cJSON *out = cJSON_AddArrayToObject(doc, "results");
		const cJSON *bad = res.bad ? res.bad->child : NULL;
		for (int k = 0; k < n; k++) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddNumberToObject(r, "row", k);
			if (in[k].email)
				cJSON_AddStringToObject(r, "email", in[k].email);
			cJSON_AddBoolToObject(r, "ok", res.ok[k]);
			const cJSON *brow =
			    bad ? cJSON_GetObjectItemCaseSensitive(bad, "row") : NULL;
			if (brow && (int)brow->valuedouble == k) {
				cJSON_AddStringToObject(r, "error", jstr(bad, "error"));
				bad = bad->next;
			} else if (!res.ok[k]) {
				cJSON_AddStringToObject(r, "error",
				                        "not applied: another row is invalid");
			}
			cJSON_AddItemToArray(out, r);
		}
		cJSON_AddNumberToObject(doc, "applied", (double)res.applied);
		cJSON_AddNumberToObject(doc, "unchanged", (double)res.unchanged);
		cJSON_AddNumberToObject(doc, "invalid", (double)res.invalid);
	}
	size_t applied = res.applied;
	conn_bulk_result_free(&res);
	free(in);
	free(msgs);
	if (doc == NULL)
		return send_error(c->con, status_of(rc), c->e.msg);
	if (applied)
		sidecar_kick(c->s);
	return send_json(c->con, rc ? 422 : 200, doc);
}

static enum MHD_Result conflicts(struct ctx *c, const char *rest)
{
	c->route = R_CONFLICTS;
	cJSON *doc = NULL;
	int rc;
	uint64_t id;
	int kind = api_conflict_path(rest, &id);
	if (kind == API_CONFLICTS_LIST && strcmp(c->method, "GET") == 0) {
		const char *st =
		    MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "status");
		enum conn_conflict_filter f = CONN_CONFLICTS_OPEN;
		rc = st ? conn_conflict_filter_parse(st, &f, &c->e) : 0;
		if (rc == 0)
			rc = conn_conflicts_list(c->s->conn, f, &doc, &c->e);
		return reply(c, rc, doc, 200);
	}
	if (kind == API_CONFLICT_RESOLVE && strcmp(c->method, "POST") == 0) {
		static const char *const keys[] = {"action",       "consent_date",    "purpose",
		                                   "evidence_ref", "evidence_sha256", NULL};
		struct conn_actor who;
		char name[128];
		struct conn_evidence ev = {0};
		rc = admin_of(c->s, c->con, NULL, &who, name, sizeof(name), &c->retry_after, &c->e);
		if (rc == 0)
			rc = check_keys(c->body, keys, &c->e);
		enum conn_resolution how = CONN_KEEP_OPTOUT;
		if (rc == 0)
			rc = conn_resolution_parse(jstr(c->body, "action"), &how, &c->e);
		if (rc == 0)
			rc = jtime(c->body, "consent_date", &ev.consent_date, &c->e);
		if (rc == 0) {
			ev.purpose = jstr(c->body, "purpose");
			ev.evidence_ref = jstr(c->body, "evidence_ref");
			ev.evidence_sha256 = jstr(c->body, "evidence_sha256");
			rc = conn_conflict_resolve(c->s->conn, &who, id, how, &ev, &doc, &c->e);
		}
		if (rc == 0)
			sidecar_kick(c->s);
		return reply(c, rc, doc, 200);
	}
	if (kind == API_CONFLICT_SHOW && strcmp(c->method, "GET") == 0) {
		rc = conn_conflict_show(c->s->conn, id, &doc, &c->e);
		return reply(c, rc, doc, 200);
	}
	return send_error(c->con, 404, "no such resource");
}

static enum MHD_Result changes(struct ctx *c)
{
	c->route = R_CHANGES;
	const char *after = MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "after");
	const char *limit = MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "limit");
	char *end = NULL;
	unsigned long long a = after ? strtoull(after, &end, 10) : 0;
	if (after && (*after == '\0' || *end || after[0] == '-'))
		return send_error(c->con, 400, "after must be a sequence number");
	unsigned long long l = limit ? strtoull(limit, &end, 10) : 100;
	if (limit && (*limit == '\0' || *end || l == 0 || l > 1000))
		return send_error(c->con, 400, "limit must be 1 to 1000");
	cJSON *doc = NULL;
	int rc = conn_changes(c->s->conn, a, (size_t)l, &doc, &c->e);
	return reply(c, rc, doc, 200);
}

/* POST /v1/pushes:retry {"record_id": ID} or {"all": true} */
static enum MHD_Result pushes_retry(struct ctx *c)
{
	c->route = R_PUSHES;
	static const char *const keys[] = {"record_id", NULL};
	/* "all" is the one boolean: checked here, the rest must be strings */
	cJSON *all = cJSON_DetachItemFromObjectCaseSensitive(c->body, "all");
	int rc = all && !cJSON_IsBool(all)
	             ? err_set(&c->e, ERR_INVALID, "field 'all' must be true or false")
	             : check_keys(c->body, keys, &c->e);
	const char *id = rc == 0 ? jstr(c->body, "record_id") : NULL;
	int want_all = cJSON_IsTrue(all);
	cJSON_Delete(all);
	if (rc == 0 && (id != NULL) == want_all)
		rc = err_set(&c->e, ERR_INVALID, "give \"record_id\", or \"all\": true");
	size_t n = 0;
	if (rc == 0)
		rc = conn_pushes_retry(c->s->conn, id, &n, &c->e);
	if (rc == 0 && n)
		sidecar_kick(c->s);
	cJSON *doc = NULL;
	if (rc == 0) {
		doc = cJSON_CreateObject();
		cJSON_AddNumberToObject(doc, "released", (double)n);
	}
	return reply(c, rc, doc, 200);
}

static enum MHD_Result metrics(struct ctx *c);

const char *api_allowed_methods(const char *url)
{
	static const struct {
		const char *path, *allow;
	} fixed[] = {
	    {"/healthz", "GET"},     {"/readyz", "GET"},
	    {"/metrics", "GET"},     {"/v1/suppression/check", "POST"},
	    {"/v1/optouts", "POST"}, {"/v1/contacts:batch", "POST"},
	    {"/v1/changes", "GET"},  {"/v1/pushes:retry", "POST"},
	    {"/v1/status", "GET"},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0)
			return fixed[i].allow;
	if (strncmp(url, "/v1/conflicts", 13) == 0 && (url[13] == '\0' || url[13] == '/')) {
		uint64_t id;
		int kind = api_conflict_path(url + 13, &id);
		return kind < 0 ? NULL : kind == API_CONFLICT_RESOLVE ? "POST" : "GET";
	}
	if (strncmp(url, "/v1/contacts/", 13) == 0 && url[13]) {
		/* the email part may be anything up to the request's size limit; an
		 * invalid one is the handler's 422, not a routing matter */
		static const struct {
			const char *sub, *allow;
		} subs[] = {{"", "GET, DELETE"}, {"/authorization", "PUT"},
		            {"/source", "PUT"},  {"/resubscribe", "POST"},
		            {"/history", "GET"}, {"/export", "GET"}};
		char *rest = strdup(url + 13);
		const char *email, *sub, *allow = NULL;
		if (rest && api_contact_path(rest, &email, &sub) == 0)
			for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
				if (strcmp(sub, subs[i].sub) == 0)
					allow = subs[i].allow;
		free(rest);
		return allow;
	}
	return NULL;
}

/* Whether method is one of allow's comma-separated methods. */
static int method_allowed(const char *allow, const char *method)
{
	size_t ml = strlen(method);
	for (const char *p = allow; *p;) {
		size_t wl = strcspn(p, ",");
		if (wl == ml && strncmp(p, method, ml) == 0)
			return 1;
		p += wl;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return 0;
}

static enum MHD_Result route(struct ctx *c)
{
	const char *url = c->url, *m = c->method;
	/* /v1 asks for the token first, whatever the path or method */
	if (strncmp(url, "/v1/", 4) == 0 && !bearer_ok(c->s, c->con))
		return send_error(c->con, 401, "missing or wrong bearer token");
	/* a known path with another method: 405 naming the methods it takes */
	const char *allow = api_allowed_methods(url);
	if (allow == NULL)
		return send_error(c->con, 404, "no such resource");
	if (!method_allowed(allow, m)) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s is not allowed here; use %s", m, allow);
		return send_error_with(c->con, 405, msg, "Allow", allow);
	}
	if (strcmp(url, "/healthz") == 0) {
		c->route = R_HEALTH;
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "status", "ok");
		return send_json(c->con, 200, doc);
	}
	if (strcmp(url, "/readyz") == 0) {
		c->route = R_READY;
		char why[256];
		int ok = sidecar_ready(c->s, why, sizeof(why));
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "status", ok ? "ready" : "not_ready");
		if (!ok)
			cJSON_AddStringToObject(doc, "reason", why);
		return send_json(c->con, ok ? 200 : 503, doc);
	}
	if (strcmp(url, "/metrics") == 0) {
		c->route = R_METRICS;
		return metrics(c);
	}
	int has_body = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0;
	if (has_body && c->body == NULL)
		return send_error(c->con, 400, "the body is not valid JSON");
	if (strcmp(url, "/v1/suppression/check") == 0 && strcmp(m, "POST") == 0)
		return suppression_check(c);
	if (strcmp(url, "/v1/optouts") == 0 && strcmp(m, "POST") == 0)
		return optouts(c);
	if (strcmp(url, "/v1/contacts:batch") == 0 && strcmp(m, "POST") == 0)
		return batch(c);
	if (strcmp(url, "/v1/changes") == 0 && strcmp(m, "GET") == 0)
		return changes(c);
	if (strcmp(url, "/v1/pushes:retry") == 0)
		return pushes_retry(c);
	if (strcmp(url, "/v1/status") == 0) {
		c->route = R_STATUS;
		cJSON *doc = NULL;
		int rc = conn_status(c->s->conn, &doc, &c->e);
		return reply(c, rc, doc, 200);
	}
	if (strncmp(url, "/v1/conflicts", 13) == 0 && (url[13] == '\0' || url[13] == '/'))
		return conflicts(c, url + 13);
	if (strncmp(url, "/v1/contacts/", 13) == 0 && url[13]) {
		char *rest = strdup(url + 13);
		if (rest == NULL)
			return MHD_NO;
		enum MHD_Result r = contact_routes(c, rest);
		free(rest);
		return r;
	}
	return send_error(c->con, 404, "no such resource");
}

/* ---- metrics ---- */

static const char *status_name(int k)
{
	static char names[N_STATUS][8];
	if (k == N_STATUS - 1)
		return "other";
	if (names[k][0] == '\0')
		snprintf(names[k], sizeof(names[k]), "%u", statuses[k]);
	return names[k];
}

static enum MHD_Result metrics(struct ctx *c)
{
	struct sidecar *s = c->s;
	struct buf b;
	struct err e;
	buf_init(&b, 1 << 20);
	struct metrics m;
	pthread_mutex_lock(&s->mu);
	m = s->m;
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
	cJSON *st = NULL;
	if (conn_status(s->conn, &st, &e) == 0) {
		const cJSON *p = cJSON_GetObjectItem(st, "pushes");
		buf_printf(&b, &e,
		           "# HELP optsync_pushes Salesforce writes waiting, by state.\n"
		           "# TYPE optsync_pushes gauge\n"
		           "optsync_pushes{state=\"queued\"} %.0f\n"
		           "optsync_pushes{state=\"parked\"} %.0f\n"
		           "# HELP optsync_open_conflicts Conflicts waiting for an admin.\n"
		           "# TYPE optsync_open_conflicts gauge\n"
		           "optsync_open_conflicts %.0f\n",
		           cJSON_GetNumberValue(cJSON_GetObjectItem(p, "queued")),
		           cJSON_GetNumberValue(cJSON_GetObjectItem(p, "parked")),
		           cJSON_GetNumberValue(cJSON_GetObjectItem(st, "open_conflicts")));
		const cJSON *ret =
		    cJSON_GetObjectItem(cJSON_GetObjectItem(st, "retention"), "purged_total");
		if (ret)
			buf_printf(
			    &b, &e,
			    "# HELP optsync_retention_purged_total What retention runs "
			    "removed, by kind.\n"
			    "# TYPE optsync_retention_purged_total counter\n"
			    "optsync_retention_purged_total{what=\"events\"} %.0f\n"
			    "optsync_retention_purged_total{what=\"persons\"} %.0f\n"
			    "optsync_retention_purged_total{what=\"resolved_conflicts\"} %.0f\n",
			    cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "events")),
			    cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "persons")),
			    cJSON_GetNumberValue(cJSON_GetObjectItem(ret, "resolved_conflicts")));
		const cJSON *api = cJSON_GetObjectItem(st, "salesforce_api");
		if (api)
			buf_printf(&b, &e,
			           "# HELP optsync_salesforce_api_requests Daily API requests used "
			           "and allowed (Sforce-Limit-Info).\n"
			           "# TYPE optsync_salesforce_api_requests gauge\n"
			           "optsync_salesforce_api_requests{kind=\"used\"} %.0f\n"
			           "optsync_salesforce_api_requests{kind=\"limit\"} %.0f\n",
			           cJSON_GetNumberValue(cJSON_GetObjectItem(api, "daily_used")),
			           cJSON_GetNumberValue(cJSON_GetObjectItem(api, "daily_max")));
		buf_printf(&b, &e,
		           "# HELP optsync_cursor_lag_seconds Time since the last pull that "
		           "read everything started, by object: every change in Salesforce "
		           "before that is in the ledger.\n"
		           "# TYPE optsync_cursor_lag_seconds gauge\n");
		const cJSON *cur;
		cJSON_ArrayForEach(cur, cJSON_GetObjectItem(st, "cursors"))
		{
			const cJSON *lag = cJSON_GetObjectItem(cur, "lag_seconds");
			if (cJSON_IsNumber(lag))
				buf_printf(&b, &e,
				           "optsync_cursor_lag_seconds{object=\"%s\"} %.0f\n",
				           cur->string, lag->valuedouble);
		}
	}
	const cJSON *h = cJSON_GetObjectItem(st, "health");
	if (h) {
		const char *ok = cJSON_GetStringValue(cJSON_GetObjectItem(h, "last_success_at"));
		int64_t ms;
		if (ok && time_parse(ok, &ms) == 0)
			buf_printf(&b, &e,
			           "# HELP optsync_last_success_timestamp_seconds When the last "
			           "sync cycle that succeeded started.\n"
			           "# TYPE optsync_last_success_timestamp_seconds gauge\n"
			           "optsync_last_success_timestamp_seconds %.3f\n",
			           (double)ms / 1000.0);
		buf_printf(&b, &e,
		           "# HELP optsync_sync_failures_in_a_row Sync cycles failed since the "
		           "last one that succeeded.\n"
		           "# TYPE optsync_sync_failures_in_a_row gauge\n"
		           "optsync_sync_failures_in_a_row %.0f\n",
		           cJSON_GetNumberValue(cJSON_GetObjectItem(h, "failures_in_a_row")));
	}
	cJSON_Delete(st);
	buf_printf(&b, &e,
	           "# HELP optsync_http_requests_total API requests by route and status.\n"
	           "# TYPE optsync_http_requests_total counter\n");
	for (int r = 0; r <= R_OTHER; r++)
		for (int k = 0; k < N_STATUS; k++)
			if (m.requests[r][k])
				buf_printf(
				    &b, &e,
				    "optsync_http_requests_total{route=\"%s\",status=\"%s\"} "
				    "%llu\n",
				    route_names[r], status_name(k),
				    (unsigned long long)m.requests[r][k]);
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
	size_t len;
	char *text = buf_detach(&b, &len);
	return send_text(c->con, 200, "text/plain; version=0.0.4", text, len, NULL, NULL);
}

/* ---- libmicrohttpd plumbing ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct api *a = cls;
	struct req *r = *con_cls;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		buf_init(&r->body, API_BODY_MAX);
		r->start_us = now_us();
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		struct err e;
		if (!r->too_big && buf_append(&r->body, upload, *upload_size, &e))
			r->too_big = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	struct ctx c = {a->s, con, method, url, NULL, {0}, R_OTHER, 0};
	enum MHD_Result res;
	if (r->too_big) {
		res = send_error(con, 413, "the request body is larger than 64 KiB");
		count(a->s, R_OTHER, 413, r->start_us);
		return res;
	}
	if (r->body.len)
		c.body = cJSON_ParseWithLength(r->body.data, r->body.len);
	res = route(&c);
	cJSON_Delete(c.body);
	/* the status was decided inside; count it from the response code */
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(con, MHD_CONNECTION_INFO_HTTP_STATUS);
	count(a->s, c.route, ci ? ci->http_status : 0, r->start_us);
	return res;
}

static void on_done(void *cls, struct MHD_Connection *con, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)con;
	(void)toe;
	struct req *r = *con_cls;
	if (r) {
		buf_free(&r->body);
		free(r);
	}
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) ERR_PRINTF(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("api.http", "%s", msg);
}

static int listen_on(const char *spec, char **unix_path, struct err *e)
{
	*unix_path = NULL;
	int fd;
	if (strncmp(spec, "unix:", 5) == 0) {
		const char *path = spec + 5;
		struct sockaddr_un sa = {0};
		sa.sun_family = AF_UNIX;
		if (strlen(path) >= sizeof(sa.sun_path))
			return err_set(e, ERR_CONFIG, "api.listen: socket path too long");
		memcpy(sa.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return err_sys(e, ERR_IO, errno, "api.listen: socket");
		unlink(path); /* a stale socket from a previous run */
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0660) != 0 ||
		    listen(fd, 128) != 0) {
			int saved = errno;
			close(fd);
			return err_sys(e, ERR_IO, saved, "api.listen: cannot listen on %s", spec);
		}
		*unix_path = strdup(path);
		return fd;
	}
	char host[256];
	const char *colon = strrchr(spec, ':');
	size_t hl = (size_t)(colon - spec);
	if (hl >= sizeof(host))
		return err_set(e, ERR_CONFIG, "api.listen: host too long");
	memcpy(host, spec, hl);
	host[hl] = '\0';
	char *h = host;
	if (h[0] == '[' && hl > 1 && h[hl - 1] == ']') {
		h[hl - 1] = '\0';
		h++;
	}
	struct addrinfo hints = {0}, *ai;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(h, colon + 1, &hints, &ai);
	if (gai)
		return err_set(e, ERR_CONFIG, "api.listen %s: %s", spec, gai_strerror(gai));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0) {
		int saved = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return err_sys(e, ERR_IO, saved, "api.listen: cannot listen on %s", spec);
	}
	freeaddrinfo(ai);
	return fd;
}

int api_start(struct api **out, struct sidecar *s, struct err *e)
{
	*out = NULL;
	struct api *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	a->s = s;
	a->fd = listen_on(s->cfg->api.listen, &a->unix_path, e);
	if (a->fd < 0) {
		free(a);
		return e->code;
	}
	/* a thread per connection: a slow request (an admin check, an export,
	 * a bulk batch) holds up only its own connection, never the
	 * application's suppression checks on the others */
	a->d = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	        MHD_USE_ITC | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, a,
	    /* the logger first: options before it would log through MHD's own */
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET,
	    (MHD_socket)a->fd, MHD_OPTION_THREAD_STACK_SIZE, (size_t)API_THREAD_STACK,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONNECTIONS_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)(128 << 10), MHD_OPTION_NOTIFY_COMPLETED, on_done, a, MHD_OPTION_END);
	if (a->d == NULL) {
		close(a->fd);
		free(a->unix_path);
		free(a);
		return err_set(e, ERR_IO, "cannot start the HTTP server on %s", s->cfg->api.listen);
	}
	log_info("api.listen", "local API on %s", s->cfg->api.listen);
	*out = a;
	return 0;
}

void api_stop(struct api *a)
{
	if (a == NULL)
		return;
	MHD_quiesce_daemon(a->d); /* stop accepting; finish what is in flight */
	MHD_stop_daemon(a->d);
	close(a->fd);
	if (a->unix_path) {
		unlink(a->unix_path);
		free(a->unix_path);
	}
	free(a);
}
