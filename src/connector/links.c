/* Unsubscribe links: minting, opening, and the opt-out a link records.
 *
 * The opt-outs of requests that arrive together are committed together:
 * the first request that finds no commit running becomes the leader, takes
 * every request queued so far and applies them in one write transaction
 * (one fsync); requests that arrive meanwhile wait for the next commit.
 * Each request is answered only after the commit that holds it. A request
 * that fails for a reason of its own (a person whose record cannot be
 * read, an allocation) fails alone: the group is committed without it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/usecase.h"
#include "links/links.h"
#include "util/log.h"
#include "util/timefmt.h"

_Static_assert(LINK_NAME_MAX == LEDGER_TAG_MAX, "a link's campaign fits an event");

struct conn_links {
	const struct config *cfg;
	struct link_keys *keys;
};

int conn_links_open(const struct config *cfg, struct conn_links **out, struct err *e)
{
	*out = NULL;
	struct conn_links *k = calloc(1, sizeof(*k));
	if (k == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	k->cfg = cfg;
	int rc = link_keys_load(&k->keys, cfg, e);
	if (rc) {
		free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void conn_links_close(struct conn_links *k)
{
	if (k == NULL)
		return;
	link_keys_free(k->keys);
	free(k);
}

/* ---- minting ---- */

int conn_link_check(const struct conn_links *k, const char *purpose, const char *campaign,
                    struct err *e)
{
	int rc;
	if (purpose && *purpose && (rc = purpose_check(k->cfg, purpose, e)))
		return rc;
	if (campaign && strlen(campaign) > LINK_NAME_MAX)
		return err_set(e, ERR_INVALID, "campaign '%.40s...' is longer than %d bytes",
		               campaign, LINK_NAME_MAX);
	if (campaign && !link_name_ok(campaign))
		return err_set(e, ERR_INVALID, "campaign: no control characters");
	return 0;
}

int conn_link_mint(const struct conn_links *k, const char *email, const char *purpose,
                   const char *campaign, struct conn_link *out, struct err *e)
{
	struct link_claims c;
	memset(out, 0, sizeof(*out));
	int rc = conn_email_normalize(email, c.email, e);
	if (rc == 0)
		rc = conn_link_check(k, purpose, campaign, e);
	if (rc)
		return rc;
	snprintf(c.purpose, sizeof(c.purpose), "%s", purpose ? purpose : "");
	snprintf(c.campaign, sizeof(c.campaign), "%s", campaign ? campaign : "");
	c.minted_at = time_now_ms();
	char tok[LINK_TOKEN_MAX];
	if ((rc = link_seal(k->keys, &c, tok, e)))
		return rc;
	int n = snprintf(out->url, sizeof(out->url), "%s/u/%s", k->cfg->unsubscribe.base_url, tok);
	if (n < 0 || (size_t)n >= sizeof(out->url))
		return err_set(e, ERR_CONFIG, "unsubscribe.base_url is too long for a link");
	memcpy(out->list_unsubscribe, "<", 1);
	memcpy(out->list_unsubscribe + 1, out->url, (size_t)n);
	memcpy(out->list_unsubscribe + 1 + n, ">", 2);
	return 0;
}

/* ---- opening ---- */

static void mask_email(const char *email, char *out, size_t cap)
{
	const char *at = strrchr(email, '@');
	if (at == NULL || at == email) {
		snprintf(out, cap, "***");
		return;
	}
	/* the first character of the local part (a whole UTF-8 sequence) */
	size_t first = 1;
	while (email + first < at && ((unsigned char)email[first] & 0xc0) == 0x80)
		first++;
	snprintf(out, cap, "%.*s***%s", (int)first, email, at);
}

void conn_link_open(const struct conn_links *k, const char *token, size_t len,
                    struct conn_link_view *out)
{
	memset(out, 0, sizeof(*out));
	struct link_claims c;
	enum link_verdict v = link_open(k->keys, token, len, time_now_ms(), &c);
	out->why = link_verdict_name(v);
	if (v == LINK_EXPIRED) {
		out->state = CONN_LINK_EXPIRED;
		return;
	}
	if (v != LINK_OK) {
		out->state = CONN_LINK_INVALID;
		return;
	}
	out->state = CONN_LINK_VALID;
	snprintf(out->email, sizeof(out->email), "%s", c.email);
	snprintf(out->purpose, sizeof(out->purpose), "%s", c.purpose);
	snprintf(out->campaign, sizeof(out->campaign), "%s", c.campaign);
	mask_email(c.email, out->masked, sizeof(out->masked));
}

/* ---- the opt-out, committed in groups ---- */

struct link_req {
	struct optout_uc x; /* x.u first: the opt-out's context */
	struct conn_optout o;
	char reason[LINK_NAME_MAX + 160];
	struct link_req *next;
	bool done;
	int rc;
	struct err e;
};

/* The requests from head up to end (NULL: to the list's end), applied in
 * one write transaction. */
struct link_batch {
	struct link_req *head, *end;
	struct link_req *failed; /* the request whose opt-out failed; NULL: none did */
};

#define GROUP_MAX 1000 /* requests in one commit */

static int batch_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct link_batch *b = ctx;
	b->failed = NULL; /* the callback may run again */
	for (struct link_req *r = b->head; r != b->end; r = r->next) {
		int rc = optout_txn(t, &r->x, e);
		if (rc) {
			b->failed = r;
			return rc;
		}
	}
	return 0;
}

static void settle(struct link_req *from, const struct link_req *end, int rc, const struct err *e)
{
	for (struct link_req *r = from; r != end; r = r->next) {
		r->rc = rc;
		if (rc)
			r->e = *e;
	}
}

/* Commit the requests from head on, each apart from the others' failures.
 * The group goes in one write; when one request's opt-out fails, that
 * request alone takes the error, the requests before it (which went
 * through in that transaction) are committed by themselves, and the group
 * goes on after it: for n requests of which k fail, at most 2n opt-outs
 * applied and 2k + 1 writes. A failure that is no request's (the commit, a
 * disk too full to begin) is that of every request not yet committed, and
 * so is a second failure of the requests before a failed one (the ledger
 * changed under them): each is answered with it and tried again by its
 * sender. */
static void commit_group(struct conn *c, struct link_req *head)
{
	struct link_req *from = head;
	while (from) {
		struct link_batch b = {from, NULL, NULL};
		struct err e = {0};
		int rc = ledger_write(c->l, batch_txn, &b, &e);
		if (rc == 0 || b.failed == NULL) {
			settle(from, NULL, rc, &e);
			return;
		}
		struct link_req *bad = b.failed;
		settle(bad, bad->next, rc, &e);
		if (bad != from) {
			b = (struct link_batch){from, bad, NULL};
			rc = ledger_write(c->l, batch_txn, &b, &e);
			settle(from, bad, rc, &e);
		}
		from = bad->next;
	}
}

struct link_group {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct link_req *head, **tail;
	bool busy;
};

struct link_group *link_group_new(void)
{
	struct link_group *g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		free(g);
		return NULL;
	}
	if (pthread_cond_init(&g->cv, NULL) != 0) {
		pthread_mutex_destroy(&g->mu);
		free(g);
		return NULL;
	}
	g->tail = &g->head;
	return g;
}

void link_group_free(struct link_group *g)
{
	if (g == NULL)
		return;
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* Lead one commit: the queued requests (up to GROUP_MAX) in one write. */
static void lead(struct conn *c, struct link_group *g)
{
	struct link_req *head = g->head, **cut = &g->head;
	size_t n = 0;
	while (*cut && n < GROUP_MAX) {
		cut = &(*cut)->next;
		n++;
	}
	g->head = *cut;
	*cut = NULL;
	if (g->head == NULL)
		g->tail = &g->head;
	g->busy = true;
	pthread_mutex_unlock(&g->mu);
	commit_group(c, head);
	pthread_mutex_lock(&g->mu);
	for (struct link_req *r = head; r; r = r->next)
		r->done = true;
	g->busy = false;
	pthread_cond_broadcast(&g->cv);
}

int conn_link_optout(struct conn *c, const struct conn_link_view *v, enum conn_link_via via,
                     const char *purpose, struct conn_link_result *out, struct err *e)
{
	static const struct conn_actor link_actor = {CONN_ORIGIN_LINK, "link"};
	memset(out, 0, sizeof(*out));
	if (v->state != CONN_LINK_VALID)
		return err_set(e, ERR_INVALID, "the link is not valid");
	if (purpose && purpose_check(c->cfg, purpose, e))
		return e->code;
	struct link_req *r = uc_new(c, &link_actor, v->email, sizeof(*r), e);
	if (r == NULL)
		return e->code;
	r->o.email = r->x.u.email;
	r->o.reason =
	    via == CONN_LINK_ONE_CLICK ? "one-click unsubscribe (RFC 8058)" : "unsubscribe page";
	r->x.o = &r->o;
	r->x.campaign = v->campaign[0] ? v->campaign : NULL;
	/* a link of a purpose the configuration still has opts out of it (P1);
	 * of one it no longer has, out of all email: an unsubscribe is never
	 * lost. That is an opt-out of all email like any other (its change
	 * says the global opt-out changed), the link's purpose named in the
	 * reason only. */
	if (purpose) {
		r->o.purpose = purpose;
	} else if (v->purpose[0] && config_purpose_find(c->cfg, v->purpose)) {
		r->o.purpose = v->purpose;
	} else if (v->purpose[0]) {
		snprintf(
		    r->reason, sizeof(r->reason),
		    "%s; the link was for purpose '%s', which the configuration no longer has: "
		    "out of all email",
		    r->o.reason, v->purpose);
		r->o.reason = r->reason;
	}
	struct link_group *g = c->links;
	pthread_mutex_lock(&g->mu);
	*g->tail = r;
	g->tail = &r->next;
	while (!r->done) {
		if (!g->busy)
			lead(c, g); /* commits r, or the requests ahead of it first */
		else
			pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	int rc = r->rc;
	if (rc) {
		*e = r->e;
	} else {
		out->already = r->x.u.already;
		out->event_seq = r->x.u.event_seq;
		if (!out->already)
			log_info("link.optout", "opt-out recorded from an unsubscribe link (%s)",
			         via == CONN_LINK_ONE_CLICK ? "one-click" : "page");
	}
	free(r);
	return rc;
}
