/* The public unsubscribe listener ([unsubscribe] listen): the links
 * optsync mints, answered for mailbox providers (RFC 8058 one-click POST)
 * and for people (a page that changes nothing until its button is
 * pressed). No bearer token; GET, HEAD and POST only; bodies up to 8 KiB.
 *
 * A valid link is never refused for rate: only requests with invalid
 * tokens are limited per client address. An opt-out is answered 200 only
 * once it is durable; when it cannot be recorded the answer is 503 with
 * Retry-After, so the sender tries again: none is dropped silently. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/http.h"
#include "public/form.h"
#include "public/pages.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

#define PUBLIC_CONNECTIONS_MAX 4096
#define PUBLIC_INFLIGHT_MAX    2048 /* opt-outs waiting for a commit, then 503 */

struct public_listener {
	struct MHD_Daemon *d;
	struct sidecar *s;
	int fd;
	char *unix_path;
	struct config_cidr *proxies;
	size_t nproxies;
	struct ratelimit *invalid; /* invalid tokens per client address */
	atomic_int inflight;
};

struct preq {
	char body[FORM_BODY_MAX];
	size_t len;
	bool too_big;
};

static void count(struct sidecar *s, enum public_kind k)
{
	pthread_mutex_lock(&s->mu);
	s->m.public_requests[k]++;
	pthread_mutex_unlock(&s->mu);
}

/* ---- responses ---- */

static enum MHD_Result send_body(struct MHD_Connection *con, unsigned status, const char *ctype,
                                 char *body, size_t len, enum config_language lang,
                                 const char *retry_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Content-Security-Policy", page_csp());
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_LANGUAGE, config_language_name(lang));
	MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Language");
	if (status == 503 && retry_after == NULL)
		retry_after = HTTP_RETRY_AFTER; /* every 503 says when to come back */
	if (retry_after)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
	enum MHD_Result res = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return res;
}

static enum MHD_Result send_text(struct MHD_Connection *con, unsigned status, const char *text,
                                 enum config_language lang, const char *retry_after)
{
	char *copy = strdup(text);
	if (copy == NULL)
		return MHD_NO;
	return send_body(con, status, "text/plain; charset=utf-8", copy, strlen(copy), lang,
	                 retry_after);
}

/* A page; PAGE_CONFIRM offers the configured purposes (but the link's
 * own, which its main button leaves) to leave one by one. */
static enum MHD_Result send_page_of(struct public_listener *p, struct MHD_Connection *con,
                                    unsigned status, enum page_kind kind, enum config_language lang,
                                    const char *masked, const struct conn_link_view *v,
                                    const char *retry_after)
{
	struct buf b;
	struct err e;
	buf_init(&b, 64u << 10);
	const struct config *cfg = p->s->cfg;
	const struct page_site site = {cfg->unsubscribe.organization, cfg->unsubscribe.privacy_url};
	struct page_purpose ps[CONFIG_PURPOSES_MAX];
	size_t n = 0;
	for (size_t i = 0; kind == PAGE_CONFIRM && i < cfg->npurposes && i < CONFIG_PURPOSES_MAX;
	     i++) {
		const struct config_purpose *cp = &cfg->purposes[i];
		if (v && strcmp(v->purpose, cp->name) == 0)
			continue;
		ps[n].name = cp->name;
		ps[n].label = page_purpose_label((const char *const *)cp->label, cp->name, lang);
		n++;
	}
	if (page_render(&b, kind, lang, &site, masked, ps, n, &e)) {
		buf_free(&b);
		return MHD_NO;
	}
	return send_body(con, status, "text/html; charset=utf-8", b.data, b.len, lang, retry_after);
}

static enum MHD_Result send_page(struct public_listener *p, struct MHD_Connection *con,
                                 unsigned status, enum page_kind kind, enum config_language lang,
                                 const char *masked, const char *retry_after)
{
	return send_page_of(p, con, status, kind, lang, masked, NULL, retry_after);
}

/* ---- the client's address ---- */

static bool trusted(const struct public_listener *p, int family, const unsigned char *addr)
{
	for (size_t i = 0; i < p->nproxies; i++)
		if (config_cidr_match(&p->proxies[i], family, addr))
			return true;
	return false;
}

/* The client's address as a rate-limit key: the peer, or, when the peer
 * is a trusted proxy, the nearest address in X-Forwarded-For that is not
 * one (the rightmost untrusted: what the proxies themselves saw). */
static size_t client_key(const struct public_listener *p, struct MHD_Connection *con,
                         uint8_t key[RATELIMIT_KEY_MAX])
{
	size_t kl = http_client_key(con, key);
	int family = kl == 16 ? AF_INET6 : kl == 4 && memcmp(key, "unix", 4) ? AF_INET : 0;
	if (p->nproxies == 0 || (family && !trusted(p, family, key)))
		return kl;
	const char *xff = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "X-Forwarded-For");
	if (xff == NULL)
		return kl;
	size_t n = strlen(xff);
	while (n > 0) {
		size_t end = n;
		while (n > 0 && xff[n - 1] != ',')
			n--;
		char a[64];
		size_t s = n, l;
		while (s < end && xff[s] == ' ')
			s++;
		l = end - s;
		while (l > 0 && xff[s + l - 1] == ' ')
			l--;
		if (n > 0)
			n--; /* past the comma */
		if (l == 0 || l >= sizeof(a))
			return kl; /* unreadable: the proxy's own address */
		memcpy(a, xff + s, l);
		a[l] = '\0';
		unsigned char addr[16];
		if (inet_pton(AF_INET, a, addr) == 1) {
			if (!trusted(p, AF_INET, addr)) {
				memcpy(key, addr, 4);
				return 4;
			}
		} else if (inet_pton(AF_INET6, a, addr) == 1) {
			if (!trusted(p, AF_INET6, addr)) {
				memcpy(key, addr, 16);
				return 16;
			}
		} else {
			return kl;
		}
	}
	return kl;
}

/* ---- requests ---- */

static enum MHD_Result answer(struct public_listener *p, struct MHD_Connection *con,
                              const char *url, const char *method, struct preq *r)
{
	struct sidecar *s = p->s;
	enum config_language lang = page_language(
	    MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_LANGUAGE),
	    s->cfg->unsubscribe.default_language);
	if (r->too_big)
		return send_text(con, 413, "The request body is larger than 8 KiB.\n", lang, NULL);
	if (strncmp(url, "/u/", 3) != 0 || url[3] == '\0' || strchr(url + 3, '/'))
		return send_text(con, 404, "Not found.\n", lang, NULL);
	const char *token = url + 3;
	uint8_t key[RATELIMIT_KEY_MAX];
	size_t kl = client_key(p, con, key);
	struct conn_link_view v;
	conn_link_open(s->links, token, strlen(token), &v);
	bool post = strcmp(method, "POST") == 0;
	struct form f = {0};
	bool bad_body = post && v.state == CONN_LINK_VALID &&
	                (form_parse(MHD_lookup_connection_value(con, MHD_HEADER_KIND,
	                                                        MHD_HTTP_HEADER_CONTENT_TYPE),
	                            r->body, r->len, &f) != 0 ||
	                 (!f.one_click && !f.unsubscribe && !f.leave_purposes));
	if (v.state != CONN_LINK_VALID || bad_body) {
		int64_t now = time_now_ms();
		int wait = ratelimit_blocked(p->invalid, key, kl, now);
		if (wait) {
			count(s, PUBLIC_RATE_LIMITED);
			char ra[16];
			snprintf(ra, sizeof(ra), "%d", wait);
			return send_text(con, 429, "Too many invalid requests; try again later.\n",
			                 lang, ra);
		}
		ratelimit_hit(p->invalid, key, kl, now);
		count(s, PUBLIC_INVALID);
		log_debug("link.invalid", "%s %s: %s", method,
		          bad_body ? "a body that is not an unsubscribe"
		                   : "a link that is not valid",
		          bad_body ? "unreadable form" : v.why);
		if (bad_body)
			return send_text(con, 400,
			                 "This is not an unsubscribe request: send "
			                 "List-Unsubscribe=One-Click (RFC 8058).\n",
			                 lang, NULL);
		return send_page(p, con, 400,
		                 v.state == CONN_LINK_EXPIRED ? PAGE_EXPIRED : PAGE_INVALID, lang,
		                 NULL, NULL);
	}
	if (!post) {
		/* GET and HEAD change nothing: mail scanners fetch links */
		count(s, PUBLIC_PAGE);
		return send_page_of(p, con, 200, PAGE_CONFIRM, lang, v.masked, &v, NULL);
	}
	enum conn_link_via via = f.one_click ? CONN_LINK_ONE_CLICK : CONN_LINK_FORM;
	if (atomic_fetch_add(&p->inflight, 1) >= PUBLIC_INFLIGHT_MAX) {
		atomic_fetch_sub(&p->inflight, 1);
		count(s, PUBLIC_UNAVAILABLE);
		log_warn("link.busy", "more than %d unsubscribes waiting: answering 503",
		         PUBLIC_INFLIGHT_MAX);
		return via == CONN_LINK_ONE_CLICK
		           ? send_text(con, 503, "Busy; try again shortly.\n", lang,
		                       HTTP_RETRY_AFTER)
		           : send_page(p, con, 503, PAGE_RETRY, lang, NULL, HTTP_RETRY_AFTER);
	}
	struct conn_link_result res = {0};
	struct err e = {0};
	int rc = 0;
	bool chosen = !f.one_click && !f.unsubscribe && f.leave_purposes;
	size_t left = 0;
	if (chosen) {
		/* the purposes chosen on the page, each a purpose's opt-out; names
		 * the configuration does not have are not ours, and ignored */
		bool any_new = false;
		for (size_t i = 0; rc == 0 && i < f.npurposes; i++) {
			if (config_purpose_find(s->cfg, f.purposes[i]) == NULL)
				continue;
			rc = conn_link_optout(s->conn, &v, via, f.purposes[i], &res, &e);
			any_new |= rc == 0 && !res.already;
			left += rc == 0;
		}
		res.already = !any_new;
	} else {
		rc = conn_link_optout(s->conn, &v, via, NULL, &res, &e);
	}
	atomic_fetch_sub(&p->inflight, 1);
	if (rc == 0 && chosen && left == 0) {
		/* nothing chosen: the page again, nothing recorded */
		count(s, PUBLIC_PAGE);
		return send_page_of(p, con, 200, PAGE_CONFIRM, lang, v.masked, &v, NULL);
	}
	if (rc) {
		count(s, PUBLIC_UNAVAILABLE);
		log_error("link.optout",
		          "an unsubscribe could not be recorded (answered 503, the "
		          "sender will try again): %s",
		          e.msg);
		return via == CONN_LINK_ONE_CLICK
		           ? send_text(con, 503, "Could not record this now; try again shortly.\n",
		                       lang, HTTP_RETRY_AFTER)
		           : send_page(p, con, 503, PAGE_RETRY, lang, NULL, HTTP_RETRY_AFTER);
	}
	if (!res.already)
		sidecar_kick(s);
	count(s, via == CONN_LINK_ONE_CLICK ? PUBLIC_ONE_CLICK : PUBLIC_FORM);
	if (via == CONN_LINK_ONE_CLICK)
		return send_text(con, 200, page_one_click_text(lang), lang, NULL);
	return send_page(p, con, 200, chosen ? PAGE_DONE_PURPOSES : PAGE_DONE, lang, v.masked,
	                 NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct public_listener *p = cls;
	struct preq *r = *con_cls;
	if (r == NULL) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
		    strcmp(method, "POST") != 0) {
			struct MHD_Response *resp = MHD_create_response_from_buffer(
			    19, (void *)"Method not allowed\n", MHD_RESPMEM_PERSISTENT);
			if (resp == NULL)
				return MHD_NO;
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, POST");
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
			                        "text/plain; charset=utf-8");
			enum MHD_Result res = MHD_queue_response(con, 405, resp);
			MHD_destroy_response(resp);
			return res;
		}
		r = malloc(sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		r->len = 0;
		r->too_big = false;
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size) {
		if (r->len + *upload_size > sizeof(r->body))
			r->too_big = true;
		else
			memcpy(r->body + r->len, upload, *upload_size);
		if (!r->too_big)
			r->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	return answer(p, con, url, method, r);
}

static void on_done(void *cls, struct MHD_Connection *con, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)con;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

int public_start(struct public_listener **out, struct sidecar *s, struct err *e)
{
	*out = NULL;
	const struct config *cfg = s->cfg;
	struct public_listener *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	p->s = s;
	p->fd = -1;
	atomic_init(&p->inflight, 0);
	const struct config_list *tp = &cfg->unsubscribe.trusted_proxies;
	p->proxies = calloc(tp->n ? tp->n : 1, sizeof(*p->proxies));
	p->invalid = ratelimit_new(cfg->unsubscribe.invalid_per_minute, 65536);
	int rc = p->proxies && p->invalid ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < tp->n; i++)
		if (config_parse_cidr(tp->v[i], &p->proxies[p->nproxies++]))
			rc =
			    err_set(e, ERR_CONFIG,
			            "unsubscribe.trusted_proxies: \"%s\" is not a range", tp->v[i]);
	if (rc == 0) {
		p->fd =
		    http_listen(cfg->unsubscribe.listen, "unsubscribe.listen", &p->unix_path, e);
		if (p->fd < 0)
			rc = e->code;
	}
	if (rc == 0) {
		p->d = MHD_start_daemon(
		    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
		        MHD_USE_ITC | MHD_USE_ERROR_LOG,
		    0, NULL, NULL, on_request, p, MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log,
		    (void *)"public.http", MHD_OPTION_LISTEN_SOCKET, (MHD_socket)p->fd,
		    MHD_OPTION_THREAD_STACK_SIZE, (size_t)API_THREAD_STACK,
		    MHD_OPTION_CONNECTION_LIMIT, (unsigned)PUBLIC_CONNECTIONS_MAX,
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_NOTIFY_COMPLETED,
		    on_done, p, MHD_OPTION_END);
		if (p->d == NULL)
			rc = err_set(e, ERR_IO, "cannot start the unsubscribe listener on %s",
			             cfg->unsubscribe.listen);
	}
	if (rc) {
		public_stop(p);
		return rc;
	}
	log_info("public.listen", "unsubscribe links served on %s (%s/u/...)",
	         cfg->unsubscribe.listen, cfg->unsubscribe.base_url);
	*out = p;
	return 0;
}

void public_stop(struct public_listener *p)
{
	if (p == NULL)
		return;
	if (p->d) {
		MHD_quiesce_daemon(p->d);
		MHD_stop_daemon(p->d); /* in-flight opt-outs finish their commits first */
	}
	if (p->fd >= 0)
		close(p->fd);
	if (p->unix_path) {
		unlink(p->unix_path);
		free(p->unix_path);
	}
	ratelimit_free(p->invalid);
	free(p->proxies);
	free(p);
}
