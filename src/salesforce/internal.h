/* Internal to src/salesforce. */
#ifndef OPTSYNC_SALESFORCE_INTERNAL_H
#define OPTSYNC_SALESFORCE_INTERNAL_H

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "salesforce/sf.h"

/* The longest URL we send: Salesforce refuses URI + headers over 16 KiB
 * (414/431), and the headers take up to ~1 KiB. */
#define SF_URL_MAX 12000

struct sf_client {
	char *login_url, *audience, *api_version, *client_id, *username;
	char *private_key, *client_secret, *refresh_token; /* wiped on free */
	char *ca_file;
	enum sf_auth auth;
	long connect_timeout_ms, timeout_ms, backoff_base_ms, backoff_max_ms;
	int max_attempts;
	volatile sig_atomic_t *stop;
	CURL *curl;
	char *token; /* wiped on free */
	char *instance_url;
	struct buf body; /* the last response body */
	int body_overflow;
	long retry_after_ms; /* from the last response, -1 when absent */
	long last_status;    /* HTTP status of the last exchange, 0: no answer */
	enum sf_reach reach; /* what the last sf_call says of Salesforce (sf_last_reach) */
	struct sf_stats st;
	uint64_t rng;
};

/* A parsed query page; arrays reused from page to page, strings inside
 * the response buffer (page.c). */
struct sf_page {
	struct sf_record *recs;
	struct sf_value *vals;
	size_t nrecs, nvals, rcap, vcap, len;
	char *next; /* nextRecordsUrl, NULL when absent */
	int done;
};
/* Parse buf[0..len) in place; ERR_RETRY when it is not a valid page. */
int sf_page_parse(char *buf, size_t len, struct sf_page *pg, struct err *e);
void sf_page_free(struct sf_page *pg);

/* Parses c->body after a 2xx answer; ERR_RETRY when it is malformed (the
 * call is then retried like a transport failure). */
typedef int (*sf_parse_fn)(struct sf_client *c, void *ctx, struct err *e);
/* sf_parse_fn that puts the cJSON tree of the body in *(cJSON **)ctx. */
int sf_parse_json(struct sf_client *c, void *ctx, struct err *e);

/* One HTTP exchange (no retries); ERR_RETRY for transport failures. */
int sf_http(struct sf_client *c, const char *method, const char *url, const char *ctype,
            const char *body, size_t blen, int with_auth, long *status, struct err *e);
/* A REST call with login, re-login on an expired session, retries and
 * classification. url_or_path is absolute, or a path on the instance. A
 * 2xx body is handed to parse(c, pctx, e). */
int sf_call(struct sf_client *c, const char *method, const char *url_or_path, const char *ctype,
            const char *body, size_t blen, sf_parse_fn parse, void *pctx, struct err *e);
const char *sf_auth_name(enum sf_auth a);

/* errors.c: the errorCode and message of a REST error body (either may be
 * left ""), and the per-record outcome of an sObject Collections answer
 * (ERR_RETRY unless j is an array of exactly n results). */
void sf_error_of(const char *body, size_t len, char *code, size_t ccap, char *msg, size_t mcap);
int sf_collection_results(const cJSON *j, size_t n, struct sf_result *results, struct err *e);
/* The answer of a collections call in which every record was written (the
 * common one) read without building a cJSON tree: exactly n objects, each
 * with "id" a string of at most 18 bytes, "success": true and "errors": []
 * (each once, in any order; other members with a string, true, false or
 * null are skipped), and nothing after the array but white space. 1 with
 * results[0..n) as sf_collection_results fills them from cJSON's tree of
 * the same body; 0 for any other answer (a record that failed, an escape
 * in a string, another count): read that one with cJSON. */
int sf_collection_fast(const char *body, size_t len, size_t n, struct sf_result *results);
uint32_t sf_next_random(struct sf_client *c);
/* Sleep ms in slices; -1 when the stop flag ended it early. */
int sf_sleep(struct sf_client *c, long ms);

#endif
