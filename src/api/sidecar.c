/* optsync run: the scheduler, readiness, and the webhook deliverer. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/timefmt.h"

void sidecar_kick(struct sidecar *s)
{
	pthread_mutex_lock(&s->mu);
	s->kick = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int sidecar_ready(struct sidecar *s, char *why, size_t cap)
{
	/* ready means the local API can answer the application: its ledger
	 * answers. A Salesforce outage does not make the application's Pod
	 * unready (suppression checks still work); it shows in /v1/status,
	 * `optsync status` and /metrics instead. */
	struct err e;
	if (conn_ping(s->conn, &e)) {
		snprintf(why, cap, "the ledger does not answer: %s", e.msg);
		return 0;
	}
	return 1;
}

static void note_cycle(struct sidecar *s, int rc, const struct conn_cycle_report *r)
{
	pthread_mutex_lock(&s->mu);
	if (rc == 0)
		s->m.cycles_ok++;
	else
		s->m.cycles_failed++;
	for (int o = CONN_OBJ_CONTACT; r && o <= CONN_OBJ_LEAD; o++) {
		s->m.pulled[o] += r->pull[o].records;
		s->m.pushed[o] += r->push.by_object[o];
	}
	pthread_mutex_unlock(&s->mu);
}

/* Wait up to ms for a kick or a stop; the kick waits one more second so
 * that a burst of opt-outs goes out together. */
static void wait_next(struct sidecar *s, int64_t ms)
{
	int64_t until = time_now_ms() + ms;
	pthread_mutex_lock(&s->mu);
	while (!*s->stop && !s->kick) {
		int64_t left = until - time_now_ms();
		if (left <= 0)
			break;
		if (left > 200)
			left = 200; /* check the stop flag often */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	int kicked = s->kick;
	s->kick = 0;
	pthread_mutex_unlock(&s->mu);
	if (kicked && !*s->stop) {
		struct timespec d = {1, 0};
		nanosleep(&d, NULL);
	}
}

static uint32_t jitter(void)
{
	uint32_t r = 0;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	return r;
}

int sidecar_run(const struct config *cfg, volatile sig_atomic_t *stop, struct err *e)
{
	struct sidecar s = {0};
	s.cfg = cfg;
	s.stop = stop;
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	struct api *api = NULL;
	struct public_listener *pub = NULL;
	pthread_t wh, bk;
	int wh_started = 0, bk_started = 0;
	sem_init(&s.admin_slots, 0, ADMIN_CHECKS_MAX);
	s.admin_fails = ratelimit_new(ADMIN_FAILS_PER_MINUTE, 4096);
	if (s.admin_fails == NULL) {
		sem_destroy(&s.admin_slots);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	int rc = api_clients_load(cfg, &s.clients, &s.nclients, e);
	if (rc)
		goto out;
	if ((s.client_requests = calloc(s.nclients * N_ROUTES, sizeof(uint64_t))) == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (cfg->webhook.enabled &&
	    (rc = config_secret(cfg, CONFIG_SECRET_WEBHOOK_SECRET, &s.webhook_secret,
	                        &s.webhook_secret_len, e)))
		goto out;
	if ((rc = conn_open(&s.conn, cfg, true, stop, e)))
		goto out;
	/* one run per ledger, for its whole life */
	if ((rc = conn_own_ledger(s.conn, e)))
		goto out;
	/* the link keys before anything listens: a bad key fails the start */
	if (cfg->unsubscribe.enabled && (rc = conn_links_open(cfg, &s.links, e)))
		goto out;
	if ((rc = api_start(&api, &s, e)))
		goto out;
	if (cfg->unsubscribe.enabled && (rc = public_start(&pub, &s, e)))
		goto out;
	if (cfg->webhook.enabled) {
		if (pthread_create(&wh, NULL, webhook_main, &s) != 0) {
			rc = err_set(e, ERR_INTERNAL, "cannot start the webhook thread");
			goto out;
		}
		wh_started = 1;
	}
	if (cfg->state.backup_dir) {
		if (pthread_create(&bk, NULL, backup_main, &s) != 0) {
			rc = err_set(e, ERR_INTERNAL, "cannot start the backup thread");
			goto out;
		}
		bk_started = 1;
	}
	log_info("run.start", "optsync %s running: sync every %lld s", OPTSYNC_VERSION,
	         (long long)(cfg->sync.interval_ms / 1000));
	int failures = 0;
	while (!*stop) {
		struct conn_sync_opts o = {false, false, false};
		struct conn_cycle_report *report;
		struct err ce = {0};
		int crc = conn_sync_once(s.conn, &o, &report, &ce);
		note_cycle(&s, crc, report);
		/* a cycle that did the rest of its work: Salesforce answers, so
		 * the next one comes at the interval */
		bool partial = report && report->partial;
		conn_cycle_report_free(report);
		if (crc && *stop)
			break; /* stopped mid-cycle: what was committed stays */
		if (crc && partial) {
			failures = 0;
			log_error("run.cycle",
			          "sync cycle did the rest of its work, but not all: %s", ce.msg);
		} else if (crc) {
			failures++;
			log_error("run.cycle", "sync cycle failed (%d in a row): %s", failures,
			          ce.msg);
		} else {
			failures = 0;
		}
		/* the interval with +-10% jitter; failures back off up to 10 intervals */
		int64_t wait = cfg->sync.interval_ms;
		for (int i = 0; i < failures && i < 4; i++)
			wait *= 2;
		if (wait > cfg->sync.interval_ms * 10)
			wait = cfg->sync.interval_ms * 10;
		wait += (int64_t)(jitter() % (uint32_t)(wait / 5 + 1)) - wait / 10;
		wait_next(&s, wait);
	}
	log_info("run.stop", "stopping: no new requests; finishing what is in flight");
out:
	public_stop(pub); /* first: its opt-outs need the ledger */
	api_stop(api);
	if (wh_started) {
		pthread_cond_broadcast(&s.cv);
		pthread_join(wh, NULL);
	}
	if (bk_started)
		pthread_join(bk, NULL);
	conn_close(s.conn);
	conn_links_close(s.links);
	free(s.clients);
	free(s.client_requests);
	secret_free(s.webhook_secret, s.webhook_secret_len);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.mu);
	ratelimit_free(s.admin_fails);
	sem_destroy(&s.admin_slots);
	return rc;
}

/* ---- webhook ---- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

int webhook_signature(const void *secret, size_t slen, int64_t ts, const char *body, size_t blen,
                      char hex[WEBHOOK_SIG_HEX + 1], struct err *e)
{
	hex[0] = '\0';
	char stamp[32];
	int n = snprintf(stamp, sizeof(stamp), "%lld.", (long long)ts);
	unsigned char mac[32];
	size_t ml = 0;
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *x = m ? EVP_MAC_CTX_new(m) : NULL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end()};
	int ok = x && n > 0 && (size_t)n < sizeof(stamp) && EVP_MAC_init(x, secret, slen, params) &&
	         EVP_MAC_update(x, (const unsigned char *)stamp, (size_t)n) &&
	         EVP_MAC_update(x, (const unsigned char *)body, blen) &&
	         EVP_MAC_final(x, mac, &ml, sizeof(mac)) && ml == sizeof(mac);
	EVP_MAC_CTX_free(x);
	EVP_MAC_free(m);
	if (!ok)
		return err_set(e, ERR_INTERNAL, "webhook: HMAC-SHA256 failed in OpenSSL");
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(mac); i++) {
		hex[2 * i] = digits[mac[i] >> 4];
		hex[2 * i + 1] = digits[mac[i] & 15];
	}
	hex[WEBHOOK_SIG_HEX] = '\0';
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

/* POST one change; 0 when the application acknowledged it with a 2xx. Each
 * attempt is signed anew, with the time it is made. */
static int deliver(struct sidecar *s, CURL *h, const char *body, struct err *e)
{
	int64_t ts = time_now_ms() / 1000;
	char hex[WEBHOOK_SIG_HEX + 1], sig[128], stamp[64];
	int rc = webhook_signature(s->webhook_secret, s->webhook_secret_len, ts, body, strlen(body),
	                           hex, e);
	if (rc)
		return rc;
	snprintf(sig, sizeof(sig), "X-Optsync-Signature: sha256=%s", hex);
	snprintf(stamp, sizeof(stamp), "X-Optsync-Timestamp: %lld", (long long)ts);
	const char *const lines[] = {"Content-Type: application/json", stamp, sig};
	struct curl_slist *hdrs = NULL;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		struct curl_slist *more = curl_slist_append(hdrs, lines[i]);
		if (more == NULL) {
			curl_slist_free_all(hdrs);
			return err_set(e, ERR_NOMEM, "out of memory");
		}
		hdrs = more;
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, s->cfg->webhook.url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "optsync/" OPTSYNC_VERSION);
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	if (cc != CURLE_OK)
		return err_set(e, ERR_RETRY, "webhook %s: %s", s->cfg->webhook.url,
		               curl_easy_strerror(cc));
	if (status < 200 || status >= 300)
		return err_set(e, ERR_RETRY, "webhook %s answered HTTP %ld", s->cfg->webhook.url,
		               status);
	return 0;
}

/* Sleep ms in slices, ending early on stop. */
static void nap(struct sidecar *s, int64_t ms)
{
	for (int64_t slept = 0; slept < ms && !*s->stop; slept += 100) {
		struct timespec t = {0, 100000000L};
		nanosleep(&t, NULL);
	}
}

void *webhook_main(void *arg)
{
	struct sidecar *s = arg;
	CURL *h = curl_easy_init();
	struct err e;
	uint64_t pos = 0;
	int64_t backoff = 1000;
	if (h == NULL)
		return NULL;
	/* the position lives in the ledger: a restart neither loses nor
	 * reorders deliveries (a change may be delivered twice, never skipped) */
	if (conn_webhook_position(s->conn, &pos, &e))
		log_error("webhook", "cannot read the delivery position: %s", e.msg);
	while (!*s->stop) {
		cJSON *page = NULL;
		if (conn_changes(s->conn, pos, 100, &page, &e)) {
			log_error("webhook", "cannot read the change feed: %s", e.msg);
			nap(s, 5000);
			continue;
		}
		const cJSON *ch;
		int delivered = 0, failed = 0;
		cJSON_ArrayForEach(ch, cJSON_GetObjectItem(page, "changes"))
		{
			if (*s->stop)
				break;
			char *body = cJSON_PrintUnformatted(ch);
			int rc = body ? deliver(s, h, body, &e)
			              : err_set(&e, ERR_NOMEM, "out of memory");
			free(body);
			pthread_mutex_lock(&s->mu);
			if (rc == 0)
				s->m.webhook_ok++;
			else
				s->m.webhook_failed++;
			pthread_mutex_unlock(&s->mu);
			if (rc) {
				log_warn("webhook", "%s; trying again in %lld ms", e.msg,
				         (long long)backoff);
				failed = 1;
				break;
			}
			pos = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(ch, "seq"));
			if (conn_webhook_advance(s->conn, pos, &e))
				log_error("webhook", "cannot save the delivery position: %s",
				          e.msg);
			delivered++;
			backoff = 1000;
		}
		cJSON_Delete(page);
		if (failed) {
			nap(s, backoff);
			backoff = backoff * 2 > 300000 ? 300000 : backoff * 2;
		} else if (!delivered) {
			nap(s, 500);
		}
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* ---- backups ---- */

/* A failed backup is tried again after this long (or backup_every, when
 * that is shorter). */
#define BACKUP_RETRY_MS (10 * 60 * 1000)

void *backup_main(void *arg)
{
	struct sidecar *s = arg;
	const struct config *cfg = s->cfg;
	struct err e;
	int64_t last = 0;
	/* the newest backup already in the folder sets the first due time, so
	 * that restarts do not each take one */
	if (conn_backup_last(cfg, &last, &e))
		log_warn("backup", "%s", e.msg);
	while (!*s->stop) {
		int64_t now = time_now_ms(), due = last + cfg->state.backup_every_ms;
		if (now < due) {
			nap(s, due - now < 1000 ? due - now : 1000);
			continue;
		}
		struct conn_backup_result r;
		int rc = conn_backup_scheduled(s->conn, &r, &e);
		pthread_mutex_lock(&s->mu);
		if (rc == 0) {
			s->m.backups_ok++;
			s->m.last_backup_at = r.taken_at;
			s->m.last_backup_bytes = r.bytes;
		} else {
			s->m.backups_failed++;
		}
		pthread_mutex_unlock(&s->mu);
		if (rc == 0) {
			if (r.created_dir)
				log_info("backup", "made state.backup_dir %s (mode 0700)",
				         cfg->state.backup_dir);
			log_info("backup", "backup %s: %llu bytes in %lld ms%s; %u older removed",
			         r.file, (unsigned long long)r.bytes, (long long)r.took_ms,
			         r.compacted ? "" : " (not compacted)", r.removed);
			last = r.taken_at;
		} else {
			int64_t retry = cfg->state.backup_every_ms < BACKUP_RETRY_MS
			                    ? cfg->state.backup_every_ms
			                    : BACKUP_RETRY_MS;
			log_error("backup",
			          "backup failed (the sync goes on; next try in %lld s): %s",
			          (long long)(retry / 1000), e.msg);
			last = now - cfg->state.backup_every_ms + retry;
		}
	}
	return NULL;
}

/* ---- the health probe (optsync healthcheck) ---- */

int api_probe(const struct config *cfg, bool ready, struct err *e)
{
	const char *path = ready ? "/readyz" : "/healthz";
	const char *listen = cfg->api.listen, *port_env = getenv("OPTSYNC_HEALTH_PORT");
	char url[512];
	const char *sock = NULL;
	if (port_env && *port_env) {
		char *end;
		unsigned long port = strtoul(port_env, &end, 10);
		if (*end || port == 0 || port > 65535)
			return err_set(e, ERR_CONFIG, "OPTSYNC_HEALTH_PORT '%.20s' is not a port",
			               port_env);
		snprintf(url, sizeof(url), "http://127.0.0.1:%lu%s", port, path);
	} else if (strncmp(listen, "unix:", 5) == 0) {
		sock = listen + 5;
		snprintf(url, sizeof(url), "http://localhost%s", path);
	} else {
		/* a wildcard address is probed on loopback */
		const char *colon = strrchr(listen, ':');
		int hl = (int)(colon - listen);
		const char *host = listen;
		if ((hl == 7 && strncmp(listen, "0.0.0.0", 7) == 0) || hl == 0) {
			host = "127.0.0.1";
			hl = 9;
		} else if (hl == 4 && strncmp(listen, "[::]", 4) == 0) {
			host = "[::1]";
			hl = 5;
		}
		snprintf(url, sizeof(url), "http://%.*s%s%s", hl, host, colon, path);
	}
	CURL *h = curl_easy_init();
	if (h == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (sock)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	CURLcode cc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (cc != CURLE_OK)
		return err_set(e, ERR_RETRY, "%s%s%s: %s", url, sock ? " on " : "",
		               sock ? sock : "", curl_easy_strerror(cc));
	if (status != 200)
		return err_set(e, ERR_RETRY, "%s answered HTTP %ld", url, status);
	return 0;
}
