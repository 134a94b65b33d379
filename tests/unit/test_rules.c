/* The sync rules at the unit level: the pure decisions of connector/rules
 * (flag_decide, facts_decide, the validity and evidence checks) through
 * tables of their own; and apply_sf_record (the heart of the mappings)
 * through a table of cases, one row per rule and edge, each against a real
 * ledger. A row sets up what the ledger knows (earlier pulls of the record,
 * local changes through the use cases), applies one pulled record, and
 * checks the person, the record's conflicts, the queued pushes and the
 * counters. The scenario tests (tests/integration/test_sync.py) cover the
 * same rules end to end against the fake Salesforce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/internal.h"
#include "util/log.h"
#include "util/timefmt.h"

#define EMAIL "ann@example.com"
#define ID1   "0035e0000000001AAA"
#define ID2   "00Q5e0000000002AAA"
#define T0    1700000000000LL /* the first pull's SystemModstamp */

/* A pulled record, as the Salesforce client hands it over. */
struct pulled {
	int object; /* LEDGER_OBJ_* */
	const char *id;
	const char *email; /* NULL: no Email */
	int opted_out;
	const char *auth, *consent_date, *purpose, *source; /* picklist values, texts */
	int converted;
	int64_t modstamp, modified; /* ms; modified 0: the same as modstamp */
};

static int apply_txn(struct ledger_txn *t, void *ctx, struct err *e);

struct apply_ctx {
	struct conn *c;
	const struct pulled *in;
	struct apply_stats st;
};

static int apply(struct conn *c, const struct pulled *in, struct apply_stats *st)
{
	struct apply_ctx a = {c, in, {0}};
	struct err e = {0};
	int rc = ledger_write(c->l, apply_txn, &a, &e);
	if (rc)
		fail_msg("apply: %s", e.msg);
	*st = a.st;
	return rc;
}

static int apply_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct apply_ctx *a = ctx;
	const struct pulled *in = a->in;
	char ms[TIME_STR_MAX], mod[TIME_STR_MAX];
	time_format_sf(in->modstamp, ms);
	time_format_sf(in->modified ? in->modified : in->modstamp, mod);
	struct sf_value v[12];
	size_t n = 0;
#define STR(name_, s_)                                                                             \
	do {                                                                                       \
		v[n] = (struct sf_value){name_, (s_) ? SF_STRING : SF_NULL, (s_), false, 0};       \
		n++;                                                                               \
	} while (0)
	if (in->email)
		STR("Email", in->email);
	v[n++] = (struct sf_value){"HasOptedOutOfEmail", SF_BOOL, NULL, in->opted_out != 0, 0};
	STR("Authorization_Type__c", in->auth);
	STR("Consent_Date__c", in->consent_date);
	STR("Processing_Purpose__c", in->purpose);
	STR("Source_Type__c", in->source);
	v[n++] = (struct sf_value){"SystemModstamp", SF_STRING, ms, false, 0};
	v[n++] = (struct sf_value){"LastModifiedDate", SF_STRING, mod, false, 0};
	if (in->object == LEDGER_OBJ_LEAD)
		v[n++] = (struct sf_value){"IsConverted", SF_BOOL, NULL, in->converted != 0, 0};
#undef STR
	struct sf_record r = {
	    .type = ledger_object_name(in->object), .id = in->id, .nvalues = n, .values = v};
	memset(&a->st, 0, sizeof(a->st)); /* the callback may run again */
	return apply_sf_record(t, a->c->l, a->c->cfg, in->object, &r, &a->st, e);
}

/* ---- what the ledger knows, for the checks ---- */

struct facts_of {
	struct conn *c;
	struct ledger_person p;
	int found;
	size_t open_conflicts[4]; /* by kind */
	size_t resolved_conflicts;
	size_t pushes;
	struct ledger_push push; /* the push of ID1, when there is one */
	int push1;
};

static int count_conflict(const struct ledger_conflict *cf, void *ctx)
{
	struct facts_of *f = ctx;
	if (cf->status == LEDGER_CONFLICT_OPEN && cf->kind < 4)
		f->open_conflicts[cf->kind]++;
	else
		f->resolved_conflicts++;
	return 0;
}

static int count_push(const struct ledger_push *q, void *ctx)
{
	struct facts_of *f = ctx;
	f->pushes++;
	if (strcmp(q->record.id, ID1) == 0) {
		f->push = *q;
		f->push1 = 1;
	}
	return 0;
}

static int facts_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct facts_of *f = ctx;
	uint8_t key[LEDGER_KEY_LEN];
	ledger_person_key(f->c->l, EMAIL, strlen(EMAIL), key);
	int rc = ledger_person_get(t, key, &f->p, e);
	f->found = rc == 0;
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	rc = ledger_conflict_each(t, count_conflict, f, e);
	return rc ? rc : ledger_push_each(t, count_push, f, e);
}

static struct facts_of *facts(struct conn *c)
{
	struct facts_of *f = calloc(1, sizeof(*f));
	f->c = c;
	struct err e = {0};
	if (ledger_read(c->l, facts_txn, f, &e))
		fail_msg("read: %s", e.msg);
	return f;
}

/* ---- the table ---- */

enum setup {
	S_NONE,              /* nothing known yet */
	S_SEEN_IN,           /* ID1 pulled before, not opted out */
	S_SEEN_OUT,          /* ID1 pulled before, opted out */
	S_LOCAL_OUT,         /* a local opt-out, no record known */
	S_SEEN_IN_LOCAL_OUT, /* ID1 pulled not opted out, then a local opt-out */
	S_LOCAL_AUTH,        /* ID1 pulled, then a local authorization change queued */
	/* rule 9: ID1 pulled as OTHER's record, then OTHER opted out and set
	 * its basis locally (a push queued for ID1 on OTHER's behalf) */
	S_OTHER_QUEUED,
	S_OTHER_QUEUED_LOCAL_OUT, /* the same, and EMAIL opted out locally (no record yet) */
	/* ID1 pulled opted out, then in, out again in Salesforce (one conflict open) */
	S_SEEN_OUT_IN_OUT,
};

struct rule_case {
	const char *name;
	const char *policy; /* sync.resubscribe_policy */
	enum setup setup;
	struct pulled in;
	/* what must follow */
	int want_person; /* the person exists */
	int want_opted_out;
	int want_auth;           /* enum ledger_auth of the person, -1: not checked */
	size_t want_open[4];     /* open conflicts by kind */
	size_t want_pushes;      /* pushes queued in all */
	int want_push_out;       /* -1: no push for ID1; 0/1: its opted_out value */
	struct apply_stats want; /* the counters (records is checked to be 1) */
	uint32_t want_push_mask; /* the fields of ID1's push exactly; 0: not checked */
};

#define LATER (T0 + 60000)
#define OTHER "bea@example.com"

static const struct rule_case cases[] = {
    /* rule 1: an opt-out seen in Salesforce is applied */
    {"opt-out in Salesforce, person unknown",
     "revert",
     S_NONE,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 1, NULL, NULL, NULL, NULL, 0, T0, 0},
     1,
     1,
     -1,
     {0},
     0,
     -1,
     {.optouts_in = 1},
     0},
    {"opt-out in Salesforce on a known record: applied and spread",
     "revert",
     S_SEEN_IN,
     {LEDGER_OBJ_LEAD, ID2, EMAIL, 1, NULL, NULL, NULL, NULL, 0, LATER, 0},
     1,
     1,
     -1,
     {0},
     1,
     1,
     {.optouts_in = 1, .pushes_queued = 1},
     0},
    {"no opt-out anywhere: a new person",
     "revert",
     S_NONE,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, T0, 0},
     1,
     0,
     -1,
     {0},
     0,
     -1,
     {0},
     0},
    /* rule 3: a record that appears for a suppressed person */
    {"new record of a locally opted-out person is set to opted out",
     "revert",
     S_LOCAL_OUT,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, T0, 0},
     1,
     1,
     -1,
     {0},
     1,
     1,
     {.suppressed_new = 1, .pushes_queued = 1},
     0},
    {"a converted lead of a suppressed person is not written",
     "revert",
     S_LOCAL_OUT,
     {LEDGER_OBJ_LEAD, ID2, EMAIL, 0, NULL, NULL, NULL, NULL, 1, T0, 0},
     1,
     1,
     -1,
     {0},
     0,
     -1,
     {0},
     0},
    /* rule 2: no silent re-subscribe */
    {"re-subscribe in Salesforce: a conflict, reverted",
     "revert",
     S_SEEN_OUT,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, LATER, 0},
     1,
     1,
     -1,
     {0, 1, 0, 0},
     1,
     1,
     {.resubscribe_conflicts = 1, .pushes_queued = 1},
     0},
    {"re-subscribe in Salesforce under hold: a conflict, Salesforce left alone",
     "hold",
     S_SEEN_OUT,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, LATER, 0},
     1,
     1,
     -1,
     {0, 1, 0, 0},
     0,
     -1,
     {.resubscribe_conflicts = 1},
     0},
    {"a record seen opted in, the person opted out locally since: not a re-subscribe",
     "revert",
     S_SEEN_IN_LOCAL_OUT,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, LATER, 0},
     1,
     1,
     -1,
     {0},
     1,
     1,
     {.echoes = 1},
     0}, /* the local opt-out's push is what is queued */
    /* rule 4: own writes are not changes */
    {"our own write read back: an echo, nothing else",
     "revert",
     S_SEEN_OUT,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 1, NULL, NULL, NULL, NULL, 0, LATER, 0},
     1,
     1,
     -1,
     {0},
     0,
     -1,
     {.echoes = 1},
     0},
    /* rule 5: compliance fields */
    {"valid facts from Salesforce are applied",
     "revert",
     S_NONE,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, "Consent", "2026-01-02T00:00:00.000+0000", "news",
      "Import", 0, T0, 0},
     1,
     0,
     LEDGER_AUTH_CONSENT,
     {0},
     0,
     -1,
     {.facts_applied = 2},
     0},
    {"a picklist value that maps to nothing: a conflict, not applied",
     "revert",
     S_NONE,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, "Maybe", NULL, NULL, NULL, 0, T0, 0},
     1,
     0,
     LEDGER_AUTH_NONE,
     {0, 0, 1, 0},
     0,
     -1,
     {.invalid_conflicts = 1},
     0},
    {"consent without a consent date: a conflict, not applied",
     "revert",
     S_NONE,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, "Consent", NULL, "news", NULL, 0, T0, 0},
     1,
     0,
     LEDGER_AUTH_NONE,
     {0, 0, 1, 0},
     0,
     -1,
     {.invalid_conflicts = 1},
     0},
    {"a consent date in the future: a conflict, not applied",
     "revert",
     S_NONE,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, "Consent", "2099-01-01T00:00:00.000+0000", "news", NULL, 0,
      T0, 0},
     1,
     0,
     LEDGER_AUTH_NONE,
     {0, 0, 1, 0},
     0,
     -1,
     {.invalid_conflicts = 1},
     0},
    {"both sides changed the basis, Salesforce later: Salesforce wins, conflict kept",
     "revert",
     S_LOCAL_AUTH,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, "Legal Obligation", NULL, NULL, NULL, 0,
      4102444800000LL /* 2100: after the local change */, 0},
     1,
     0,
     LEDGER_AUTH_LEGAL_OBLIGATION,
     {0},
     0,
     -1,
     {.concurrent_conflicts = 1, .facts_applied = 1},
     0},
    {"both sides changed the basis at the same moment: the tie goes to the local change",
     "revert",
     S_LOCAL_AUTH,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, "Legal Obligation", NULL, NULL, NULL, 0, LATER,
      -1 /* LastModifiedDate = the local change's time */},
     1,
     0,
     LEDGER_AUTH_CONTRACT,
     {0},
     1,
     -1,
     {.concurrent_conflicts = 1},
     0},
    /* rule 9: a record belongs to the person of its current email */
    {"a record moves to another email: what was queued for its old person is dropped",
     "revert",
     S_OTHER_QUEUED,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, LATER, 0},
     1,
     0,
     LEDGER_AUTH_NONE,
     {0},
     0,
     -1,
     {0},
     0},
    {"a record moves to an opted-out person: only that person's opt-out is written",
     "revert",
     S_OTHER_QUEUED_LOCAL_OUT,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, LATER, 0},
     1,
     1,
     LEDGER_AUTH_NONE,
     {0},
     1,
     1,
     {.suppressed_new = 1, .pushes_queued = 1},
     LEDGER_F_OPTED_OUT},
    /* one open conflict per record and purpose */
    {"in, out and in again under hold: the one open conflict is kept",
     "hold",
     S_SEEN_OUT_IN_OUT,
     {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, LATER + 3000, 0},
     1,
     1,
     -1,
     {0, 1, 0, 0},
     0,
     -1,
     {.resubscribe_conflicts = 1},
     0},
    /* records without an address */
    {"a record without an email is skipped",
     "revert",
     S_NONE,
     {LEDGER_OBJ_CONTACT, ID1, NULL, 1, NULL, NULL, NULL, NULL, 0, T0, 0},
     0,
     0,
     -1,
     {0},
     0,
     -1,
     {.skipped_no_email = 1},
     0},
};

static struct conn *open_conn(const char *dir, const char *policy, struct config **cfg)
{
	char path[160], text[512];
	snprintf(path, sizeof(path), "%s/optsync.toml", dir);
	snprintf(text, sizeof(text),
	         "[salesforce]\nclient_id = \"x\"\nauth = \"client_credentials\"\n"
	         "client_secret_file = \"/nonexistent\"\n[state]\npath = \"%s/state\"\n"
	         "map_size = \"16MiB\"\n[sync]\nresubscribe_policy = \"%s\"\n",
	         dir, policy);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	struct err e = {0};
	if (config_load(cfg, path, NULL, &e))
		fail_msg("%s", e.msg);
	struct conn *c;
	if (conn_open(&c, *cfg, true, NULL, &e))
		fail_msg("%s", e.msg);
	return c;
}

static const struct conn_actor local = {CONN_ORIGIN_LOCAL, "test"};

static void local_optout_of(struct conn *c, const char *email)
{
	struct conn_optout o = {.email = email};
	cJSON *r = NULL;
	struct err e = {0};
	if (conn_optout(c, &local, &o, &r, &e))
		fail_msg("optout: %s", e.msg);
	cJSON_Delete(r);
}

static void local_optout(struct conn *c)
{
	local_optout_of(c, EMAIL);
}

static void local_auth_of(struct conn *c, const char *email)
{
	struct conn_facts_change ch = {.authorization = "contract"};
	cJSON *r = NULL;
	struct err e = {0};
	if (conn_contact_set(c, &local, email, &ch, &r, &e))
		fail_msg("contact set: %s", e.msg);
	cJSON_Delete(r);
}

/* The setup, then the local change's time (for the tie). */
static int64_t set_up(struct conn *c, enum setup s)
{
	struct apply_stats st;
	struct pulled first = {LEDGER_OBJ_CONTACT, ID1, EMAIL, 0, NULL, NULL, NULL, NULL, 0, T0, 0};
	switch (s) {
	case S_NONE:
		return 0;
	case S_SEEN_IN:
		apply(c, &first, &st);
		return 0;
	case S_SEEN_OUT:
		first.opted_out = 1;
		apply(c, &first, &st);
		return 0;
	case S_LOCAL_OUT:
		local_optout(c);
		return 0;
	case S_SEEN_IN_LOCAL_OUT:
		apply(c, &first, &st);
		local_optout(c);
		return 0;
	case S_OTHER_QUEUED:
	case S_OTHER_QUEUED_LOCAL_OUT:
		first.email = OTHER;
		apply(c, &first, &st);
		local_optout_of(c, OTHER);
		local_auth_of(c, OTHER);
		if (s == S_OTHER_QUEUED_LOCAL_OUT)
			local_optout(c);
		return 0;
	case S_SEEN_OUT_IN_OUT:
		first.opted_out = 1;
		apply(c, &first, &st);
		first.opted_out = 0;
		first.modstamp = LATER + 1000;
		apply(c, &first, &st);
		first.opted_out = 1;
		first.modstamp = LATER + 2000;
		apply(c, &first, &st);
		return 0;
	case S_LOCAL_AUTH: {
		apply(c, &first, &st);
		local_auth_of(c, EMAIL);
		struct facts_of *f = facts(c);
		int64_t at = f->p.auth_changed_at;
		free(f);
		return at;
	}
	}
	return 0;
}

static void run_case(const struct rule_case *k)
{
	char dir[] = "/tmp/optsync-test-rules-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct config *cfg;
	struct conn *c = open_conn(dir, k->policy, &cfg);
	int64_t local_at = set_up(c, k->setup);
	struct pulled in = k->in;
	if (in.modified == -1)
		in.modified = local_at;
	struct apply_stats st;
	apply(c, &in, &st);
	struct facts_of *f = facts(c);
	const struct apply_stats *w = &k->want;
	if (st.records != 1 || st.optouts_in != w->optouts_in ||
	    st.resubscribe_conflicts != w->resubscribe_conflicts ||
	    st.suppressed_new != w->suppressed_new || st.facts_applied != w->facts_applied ||
	    st.invalid_conflicts != w->invalid_conflicts ||
	    st.concurrent_conflicts != w->concurrent_conflicts ||
	    st.skipped_no_email != w->skipped_no_email || st.echoes != w->echoes ||
	    st.pushes_queued != w->pushes_queued)
		fail_msg("%s: counters optouts_in %llu resub %llu suppressed_new %llu facts %llu "
		         "invalid %llu concurrent %llu no_email %llu echoes %llu pushes %llu",
		         k->name, (unsigned long long)st.optouts_in,
		         (unsigned long long)st.resubscribe_conflicts,
		         (unsigned long long)st.suppressed_new,
		         (unsigned long long)st.facts_applied,
		         (unsigned long long)st.invalid_conflicts,
		         (unsigned long long)st.concurrent_conflicts,
		         (unsigned long long)st.skipped_no_email, (unsigned long long)st.echoes,
		         (unsigned long long)st.pushes_queued);
	if (f->found != k->want_person)
		fail_msg("%s: person %s", k->name, f->found ? "exists" : "missing");
	if (f->found && f->p.facts.opted_out != (k->want_opted_out != 0))
		fail_msg("%s: opted_out is %d", k->name, f->p.facts.opted_out);
	int auth = (f->p.facts.mask & LEDGER_F_AUTH_TYPE) ? f->p.facts.auth_type : 0;
	if (k->want_auth >= 0 && auth != k->want_auth)
		fail_msg("%s: authorization %d, wanted %d", k->name, auth, k->want_auth);
	for (int i = 1; i < 4; i++)
		if (f->open_conflicts[i] != k->want_open[i])
			fail_msg("%s: %zu open conflicts of kind %d, wanted %zu", k->name,
			         f->open_conflicts[i], i, k->want_open[i]);
	if (f->pushes != k->want_pushes)
		fail_msg("%s: %zu pushes queued, wanted %zu", k->name, f->pushes, k->want_pushes);
	if (k->want_push_out >= 0 && (!f->push1 || !(f->push.want.mask & LEDGER_F_OPTED_OUT) ||
	                              f->push.want.opted_out != (k->want_push_out != 0)))
		fail_msg("%s: no push of opted_out = %d for %s", k->name, k->want_push_out, ID1);
	if (f->push1 && memcmp(f->push.person, f->p.key, LEDGER_KEY_LEN) != 0)
		fail_msg("%s: the push of %s is on behalf of another person than %s's", k->name,
		         ID1, EMAIL);
	if (k->want_push_mask && (!f->push1 || f->push.want.mask != k->want_push_mask))
		fail_msg("%s: the push of %s writes fields 0x%x, wanted 0x%x", k->name, ID1,
		         f->push1 ? f->push.want.mask : 0, k->want_push_mask);
	free(f);
	conn_close(c);
	config_free(cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_rules_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

/* ---- the pure decisions (connector/rules/rules.h), driven directly ---- */

#define IN   LEDGER_PURPOSE_IN
#define OUT  LEDGER_PURPOSE_OUT
#define NONE LEDGER_PURPOSE_NONE
#define CH   FLAG_CHANGED

/* A row's inputs: in, dated, before (1 in, 0 out, -1 new), status,
 * global_out, writable, revert. */
#define SEEN(in, dated, before, status, gout, wr, rev)                                             \
	{                                                                                          \
		in, dated, before, status, gout, wr, rev                                           \
	}

struct flag_case {
	const char *name;
	enum flag_map map;
	struct flag_seen seen;
	unsigned want;
	bool news; /* flag_is_news */
};

static const struct flag_case flag_cases[] = {
    /* HasOptedOutOfEmail (rules 1-3): an opt-out box for all email; the
     * status is the person's opted_out */
    {"rule 1: a record read opted out, the person in: an opt-out", FLAG_OPT_OUT_BOX,
     SEEN(false, false, 1, NONE, false, true, true), CH | FLAG_OPT_OUT, true},
    {"rule 1: a record new to optsync opted out: an opt-out", FLAG_OPT_OUT_BOX,
     SEEN(false, false, -1, NONE, false, true, true), CH | FLAG_OPT_OUT, true},
    {"rule 1: a converted Lead opted out is still an opt-out", FLAG_OPT_OUT_BOX,
     SEEN(false, false, 1, NONE, false, false, true), CH | FLAG_OPT_OUT, true},
    {"rule 1: opted out, the person out already: only a change", FLAG_OPT_OUT_BOX,
     SEEN(false, false, 1, OUT, false, true, true), CH, true},
    {"rule 4: opted out read back as optsync wrote it: an echo", FLAG_OPT_OUT_BOX,
     SEEN(false, false, 0, OUT, false, true, true), 0, false},
    {"rule 4: opted in read back, the person in: an echo", FLAG_OPT_OUT_BOX,
     SEEN(true, false, 1, NONE, false, true, true), 0, false},
    {"rule 2: back in without evidence, revert: a conflict and the revert", FLAG_OPT_OUT_BOX,
     SEEN(true, false, 0, OUT, false, true, true), CH | FLAG_CONFLICT | FLAG_REVERT, true},
    {"rule 2: back in without evidence, hold: a conflict only", FLAG_OPT_OUT_BOX,
     SEEN(true, false, 0, OUT, false, true, false), CH | FLAG_CONFLICT, true},
    {"rule 2: a converted Lead back in: nothing optsync may write", FLAG_OPT_OUT_BOX,
     SEEN(true, false, 0, OUT, false, false, true), CH, true},
    {"rule 2: back in, the person back in too (a re-subscribe): nothing", FLAG_OPT_OUT_BOX,
     SEEN(true, false, 0, NONE, false, true, true), CH, true},
    {"rule 3: a new record opted in for a suppressed person: set out", FLAG_OPT_OUT_BOX,
     SEEN(true, false, -1, OUT, false, true, true), CH | FLAG_SET_OUT, true},
    {"rule 3: a new converted Lead for a suppressed person: left alone", FLAG_OPT_OUT_BOX,
     SEEN(true, false, -1, OUT, false, false, true), CH, true},
    {"rule 3: in, unchanged, the person out (our revert waits): nothing", FLAG_OPT_OUT_BOX,
     SEEN(true, false, 1, OUT, false, true, true), 0, false},
    /* a purpose's opt-out checkbox (P1, P2): in is only the absence of an
     * opt-out */
    {"P1: an opt-out box ticked: an opt-out", FLAG_OPT_OUT_BOX,
     SEEN(false, false, 1, NONE, false, true, true), CH | FLAG_OPT_OUT, true},
    {"an opt-out box unticked, no status: not an opt-in", FLAG_OPT_OUT_BOX,
     SEEN(true, false, -1, NONE, false, true, true), CH, true},
    {"an opt-out box unticked, the person in: not news", FLAG_OPT_OUT_BOX,
     SEEN(true, true, 1, IN, false, true, true), 0, false},
    {"P2: an opt-out box unticked after an opt-out: a conflict", FLAG_OPT_OUT_BOX,
     SEEN(true, false, 0, OUT, false, true, true), CH | FLAG_CONFLICT | FLAG_REVERT, true},
    /* an opt-in checkbox (opt_in_field, consent_date_field) */
    {"an opt-in box ticked with its date, no status: an opt-in", FLAG_OPT_IN_BOX,
     SEEN(true, true, 0, NONE, false, true, true), CH | FLAG_OPT_IN, true},
    {"an opt-in box read again ticked with its date, no status: an opt-in", FLAG_OPT_IN_BOX,
     SEEN(true, true, 1, NONE, false, true, true), FLAG_OPT_IN, true},
    {"an opt-in box ticked without its date: not evidence, named", FLAG_OPT_IN_BOX,
     SEEN(true, false, 0, NONE, false, true, true), CH | FLAG_UNDATED, true},
    {"that box read again, still without a date: named once", FLAG_OPT_IN_BOX,
     SEEN(true, false, 1, NONE, false, true, true), 0, false},
    {"an opt-in box ticked, globally opted out: not taken (P2)", FLAG_OPT_IN_BOX,
     SEEN(true, true, 0, NONE, true, true, true), CH, true},
    {"an opt-in box ticked, the person in already: only a change", FLAG_OPT_IN_BOX,
     SEEN(true, true, 0, IN, false, true, true), CH, true},
    {"P1: an opt-in box unticked after an opt-in: an opt-out", FLAG_OPT_IN_BOX,
     SEEN(false, true, 1, IN, false, true, true), CH | FLAG_OPT_OUT, true},
    {"P1: a converted Lead's opt-in box unticked: still an opt-out", FLAG_OPT_IN_BOX,
     SEEN(false, false, 1, IN, false, false, true), CH | FLAG_OPT_OUT, true},
    {"P2: an opt-in box ticked again after an opt-out: a conflict", FLAG_OPT_IN_BOX,
     SEEN(true, true, 0, OUT, false, true, true), CH | FLAG_CONFLICT | FLAG_REVERT, true},
    {"P2 under hold: the conflict, no revert", FLAG_OPT_IN_BOX,
     SEEN(true, true, 0, OUT, false, true, false), CH | FLAG_CONFLICT, true},
    {"a new record ticked, the person out of the purpose: set out", FLAG_OPT_IN_BOX,
     SEEN(true, true, -1, OUT, false, true, true), CH | FLAG_SET_OUT, true},
    {"a new record unticked, the person in: ticked", FLAG_OPT_IN_BOX,
     SEEN(false, false, -1, IN, false, true, true), CH | FLAG_SET_IN, true},
    {"a new converted Lead unticked, the person in: left alone", FLAG_OPT_IN_BOX,
     SEEN(false, false, -1, IN, false, false, true), CH, true},
    {"an opt-in box unticked, no status: nothing", FLAG_OPT_IN_BOX,
     SEEN(false, false, 1, NONE, false, true, true), CH, true},
    {"an opt-in box unticked for a person opted out: nothing", FLAG_OPT_IN_BOX,
     SEEN(false, false, 1, OUT, false, true, true), CH, true},
    {"an opt-in box unticked read back as optsync wrote it: an echo", FLAG_OPT_IN_BOX,
     SEEN(false, false, 0, OUT, false, true, true), 0, false},
    /* a consent row (ContactPointTypeConsent): consent given in Salesforce
     * counts (docs/sync-rules.md, "Purposes") */
    {"a consent row at OptIn with a CaptureDate, no status: an opt-in", FLAG_CONSENT_ROW,
     SEEN(true, true, -1, NONE, false, true, true), CH | FLAG_OPT_IN, true},
    {"a consent row known at OptIn gets its CaptureDate: an opt-in then", FLAG_CONSENT_ROW,
     SEEN(true, true, 1, NONE, false, true, true), FLAG_OPT_IN, true},
    {"a consent row at OptIn without a CaptureDate: not evidence, named", FLAG_CONSENT_ROW,
     SEEN(true, false, -1, NONE, false, true, true), CH | FLAG_UNDATED, true},
    {"that row read again, still without a date: named once", FLAG_CONSENT_ROW,
     SEEN(true, false, 1, NONE, false, true, true), 0, false},
    {"a consent row at OptIn of a person opted out of all email: not taken", FLAG_CONSENT_ROW,
     SEEN(true, true, -1, NONE, true, true, true), CH, true},
    {"a consent row at OptIn of a person opted in already: only a change", FLAG_CONSENT_ROW,
     SEEN(true, true, -1, IN, false, true, true), CH, true},
    {"P1: a consent row set to OptOut: an opt-out", FLAG_CONSENT_ROW,
     SEEN(false, true, 1, IN, false, true, true), CH | FLAG_OPT_OUT, true},
    {"P1: a new consent row at OptOut, no status: an opt-out", FLAG_CONSENT_ROW,
     SEEN(false, false, -1, NONE, false, true, true), CH | FLAG_OPT_OUT, true},
    {"a consent row at OptOut read back: an echo", FLAG_CONSENT_ROW,
     SEEN(false, true, 0, OUT, false, true, true), 0, false},
    {"P2: a consent row back at OptIn after an opt-out, dated even: a conflict", FLAG_CONSENT_ROW,
     SEEN(true, true, 0, OUT, false, true, true), CH | FLAG_CONFLICT | FLAG_REVERT, true},
    {"P2 under hold on a consent row: the conflict, no revert", FLAG_CONSENT_ROW,
     SEEN(true, true, 0, OUT, false, true, false), CH | FLAG_CONFLICT, true},
    {"a new consent row at OptIn of a person opted out of the purpose: set out", FLAG_CONSENT_ROW,
     SEEN(true, true, -1, OUT, false, true, true), CH | FLAG_SET_OUT, true},
    {"a consent row at OptIn, unchanged, person out (our revert waits): nothing", FLAG_CONSENT_ROW,
     SEEN(true, true, 1, OUT, false, true, true), 0, true},
};

static void test_flag_decisions(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(flag_cases) / sizeof(flag_cases[0]); i++) {
		const struct flag_case *k = &flag_cases[i];
		unsigned got = flag_decide(k->map, &k->seen);
		if (got != k->want)
			fail_msg("%s: actions 0x%x, wanted 0x%x", k->name, got, k->want);
		if (flag_is_news(k->map, &k->seen) != k->news)
			fail_msg("%s: flag_is_news %d, wanted %d", k->name, !k->news, k->news);
		/* not news means nothing to do, whatever the person's state */
		if (!k->news && got != 0)
			fail_msg("%s: not news, yet actions 0x%x", k->name, got);
	}
}

/* Rule 5, one group of compliance facts. */
struct facts_case {
	const char *name;
	struct facts_seen seen; /* invalid, raised, sf_has, seen_has, is_new, unchanged,
	                         * agrees, person_has, writable, queued, sf_newer */
	enum facts_action want;
};

static const struct facts_case facts_cases[] = {
    {"an invalid value: a conflict, not applied",
     {true, false, true, true, false, false, false, true, true, -1, true},
     FACTS_INVALID},
    {"the invalid value read again: raised once",
     {true, true, true, true, false, false, false, true, true, -1, true},
     FACTS_KEEP},
    {"a new record without the facts gets the person's",
     {false, false, false, false, true, true, false, true, true, -1, false},
     FACTS_FILL},
    {"a new converted Lead without them: not written",
     {false, false, false, false, true, true, false, true, false, -1, false},
     FACTS_KEEP},
    {"nothing on either side",
     {false, false, false, false, false, true, true, false, true, -1, false},
     FACTS_KEEP},
    {"unchanged since the last read",
     {false, false, true, true, false, true, false, true, true, -1, true},
     FACTS_KEEP},
    {"a new record holding the person's values: agrees",
     {false, false, true, false, true, false, true, true, true, -1, true},
     FACTS_AGREES},
    {"changed to the person's values (our write read back): agrees",
     {false, false, true, true, false, false, true, true, true, -1, true},
     FACTS_AGREES},
    {"changed in Salesforce: asks whether a local change is queued",
     {false, false, true, true, false, false, false, true, true, -1, true},
     FACTS_NEED_QUEUED},
    {"changed in Salesforce, nothing queued: applied",
     {false, false, true, true, false, false, false, true, true, 0, false},
     FACTS_APPLY},
    {"cleared in Salesforce, nothing queued: applied (cleared)",
     {false, false, false, true, false, false, false, true, true, 0, false},
     FACTS_APPLY},
    {"both changed, Salesforce's later: it wins, a resolved conflict",
     {false, false, true, true, false, false, false, true, true, 1, true},
     FACTS_CONCURRENT_SF},
    {"both changed, the local one later: it stands, a resolved conflict",
     {false, false, true, true, false, false, false, true, true, 1, false},
     FACTS_CONCURRENT_LOCAL},
    {"a new record with other values, nothing queued: applied",
     {false, false, true, false, true, false, false, true, true, 0, false},
     FACTS_APPLY},
};

static void test_facts_decisions(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(facts_cases) / sizeof(facts_cases[0]); i++) {
		const struct facts_case *k = &facts_cases[i];
		enum facts_action got = facts_decide(&k->seen);
		if (got != k->want)
			fail_msg("%s: action %d, wanted %d", k->name, (int)got, (int)k->want);
	}
}

/* Rule 5's validity and rules 2/P2's evidence. */
static void test_facts_valid_and_evidence(void **state)
{
	(void)state;
	int64_t now = T0;
	char why[200];
	struct ledger_facts f;
	ledger_facts_init(&f);
	f.mask = LEDGER_F_AUTH_TYPE;
	f.auth_type = LEDGER_AUTH_CONSENT;
	assert_int_equal(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "needs a consent date"));
	f.mask |= LEDGER_F_CONSENT_DATE | LEDGER_F_PURPOSE;
	f.consent_date = now - 1000;
	snprintf(f.purpose, sizeof(f.purpose), "newsletter");
	assert_int_equal(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)), 1);
	f.consent_date = now + FUTURE_TOLERANCE_MS + 1;
	assert_int_equal(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "future"));
	f.consent_date = now + FUTURE_TOLERANCE_MS; /* clock skew allowed */
	assert_int_equal(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)), 1);
	f.auth_type = LEDGER_AUTH_CONTRACT;
	assert_int_equal(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "only with authorization type consent"));
	/* the source group is not checked when only authorization is asked */
	f.mask |= LEDGER_F_SOURCE_TYPE;
	f.source_type = LEDGER_SOURCE_OTHER;
	f.mask &= ~(uint32_t)(LEDGER_F_CONSENT_DATE | LEDGER_F_PURPOSE);
	assert_int_equal(facts_valid(&f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why)), 1);
	assert_int_equal(facts_valid(&f, LEDGER_F_SOURCE_TYPE, now, why, sizeof(why)), 0);
	assert_non_null(strstr(why, "source type other needs a description"));

	struct err e = {0};
	struct conn_evidence ev = {now - 1000, "newsletter", "ticket-1", NULL};
	assert_int_equal(evidence_check(&ev, now, &e), 0);
	ev.evidence_ref = "";
	assert_int_equal(evidence_check(&ev, now, &e), ERR_EVIDENCE);
	ev.evidence_ref = "ticket-1";
	ev.consent_date = now + FUTURE_TOLERANCE_MS + 1;
	assert_int_equal(evidence_check(&ev, now, &e), ERR_EVIDENCE);
	assert_non_null(strstr(e.msg, "future"));
	ev.consent_date = now - 1000;
	ev.evidence_sha256 = "abc";
	assert_int_equal(evidence_check(&ev, now, &e), ERR_INVALID);
	ev.evidence_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF";
	assert_int_equal(evidence_check(&ev, now, &e), 0);
	/* evidence must postdate the opt-out it lifts */
	assert_int_equal(evidence_after(now, now, "re-subscribe", &e), ERR_EVIDENCE);
	assert_non_null(strstr(e.msg, "cannot re-subscribe"));
	assert_int_equal(evidence_after(now + 1, now, "re-subscribe", &e), 0);
}

#undef IN
#undef OUT
#undef NONE
#undef CH
#undef SEEN

int main(void)
{
	log_setup(LOG_WARN, LOG_FORMAT_TEXT, 2); /* the use cases' info lines are noise here */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules_table),
	    cmocka_unit_test(test_flag_decisions),
	    cmocka_unit_test(test_facts_decisions),
	    cmocka_unit_test(test_facts_valid_and_evidence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
