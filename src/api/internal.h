/* Internal to src/api. */
#ifndef OPTSYNC_API_INTERNAL_H
#define OPTSYNC_API_INTERNAL_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"
#include "connector/connector.h"

#define API_BODY_MAX           (64u << 10)
#define API_CONNECTIONS_MAX    1024       /* each has a thread while it is open */
#define API_THREAD_STACK       (1u << 20) /* bytes, per connection thread */
#define ADMIN_CHECKS_MAX       2          /* scrypt checks at once: 32 MiB each */
#define ADMIN_SLOT_WAIT_MS     250        /* then 503 with Retry-After */
#define ADMIN_FAILS_PER_MINUTE 10         /* refusals per client, then 429 */
#define N_BUCKETS              10
#define N_STATUS               14   /* 13 known statuses and "other" */
#define N_ROUTES               21   /* enum route in http.c, "other" included */
#define LINKS_PER_CALL         1000 /* POST /v1/unsubscribe-links */

/* Requests to the public unsubscribe listener, by kind (public.c). */
enum public_kind {
	PUBLIC_ONE_CLICK,    /* RFC 8058 POSTs recorded */
	PUBLIC_FORM,         /* the page's button, recorded */
	PUBLIC_PAGE,         /* GET and HEAD of a valid link */
	PUBLIC_INVALID,      /* invalid or expired links, unreadable bodies */
	PUBLIC_RATE_LIMITED, /* 429: too many invalid ones from one client */
	PUBLIC_UNAVAILABLE,  /* 503: an opt-out that could not be recorded now */
	PUBLIC_KINDS
};

/* Counters for /metrics, guarded by the sidecar's mutex. */
struct metrics {
	uint64_t cycles_ok, cycles_failed;
	uint64_t pulled[3], pushed[3];         /* by object (enum conn_object) */
	uint64_t requests[N_ROUTES][N_STATUS]; /* by route, by status */
	uint64_t latency[N_BUCKETS + 1];
	double latency_sum;
	uint64_t latency_count;
	uint64_t webhook_ok, webhook_failed;
	uint64_t backups_ok, backups_failed; /* run's own backups ([state] backup_dir) */
	int64_t last_backup_at;              /* ms; 0: none by this process */
	uint64_t last_backup_bytes;
	uint64_t public_requests[PUBLIC_KINDS];
};

struct api_client {
	char name[64];
	uint8_t sha256[32]; /* of its bearer token */
	unsigned scopes;    /* enum config_scope bits */
};

/* The clients of cfg: its [[api.clients]], or its api.token_file (or
 * OPTSYNC_API_TOKEN) read now as "default" with every scope. */
int api_clients_load(const struct config *cfg, struct api_client **out, size_t *n, struct err *e);

struct sidecar {
	const struct config *cfg;
	struct conn *conn;
	volatile sig_atomic_t *stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int kick; /* a local change wants an early push */
	struct metrics m;
	/* the local API's clients: [[api.clients]], or api.token_file as one
	 * all-scope client named "default" */
	struct api_client *clients;
	size_t nclients;
	uint64_t *client_requests; /* [nclients][N_ROUTES], for /metrics (under mu) */
	char *webhook_secret;
	size_t webhook_secret_len;
	struct conn_links *links;      /* [unsubscribe]'s keys; NULL without it */
	sem_t admin_slots;             /* ADMIN_CHECKS_MAX scrypt checks at once */
	struct ratelimit *admin_fails; /* refused admin attempts per client */
};

/* Failures per client in one-minute windows (ratelimit.c); thread-safe.
 * Keys are client addresses (at most RATELIMIT_KEY_MAX bytes). */
#define RATELIMIT_KEY_MAX 16
struct ratelimit;
struct ratelimit *ratelimit_new(uint32_t per_minute, size_t slots);
void ratelimit_free(struct ratelimit *r); /* NULL is fine */
/* 0 when key may go on; else the seconds until its window ends. */
int ratelimit_blocked(struct ratelimit *r, const void *key, size_t klen, int64_t now_ms);
/* Count one failure of key. */
void ratelimit_hit(struct ratelimit *r, const void *key, size_t klen, int64_t now_ms);

struct api;
int api_start(struct api **out, struct sidecar *s, struct err *e);
void api_stop(struct api *a);
/* A listening socket on spec ("host:port" or "unix:/path"); errors name
 * key ("api.listen"). The fd, or a negative code with e set. */
int http_listen(const char *spec, const char *key, char **unix_path, struct err *e);

/* libmicrohttpd's messages into the log, as warnings of event cls
 * ("api.http"). */
void http_mhd_log(void *cls, const char *fmt, va_list ap) ERR_PRINTF(2, 0);

/* The public unsubscribe listener (public.c), on [unsubscribe] listen. */
struct public_listener;
int public_start(struct public_listener **out, struct sidecar *s, struct err *e);
void public_stop(struct public_listener *p); /* NULL is fine */

/* Ask the scheduler for an early cycle (after a local opt-out). */
void sidecar_kick(struct sidecar *s);
/* 1 when ready: the ledger answers (Salesforce's state does not count). */
int sidecar_ready(struct sidecar *s, char *why, size_t cap);

/* The body of POST /v1/optouts: only known fields, strings, a valid
 * occurred_at. Strings point into body. */
int api_optout_parse(const cJSON *body, struct conn_optout *o, struct err *e);

/* Paths, after MHD has unescaped them. api_contact_path splits
 * "EMAIL[/sub]" (the part after /v1/contacts/) in place: sub is "" or one
 * of "/authorization", "/source", "/resubscribe", "/history", "/export",
 * "/consents";
 * -1 for an empty email or an unknown sub-path. api_conflict_path reads
 * what follows /v1/conflicts: "", "/ID" or "/ID/resolve", with ID a
 * decimal 1..2^64-1 without sign, space or leading zero; -1 otherwise. */
enum { API_CONFLICTS_LIST, API_CONFLICT_SHOW, API_CONFLICT_RESOLVE };
int api_contact_path(char *rest, const char **email, const char **sub);
int api_conflict_path(const char *rest, uint64_t *id);
/* The methods a known path takes, as an Allow header value ("GET, DELETE");
 * NULL for a path the API does not have. Routing answers 404 for NULL and
 * 405 with this Allow for any other method, before any handler runs. */
const char *api_allowed_methods(const char *url);

/* The webhook deliverer; runs until *stop. Each POST carries
 * X-Optsync-Timestamp: TS (Unix seconds, when it is sent) and
 * X-Optsync-Signature: sha256=HEX, the HMAC-SHA256 under the webhook
 * secret of "TS." followed by the body, so that a captured delivery
 * cannot be replayed once the receiver's window (5 minutes) has passed. */
void *webhook_main(void *arg);
#define WEBHOOK_SIG_HEX 64
/* hex: the signature of body sent at ts (lower-case hex). ERR_INTERNAL
 * when OpenSSL fails. */
int webhook_signature(const void *secret, size_t slen, int64_t ts, const char *body, size_t blen,
                      char hex[WEBHOOK_SIG_HEX + 1], struct err *e);
/* The backup taker ([state] backup_dir); runs until *stop. */
void *backup_main(void *arg);

#endif
