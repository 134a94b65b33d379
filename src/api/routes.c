/* The routes: a thin adapter from HTTP to the connector's use cases. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
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
#include "util/email.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/timefmt.h"

/* ---- authentication ---- */

int api_clients_load(const struct config *cfg, struct api_client **out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	size_t want = cfg->api.nclients ? cfg->api.nclients : 1;
	struct api_client *v = calloc(want, sizeof(*v));
	if (v == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	if (cfg->api.nclients) {
		for (size_t i = 0; i < cfg->api.nclients; i++) {
			snprintf(v[i].name, sizeof(v[i].name), "%s", cfg->api.clients[i].name);
			memcpy(v[i].sha256, cfg->api.clients[i].sha256, 32);
			v[i].scopes = cfg->api.clients[i].scopes;
		}
	} else {
		char *tok = NULL;
		size_t len = 0;
		int rc = config_secret(cfg, CONFIG_SECRET_API_TOKEN, &tok, &len, e);
		if (rc) {
			free(v);
			err_prefix(e,
			           "optsync run needs API clients ([[api.clients]]) or one token "
			           "(api.token_file): ");
			return rc;
		}
		SHA256((const unsigned char *)tok, len, v[0].sha256);
		secret_free(tok, len);
		snprintf(v[0].name, sizeof(v[0].name), "default");
		v[0].scopes = CONFIG_SCOPE_ALL;
	}
	*out = v;
	*n = want;
	return 0;
}

/* The client whose token the request bears, or NULL. The token's SHA-256
 * is compared with every client's in constant time: which one matched, and
 * where, does not show in the time taken. */
const struct api_client *http_client_of(struct sidecar *s, struct MHD_Connection *con)
{
	const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Authorization");
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return NULL;
	uint8_t d[32];
	SHA256((const unsigned char *)h + 7, strlen(h + 7), d);
	const struct api_client *found = NULL;
	for (size_t i = 0; i < s->nclients; i++) {
		int same = CRYPTO_memcmp(d, s->clients[i].sha256, 32) == 0;
		if (same && found == NULL)
			found = &s->clients[i];
	}
	return found;
}

/* The client's address as a rate-limit key (all unix-socket clients are
 * one); its length. */
size_t http_client_key(struct MHD_Connection *con, uint8_t key[RATELIMIT_KEY_MAX])
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
int http_admin_of(struct sidecar *s, struct MHD_Connection *con, const char *email,
                  struct conn_actor *who, char *name, size_t cap, int *retry_after, struct err *e)
{
	uint8_t key[RATELIMIT_KEY_MAX];
	size_t kl = http_client_key(con, key);
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

/* ---- routes ---- */

enum MHD_Result http_reply(struct ctx *c, int rc, cJSON *doc, unsigned ok_status)
{
	if (rc) {
		cJSON_Delete(doc);
		if (c->retry_after > 0) {
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", c->retry_after);
			return http_send_error_with(c->con, http_status_of(rc), c->e.msg,
			                            "Retry-After", ra);
		}
		return http_send_error(c->con, http_status_of(rc), c->e.msg);
	}
	return http_send_json(c->con, ok_status, doc);
}

int api_contact_path(char *rest, const char **email, const char **sub)
{
	static const char *const subs[] = {
	    "/authorization", "/source", "/resubscribe", "/history", "/export", "/consents", NULL};
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
		return http_send_error(c->con, 404, "no such resource");
	cJSON *doc = NULL;
	int rc;
	const char *m = c->method;
	if (strcmp(sub, "") == 0 && strcmp(m, "GET") == 0) {
		c->route = R_CONTACT;
		rc = conn_contact_show(c->s->conn, email, &doc, &c->e);
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "") == 0 && strcmp(m, "DELETE") == 0) {
		c->route = R_ERASE;
		struct conn_actor who;
		char name[128];
		rc = http_admin_of(c->s, c->con, email, &who, name, sizeof(name), &c->retry_after,
		                   &c->e);
		if (rc == 0)
			rc = conn_contact_erase(c->s->conn, &who, email, &doc, &c->e);
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/history") == 0 && strcmp(m, "GET") == 0) {
		c->route = R_HISTORY;
		/* on the access trail first: nothing is shown unrecorded */
		rc = conn_access_record(c->s->conn, &c->actor, email, "history",
		                        "GET /v1/contacts/{email}/history", &c->e);
		if (rc == 0)
			rc = conn_contact_history(c->s->conn, email, &doc, &c->e);
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/export") == 0 && strcmp(m, "GET") == 0) {
		c->route = R_EXPORT;
		const char *fmt =
		    MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "format");
		if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0)
			return http_send_error(c->con, 400, "format must be csv or json");
		rc = conn_access_record(c->s->conn, &c->actor, email, "export",
		                        fmt && strcmp(fmt, "csv") == 0
		                            ? "GET /v1/contacts/{email}/export?format=csv"
		                            : "GET /v1/contacts/{email}/export",
		                        &c->e);
		if (rc)
			return http_reply(c, rc, NULL, 200);
		if (fmt && strcmp(fmt, "csv") == 0) {
			char *csv = NULL;
			rc = conn_contact_export_csv(c->s->conn, email, &csv, &c->e);
			if (rc)
				return http_send_error(c->con, http_status_of(rc), c->e.msg);
			return http_send_text(c->con, 200, "text/csv; charset=utf-8", csv,
			                      strlen(csv), "Content-Disposition",
			                      "attachment; filename=\"export.csv\"");
		}
		rc = conn_contact_export(c->s->conn, email, &doc, &c->e);
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/authorization") == 0 && strcmp(m, "PUT") == 0) {
		c->route = R_AUTH;
		struct conn_facts_change ch = {0};
		rc = http_parse_authorization(c->body, &ch, "type is required", &c->e);
		if (rc == 0)
			rc = conn_contact_set(c->s->conn, &c->actor, email, &ch, &doc, &c->e);
		if (rc == 0)
			sidecar_kick(c->s);
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/source") == 0 && strcmp(m, "PUT") == 0) {
		c->route = R_SOURCE;
		struct conn_facts_change ch = {0};
		rc = http_parse_source(c->body, &ch, "type is required", &c->e);
		if (rc == 0)
			rc = conn_contact_set(c->s->conn, &c->actor, email, &ch, &doc, &c->e);
		if (rc == 0)
			sidecar_kick(c->s);
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/consents") == 0 && strcmp(m, "POST") == 0) {
		c->route = R_CONSENT;
		static const char *const keys[] = {"purpose", "consent_date", "evidence_ref",
		                                   "evidence_sha256", NULL};
		struct conn_consent in = {0};
		struct conn_actor who = c->actor;
		char name[128];
		rc = http_check_keys(c->body, keys, &c->e);
		/* rule P2 asks for an admin after an opt-out: given, it acts */
		if (rc == 0 &&
		    MHD_lookup_connection_value(c->con, MHD_HEADER_KIND, "X-Optsync-Admin"))
			rc = http_admin_of(c->s, c->con, email, &who, name, sizeof(name),
			                   &c->retry_after, &c->e);
		if (rc == 0)
			rc = http_jtime(c->body, "consent_date", &in.consent_date, &c->e);
		if (rc == 0) {
			in.email = email;
			in.purpose = http_jstr(c->body, "purpose");
			in.evidence_ref = http_jstr(c->body, "evidence_ref");
			in.evidence_sha256 = http_jstr(c->body, "evidence_sha256");
			rc = conn_consent(c->s->conn, &who, &in, &doc, &c->e);
		}
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(sub, "/resubscribe") == 0 && strcmp(m, "POST") == 0) {
		c->route = R_RESUB;
		static const char *const keys[] = {"consent_date", "purpose", "evidence_ref",
		                                   "evidence_sha256", NULL};
		struct conn_evidence ev = {0};
		struct conn_actor who;
		char name[128];
		rc = http_admin_of(c->s, c->con, email, &who, name, sizeof(name), &c->retry_after,
		                   &c->e);
		if (rc == 0)
			rc = http_check_keys(c->body, keys, &c->e);
		if (rc == 0)
			rc = http_jtime(c->body, "consent_date", &ev.consent_date, &c->e);
		if (rc == 0) {
			ev.purpose = http_jstr(c->body, "purpose");
			ev.evidence_ref = http_jstr(c->body, "evidence_ref");
			ev.evidence_sha256 = http_jstr(c->body, "evidence_sha256");
			rc = conn_resubscribe(c->s->conn, &who, email, &ev, &doc, &c->e);
		}
		if (rc == 0)
			sidecar_kick(c->s);
		return http_reply(c, rc, doc, 200);
	}
	return http_send_error(c->con, 405, "method not allowed on this resource");
}

static enum MHD_Result suppression_check(struct ctx *c)
{
	c->route = R_SUPPRESSION;
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(c->body, "emails");
	if (!cJSON_IsObject(c->body) || !cJSON_IsArray(arr))
		return http_send_error(c->con, 400, "the body must be {\"emails\": [...]}");
	int n = cJSON_GetArraySize(arr);
	if (n > 1000)
		return http_send_error(c->con, 413, "at most 1,000 emails per check");
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
		rc = conn_suppressed(c->s->conn, emails, (size_t)n, http_jstr(c->body, "purpose"),
		                     out, valid, &c->e);
	cJSON *doc = NULL;
	if (rc == 0) {
		/* one malformed address does not cost the others their answer */
		doc = cJSON_CreateObject();
		cJSON *res = cJSON_AddObjectToObject(doc, "results");
		cJSON *bad = cJSON_AddArrayToObject(doc, "invalid");
		char q[EMAIL_ECHO_MAX];
		for (int k = 0; k < n; k++)
			if (valid[k])
				cJSON_AddBoolToObject(res, emails[k], out[k]);
			else /* a body's bytes that are not UTF-8 are not echoed as such */
				cJSON_AddItemToArray(bad,
				                     cJSON_CreateString(email_echo(emails[k], q)));
	}
	free(emails);
	free(out);
	free(valid);
	return http_reply(c, rc, doc, 200);
}

static enum MHD_Result optouts(struct ctx *c)
{
	c->route = R_OPTOUTS;
	struct conn_optout o;
	int rc = api_optout_parse(c->body, &o, &c->e);
	cJSON *doc = NULL;
	if (rc == 0)
		rc = conn_optout(c->s->conn, &c->actor, &o, &doc, &c->e);
	if (rc == 0)
		sidecar_kick(c->s);
	return http_reply(c, rc, doc, 202); /* durable in the ledger */
}

/* POST /v1/unsubscribe-links: {"emails": [...], "purpose"?, "campaign"?}
 * -> {"links": {EMAIL: {url, list_unsubscribe, list_unsubscribe_post} or
 * {error}}}. Writes nothing. */
static enum MHD_Result unsubscribe_links(struct ctx *c)
{
	c->route = R_LINKS;
	if (c->s->links == NULL)
		return http_send_error(
		    c->con, 409,
		    "unsubscribe links need an [unsubscribe] section with key_file "
		    "in optsync's configuration");
	const cJSON *emails = cJSON_GetObjectItemCaseSensitive(c->body, "emails");
	const cJSON *it;
	if (!cJSON_IsObject(c->body) || !cJSON_IsArray(emails))
		return http_send_error(c->con, 400,
		                       "the body must be {\"emails\": [...], \"purpose\"?, "
		                       "\"campaign\"?}");
	cJSON_ArrayForEach(it, c->body)
	{
		if (strcmp(it->string, "emails") != 0 && strcmp(it->string, "purpose") != 0 &&
		    strcmp(it->string, "campaign") != 0) {
			snprintf(c->e.msg, sizeof(c->e.msg), "unknown member '%.40s'", it->string);
			return http_send_error(c->con, 400, c->e.msg);
		}
		if (it != emails && !cJSON_IsString(it) && !cJSON_IsNull(it)) {
			snprintf(c->e.msg, sizeof(c->e.msg), "%s must be a string", it->string);
			return http_send_error(c->con, 400, c->e.msg);
		}
	}
	int n = cJSON_GetArraySize(emails);
	if (n == 0 || n > LINKS_PER_CALL)
		return http_send_error(c->con, n ? 413 : 400, "1 to 1,000 emails per call");
	cJSON_ArrayForEach(it, emails)
	{
		if (!cJSON_IsString(it))
			return http_send_error(c->con, 400, "emails must be strings");
	}
	const char *purpose = http_jstr(c->body, "purpose");
	const char *campaign = http_jstr(c->body, "campaign");
	struct conn_link l;
	/* the purpose and campaign hold for every link: checked once */
	int rc = conn_link_check(c->s->links, purpose, campaign, &c->e);
	if (rc)
		return http_reply(c, rc, NULL, 200);
	cJSON *doc = cJSON_CreateObject(), *links = cJSON_AddObjectToObject(doc, "links");
	cJSON_ArrayForEach(it, emails)
	{
		cJSON *one = cJSON_CreateObject();
		struct err e = {0};
		if (conn_link_mint(c->s->links, it->valuestring, purpose, campaign, &l, &e) == 0) {
			cJSON_AddStringToObject(one, "url", l.url);
			cJSON_AddStringToObject(one, "list_unsubscribe", l.list_unsubscribe);
			cJSON_AddStringToObject(one, "list_unsubscribe_post",
			                        CONN_LIST_UNSUBSCRIBE_POST);
		} else {
			cJSON *er = cJSON_AddObjectToObject(one, "error");
			cJSON_AddStringToObject(er, "code", http_code_of(http_status_of(e.code)));
			cJSON_AddStringToObject(er, "message", e.msg);
		}
		/* a repeated email keeps its first link */
		char q[EMAIL_ECHO_MAX];
		const char *key = email_echo(it->valuestring, q);
		if (cJSON_GetObjectItemCaseSensitive(links, key))
			cJSON_Delete(one);
		else
			cJSON_AddItemToObject(links, key, one);
	}
	return http_send_json(c->con, 200, doc);
}

/* One update of POST /v1/contacts:batch into r; a row that cannot be read
 * gets r->error (msg holds it). */
static enum MHD_Result batch(struct ctx *c)
{
	enum { MSG = 160 };
	c->route = R_BATCH;
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(c->body, "updates");
	const cJSON *aon = cJSON_GetObjectItemCaseSensitive(c->body, "all_or_none");
	if (!cJSON_IsArray(rows))
		return http_send_error(c->con, 400, "the body must be {\"updates\": [...]}");
	if (aon && !cJSON_IsBool(aon))
		return http_send_error(c->con, 400, "all_or_none must be true or false");
	int n = cJSON_GetArraySize(rows);
	if (n > 1000)
		return http_send_error(c->con, 413, "at most 1,000 updates per call");
	struct conn_set_row *in = calloc((size_t)n + 1, sizeof(*in));
	char *msgs = malloc(((size_t)n + 1) * MSG);
	if (in == NULL || msgs == NULL) {
		free(in);
		free(msgs);
		return http_send_error(c->con, http_status_of(ERR_NOMEM), "out of memory");
	}
	int i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, rows)
	{
		in[i].row = (size_t)i;
		http_batch_row(it, &in[i], msgs + (size_t)i * MSG, MSG);
		i++;
	}
	struct conn_bulk_opts o = {cJSON_IsTrue(aon), NULL, NULL};
	struct conn_bulk_result res;
	int rc = conn_contact_set_many(c->s->conn, &c->actor, in, (size_t)n, &o, &res, &c->e);
	cJSON *doc = NULL;
	if (rc == 0 || rc == ERR_INVALID) {
		doc = cJSON_CreateObject();
		if (rc) {
			cJSON *er = cJSON_AddObjectToObject(doc, "error");
			cJSON_AddStringToObject(er, "code", http_code_of(422));
			cJSON_AddStringToObject(er, "message", c->e.msg);
		}
		cJSON *out = cJSON_AddArrayToObject(doc, "results");
		const cJSON *bad = res.bad ? res.bad->child : NULL;
		for (int k = 0; k < n; k++) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddNumberToObject(r, "row", k);
			char q[EMAIL_ECHO_MAX];
			if (in[k].email)
				cJSON_AddStringToObject(r, "email", email_echo(in[k].email, q));
			cJSON_AddBoolToObject(r, "ok", res.ok[k]);
			const cJSON *brow =
			    bad ? cJSON_GetObjectItemCaseSensitive(bad, "row") : NULL;
			if (brow && (int)brow->valuedouble == k) {
				cJSON_AddStringToObject(r, "error", http_jstr(bad, "error"));
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
		return http_send_error(c->con, http_status_of(rc), c->e.msg);
	if (applied)
		sidecar_kick(c->s);
	return http_send_json(c->con, rc ? 422 : 200, doc);
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
		return http_reply(c, rc, doc, 200);
	}
	if (kind == API_CONFLICT_RESOLVE && strcmp(c->method, "POST") == 0) {
		static const char *const keys[] = {"action",       "consent_date",    "purpose",
		                                   "evidence_ref", "evidence_sha256", NULL};
		struct conn_actor who;
		char name[128];
		struct conn_evidence ev = {0};
		rc = http_admin_of(c->s, c->con, NULL, &who, name, sizeof(name), &c->retry_after,
		                   &c->e);
		if (rc == 0)
			rc = http_check_keys(c->body, keys, &c->e);
		enum conn_resolution how = CONN_KEEP_OPTOUT;
		if (rc == 0)
			rc = conn_resolution_parse(http_jstr(c->body, "action"), &how, &c->e);
		if (rc == 0)
			rc = http_jtime(c->body, "consent_date", &ev.consent_date, &c->e);
		if (rc == 0) {
			ev.purpose = http_jstr(c->body, "purpose");
			ev.evidence_ref = http_jstr(c->body, "evidence_ref");
			ev.evidence_sha256 = http_jstr(c->body, "evidence_sha256");
			rc = conn_conflict_resolve(c->s->conn, &who, id, how, &ev, &doc, &c->e);
		}
		if (rc == 0)
			sidecar_kick(c->s);
		return http_reply(c, rc, doc, 200);
	}
	if (kind == API_CONFLICT_SHOW && strcmp(c->method, "GET") == 0) {
		rc = conn_conflict_show(c->s->conn, id, &doc, &c->e);
		return http_reply(c, rc, doc, 200);
	}
	return http_send_error(c->con, 404, "no such resource");
}

static enum MHD_Result changes(struct ctx *c)
{
	c->route = R_CHANGES;
	const char *after = MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "after");
	const char *limit = MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "limit");
	char *end = NULL;
	uint64_t a = 0;
	if (after && conn_seq_parse(after, &a, &c->e))
		return http_send_error(c->con, 400, c->e.msg);
	unsigned long long l = limit ? strtoull(limit, &end, 10) : 100;
	if (limit && (*limit == '\0' || *end || l == 0 || l > 1000))
		return http_send_error(c->con, 400, "limit must be 1 to 1000");
	cJSON *doc = NULL;
	int rc = conn_changes(c->s->conn, a, (size_t)l, &doc, &c->e);
	return http_reply(c, rc, doc, 200);
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
	             : http_check_keys(c->body, keys, &c->e);
	const char *id = rc == 0 ? http_jstr(c->body, "record_id") : NULL;
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
	return http_reply(c, rc, doc, 200);
}

const char *api_route_lookup(const char *url, const char *method, unsigned *scope)
{
	/* each path: the methods it takes, the scope its first method needs,
	 * and (contacts/{email}) another method's own scope */
	static const struct {
		const char *path, *allow;
		unsigned scope;
	} fixed[] = {
	    {"/healthz", "GET", 0},
	    {"/readyz", "GET", 0},
	    {"/metrics", "GET", 0},
	    {"/v1/suppression/check", "POST", CONFIG_SCOPE_CHECK},
	    {"/v1/optouts", "POST", CONFIG_SCOPE_OPTOUT},
	    {"/v1/unsubscribe-links", "POST", CONFIG_SCOPE_OPTOUT},
	    {"/v1/contacts:batch", "POST", CONFIG_SCOPE_WRITE},
	    {"/v1/pushes:retry", "POST", CONFIG_SCOPE_WRITE},
	    {"/v1/changes", "GET", CONFIG_SCOPE_READ},
	    {"/v1/status", "GET", CONFIG_SCOPE_READ},
	    {"/v1/access", "GET", CONFIG_SCOPE_READ},
	};
	*scope = 0;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0) {
			*scope = fixed[i].scope;
			return fixed[i].allow;
		}
	if (strncmp(url, "/v1/conflicts", 13) == 0 && (url[13] == '\0' || url[13] == '/')) {
		uint64_t id;
		int kind = api_conflict_path(url + 13, &id);
		if (kind < 0)
			return NULL;
		*scope = kind == API_CONFLICT_RESOLVE ? CONFIG_SCOPE_WRITE : CONFIG_SCOPE_READ;
		return kind == API_CONFLICT_RESOLVE ? "POST" : "GET";
	}
	if (strncmp(url, "/v1/contacts/", 13) == 0 && url[13]) {
		/* the email part may be anything up to the request's size limit; an
		 * invalid one is the handler's 422, not a routing matter */
		static const struct {
			const char *sub, *allow;
			unsigned scope;
			const char *other; /* a second method with its own scope */
			unsigned other_scope;
		} subs[] = {
		    {"", "GET, DELETE", CONFIG_SCOPE_CHECK, "DELETE", CONFIG_SCOPE_WRITE},
		    {"/authorization", "PUT", CONFIG_SCOPE_WRITE, NULL, 0},
		    {"/source", "PUT", CONFIG_SCOPE_WRITE, NULL, 0},
		    {"/resubscribe", "POST", CONFIG_SCOPE_WRITE, NULL, 0},
		    {"/history", "GET", CONFIG_SCOPE_READ, NULL, 0},
		    {"/export", "GET", CONFIG_SCOPE_EXPORT, NULL, 0},
		    {"/consents", "POST", CONFIG_SCOPE_WRITE, NULL, 0},
		};
		char *rest = strdup(url + 13);
		const char *email, *sub, *allow = NULL;
		if (rest && api_contact_path(rest, &email, &sub) == 0)
			for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
				if (strcmp(sub, subs[i].sub) == 0) {
					allow = subs[i].allow;
					*scope = subs[i].other && strcmp(method, subs[i].other) == 0
					             ? subs[i].other_scope
					             : subs[i].scope;
				}
		free(rest);
		return allow;
	}
	return NULL;
}

const char *api_allowed_methods(const char *url)
{
	unsigned scope;
	return api_route_lookup(url, "", &scope);
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

enum MHD_Result http_route(struct ctx *c)
{
	const char *url = c->url, *m = c->method;
	/* /v1 asks for the token first, whatever the path or method */
	if (strncmp(url, "/v1/", 4) == 0) {
		if ((c->client = http_client_of(c->s, c->con)) == NULL)
			return http_send_error(c->con, 401, "missing or wrong bearer token");
		c->actor = (struct conn_actor){CONN_ORIGIN_LOCAL, c->client->name};
	}
	/* a known path with another method: 405 naming the methods it takes */
	unsigned need;
	const char *allow = api_route_lookup(url, m, &need);
	if (allow == NULL)
		return http_send_error(c->con, 404, "no such resource");
	if (!method_allowed(allow, m)) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s is not allowed here; use %s", m, allow);
		return http_send_error_with(c->con, 405, msg, "Allow", allow);
	}
	if (c->client) {
		/* each route asks for its scope; admin routes ask for an admin too */
		if (need == 0 || !(c->client->scopes & need)) {
			char msg[160];
			snprintf(msg, sizeof(msg),
			         "client '%.60s' lacks the '%s' scope this route needs",
			         c->client->name, need ? config_scope_name(need) : "?");
			return http_send_error(c->con, 403, msg);
		}
	}
	if (strcmp(url, "/healthz") == 0) {
		c->route = R_HEALTH;
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "status", "ok");
		return http_send_json(c->con, 200, doc);
	}
	if (strcmp(url, "/readyz") == 0) {
		c->route = R_READY;
		char why[256];
		int ok = sidecar_ready(c->s, why, sizeof(why));
		cJSON *doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "status", ok ? "ready" : "not_ready");
		if (!ok)
			cJSON_AddStringToObject(doc, "reason", why);
		return http_send_json(c->con, ok ? 200 : 503, doc);
	}
	if (strcmp(url, "/metrics") == 0) {
		c->route = R_METRICS;
		return http_metrics(c);
	}
	int has_body = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0;
	if (has_body && c->body == NULL)
		return http_send_error(c->con, 400, "the body is not valid JSON");
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
	if (strcmp(url, "/v1/unsubscribe-links") == 0)
		return unsubscribe_links(c);
	if (strcmp(url, "/v1/access") == 0) {
		c->route = R_ACCESS;
		struct conn_actor who;
		char name[128];
		cJSON *doc = NULL;
		int rc = http_admin_of(c->s, c->con, NULL, &who, name, sizeof(name),
		                       &c->retry_after, &c->e);
		uint64_t after = 0;
		const char *a = MHD_lookup_connection_value(c->con, MHD_GET_ARGUMENT_KIND, "after");
		if (rc == 0 && a && a[0])
			rc = conn_seq_parse(a, &after, &c->e);
		if (rc == 0)
			rc = conn_access_list(c->s->conn, after, 1000, &doc, &c->e);
		return http_reply(c, rc, doc, 200);
	}
	if (strcmp(url, "/v1/status") == 0) {
		c->route = R_STATUS;
		cJSON *doc = NULL;
		struct conn_status *st;
		int rc = conn_status(c->s->conn, true, &st, &c->e);
		if (rc == 0)
			rc = conn_render_status(st, &doc, &c->e);
		conn_status_free(st);
		return http_reply(c, rc, doc, 200);
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
	return http_send_error(c->con, 404, "no such resource");
}
