/* Retention runs: events purged to stubs that keep the chain verifiable,
 * stale persons and old resolved conflicts removed; never an opt-out
 * (chain.c has the stub format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"
#include "state/sha.h"

/* Replace event seq by a stub naming run; *was set to 1 when it was an
 * event (0: a stub already). The stub keeps the event's hash, of its own
 * version, computed from the event as stored. */
static int event_purge(struct ledger_txn *t, uint64_t seq, uint64_t run, int *was, struct err *e)
{
	struct ledger_event *ev = malloc(sizeof(*ev));
	if (ev == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	uint8_t kb[8], pd[32], h[32];
	be64_put(kb, seq);
	MDB_val k = {8, kb}, v;
	*was = 0;
	int rc = db_get(t, t->l->history, kb, 8, &v, "history event", e);
	if (rc == 0 && hist_event_decode(&k, &v, ev, pd))
		rc = corrupt(t, "a history event", e);
	uint64_t version;
	const char *why;
	if (rc == 0 && !ev->purged) {
		int hr = hist_event_hash(&v, ev, pd, h, &version, &why);
		if (hr) {
			rc = hist_hash_error(t, hr, seq, version, why, e);
		} else {
			uint8_t buf[128];
			struct enc en;
			enc_init(&en, buf, sizeof(buf));
			enc_hash(&en, 9, ev->prev_hash);
			enc_hash(&en, 14, h);
			enc_uint(&en, 15, run);
			rc = db_put(t, t->l->history, kb, 8, buf, en.len, 0, "purge history event",
			            e);
			*was = rc == 0;
		}
	}
	free(ev);
	return rc;
}

struct purge_ctx {
	uint64_t run;
	uint64_t n;
	struct err *e;
};

static int purge_one(struct ledger_txn *t, uint64_t seq, void *ctx)
{
	struct purge_ctx *p = ctx;
	int was = 0;
	int rc = event_purge(t, seq, p->run, &was, p->e);
	p->n += (uint64_t)was;
	return rc;
}

struct cand {
	uint8_t key[LEDGER_KEY_LEN];
	uint64_t last;
	bool stale; /* the person goes too */
};

static int has_status(const struct ledger_purpose *p, void *ctx)
{
	(void)ctx;
	return p->status != LEDGER_PURPOSE_NONE; /* stops the walk at the first */
}

struct scan {
	const struct ledger_retention *r;
	struct cand *c;
	size_t n, cap;
	int oom;
	struct ledger_txn *t; /* for the person's records */
	struct err *e;
	int rc;
};

static int scan_person(const struct ledger_person *p, void *ctx)
{
	struct scan *s = ctx;
	if (p->facts.opted_out)
		return 0; /* an opt-out outlives every rule */
	bool stale = s->r->persons_before && p->updated_at < s->r->persons_before;
	if (stale) {
		/* a person with a Salesforce record is not stale */
		uint64_t n;
		if ((s->rc = ledger_person_records_count(s->t, p, 1, &n, s->e)))
			return 1;
		stale = n == 0;
	}
	if (!stale && (s->r->events_before == 0 || p->last_event == 0))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct cand *g = realloc(s->c, cap * sizeof(*g));
		if (g == NULL) {
			s->oom = 1;
			return 1;
		}
		s->c = g;
		s->cap = cap;
	}
	memcpy(s->c[s->n].key, p->key, LEDGER_KEY_LEN);
	s->c[s->n].last = p->last_event;
	s->c[s->n].stale = stale;
	s->n++;
	return 0;
}

struct old_conflicts {
	int64_t before;
	uint64_t *ids;
	size_t n, cap;
	int oom;
};

static int scan_conflict(const struct ledger_conflict *c, void *ctx)
{
	struct old_conflicts *o = ctx;
	if (c->status != LEDGER_CONFLICT_RESOLVED || c->resolved_at >= o->before)
		return 0;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		uint64_t *g = realloc(o->ids, cap * sizeof(*g));
		if (g == NULL) {
			o->oom = 1;
			return 1;
		}
		o->ids = g;
		o->cap = cap;
	}
	o->ids[o->n++] = c->id;
	return 0;
}

/* What one run would remove: the persons with something to purge (their
 * keys) and the conflicts. */
struct plan {
	uint8_t (*keys)[LEDGER_KEY_LEN];
	size_t nkeys;
	uint64_t *conflicts;
	size_t nconflicts;
};

static void plan_free(struct plan *p)
{
	free(p->keys);
	free(p->conflicts);
	memset(p, 0, sizeof(*p));
}

/* One run in t. only == NULL: look at every person and conflict, and fill
 * out (when given) with what would go. only != NULL: look again at just
 * those (state may have changed since they were picked). Writes only when
 * !dry_run. */
static int retention_in(struct ledger_txn *t, const struct ledger_retention *r, bool dry_run,
                        const struct plan *only, struct plan *out,
                        struct ledger_retention_report *rep, struct err *e)
{
	memset(rep, 0, sizeof(*rep));
	struct scan s = {r, NULL, 0, 0, 0, t, e, 0};
	struct old_conflicts oc = {r->conflicts_before, NULL, 0, 0, 0};
	uint64_t **lists = NULL;
	size_t *lens = NULL;
	int rc = 0;
	if (only == NULL) {
		rc = ledger_person_each(t, scan_person, &s, e);
		if (rc == 0 && r->conflicts_before)
			rc = ledger_conflict_each(t, scan_conflict, &oc, e);
	} else {
		struct ledger_person *p = malloc(sizeof(*p));
		struct ledger_conflict *c = malloc(sizeof(*c));
		if (p == NULL || c == NULL)
			rc = err_set(e, ERR_NOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < only->nkeys; i++) {
			rc = ledger_person_get(t, only->keys[i], p, e);
			if (rc == 0)
				scan_person(p, &s);
			else if (rc == ERR_NOTFOUND)
				rc = 0;
		}
		for (size_t i = 0; rc == 0 && i < only->nconflicts; i++) {
			rc = ledger_conflict_get(t, only->conflicts[i], c, e);
			if (rc == 0)
				scan_conflict(c, &oc);
			else if (rc == ERR_NOTFOUND)
				rc = 0;
		}
		free(p);
		free(c);
	}
	if (s.rc)
		rc = s.rc;
	else if (s.oom || oc.oom) /* the scan stopped (fn's 1) */
		rc = err_set(e, ERR_NOMEM, "out of memory");
	lists = calloc(s.n ? s.n : 1, sizeof(*lists));
	lens = calloc(s.n ? s.n : 1, sizeof(*lens));
	if (rc == 0 && (lists == NULL || lens == NULL))
		rc = err_set(e, ERR_NOMEM, "out of memory");
	/* a purpose's opt-out (or opt-in with its evidence) keeps the person,
	 * as the opt-out of all email does */
	for (size_t i = 0; rc == 0 && i < s.n; i++)
		if (s.c[i].stale) {
			int any = ledger_purpose_each(t, s.c[i].key, has_status, NULL, e);
			if (any > 0)
				s.c[i].stale = false;
			else if (any < 0)
				rc = any;
		}
	/* what goes: counted before anything is written, since the run's
	 * event (appended first) holds the count its stubs are checked against */
	for (size_t i = 0; rc == 0 && i < s.n; i++) {
		int64_t before = s.c[i].stale ? INT64_MAX : r->events_before;
		rc = hist_person_seqs(t, s.c[i].last, before, &lists[i], &lens[i], e);
		rep->events += lens[i];
		rep->persons += s.c[i].stale;
	}
	rep->conflicts = oc.n;
	if (rc == 0 && out) {
		out->keys = malloc((s.n ? s.n : 1) * sizeof(*out->keys));
		out->conflicts = malloc((oc.n ? oc.n : 1) * sizeof(*out->conflicts));
		if (out->keys == NULL || out->conflicts == NULL)
			rc = err_set(e, ERR_NOMEM, "out of memory");
		for (size_t i = 0; rc == 0 && i < s.n; i++)
			if (lens[i] || s.c[i].stale)
				memcpy(out->keys[out->nkeys++], s.c[i].key, LEDGER_KEY_LEN);
		for (size_t i = 0; rc == 0 && i < oc.n; i++)
			out->conflicts[out->nconflicts++] = oc.ids[i];
	}
	if (rc || dry_run || rep->events + rep->persons + rep->conflicts == 0)
		goto out;
	struct ledger_event *ev = malloc(sizeof(*ev));
	if (ev == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	ledger_event_init(ev);
	ev->kind = LEDGER_EV_RETENTION;
	ev->origin = LEDGER_ORIGIN_LOCAL;
	ev->at = r->now;
	ev->count = rep->events;
	snprintf(ev->actor, sizeof(ev->actor), "%s", r->actor ? r->actor : "retention");
	snprintf(ev->reason, sizeof(ev->reason),
	         "purged %llu events, %llu resolved conflicts, %llu stale persons",
	         (unsigned long long)rep->events, (unsigned long long)rep->conflicts,
	         (unsigned long long)rep->persons);
	rc = ledger_event_append(t, NULL, ev, e);
	rep->event_seq = ev->seq;
	free(ev);
	struct purge_ctx pc = {rep->event_seq, 0, e};
	for (size_t i = 0; rc == 0 && i < s.n; i++) {
		for (size_t j = 0; rc == 0 && j < lens[i]; j++)
			rc = purge_one(t, lists[i][j], &pc);
		if (rc == 0 && s.c[i].stale)
			rc = ledger_person_delete(t, s.c[i].key, e);
	}
	if (rc == 0 && pc.n != rep->events)
		rc = err_set(e, ERR_INTERNAL, "retention: %llu events counted, %llu purged",
		             (unsigned long long)rep->events, (unsigned long long)pc.n);
	for (size_t i = 0; rc == 0 && i < oc.n; i++)
		rc = ledger_conflict_delete(t, oc.ids[i], e);
out:
	for (size_t i = 0; lists && i < s.n; i++)
		free(lists[i]);
	free(lists);
	free(lens);
	free(s.c);
	free(oc.ids);
	return rc;
}

struct retention_ctx {
	const struct ledger_retention *r;
	struct plan plan;
	struct ledger_retention_report rep;
	ledger_retention_hook hook;
	void *hook_ctx;
};

static int plan_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct retention_ctx *x = ctx;
	plan_free(&x->plan);
	return retention_in(t, x->r, true, NULL, &x->plan, &x->rep, e);
}

static int apply_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct retention_ctx *x = ctx;
	int rc = retention_in(t, x->r, false, &x->plan, NULL, &x->rep, e);
	if (rc == 0 && x->hook)
		rc = x->hook(t, &x->rep, x->hook_ctx, e);
	return rc;
}

int ledger_retention(struct ledger *l, const struct ledger_retention *r, ledger_retention_hook hook,
                     void *hook_ctx, struct ledger_retention_report *rep, struct err *e)
{
	struct retention_ctx x = {r, {0}, {0}, hook, hook_ctx};
	/* the scan of every person reads; only what it picked is looked at
	 * again (and removed) in the write transaction, which stays short */
	int rc = ledger_read(l, plan_txn, &x, e);
	if (rc == 0 && !r->dry_run)
		rc = ledger_write(l, apply_txn, &x, e);
	*rep = x.rep;
	plan_free(&x.plan);
	return rc;
}

/* Stubs per retention event: an open-addressing table run -> count. */
