/* The change feed, the webhook's position in it, and the suppression check. */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/usecase.h"
#include "util/csv.h"
#include "util/log.h"
#include "util/timefmt.h"

/* ---- change feed ---- */

struct feed_ctx {
	struct ledger_txn *t;
	cJSON *arr;
	struct ledger_person p;
	struct err *e;
	uint64_t last;
	size_t limit;
};

static int feed_one(const struct ledger_change *ch, void *ctx)
{
	struct feed_ctx *f = ctx;
	int rc = ledger_person_get(f->t, ch->person, &f->p, f->e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	/* the email is joined here: the feed itself holds no personal data */
	const char *email = rc == 0 && !(f->p.flags & LEDGER_PERSON_ERASED) ? f->p.email : NULL;
	json_append(f->arr, render_change(ch, email));
	f->last = ch->seq;
	return 0;
}

static int feed_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct feed_ctx *f = ctx;
	f->t = t;
	f->e = e;
	return ledger_change_list(t, f->last, f->limit, feed_one, f, e);
}

int conn_changes(struct conn *c, uint64_t after, size_t limit, cJSON **out, struct err *e)
{
	*out = NULL;
	struct feed_ctx *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	json_mark();
	f->arr = cJSON_CreateArray();
	f->last = after;
	f->limit = limit ? limit : 100;
	int rc = f->arr ? ledger_read(c->l, feed_txn, f, e) : 0;
	cJSON *o = rc == 0 ? cJSON_CreateObject() : NULL;
	if (json_attach(o, "changes", f->arr))
		cJSON_AddNumberToObject(o, "next_after", (double)f->last);
	free(f);
	/* a change missing from a page would be skipped for good */
	return json_result(o, rc, out, e);
}

/* ---- suppression check ---- */

int conn_suppressed(struct conn *c, const char *const *emails, size_t n, const char *purpose,
                    bool *out, bool *valid, struct err *e)
{
	if (purpose && purpose_check(c->cfg, purpose, e))
		return e->code;
	uint8_t(*keys)[LEDGER_KEY_LEN] = malloc((n ? n : 1) * sizeof(*keys));
	size_t *at = malloc((n ? n : 1) * sizeof(*at));
	bool *hit = malloc((n ? n : 1) * sizeof(*hit));
	int rc = keys && at && hit ? 0 : err_set(e, ERR_NOMEM, "out of memory");
	size_t k = 0; /* the valid ones, in keys[0..k) */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char norm[LEDGER_EMAIL_MAX + 1];
		struct err ie;
		out[i] = false;
		if (conn_email_normalize(emails[i], norm, valid ? &ie : e)) {
			if (valid == NULL)
				rc = ERR_INVALID;
			else
				valid[i] = false;
			continue;
		}
		if (valid)
			valid[i] = true;
		ledger_person_key(c->l, norm, strlen(norm), keys[k]);
		at[k++] = i;
	}
	if (rc == 0)
		rc = supp_index_check(c->supp, c->l, (const uint8_t(*)[LEDGER_KEY_LEN])keys, k,
		                      purpose, hit, e);
	for (size_t j = 0; rc == 0 && j < k; j++)
		out[at[j]] = hit[j];
	free(keys);
	free(at);
	free(hit);
	return rc;
}

/* ---- webhook position ---- */

struct wpos {
	uint64_t seq;
	int write;
};

static int wpos_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct wpos *p = ctx;
	char b[33];
	if (p->write) {
		int n = snprintf(b, sizeof(b), "%llu", (unsigned long long)p->seq);
		return ledger_meta_put(t, META_WEBHOOK_DELIVERED, b, (size_t)n, e);
	}
	size_t n;
	int rc = ledger_meta_get(t, META_WEBHOOK_DELIVERED, b, sizeof(b) - 1, &n, e);
	if (rc == ERR_NOTFOUND) {
		p->seq = 0;
		return 0;
	}
	if (rc)
		return rc;
	b[n] = '\0';
	p->seq = strtoull(b, NULL, 10);
	return 0;
}

int conn_webhook_position(struct conn *c, uint64_t *seq, struct err *e)
{
	struct wpos p = {0, 0};
	int rc = ledger_read(c->l, wpos_txn, &p, e);
	*seq = p.seq;
	return rc;
}

int conn_webhook_advance(struct conn *c, uint64_t seq, struct err *e)
{
	struct wpos p = {seq, 1};
	return ledger_write(c->l, wpos_txn, &p, e);
}
