/* The suppression check, answered from memory.
 *
 * A lookup in the ledger's B-tree costs about a microsecond on a large
 * ledger, nearly all of it cache misses on a cold leaf. The suppression
 * check only needs "is this person opted out", so the process keeps the
 * set of opted-out person keys (their first 16 bytes) in an
 * open-addressing table, built from the persons on first use and kept
 * current from the change feed: every change of a person's opt-out state
 * is a feed entry carrying the new state (event_record), written in the
 * same transaction as the change. Each check opens a read transaction,
 * applies the feed entries past the table's position, then answers; so an
 * opt-out made by another process (the CLI) is seen by the next check, as
 * it would be by a ledger lookup. 16 bytes of an HMAC-SHA256 make a
 * collision between two persons a 2^-128 event per pair. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"

/* A set of person keys (their first 16 bytes). */
struct keyset {
	uint64_t (*slot)[2]; /* key prefix; {0, 0} is empty */
	size_t cap, used;    /* cap: a power of two, used <= cap / 2 */
};

struct supp_index {
	pthread_mutex_t mu;
	struct keyset out; /* opted out of all email */
	struct {           /* per configured purpose (rule P3) */
		char name[LEDGER_PURPOSE_NAME_MAX + 1];
		bool consent; /* basis consent: suppressed until opted in */
		struct keyset in, out;
	} purposes[CONFIG_PURPOSES_MAX];
	size_t npurposes;
	uint64_t seq; /* change feed entries applied up to this */
	int built;
};

static void prefix_of(const uint8_t key[LEDGER_KEY_LEN], uint64_t out[2])
{
	memcpy(out, key, 16);
	if (out[0] == 0 && out[1] == 0)
		out[1] = 1; /* {0, 0} marks an empty slot */
}

static size_t home(const struct keyset *x, const uint64_t k[2])
{
	return (size_t)k[0] & (x->cap - 1); /* HMAC output: already uniform */
}

static int find(const struct keyset *x, const uint64_t k[2], size_t *at)
{
	*at = 0;
	if (x->cap == 0)
		return 0;
	for (size_t i = home(x, k);; i = (i + 1) & (x->cap - 1)) {
		if (x->slot[i][0] == 0 && x->slot[i][1] == 0) {
			*at = i;
			return 0;
		}
		if (x->slot[i][0] == k[0] && x->slot[i][1] == k[1]) {
			*at = i;
			return 1;
		}
	}
}

static int grow(struct keyset *x)
{
	size_t cap = x->cap ? x->cap * 2 : 1024;
	uint64_t(*s)[2] = calloc(cap, sizeof(*s));
	if (s == NULL)
		return -1;
	struct keyset n = {.slot = s, .cap = cap};
	for (size_t i = 0; i < x->cap; i++) {
		if (x->slot[i][0] == 0 && x->slot[i][1] == 0)
			continue;
		size_t at;
		find(&n, x->slot[i], &at);
		memcpy(s[at], x->slot[i], 16);
	}
	free(x->slot);
	x->slot = s;
	x->cap = cap;
	return 0;
}

static int insert(struct keyset *x, const uint64_t k[2])
{
	size_t at;
	if ((x->used + 1) * 2 > x->cap && grow(x))
		return -1;
	if (find(x, k, &at))
		return 0;
	memcpy(x->slot[at], k, 16);
	x->used++;
	return 0;
}

/* Linear probing's deletion: shift later entries of the run back so that
 * no lookup stops early at the hole. */
static void remove_key(struct keyset *x, const uint64_t k[2])
{
	size_t i;
	if (!find(x, k, &i))
		return;
	size_t mask = x->cap - 1;
	for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
		if (x->slot[j][0] == 0 && x->slot[j][1] == 0)
			break;
		size_t h = home(x, x->slot[j]);
		/* move j into the hole at i unless its home lies in (i, j] */
		if (((j - h) & mask) >= ((j - i) & mask)) {
			memcpy(x->slot[i], x->slot[j], 16);
			i = j;
		}
	}
	x->slot[i][0] = x->slot[i][1] = 0;
	x->used--;
}

static void keyset_clear(struct keyset *k)
{
	k->used = 0;
	if (k->slot)
		memset(k->slot, 0, k->cap * sizeof(*k->slot));
}

struct supp_index *supp_index_new(const struct config *cfg)
{
	struct supp_index *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return NULL;
	pthread_mutex_init(&x->mu, NULL);
	for (size_t i = 0; i < cfg->npurposes && i < CONFIG_PURPOSES_MAX; i++) {
		snprintf(x->purposes[i].name, sizeof(x->purposes[i].name), "%s",
		         cfg->purposes[i].name);
		x->purposes[i].consent = cfg->purposes[i].basis == CONFIG_BASIS_CONSENT;
		x->npurposes++;
	}
	return x;
}

void supp_index_free(struct supp_index *x)
{
	if (x == NULL)
		return;
	pthread_mutex_destroy(&x->mu);
	free(x->out.slot);
	for (size_t i = 0; i < x->npurposes; i++) {
		free(x->purposes[i].in.slot);
		free(x->purposes[i].out.slot);
	}
	free(x);
}

static int purpose_of(const struct supp_index *x, const char *name)
{
	for (size_t i = 0; i < x->npurposes; i++)
		if (strcmp(x->purposes[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Set key k's status for purpose i: in one set, out of the other. */
static int set_purpose(struct supp_index *x, int i, const uint64_t k[2], uint8_t status)
{
	struct keyset *in = &x->purposes[i].in, *out = &x->purposes[i].out;
	remove_key(status == LEDGER_PURPOSE_IN ? out : in, k);
	if (status == LEDGER_PURPOSE_IN)
		return insert(in, k);
	if (status == LEDGER_PURPOSE_OUT)
		return insert(out, k);
	remove_key(out, k);
	return 0;
}

struct build {
	struct supp_index *x;
	int oom;
};

static int add_person(const struct ledger_person *p, void *ctx)
{
	struct build *b = ctx;
	uint64_t k[2];
	if (!p->facts.opted_out)
		return 0;
	prefix_of(p->key, k);
	b->oom = insert(&b->x->out, k) != 0;
	return b->oom;
}

static int add_purpose(const uint8_t person[LEDGER_KEY_LEN], const struct ledger_purpose *p,
                       void *ctx)
{
	struct build *b = ctx;
	int i = purpose_of(b->x, p->name);
	if (i < 0)
		return 0; /* no longer configured */
	uint64_t k[2];
	prefix_of(person, k);
	b->oom = set_purpose(b->x, i, k, p->status) != 0;
	return b->oom;
}

static int apply_change(const struct ledger_change *ch, void *ctx)
{
	struct supp_index *x = ctx;
	uint64_t k[2];
	prefix_of(ch->person, k);
	if (ch->opted_out) {
		if (insert(&x->out, k))
			return 1;
	} else {
		remove_key(&x->out, k);
	}
	int i = ch->purpose_name[0] ? purpose_of(x, ch->purpose_name) : -1;
	if (i >= 0 && set_purpose(x, i, k, ch->purpose_status))
		return 1;
	x->seq = ch->seq;
	return 0;
}

struct check {
	struct supp_index *x;
	const uint8_t (*keys)[LEDGER_KEY_LEN];
	size_t n;
	int purpose; /* index, or -1 */
	bool *out;
};

static int check_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct check *c = ctx;
	struct supp_index *x = c->x;
	int rc = 0;
	pthread_mutex_lock(&x->mu);
	uint64_t last = ledger_change_last(t);
	if (!x->built) {
		/* the persons and the feed position from one snapshot */
		keyset_clear(&x->out);
		for (size_t i = 0; i < x->npurposes; i++) {
			keyset_clear(&x->purposes[i].in);
			keyset_clear(&x->purposes[i].out);
		}
		struct build b = {x, 0};
		/* add_person and add_purpose stop the walk with 1 when out of memory */
		rc = ledger_person_each(t, add_person, &b, e);
		if (rc == 0 && !b.oom && x->npurposes)
			rc = ledger_purpose_scan(t, add_purpose, &b, e);
		if (b.oom || (rc == 0 && x->out.cap == 0 && grow(&x->out)))
			rc = err_set(e, ERR_NOMEM, "out of memory (suppression index)");
		x->seq = last;
		x->built = rc == 0;
	} else if (last > x->seq) {
		uint64_t from = x->seq;
		/* apply_change stops the walk with 1 when out of memory */
		rc = ledger_change_list(t, from, (size_t)(last - from), apply_change, x, e);
		if (rc == 1 || (rc == 0 && x->seq != last))
			rc = err_set(e, ERR_NOMEM, "out of memory (suppression index)");
		if (rc)
			x->built = 0; /* rebuilt at the next check */
	}
	if (rc == 0 && !x->built)
		rc = err_set(e, ERR_NOMEM, "out of memory (suppression index)");
	for (size_t i = 0; rc == 0 && i < c->n; i++) {
		uint64_t k[2];
		size_t at;
		prefix_of(c->keys[i], k);
		c->out[i] = find(&x->out, k, &at);
		if (c->purpose >= 0 && !c->out[i]) {
			const struct keyset *pin = &x->purposes[c->purpose].in;
			const struct keyset *pout = &x->purposes[c->purpose].out;
			uint8_t status = find(pout, k, &at)  ? LEDGER_PURPOSE_OUT
			                 : find(pin, k, &at) ? LEDGER_PURPOSE_IN
			                                     : LEDGER_PURPOSE_NONE;
			c->out[i] = purpose_out(false, status, x->purposes[c->purpose].consent);
		}
	}
	pthread_mutex_unlock(&x->mu);
	return rc;
}

int supp_index_check(struct supp_index *x, struct ledger *l, const uint8_t (*keys)[LEDGER_KEY_LEN],
                     size_t n, const char *purpose, bool *out, struct err *e)
{
	int pi = purpose ? purpose_of(x, purpose) : -1;
	if (purpose && pi < 0)
		return err_set(e, ERR_INVALID, "unknown purpose '%.40s'", purpose);
	struct check c = {x, keys, n, pi, out};
	return ledger_read(l, check_txn, &c, e);
}
