/* Allocation-failure runs in the style of curl's "torture": each use case
 * is first run to count its allocations, then run again with the first,
 * the second, ... allocation failing, until a run no longer reaches the
 * failing one. Every failed run must return an error with its code set
 * and *out NULL, and must neither crash nor leak (LeakSanitizer checks the
 * latter in the sanitizer build). The ledger's chain must verify after all
 * of it.
 *
 * A run that succeeds although an allocation failed must give the same
 * result as the unbroken run (for the reads, whose result does not depend
 * on the run): a result with a member missing is an error, not a success.
 *
 * The allocator is wrapped at link time (-Wl,--wrap=malloc,...): optsync's
 * own code and cJSON (through the hooks conn_open installs) are covered;
 * LMDB, OpenSSL and libc allocate outside it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connector/connector.h"
#include "connector/internal.h"
#include "util/timefmt.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static unsigned long allocs;  /* allocations since the counter was reset */
static unsigned long fail_at; /* the allocation that fails (0: none) */
static int failed;            /* the failing allocation was reached */

static int fail_now(void)
{
	if (fail_at == 0)
		return 0;
	if (++allocs == fail_at) {
		failed = 1;
		return 1;
	}
	return 0;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fail_now() ? NULL : __real_strndup(s, n);
}

/* ---- the fixture: a ledger with a person, history, three Salesforce
 * records of that person (pulled as a sync would, no Salesforce is called),
 * a conflict-free state, and a retention run's stub ---- */

struct fixture {
	char dir[64];
	struct config *cfg;
	struct conn *c;
	struct conn_links *links;
};

static const struct conn_actor cli = {CONN_ORIGIN_LOCAL, "torture"};
static const struct conn_actor admin = {CONN_ORIGIN_ADMIN, "alice"};

/* ada's records, as a pull hands them over */
static int pull_txn(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct conn *c = ctx;
	static const struct {
		int object;
		const char *id, *first;
	} recs[] = {{LEDGER_OBJ_CONTACT, "0035e0000000001AAA", "Ada"},
	            {LEDGER_OBJ_LEAD, "00Q5e0000000002AAA", "Augusta"},
	            {LEDGER_OBJ_CONTACT, "0035e0000000003AAA", "A."}};
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(recs) / sizeof(recs[0]); i++) {
		struct sf_value v[] = {
		    {"Email", SF_STRING, "Ada@Example.com", false, 0},
		    {"HasOptedOutOfEmail", SF_BOOL, NULL, true, 0},
		    {"FirstName", SF_STRING, recs[i].first, false, 0},
		    {"LastName", SF_STRING, "Lovelace", false, 0},
		    {"SystemModstamp", SF_STRING, "2026-11-01T10:00:00.000+0000", false, 0},
		};
		struct sf_record r = {ledger_object_name(recs[i].object),
		                      recs[i].id,
		                      sizeof(v) / sizeof(v[0]),
		                      v,
		                      SF_FLAW_NONE,
		                      NULL};
		struct apply_stats st = {0};
		rc = apply_sf_record(t, c->l, c->cfg, recs[i].object, &r, &st, e);
	}
	return rc;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/optsync-torture-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	char path[128], text[1024];
	snprintf(path, sizeof(path), "%s/link.key", f->dir);
	FILE *fp = fopen(path, "w");
	if (fp == NULL)
		return -1;
	fputs("0123456789abcdef0123456789abcdef", fp);
	fclose(fp);
	if (chmod(path, 0600) != 0) /* a secret file: refused when others may read it */
		return -1;
	snprintf(path, sizeof(path), "%s/optsync.toml", f->dir);
	snprintf(text, sizeof(text),
	         "[salesforce]\nclient_id = \"x\"\nauth = \"client_credentials\"\n"
	         "client_secret_file = \"/nonexistent\"\n[state]\npath = \"%s/state\"\n"
	         "map_size = \"16MiB\"\n[unsubscribe]\nbase_url = \"https://u.example.com\"\n"
	         "key_file = \"%s/link.key\"\norganization = \"Ex\"\n"
	         "privacy_url = \"https://example.com/p\"\n[retention]\nhistory = \"1ms\"\n",
	         f->dir, f->dir);
	fp = fopen(path, "w");
	if (fp == NULL)
		return -1;
	fputs(text, fp);
	fclose(fp);
	struct err e = {0};
	if (config_load(&f->cfg, path, NULL, &e) || conn_open(&f->c, f->cfg, true, NULL, &e) ||
	    conn_links_open(f->cfg, &f->links, &e)) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	/* someone with a history: an opt-out, facts, a re-subscribe */
	cJSON *r = NULL;
	struct conn_optout o = {.email = "ada@example.com", .reason = "asked"};
	struct conn_facts_change ch = {.authorization = "legitimate_interest", .source = "import"};
	struct conn_evidence ev = {time_now_ms() - 1000, "newsletter", "form-7", NULL};
	if (conn_contact_set(f->c, &cli, "ada@example.com", &ch, &r, &e))
		return -1;
	cJSON_Delete(r);
	if (conn_optout(f->c, &cli, &o, &r, &e))
		return -1;
	cJSON_Delete(r);
	usleep(2000);
	ev.consent_date = time_now_ms() - 1;
	if (conn_resubscribe(f->c, &admin, "ada@example.com", &ev, &r, &e))
		return -1;
	cJSON_Delete(r);
	if (conn_optout(f->c, &cli, &o, &r, &e))
		return -1;
	cJSON_Delete(r);
	if (ledger_write(f->c->l, pull_txn, f->c, &e)) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	/* and a retention run that purged someone else's events: the chain
	 * holds stubs and the run's event, which verify counts against each
	 * other (in memory it allocates) */
	if (conn_contact_set(f->c, &cli, "gone@example.com", &ch, &r, &e))
		return -1;
	cJSON_Delete(r);
	usleep(5000);
	if (conn_retention_run(f->c, &cli, false, &r, &e))
		return -1;
	const cJSON *purged = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(r, "purged"), "events");
	if (!cJSON_IsNumber(purged) || purged->valuedouble < 1) {
		fprintf(stderr, "setup: the retention run purged nothing\n");
		return -1;
	}
	cJSON_Delete(r);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fail_at = 0;
	cJSON *v = NULL;
	struct err e = {0};
	int rc = conn_audit_verify(f->c, NULL, &v, &e);
	cJSON_Delete(v);
	conn_close(f->c);
	conn_links_close(f->links);
	config_free(f->cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0 || rc != 0) {
		fprintf(stderr, "teardown: the chain does not verify: %s\n", e.msg);
		return -1;
	}
	free(f);
	return 0;
}

/* One use case: run(f, i, &out, e) for the i-th run; *out is checked to be
 * NULL on failure and freed on success. */
typedef int (*use_case)(struct fixture *f, unsigned long i, void **out, struct err *e);

/* A result as comparable text (malloc'ed), what varies between runs left
 * out. */
typedef char *(*as_text)(void *out);

static void torture(struct fixture *f, const char *name, use_case run, void (*free_out)(void *),
                    as_text text)
{
	unsigned long runs = 0, errors = 0, tolerated = 0;
	char *want = NULL;
	if (text) {
		struct err e = {0};
		void *out = NULL;
		fail_at = 0;
		if (run(f, 0, &out, &e))
			fail_msg("%s: the unbroken run failed: %s", name, e.msg);
		want = text(out);
		if (free_out)
			free_out(out);
	}
	for (unsigned long n = 1;; n++) {
		struct err e = {0};
		void *out = (void *)&e; /* must be set to NULL or a result */
		allocs = 0;
		failed = 0;
		fail_at = n;
		int rc = run(f, n, &out, &e);
		fail_at = 0;
		runs++;
		if (rc != 0) {
			errors++;
			if (e.code != rc)
				fail_msg(
				    "%s, allocation %lu failing: returned %d, error code %d (%s)",
				    name, n, rc, e.code, e.msg);
			if (rc == ERR_LEDGER) /* out of memory is not a damaged ledger */
				fail_msg("%s, allocation %lu failing: ERR_LEDGER (%s)", name, n,
				         e.msg);
			if (e.msg[0] == '\0')
				fail_msg("%s, allocation %lu failing: error %d without a message",
				         name, n, rc);
			if (out != NULL)
				fail_msg("%s, allocation %lu failing: *out set on failure", name,
				         n);
			if (!failed)
				fail_msg("%s: failed (%d: %s) without an allocation failing", name,
				         rc, e.msg);
		} else {
			if (failed && want) {
				char *got = text(out);
				if (strcmp(got, want) != 0)
					fail_msg("%s, allocation %lu failing: a success with a "
					         "different "
					         "result:\n%s\ninstead of\n%s",
					         name, n, got, want);
				free(got);
			}
			tolerated += failed;
			if (out != NULL && free_out)
				free_out(out);
		}
		if (!failed) {
			if (rc != 0)
				fail_msg("%s: the unbroken run failed: %s", name, e.msg);
			break; /* the run no longer reaches the failing allocation */
		}
	}
	if (runs < 2 || errors == 0)
		fail_msg("%s: %lu runs, %lu errors: the allocator wrap is not in effect", name,
		         runs, errors);
	free(want);
	printf("%s: %lu allocations failed in turn: %lu runs returned an error, %lu did "
	       "without\n",
	       name, runs - 1, errors, tolerated);
}

static void free_json(void *p)
{
	cJSON_Delete(p);
}

static char *json_text(void *out)
{
	cJSON *o = cJSON_Duplicate(out, 1);
	cJSON_DeleteItemFromObjectCaseSensitive(o, "exported_at");
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* the CSV export without its last column (exported_at) */
static char *csv_text(void *out)
{
	const char *in = out;
	char *s = malloc(strlen(in) + 1), *w = s;
	while (*in) {
		const char *nl = strchr(in, '\n'), *end = nl ? nl : in + strlen(in);
		const char *comma = end;
		while (comma > in && *comma != ',')
			comma--;
		memcpy(w, in, (size_t)(comma - in));
		w += comma - in;
		*w++ = '\n';
		in = nl ? nl + 1 : end;
	}
	*w = '\0';
	return s;
}

static int uc_show(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_contact_show(f->c, "ada@example.com", (cJSON **)out, e);
}

static int uc_history(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_contact_history(f->c, "ada@example.com", (cJSON **)out, e);
}

static int uc_export(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_contact_export(f->c, "ada@example.com", (cJSON **)out, e);
}

static int uc_export_csv(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_contact_export_csv(f->c, "ada@example.com", (char **)out, e);
}

static int uc_optout(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	char email[64];
	snprintf(email, sizeof(email), "optout-%lu@example.com", i);
	struct conn_optout o = {.email = email, .source = "manual_upload", .reason = "torture"};
	return conn_optout(f->c, &cli, &o, (cJSON **)out, e);
}

static int uc_set(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	char email[64];
	snprintf(email, sizeof(email), "set-%lu@example.com", i);
	struct conn_facts_change ch = {.authorization = "consent",
	                               .consent_date = time_now_ms() - 5000,
	                               .purpose = "events",
	                               .source = "other",
	                               .source_other = "a fair"};
	return conn_contact_set(f->c, &cli, email, &ch, (cJSON **)out, e);
}

/* An opt-out of email with no allocation failing: the setting up of the
 * use case under test, not part of its count. */
static int optout_unbroken(struct fixture *f, const char *email, const char *reason, struct err *e)
{
	unsigned long keep = fail_at;
	fail_at = 0;
	cJSON *r = NULL;
	struct conn_optout o = {.email = email, .reason = reason};
	int rc = conn_optout(f->c, &cli, &o, &r, e);
	cJSON_Delete(r);
	allocs = 0;
	fail_at = keep;
	return rc;
}

static int uc_resubscribe(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	/* a person opted out for this run (unbroken), then the re-subscribe
	 * under test */
	char email[64];
	snprintf(email, sizeof(email), "resub-%lu@example.com", i);
	int rc = optout_unbroken(f, email, NULL, e);
	usleep(1000);
	if (rc)
		return rc;
	struct conn_evidence ev = {time_now_ms(), "newsletter", "form-9", NULL};
	return conn_resubscribe(f->c, &admin, email, &ev, (cJSON **)out, e);
}

static int uc_erase(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	char email[64];
	snprintf(email, sizeof(email), "erase-%lu@example.com", i);
	int rc = optout_unbroken(f, email, "gone", e);
	if (rc)
		return rc;
	return conn_contact_erase(f->c, &admin, email, (cJSON **)out, e);
}

static int uc_conflicts(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_conflicts_list(f->c, CONN_CONFLICTS_ALL, (cJSON **)out, e);
}

static int uc_status(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	struct conn_status *st;
	*out = NULL;
	int rc = conn_status(f->c, true, &st, e);
	if (rc == 0)
		rc = conn_render_status(st, (cJSON **)out, e);
	conn_status_free(st);
	return rc;
}

/* A cycle report rendered (the sync itself needs Salesforce: its report is
 * built here as a cycle fills it). */
static int uc_cycle(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	struct conn_cycle_report r;
	memset(&r, 0, sizeof(r));
	r.started_at = 1700000000000;
	r.finished_at = 1700000001000;
	r.pull[CONN_OBJ_CONTACT] =
	    (struct conn_pull_report){.pulled = true, .records = 12, .pages = 1, .optouts_in = 3};
	r.pull[CONN_OBJ_LEAD] = (struct conn_pull_report){.pulled = true, .since = 1699990000000};
	r.order[0] = CONN_OBJ_CONTACT;
	r.order[1] = CONN_OBJ_LEAD;
	r.norder = 2;
	r.pushed = true;
	r.push.collection_calls = 1;
	r.push.succeeded = 2;
	r.push.by_object[CONN_OBJ_LEAD] = 2;
	r.retention.ran = true;
	r.retention.events = 4;
	r.result = ERR_REMOTE;
	snprintf(r.error, sizeof(r.error), "Salesforce said no");
	r.api_known = true;
	r.api.requests = 5;
	r.api.daily_max = 15000;
	return conn_render_cycle(&r, f->cfg, (cJSON **)out, e);
}

/* A link's opt-out (the public listener's use case), for a new email per
 * run: minted and opened without failures, recorded under them. */
static int uc_link(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	char email[64];
	snprintf(email, sizeof(email), "link-%lu@example.com", i);
	unsigned long at = fail_at;
	fail_at = 0;
	struct conn_link l;
	struct conn_link_view v;
	if (conn_link_mint(f->links, email, NULL, "torture", &l, e))
		fail_msg("minting failed: %s", e->msg);
	const char *tok = strstr(l.url, "/u/") + 3;
	conn_link_open(f->links, tok, strlen(tok), &v);
	fail_at = at;
	*out = NULL;
	struct conn_link_result res;
	int rc = conn_link_optout(f->c, &v, CONN_LINK_ONE_CLICK, NULL, &res, e);
	if (rc == 0 && res.already)
		fail_msg("link %lu: already opted out", i);
	return rc;
}

static int uc_access(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	*out = NULL; /* it has no result */
	return conn_access_record(f->c, &cli, "ada@example.com", "history", "torture", e);
}

static int uc_access_list(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_access_list(f->c, 0, 100, (cJSON **)out, e);
}

static int uc_changes(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_changes(f->c, 0, 100, (cJSON **)out, e);
}

static int uc_audit(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	int rc = conn_audit_verify(f->c, NULL, (cJSON **)out, e);
	/* out of memory is not a broken chain */
	if (rc == ERR_LEDGER)
		fail_msg("audit verify: ERR_LEDGER under allocation failure: %s", e->msg);
	return rc;
}

/* A backup (its trees' check first) to a new file per run: out of memory
 * is never reported as a damaged ledger, and a failed backup leaves no
 * file. */
static int uc_backup(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	char file[128];
	snprintf(file, sizeof(file), "%s/torture-%lu.backup", f->dir, i);
	struct conn_backup_result res;
	*out = NULL;
	int rc = conn_backup(f->c, file, &res, e);
	if (rc != 0 && access(file, F_OK) == 0)
		fail_msg("backup %lu failed (%s) but left %s", i, e->msg, file);
	unlink(file);
	return rc;
}

static int uc_suppressed(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	static const char *const emails[] = {"ada@example.com", "nobody@example.com",
	                                     "not an email"};
	bool got[3], valid[3];
	int rc = conn_suppressed(f->c, emails, 3, NULL, got, valid, e);
	*out = NULL;
	if (rc == 0 && !(got[0] && !got[1] && valid[0] && !valid[2]))
		fail_msg("suppression check: a wrong answer after allocation failures");
	return rc;
}

static int uc_optout_many(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	char a[64], b[64];
	snprintf(a, sizeof(a), "many-a-%lu@example.com", i);
	snprintf(b, sizeof(b), "many-b-%lu@example.com", i);
	const char *const emails[] = {a, "bad address", b};
	struct conn_bulk_result res = {0};
	int rc =
	    conn_optout_many(f->c, &cli, emails, NULL, NULL, 3, "torture", NULL, NULL, &res, e);
	*out = NULL;
	if (rc == 0 || rc == ERR_PARTIAL) {
		conn_bulk_result_free(&res);
		return rc == ERR_PARTIAL && res.invalid == 1 && !failed ? 0 : rc;
	}
	conn_bulk_result_free(&res);
	return rc;
}

static int uc_retention(struct fixture *f, unsigned long i, void **out, struct err *e)
{
	(void)i;
	return conn_retention_run(f->c, &cli, true, (cJSON **)out, e); /* a dry run */
}

#define TORTURE(fn, free_out, text)                                                                \
	static void test_##fn(void **state)                                                        \
	{                                                                                          \
		torture(*state, #fn, uc_##fn, free_out, text);                                     \
	}

TORTURE(show, free_json, json_text)
TORTURE(history, free_json, json_text)
TORTURE(export, free_json, json_text)
TORTURE(export_csv, free, csv_text)
TORTURE(optout, free_json, NULL)
TORTURE(set, free_json, NULL)
TORTURE(resubscribe, free_json, NULL)
TORTURE(erase, free_json, NULL)
TORTURE(conflicts, free_json, json_text)
TORTURE(status, free_json, NULL)
TORTURE(cycle, free_json, json_text)
TORTURE(changes, free_json, json_text)
TORTURE(link, NULL, NULL)
TORTURE(audit, free_json, json_text)
TORTURE(suppressed, NULL, NULL)
TORTURE(backup, NULL, NULL)
TORTURE(optout_many, NULL, NULL)
TORTURE(access, NULL, NULL)
TORTURE(access_list, free_json, json_text)
TORTURE(retention, free_json, json_text)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_show),        cmocka_unit_test(test_history),
	    cmocka_unit_test(test_export),      cmocka_unit_test(test_export_csv),
	    cmocka_unit_test(test_optout),      cmocka_unit_test(test_set),
	    cmocka_unit_test(test_resubscribe), cmocka_unit_test(test_erase),
	    cmocka_unit_test(test_conflicts),   cmocka_unit_test(test_status),
	    cmocka_unit_test(test_cycle),       cmocka_unit_test(test_changes),
	    cmocka_unit_test(test_link),        cmocka_unit_test(test_audit),
	    cmocka_unit_test(test_suppressed),  cmocka_unit_test(test_optout_many),
	    cmocka_unit_test(test_access),      cmocka_unit_test(test_access_list),
	    cmocka_unit_test(test_backup),      cmocka_unit_test(test_retention),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
