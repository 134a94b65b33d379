/* Verification of the history chain (chain.c has the rules). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"
#include "state/sha.h"

struct tally {
	uint64_t *run, *n;
	size_t cap, used;
};

static uint64_t *tally_slot(struct tally *t, uint64_t run)
{
	if (t->used * 2 >= t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		uint64_t *r = calloc(cap, sizeof(*r)), *n = calloc(cap, sizeof(*n));
		if (r == NULL || n == NULL) {
			free(r);
			free(n);
			return NULL;
		}
		for (size_t i = 0; i < t->cap; i++) {
			if (t->run[i] == 0)
				continue;
			size_t j = (size_t)(t->run[i] * 0x9E3779B97F4A7C15ull) & (cap - 1);
			while (r[j])
				j = (j + 1) & (cap - 1);
			r[j] = t->run[i];
			n[j] = t->n[i];
		}
		free(t->run);
		free(t->n);
		t->run = r;
		t->n = n;
		t->cap = cap;
	}
	size_t j = (size_t)(run * 0x9E3779B97F4A7C15ull) & (t->cap - 1);
	while (t->run[j] && t->run[j] != run)
		j = (j + 1) & (t->cap - 1);
	if (t->run[j] == 0) {
		t->run[j] = run;
		t->used++;
	}
	return &t->n[j];
}

/* ---- verification ---- */

struct verify_ctx {
	struct ledger_verify_report *rep;
	uint64_t at; /* the event whose hash to report, 0: none */
};

static int bad_event(struct ledger_verify_report *rep, uint64_t seq, const char *why)
{
	rep->first_bad = seq;
	snprintf(rep->why, sizeof(rep->why), "%s", why);
	return 1;
}

/* A verdict on the chain (bad, with rep->first_bad and rep->why) is
 * ERR_LEDGER "history chain broken"; a failure to check it (out of memory,
 * an LMDB error) returns its own code and leaves rep->first_bad 0. */
static int verify_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ledger_verify_report *rep = ((struct verify_ctx *)ctx)->rep;
	uint64_t at = ((struct verify_ctx *)ctx)->at;
	struct ledger_event *ev = malloc(sizeof(*ev));
	struct tally tl = {0};
	MDB_cursor *c = NULL;
	int rc = 0, bad = 0;
	if (ev == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	int mrc = mdb_cursor_open(t->txn, t->l->history, &c);
	if (mrc) {
		c = NULL;
		rc = ledger_mdb_error(t, mrc, "history cursor", e);
		goto out;
	}
	uint8_t running[32] = {0}, pd[32], h[32];
	uint64_t expect = 1;
	char msg[160];
	MDB_val k, v;
	int op = MDB_FIRST;
	while ((mrc = mdb_cursor_get(c, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (hist_event_decode(&k, &v, ev, pd)) {
			bad = bad_event(rep, k.mv_size == 8 ? be64_get(k.mv_data) : expect,
			                "event cannot be decoded");
			goto out;
		}
		if (ev->seq != expect) {
			bad = bad_event(rep, expect, "event missing (sequence gap)");
			goto out;
		}
		if (memcmp(ev->prev_hash, running, 32) != 0) {
			bad = bad_event(rep, ev->seq - 1,
			                "event altered: its hash no longer matches the link stored "
			                "in the next event (or that link was altered)");
			goto out;
		}
		if (ev->purged) {
			if (ev->purged_by <= ev->seq) {
				bad = bad_event(rep, ev->seq,
				                "a purged event names no later retention run");
				goto out;
			}
			uint64_t *n = tally_slot(&tl, ev->purged_by);
			if (n == NULL) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				goto out;
			}
			(*n)++;
			memcpy(running, pd, 32); /* the stub keeps the event's hash */
			if (ev->seq == at) {
				rep->at_found = true;
				memcpy(rep->at_hash, running, 32);
			}
			rep->purged++;
			rep->events++;
			expect++;
			continue;
		}
		uint64_t version;
		const char *why;
		int hr = hist_event_hash(&v, ev, pd, h, &version, &why);
		if (hr == HIST_NEWER) {
			/* not a verdict: this optsync cannot tell */
			rc = hist_hash_error(t, hr, ev->seq, version, why, e);
			goto out;
		}
		if (hr) {
			snprintf(msg, sizeof(msg), "event cannot be hashed: %s", why);
			bad = bad_event(rep, ev->seq, msg);
			goto out;
		}
		if (ev->kind == LEDGER_EV_RETENTION) {
			uint64_t *n = tally_slot(&tl, ev->seq);
			if (n == NULL) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				goto out;
			}
			if (*n != ev->count) {
				snprintf(msg, sizeof(msg),
				         "retention run purged %llu events, but %llu purged events "
				         "name it",
				         (unsigned long long)ev->count, (unsigned long long)*n);
				bad = bad_event(rep, ev->seq, msg);
				goto out;
			}
			*n = UINT64_MAX; /* matched */
		}
		memcpy(running, h, 32);
		if (ev->seq == at) {
			rep->at_found = true;
			memcpy(rep->at_hash, running, 32);
		}
		rep->events++;
		expect++;
	}
	if (mrc != MDB_NOTFOUND) {
		rc = ledger_mdb_error(t, mrc, "history cursor", e);
		goto out;
	}
	memcpy(rep->head_hash, running, 32);
	for (size_t i = 0; i < tl.cap; i++)
		if (tl.run[i] && tl.n[i] != UINT64_MAX) {
			bad = bad_event(
			    rep, tl.run[i],
			    "purged events name this event, which is not a retention run");
			goto out;
		}
	MDB_val head;
	rc = db_get(t, t->l->meta, "chain_head", 10, &head, "chain head", e);
	if (rc == ERR_NOTFOUND) {
		rc = 0;
		if (rep->events != 0)
			bad = bad_event(rep, 1, "chain head missing");
	} else if (rc) {
		goto out;
	} else if (head.mv_size != 40 || be64_get(head.mv_data) != rep->events) {
		bad = bad_event(rep, rep->events + 1,
		                "events missing at the end (chain head is further on)");
	} else if (memcmp((uint8_t *)head.mv_data + 8, running, 32) != 0) {
		/* the last event itself was altered after the head was written */
		bad = bad_event(rep, rep->events, "event altered (hash differs from chain head)");
	}
out:
	free(tl.run);
	free(tl.n);
	if (c)
		mdb_cursor_close(c);
	free(ev);
	if (bad)
		return err_set(e, ERR_LEDGER, "history chain broken at event %llu: %s",
		               (unsigned long long)rep->first_bad, rep->why);
	return rc;
}

/* The whole chain is a long read: growth waits for it outside the resize
 * lock (ledger_copy_enter), so suppression checks do not queue behind it. */
static int verify_long(struct ledger_txn *t, void *ctx, struct err *e)
{
	ledger_copy_enter(t->l);
	int rc = verify_txn(t, ctx, e);
	ledger_copy_leave(t->l);
	return rc;
}

int ledger_verify_at(struct ledger *l, uint64_t at, struct ledger_verify_report *rep, struct err *e)
{
	memset(rep, 0, sizeof(*rep));
	struct verify_ctx v = {rep, at};
	return ledger_read(l, verify_long, &v, e);
}

int ledger_verify(struct ledger *l, struct ledger_verify_report *rep, struct err *e)
{
	return ledger_verify_at(l, 0, rep, e);
}

/* The fuzz target's way in: decode (k, v) as a history event, and hash it
 * as verify would. */
int ledger_probe_event(const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	struct ledger_event *ev = malloc(sizeof(*ev));
	uint8_t digest[32], h[32];
	uint64_t version;
	const char *why;
	int ok = ev != NULL && hist_event_decode(&key, &val, ev, digest) == 0;
	if (ok && !ev->purged)
		(void)hist_event_hash(&val, ev, digest, h, &version, &why);
	free(ev);
	return ok;
}
