/* Salesforce REST client: OAuth 2.0 (JWT bearer, client credentials,
 * refresh token), SOQL queries with pagination, and sObject Collections
 * updates, over one reused libcurl connection. It knows nothing of the
 * ledger.
 *
 * Failures are classified once, here: retryable ones (expired session,
 * REQUEST_LIMIT_EXCEEDED, UNABLE_TO_LOCK_ROW, 5xx, connection errors,
 * timeouts, cut-off or malformed responses) are retried with exponential
 * backoff and jitter, honouring Retry-After, up to max_attempts; what is
 * left is returned as ERR_RETRY (worth trying again later) or ERR_REMOTE
 * (permanent: bad query, bad field, refused login), with a message that
 * names the HTTP status and Salesforce's errorCode.
 *
 * A client is used by one thread at a time. Tokens live in memory only.
 *
 * libcurl's global state is the process's, not the client's: the program
 * calls curl_global_init once at start, before it starts any thread, and
 * curl_global_cleanup at exit (optsync's main does; so does each test
 * program). sf_client_new does not initialise it. */
#ifndef OPTSYNC_SALESFORCE_SF_H
#define OPTSYNC_SALESFORCE_SF_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

enum sf_auth { SF_AUTH_JWT = 0, SF_AUTH_CLIENT_CREDENTIALS, SF_AUTH_REFRESH_TOKEN };

struct sf_options {
	const char *login_url;   /* token endpoint host, "https://login.salesforce.com" */
	const char *audience;    /* JWT aud; NULL: login_url */
	const char *api_version; /* "62.0" */
	enum sf_auth auth;
	const char *client_id;
	const char *username;      /* JWT sub */
	const char *private_key;   /* PEM, JWT */
	const char *client_secret; /* client_credentials; optional for refresh_token */
	const char *refresh_token;
	const char *ca_file; /* extra CA bundle; verification is always on */
	long connect_timeout_ms, timeout_ms;
	int max_attempts;            /* tries per request for retryable failures; 0: 5 */
	long backoff_base_ms;        /* first backoff; 0: 500 */
	long backoff_max_ms;         /* longest backoff; 0: 30000 */
	size_t max_response;         /* cap on one response body; 0: 64 MiB */
	volatile sig_atomic_t *stop; /* when set nonzero, backoff sleeps end early */
};

struct sf_client;

/* A client for o (its strings are copied). 0 and *out set; ERR_CONFIG when
 * o lacks what its auth flow needs; ERR_NOMEM. *out is NULL on failure.
 * curl_global_init must have run (above). */
int sf_client_new(struct sf_client **out, const struct sf_options *o, struct err *e);
/* Wipes the token; NULL is fine. */
void sf_client_free(struct sf_client *c);

/* Log in now (otherwise the first request does). */
int sf_login(struct sf_client *c, struct err *e);

/* ---- records ---- */

enum sf_vtype { SF_NULL = 0, SF_BOOL, SF_STRING, SF_NUMBER };

struct sf_value {
	const char *name;
	enum sf_vtype type;
	const char *str; /* SF_STRING */
	bool b;          /* SF_BOOL */
	double num;      /* SF_NUMBER */
};

/* A string in a page that is valid JSON but no text optsync can take: the
 * page is read on, and the record carries the first one so that the caller
 * refuses that record alone (rule 8). */
enum sf_flaw {
	SF_FLAW_NONE = 0,
	SF_FLAW_NUL,       /* \u0000, decoded: the C string ends there */
	SF_FLAW_SURROGATE, /* an unpaired \ud800-\udfff: no character (U+FFFD in its place) */
	SF_FLAW_UTF8,      /* bytes that are not UTF-8 (kept as they came) */
};

struct sf_record {
	const char *type; /* "Contact" */
	const char *id;
	size_t nvalues;
	const struct sf_value *values; /* the selected fields, attributes excluded */
	enum sf_flaw flaw;             /* the first flaw in its fields' names or values */
	const char *flaw_field;        /* the field it is in, NULL with SF_FLAW_NONE */
};

/* The value of field in r (case-insensitive, as SOQL is), or NULL. */
const struct sf_value *sf_record_get(const struct sf_record *r, const char *field);

/* Called once per page; records and their strings are valid only during
 * the call. A value's name is the same pointer as the name of the previous
 * record's value at the same place when the two are the same name. Return
 * 0 to go on, nonzero (an ERR_* code with e set) to stop: sf_query then
 * returns that code. */
typedef int (*sf_page_fn)(void *ctx, const struct sf_record *records, size_t n, struct err *e);

/* Run soql, following nextRecordsUrl to the end; all selects queryAll
 * (deleted and merged rows too). One page is in memory at a time. */
int sf_query(struct sf_client *c, const char *soql, bool all, sf_page_fn fn, void *ctx,
             struct err *e);

/* Run head + "v1, v2, ..." + tail for the quoted values, split into as
 * many queries as keep each URL under Salesforce's limit. values are raw
 * strings; they are quoted here. */
int sf_query_in(struct sf_client *c, const char *head, const char *const *values, size_t n,
                const char *tail, bool all, sf_page_fn fn, void *ctx, struct err *e);

/* Append s to out as a SOQL string literal ('...' with \ ' " and control
 * characters escaped), so that no value can change a query. */
int sf_soql_quote(const char *s, struct buf *out, struct err *e);

/* ---- writes ---- */

#define SF_COLLECTION_MAX 200

struct sf_update {
	const char *type; /* "Contact" */
	const char *id;
	size_t nvalues;
	const struct sf_value *values;
};

struct sf_result {
	bool success;
	char id[19];          /* the record's Id (a create's new Id), "" if not given */
	bool retryable;       /* a failure worth trying again (UNABLE_TO_LOCK_ROW) */
	char status_code[64]; /* Salesforce's statusCode, "" on success */
	char message[256];
	char fields[128]; /* the fields named by the error, comma-separated */
};

/* PATCH /composite/sobjects with allOrNone=false: n <= SF_COLLECTION_MAX
 * records; results[i] is the outcome of recs[i] (matched by position). A
 * request-level failure returns an error and leaves results unset. */
int sf_update(struct sf_client *c, const struct sf_update *recs, size_t n,
              struct sf_result *results, struct err *e);

/* POST /composite/sobjects with allOrNone=false: create n <= SF_COLLECTION_MAX
 * records (their id is NULL); results[i].id is the new Id of recs[i]. */
int sf_create(struct sf_client *c, const struct sf_update *recs, size_t n,
              struct sf_result *results, struct err *e);

/* ---- metadata ---- */

/* An object's describe: the fields the integration user can see. */
struct sf_describe;
/* GET sobjects/OBJECT/describe. ERR_REMOTE when Salesforce refuses it (no
 * such object, no access: NOT_FOUND, INVALID_TYPE); ERR_INVALID for a name
 * that is not an object name. *out is NULL on failure. */
int sf_describe(struct sf_client *c, const char *object, struct sf_describe **out, struct err *e);
void sf_describe_free(struct sf_describe *d); /* NULL is fine */
/* Whether the user sees field (case-insensitive, as Salesforce names are);
 * *updateable, when given, whether the user may write it. */
bool sf_describe_field(const struct sf_describe *d, const char *field, bool *updateable);
/* 1 when field is a picklist with value among its active values, 0 when it
 * is a picklist without it, -1 when it is not a picklist (or not seen). */
int sf_describe_picklist_has(const struct sf_describe *d, const char *field, const char *value);

/* ---- reach ---- */

/* What the last call that failed says of Salesforce itself, for a caller
 * that decides whether other calls are worth making now. */
enum sf_reach {
	SF_ANSWERED = 0, /* Salesforce answered: a refusal of that request, a 5xx, a bad body */
	SF_UNREACHABLE,  /* no HTTP answer came: no connection, TLS refused, timed out */
	SF_NO_SESSION,   /* the login was refused, or so was a new token */
	SF_OUT_OF_CALLS, /* the org's API requests for the day are used up */
};
/* As of the last sf_query, sf_query_in, sf_update, sf_create or
 * sf_describe that failed (SF_ANSWERED after one that did not). */
enum sf_reach sf_last_reach(const struct sf_client *c);

/* ---- usage ---- */

struct sf_stats {
	uint64_t requests; /* HTTP requests sent, retries and token calls included */
	uint64_t token_calls;
	uint64_t retries;
	long api_used, api_max; /* last Sforce-Limit-Info, -1 when not seen */
};

void sf_stats_get(const struct sf_client *c, struct sf_stats *out);

/* ---- exposed for tests ---- */

/* RS256 signature of input with a PEM private key, base64url without
 * padding; *out is malloc'ed. */
int sf_jwt_sign(const char *pem, const char *input, size_t len, char **out, struct err *e);
/* A complete signed JWT for the bearer flow. */
int sf_jwt_build(const char *pem, const char *iss, const char *sub, const char *aud, int64_t exp,
                 char **out, struct err *e);

enum sf_verdict { SF_OK = 0, SF_RETRY, SF_REAUTH, SF_PERMANENT };
/* How to treat an HTTP status with Salesforce's errorCode (may be NULL). */
enum sf_verdict sf_classify(long status, const char *error_code);
/* The backoff before attempt (1-based) with jitter in [d/2, d], where d
 * = min(max, base * 2^(attempt-1)); retry_after_ms >= 0 overrides d. */
long sf_backoff_ms(long base, long max, int attempt, long retry_after_ms, uint32_t random);

#endif
