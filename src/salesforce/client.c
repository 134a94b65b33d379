/* The client: one libcurl handle, the token, retries and classification. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "salesforce/internal.h"
#include "util/log.h"
#include "util/timefmt.h"

#define DEFAULT_MAX_RESPONSE (64u << 20)

static char *dup_opt(const char *s, int *fail)
{
	if (s == NULL)
		return NULL;
	char *d = strdup(s);
	if (d == NULL)
		*fail = 1;
	return d;
}

static void free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

int sf_client_new(struct sf_client **out, const struct sf_options *o, struct err *e)
{
	*out = NULL;
	if (o->login_url == NULL || o->api_version == NULL || o->client_id == NULL)
		return err_set(e, ERR_CONFIG,
		               "salesforce: login_url, api_version and client_id "
		               "are required");
	if (o->auth == SF_AUTH_JWT && (o->private_key == NULL || o->username == NULL))
		return err_set(e, ERR_CONFIG,
		               "salesforce: the jwt flow needs a private key and a "
		               "username");
	if (o->auth == SF_AUTH_CLIENT_CREDENTIALS && o->client_secret == NULL)
		return err_set(e, ERR_CONFIG,
		               "salesforce: client_credentials needs a client secret");
	if (o->auth == SF_AUTH_REFRESH_TOKEN && o->refresh_token == NULL)
		return err_set(e, ERR_CONFIG, "salesforce: refresh_token needs a refresh token");
	struct sf_client *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int fail = 0;
	c->login_url = dup_opt(o->login_url, &fail);
	c->audience = dup_opt(o->audience ? o->audience : o->login_url, &fail);
	c->api_version = dup_opt(o->api_version, &fail);
	c->client_id = dup_opt(o->client_id, &fail);
	c->username = dup_opt(o->username, &fail);
	c->private_key = dup_opt(o->private_key, &fail);
	c->client_secret = dup_opt(o->client_secret, &fail);
	c->refresh_token = dup_opt(o->refresh_token, &fail);
	c->ca_file = dup_opt(o->ca_file, &fail);
	c->auth = o->auth;
	c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 120000;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 5;
	c->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : 500;
	c->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
	c->stop = o->stop;
	c->st.api_used = c->st.api_max = -1;
	buf_init(&c->body, o->max_response ? o->max_response : DEFAULT_MAX_RESPONSE);
	if (RAND_bytes((unsigned char *)&c->rng, sizeof(c->rng)) != 1 || c->rng == 0)
		c->rng = 0x9e3779b97f4a7c15ull;
	c->curl = curl_easy_init();
	if (fail || c->curl == NULL) {
		sf_client_free(c);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	*out = c;
	return 0;
}

void sf_client_free(struct sf_client *c)
{
	if (c == NULL)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->login_url);
	free(c->audience);
	free(c->api_version);
	free(c->client_id);
	free(c->username);
	free_secret(c->private_key);
	free_secret(c->client_secret);
	free_secret(c->refresh_token);
	free(c->ca_file);
	free_secret(c->token);
	free(c->instance_url);
	buf_free(&c->body);
	free(c);
}

void sf_stats_get(const struct sf_client *c, struct sf_stats *out)
{
	*out = c->st;
}

/* ---- classification and backoff ---- */

enum sf_verdict sf_classify(long status, const char *code)
{
	if (status >= 200 && status < 300)
		return SF_OK;
	if (code &&
	    (strcmp(code, "REQUEST_LIMIT_EXCEEDED") == 0 ||
	     strcmp(code, "UNABLE_TO_LOCK_ROW") == 0 || strcmp(code, "SERVER_UNAVAILABLE") == 0))
		return SF_RETRY;
	if (status == 401)
		return SF_REAUTH;
	if (status == 408 || status == 429 || status >= 500 || status == 0)
		return SF_RETRY;
	return SF_PERMANENT;
}

long sf_backoff_ms(long base, long max, int attempt, long retry_after_ms, uint32_t random)
{
	if (retry_after_ms >= 0)
		return retry_after_ms < max ? retry_after_ms : max;
	long d = base;
	for (int i = 1; i < attempt && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	long half = d / 2;
	return half + (long)(random % (uint32_t)(d - half + 1));
}

uint32_t sf_next_random(struct sf_client *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return (uint32_t)(c->rng >> 32);
}

/* Sleep ms, in slices, ending early when the stop flag is raised. */
int sf_sleep(struct sf_client *c, long ms)
{
	while (ms > 0) {
		if (c->stop && *c->stop)
			return -1;
		long slice = ms > 100 ? 100 : ms;
		struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			if (c->stop && *c->stop)
				return -1;
		ms -= slice;
	}
	return 0;
}

/* ---- one HTTP exchange ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct sf_client *c = ud;
	struct err e;
	if (buf_append(&c->body, p, size * n, &e)) {
		c->body_overflow = 1;
		return 0; /* curl reports CURLE_WRITE_ERROR */
	}
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct sf_client *c = ud;
	size_t len = size * n;
	char line[256];
	size_t l = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
	memcpy(line, p, l);
	line[l] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "Sforce-Limit-Info:", 18) == 0) {
		const char *u = strstr(line, "api-usage=");
		long used, max;
		if (u && sscanf(u + 10, "%ld/%ld", &used, &max) == 2) {
			c->st.api_used = used;
			c->st.api_max = max;
		}
	} else if (strncasecmp(line, "Retry-After:", 12) == 0) {
		char *end;
		long s = strtol(line + 12, &end, 10);
		if (end != line + 12 && s >= 0 && s < 86400)
			c->retry_after_ms = s * 1000;
	}
	return len;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
	(void)h;
	(void)ud;
	if (type != CURLINFO_HEADER_OUT && type != CURLINFO_HEADER_IN && type != CURLINFO_TEXT)
		return 0; /* bodies are never logged: they hold personal data and tokens */
	/* one log line per header line; the log writer redacts credentials */
	const char *p = data, *end = data + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n'))
			l--;
		if (l > 0) {
			/* the request line's query string holds SOQL with emails: cut it */
			const char *q = memchr(p, '?', l);
			size_t shown = type == CURLINFO_HEADER_OUT && q ? (size_t)(q - p) : l;
			log_debug("sf.http", "%s %.*s%s",
			          type == CURLINFO_HEADER_OUT  ? ">"
			          : type == CURLINFO_HEADER_IN ? "<"
			                                       : "*",
			          (int)(shown > 400 ? 400 : shown), p, shown < l ? "?..." : "");
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int sf_http(struct sf_client *c, const char *method, const char *url, const char *ctype,
            const char *body, size_t blen, int with_auth, long *status, struct err *e)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	char auth[4096];
	int rc = 0;
	*status = 0;
	buf_reset(&c->body);
	c->body_overflow = 0;
	c->retry_after_ms = -1;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "optsync/" OPTSYNC_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	if (log_enabled(LOG_DEBUG)) {
		curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
		curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (with_auth && c->token) {
		int n = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
		if (n < 0 || (size_t)n >= sizeof(auth)) {
			rc = err_set(e, ERR_REMOTE, "Salesforce access token too long");
			goto out;
		}
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (ctype) {
		char ct[128];
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, ct);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	c->st.requests++;
	c->last_status = 0;
	CURLcode cc = curl_easy_perform(h);
	OPENSSL_cleanse(auth, sizeof(auth));
	if (cc != CURLE_OK) {
		if (c->body_overflow)
			rc = err_set(e, ERR_LIMIT, "Salesforce response larger than %zu bytes",
			             c->body.max);
		else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
		         cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CONNECT_ERROR)
			/* trying again cannot make a certificate trustworthy */
			rc = err_set(e, ERR_REMOTE, "TLS with %s failed: %s", url,
			             curl_easy_strerror(cc));
		else
			rc = err_set(e, ERR_RETRY, "Salesforce request failed: %s",
			             curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	c->last_status = *status;
out:
	curl_slist_free_all(hdrs);
	return rc;
}

/* ---- tokens ---- */

static int form_add(struct buf *b, const char *k, const char *v, struct err *e)
{
	char *ev = curl_easy_escape(NULL, v, 0);
	if (ev == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = buf_printf(b, e, "%s%s=%s", b->len ? "&" : "", k, ev);
	OPENSSL_cleanse(ev, strlen(ev));
	curl_free(ev);
	return rc;
}

static int token_body(struct sf_client *c, struct buf *b, struct err *e)
{
	int rc = 0;
	char *jwt = NULL;
	switch (c->auth) {
	case SF_AUTH_JWT:
		rc = sf_jwt_build(c->private_key, c->client_id, c->username, c->audience,
		                  time_now_ms() / 1000 + 180, &jwt, e);
		if (rc == 0)
			rc = form_add(b, "grant_type",
			              "urn:ietf:params:oauth:grant-type:jwt-bearer", e);
		if (rc == 0)
			rc = form_add(b, "assertion", jwt, e);
		free_secret(jwt);
		return rc;
	case SF_AUTH_CLIENT_CREDENTIALS:
		rc = form_add(b, "grant_type", "client_credentials", e);
		if (rc == 0)
			rc = form_add(b, "client_id", c->client_id, e);
		if (rc == 0)
			rc = form_add(b, "client_secret", c->client_secret, e);
		return rc;
	case SF_AUTH_REFRESH_TOKEN:
		rc = form_add(b, "grant_type", "refresh_token", e);
		if (rc == 0)
			rc = form_add(b, "refresh_token", c->refresh_token, e);
		if (rc == 0)
			rc = form_add(b, "client_id", c->client_id, e);
		if (rc == 0 && c->client_secret)
			rc = form_add(b, "client_secret", c->client_secret, e);
		return rc;
	}
	return err_set(e, ERR_INTERNAL, "unknown auth flow");
}

/* One token request. ERR_RETRY for a transient failure, ERR_REMOTE when
 * Salesforce refused the login. */
static int token_once(struct sf_client *c, struct err *e)
{
	struct buf form;
	buf_init(&form, 64 << 10);
	char url[2048];
	int n = snprintf(url, sizeof(url), "%s/services/oauth2/token", c->login_url);
	if (n < 0 || (size_t)n >= sizeof(url))
		return err_set(e, ERR_CONFIG, "salesforce.login_url too long");
	int rc = token_body(c, &form, e);
	long status = 0;
	if (rc == 0) {
		c->st.token_calls++;
		rc = sf_http(c, "POST", url, "application/x-www-form-urlencoded", form.data,
		             form.len, 0, &status, e);
	}
	buf_free(&form);
	if (rc)
		return rc;
	cJSON *j = cJSON_ParseWithLength(c->body.data ? c->body.data : "", c->body.len);
	if (status != 200) {
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
		const cJSON *desc = cJSON_GetObjectItemCaseSensitive(j, "error_description");
		int retry = status >= 500 || status == 429 || status == 0;
		/* what to check, by flow: the refusals that come from setup */
		const char *hint = "";
		if (!retry && c->auth == SF_AUTH_CLIENT_CREDENTIALS)
			hint = " (the client credentials flow works only on your org's My Domain: "
			       "set salesforce.login_url to https://YOUR-DOMAIN.my.salesforce.com, "
			       "and on the Connected App enable the flow and set its run-as user; "
			       "check client_id and the client secret)";
		else if (!retry && c->auth == SF_AUTH_JWT)
			hint =
			    " (check that the Connected App has the certificate of "
			    "salesforce.private_key_file, that salesforce.username is "
			    "pre-authorized "
			    "for it, and that salesforce.login_url is login or test.salesforce.com "
			    "as the org is production or a sandbox)";
		else if (!retry && c->auth == SF_AUTH_REFRESH_TOKEN)
			hint =
			    " (the refresh token was revoked or expired: issue a new one for the "
			    "Connected App)";
		rc = err_set(e, retry ? ERR_RETRY : ERR_REMOTE,
		             "Salesforce login (%s) refused: HTTP %ld %s%s%s%s",
		             sf_auth_name(c->auth), status,
		             cJSON_IsString(err) ? err->valuestring : "",
		             cJSON_IsString(desc) ? ": " : "",
		             cJSON_IsString(desc) ? desc->valuestring : "", hint);
		cJSON_Delete(j);
		return rc;
	}
	const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "access_token");
	const cJSON *inst = cJSON_GetObjectItemCaseSensitive(j, "instance_url");
	if (!cJSON_IsString(tok) || !cJSON_IsString(inst) || tok->valuestring[0] == '\0' ||
	    (strncmp(inst->valuestring, "https://", 8) != 0 &&
	     strncmp(inst->valuestring, "http://", 7) != 0)) {
		rc = err_set(e, ERR_RETRY,
		             "Salesforce login: the token response lacks access_token or "
		             "instance_url");
	} else {
		free_secret(c->token);
		free(c->instance_url);
		c->token = strdup(tok->valuestring);
		c->instance_url = strdup(inst->valuestring);
		if (c->token == NULL || c->instance_url == NULL)
			rc = err_set(e, ERR_NOMEM, "out of memory");
		else
			log_add_secret(c->token, strlen(c->token));
		size_t il = c->instance_url ? strlen(c->instance_url) : 0;
		while (il > 0 && c->instance_url[il - 1] == '/')
			c->instance_url[--il] = '\0';
		/* refresh-token rotation: keep the new one */
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(j, "refresh_token");
		if (rc == 0 && c->auth == SF_AUTH_REFRESH_TOKEN && cJSON_IsString(rt) &&
		    rt->valuestring[0]) {
			char *nrt = strdup(rt->valuestring);
			if (nrt) {
				free_secret(c->refresh_token);
				c->refresh_token = nrt;
				log_add_secret(nrt, strlen(nrt));
			}
		}
	}
	if (cJSON_IsString(tok))
		OPENSSL_cleanse(tok->valuestring, strlen(tok->valuestring));
	cJSON_Delete(j);
	OPENSSL_cleanse(c->body.data ? c->body.data : (char *)"", c->body.len);
	return rc;
}

int sf_login(struct sf_client *c, struct err *e)
{
	for (int attempt = 1;; attempt++) {
		c->retry_after_ms = -1;
		int rc = token_once(c, e);
		if (rc != ERR_RETRY || attempt >= c->max_attempts)
			return rc;
		c->st.retries++;
		long ms = sf_backoff_ms(c->backoff_base_ms, c->backoff_max_ms, attempt,
		                        c->retry_after_ms, sf_next_random(c));
		log_info("sf.retry", "login failed (%s); trying again in %ld ms", e->msg, ms);
		if (sf_sleep(c, ms))
			return rc;
	}
}

const char *sf_auth_name(enum sf_auth a)
{
	return a == SF_AUTH_JWT                  ? "jwt"
	       : a == SF_AUTH_CLIENT_CREDENTIALS ? "client_credentials"
	                                         : "refresh_token";
}

/* ---- a REST call with retries ---- */

int sf_parse_json(struct sf_client *c, void *ctx, struct err *e)
{
	cJSON **out = ctx;
	*out = NULL;
	if (c->body.len == 0)
		return 0;
	*out = cJSON_ParseWithLength(c->body.data, c->body.len);
	if (*out == NULL)
		return err_set(
		    e, ERR_RETRY,
		    "Salesforce answered with a body that is not JSON (%zu bytes, cut off "
		    "or malformed)",
		    c->body.len);
	return 0;
}

enum sf_reach sf_last_reach(const struct sf_client *c)
{
	return c->reach;
}

/* What a failed call says of Salesforce: the last exchange got no answer,
 * a login (or a second token) was refused, the day's calls are used up. */
static enum sf_reach reach_of(const struct sf_client *c, const char *code, const char *msg,
                              bool login)
{
	if (c->last_status == 0)
		return SF_UNREACHABLE;
	if (login || c->last_status == 401)
		return SF_NO_SESSION;
	if (code && strcmp(code, "REQUEST_LIMIT_EXCEEDED") == 0 && strstr(msg, "TotalRequests"))
		return SF_OUT_OF_CALLS; /* not ConcurrentPerOrgLongTxn: that one passes */
	return SF_ANSWERED;
}

int sf_call(struct sf_client *c, const char *method, const char *url_or_path, const char *ctype,
            const char *body, size_t blen, sf_parse_fn parse, void *pctx, struct err *e)
{
	int reauthed = 0, rc = 0;
	char code[64] = "", msg[300] = "";
	c->reach = SF_ANSWERED;
	for (int attempt = 1;; attempt++) {
		if (c->token == NULL) {
			rc = sf_login(c, e);
			if (rc) {
				c->reach = reach_of(c, NULL, "", true);
				return rc;
			}
		}
		char url[16384 + 512];
		int n = url_or_path[0] == '/'
		            ? snprintf(url, sizeof(url), "%s%s", c->instance_url, url_or_path)
		            : snprintf(url, sizeof(url), "%s", url_or_path);
		if (n < 0 || (size_t)n >= sizeof(url))
			return err_set(e, ERR_INTERNAL, "Salesforce URL too long (%d bytes)", n);
		long status;
		code[0] = msg[0] = '\0';
		rc = sf_http(c, method, url, ctype, body, blen, 1, &status, e);
		if (rc == 0) {
			if (status >= 200 && status < 300) {
				rc = parse(c, pctx, e);
				if (rc == 0)
					return 0;
			} else {
				sf_error_of(c->body.data, c->body.len, code, sizeof(code), msg,
				            sizeof(msg));
				enum sf_verdict v = sf_classify(status, code[0] ? code : NULL);
				if (v == SF_REAUTH && !reauthed) {
					reauthed = 1; /* a new token, then the same request */
					free_secret(c->token);
					c->token = NULL;
					attempt--;
					continue;
				}
				rc = err_set(e, v == SF_RETRY ? ERR_RETRY : ERR_REMOTE,
				             "Salesforce answered HTTP %ld %s: %s", status,
				             code[0] ? code : "(no errorCode)", msg);
			}
		}
		if (rc != ERR_RETRY || attempt >= c->max_attempts) {
			if (rc == ERR_RETRY && attempt > 1)
				err_prefix(e, "gave up after %d attempts: ", attempt);
			c->reach = reach_of(c, code, msg, false);
			return rc;
		}
		c->st.retries++;
		long ms = sf_backoff_ms(c->backoff_base_ms, c->backoff_max_ms, attempt,
		                        c->retry_after_ms, sf_next_random(c));
		log_info("sf.retry", "%s; trying again in %ld ms", e->msg, ms);
		if (sf_sleep(c, ms)) {
			c->reach = reach_of(c, code, msg, false);
			return rc;
		}
	}
}
