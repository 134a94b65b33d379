/* bench/ledger: the ledger's speed and size for PERSONS persons (default
 * 1,000,000), each with one Salesforce record and one history event.
 *
 * Prints: batched inserts per second (batches of 2,000 persons, one write
 * transaction and one fsync'd commit each), point lookups per second by
 * email (HMAC key + LMDB get + decode) on one thread, bytes on disk per
 * person, and suppression checks per second as the API makes them (the
 * connector's in-memory index over the same ledger), then the time and
 * size of a backup (optsync backup) and of restoring it (checksum, open,
 * full history-chain verification, rename). Targets (issue 3):
 * >= 200,000 inserts/s, >= 1,000,000 lookups/s, < 600 bytes/person.
 *
 * usage: ledger [PERSONS] [DIR]   (DIR defaults to a new folder in /tmp,
 *                                  removed at the end) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "connector/connector.h"
#include "state/ledger.h"

#define BATCH 2000

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "person.number<i>@company<i % 5000>.example", without printf: the
 * benchmark measures the ledger, not the formatting of its input. */
static size_t put_num(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

static size_t email_of(char *out, size_t cap, uint64_t i)
{
	(void)cap; /* callers pass LEDGER_EMAIL_MAX + 1, far more than needed */
	size_t n = 0;
	memcpy(out, "person.number", 13);
	n += 13;
	n += put_num(out + n, i);
	memcpy(out + n, "@company", 8);
	n += 8;
	n += put_num(out + n, i % 5000);
	memcpy(out + n, ".example", 9);
	return n + 8;
}

struct ins {
	struct ledger *l;
	uint64_t first, n;
	struct ledger_person p;
	struct ledger_record r;
	struct ledger_event ev;
};

static int insert_batch(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct ins *b = ctx;
	for (uint64_t i = b->first; i < b->first + b->n; i++) {
		struct ledger_person *p = &b->p;
		size_t el = email_of(p->email, sizeof(p->email), i);
		ledger_person_key(b->l, p->email, el, p->key);
		ledger_facts_init(&p->facts);
		p->facts.mask = LEDGER_F_OPTED_OUT | LEDGER_F_AUTH_TYPE | LEDGER_F_SOURCE_TYPE;
		p->facts.opted_out = i % 7 == 0;
		p->facts.auth_type = LEDGER_AUTH_LEGITIMATE_INTEREST;
		p->facts.source_type = LEDGER_SOURCE_CRM_SYNC;
		p->opted_out_at = p->facts.opted_out ? 1795000000000 : 0;
		p->optout_changed_at = p->auth_changed_at = p->source_changed_at = 0;
		p->created_at = p->updated_at = 1795000000000 + (int64_t)i;
		p->flags = 0;
		p->last_event = 0; /* a new person */
		p->records_no = 0;
		struct ledger_recref ref = {LEDGER_OBJ_CONTACT, ""};
		snprintf(ref.id, sizeof(ref.id), "003%012lluAAA",
		         (unsigned long long)(i % 1000000000000ull));
		int rc;
		if ((rc = ledger_person_record_add(t, p, &ref, e)))
			return rc;
		struct ledger_record *r = &b->r;
		r->object = LEDGER_OBJ_CONTACT;
		memcpy(r->id, ref.id, sizeof(r->id));
		memcpy(r->person, p->key, LEDGER_KEY_LEN);
		r->modstamp = 1795000000000 + (int64_t)(i / 50) * 1000;
		r->seen = p->facts;
		ledger_facts_init(&r->written);
		r->written_at = r->sf_created = r->sf_modified = 0;
		r->flags = 0;
		r->first_name[0] = r->last_name[0] = r->company[0] = r->title[0] = r->phone[0] = 0;
		if ((rc = ledger_record_put(t, r, e)))
			return rc;
		ledger_event_init(&b->ev);
		b->ev.at = p->created_at;
		b->ev.kind = LEDGER_EV_RECORD;
		b->ev.origin = LEDGER_ORIGIN_SALESFORCE;
		memcpy(b->ev.person, p->key, LEDGER_KEY_LEN);
		b->ev.record = ref;
		b->ev.facts.mask = p->facts.mask;
		b->ev.facts.opted_out = p->facts.opted_out;
		b->ev.facts.auth_type = p->facts.auth_type;
		b->ev.facts.source_type = p->facts.source_type;
		if ((rc = ledger_event_append(t, p, &b->ev, e))) /* stores p too */
			return rc;
	}
	return 0;
}

/* Purpose statuses for the purpose check (untimed): every 3rd person
 * opted in to "newsletter", every 11th opted out of it. */
struct purp {
	struct ledger *l;
	uint64_t first, n;
};

static int purposes_batch(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct purp *b = ctx;
	char email[LEDGER_EMAIL_MAX + 1];
	for (uint64_t i = b->first; i < b->first + b->n; i++) {
		if (i % 3 != 0 && i % 11 != 0)
			continue;
		uint8_t key[LEDGER_KEY_LEN];
		size_t el = email_of(email, sizeof(email), i);
		ledger_person_key(b->l, email, el, key);
		struct ledger_purpose p;
		memset(&p, 0, sizeof(p));
		snprintf(p.name, sizeof(p.name), "newsletter");
		p.status = i % 11 == 0 ? LEDGER_PURPOSE_OUT : LEDGER_PURPOSE_IN;
		p.changed_at = 1795000000000;
		p.origin = LEDGER_ORIGIN_LOCAL;
		p.consent_date = p.status == LEDGER_PURPOSE_IN ? 1794000000000 : 0;
		int rc = ledger_purpose_put(t, key, &p, e);
		if (rc)
			return rc;
	}
	return 0;
}

struct look {
	struct ledger *l;
	uint64_t n, total, found;
	struct ledger_person p;
};

static int lookups(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct look *k = ctx;
	uint64_t x = 88172645463325252ull;
	char email[LEDGER_EMAIL_MAX + 1];
	uint8_t key[LEDGER_KEY_LEN];
	for (uint64_t i = 0; i < k->n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift: random persons */
		size_t el = email_of(email, sizeof(email), x % k->total);
		ledger_person_key(k->l, email, el, key);
		int rc = ledger_person_get(t, key, &k->p, e);
		if (rc == 0)
			k->found++;
		else if (rc != ERR_NOTFOUND)
			return rc;
	}
	return 0;
}

/* The suppression check as the API runs it (connector: normalize, HMAC,
 * the in-memory index kept current from the change feed), on the same
 * ledger, in batches of 1,000 emails (the API's maximum per call). */
static int suppression(const char *dir, uint64_t persons)
{
	char path[512];
	snprintf(path, sizeof(path), "%s.toml", dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return 1;
	fprintf(f,
	        "[salesforce]\nclient_id = \"bench\"\nauth = \"client_credentials\"\n"
	        "client_secret_file = \"/nonexistent\"\n[state]\npath = \"%s\"\n"
	        "max_map_size = \"64GiB\"\n[log]\nlevel = \"warn\"\n"
	        "[[purposes]]\nname = \"newsletter\"\nbasis = \"consent\"\n"
	        "salesforce = { field = \"Newsletter_Opt_Out__c\" }\n",
	        dir);
	fclose(f);
	struct config *cfg;
	struct conn *c;
	struct err e = {0};
	if (config_load(&cfg, path, NULL, &e) || conn_open(&c, cfg, false, NULL, &e)) {
		fprintf(stderr, "suppression: %s\n", e.msg);
		return 1;
	}
	unlink(path);
	enum { PER_CALL = 1000 };
	static char emails[PER_CALL][LEDGER_EMAIL_MAX + 1];
	const char *list[PER_CALL];
	bool out[PER_CALL];
	uint64_t total = persons < 2000000 ? 2000000 : persons, hits = 0;
	uint64_t x = 88172645463325252ull;
	double t0 = now();
	if (conn_suppressed(c, list, 0, NULL, out, NULL,
	                    &e)) { /* the first check builds the index */
		fprintf(stderr, "suppression: %s\n", e.msg);
		return 1;
	}
	double t1 = now();
	for (uint64_t done = 0; done < total; done += PER_CALL) {
		for (int i = 0; i < PER_CALL; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t n = email_of(emails[i], sizeof(emails[i]), x % persons);
			emails[i][n] = '\0';
			list[i] = emails[i];
		}
		if (conn_suppressed(c, list, PER_CALL, NULL, out, NULL, &e)) {
			fprintf(stderr, "suppression: %s\n", e.msg);
			return 1;
		}
		for (int i = 0; i < PER_CALL; i++)
			hits += out[i];
	}
	double t2 = now();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("  suppression checks: %.0f emails/s on one thread, through the connector "
	       "(normalize + HMAC + in-memory index; %llu random in calls of %d, %.1f%% "
	       "opted out; index built in %.2f s)   target >= 1000000\n",
	       (double)total / (t2 - t1), (unsigned long long)total, PER_CALL,
	       100.0 * (double)hits / (double)total, t1 - t0);
	/* the same with a purpose (rule P3): the index's per-purpose sets too */
	hits = 0;
	double t3 = now();
	for (uint64_t done = 0; done < total; done += PER_CALL) {
		for (int i = 0; i < PER_CALL; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t n = email_of(emails[i], sizeof(emails[i]), x % persons);
			emails[i][n] = '\0';
			list[i] = emails[i];
		}
		if (conn_suppressed(c, list, PER_CALL, "newsletter", out, NULL, &e)) {
			fprintf(stderr, "suppression: %s\n", e.msg);
			return 1;
		}
		for (int i = 0; i < PER_CALL; i++)
			hits += out[i];
	}
	double t4 = now();
	printf("  suppression checks with \"purpose\": %.0f emails/s on one thread (a consent "
	       "purpose; %.1f%% suppressed: opted out of all email or of it, or never opted "
	       "in)   target >= 1000000\n",
	       (double)total / (t4 - t3), 100.0 * (double)hits / (double)total);
	printf("  peak RSS after: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
	conn_close(c);
	config_free(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t persons = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	char tmpl[] = "/tmp/optsync-bench-ledger-XXXXXX";
	const char *dir = argc > 2 ? argv[2] : NULL;
	if (dir == NULL) {
		if (mkdtemp(tmpl) == NULL)
			return 1;
		rmdir(tmpl);
		dir = tmpl;
	}
	struct ledger_options o = {dir, 64ull << 20, 64ull << 30, true, false};
	struct ledger *l;
	struct err e = {0};
	if (ledger_open(&l, &o, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	struct ins *b = calloc(1, sizeof(*b));
	b->l = l;
	double t0 = now(), c0 = cpu_now();
	for (uint64_t i = 0; i < persons; i += BATCH) {
		b->first = i;
		b->n = persons - i < BATCH ? persons - i : BATCH;
		if (ledger_write(l, insert_batch, b, &e)) {
			fprintf(stderr, "insert: %s\n", e.msg);
			return 1;
		}
	}
	double t1 = now(), c1 = cpu_now();

	struct look *k = calloc(1, sizeof(*k));
	k->l = l;
	k->total = persons;
	k->n = persons < 2000000 ? 2000000 : persons;
	double t2 = now();
	if (ledger_read(l, lookups, k, &e)) {
		fprintf(stderr, "lookup: %s\n", e.msg);
		return 1;
	}
	double t3 = now();
	if (k->found != k->n) {
		fprintf(stderr, "lookup: %llu of %llu found\n", (unsigned long long)k->found,
		        (unsigned long long)k->n);
		return 1;
	}
	char path[256];
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	struct stat st;
	stat(path, &st);
	double disk = (double)st.st_blocks * 512.0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);

	printf("bench/ledger: %llu persons, each with 1 Salesforce record and 1 history event\n",
	       (unsigned long long)persons);
	printf("  inserts:  %.0f persons/s (batches of %d, %.2f s wall, %.2f s CPU)   target >= "
	       "200000\n",
	       (double)persons / (t1 - t0), BATCH, t1 - t0, c1 - c0);
	printf("  lookups:  %.0f lookups/s by email on one thread (%llu random, %.2f s)   target "
	       ">= 1000000\n",
	       (double)k->n / (t3 - t2), (unsigned long long)k->n, t3 - t2);
	printf("  on disk:  %.0f bytes/person (data.mdb %.1f MiB allocated)   target < 600\n",
	       disk / (double)persons, disk / 1048576.0);
	printf("  peak RSS: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);

	char file[256], target[256];
	snprintf(file, sizeof(file), "%s.backup", dir);
	snprintf(target, sizeof(target), "%s-restored", dir);
	struct ledger_backup_info bi, ri;
	double t4 = now(), c4 = cpu_now();
	if (ledger_backup(l, file, &bi, &e)) {
		fprintf(stderr, "backup: %s\n", e.msg);
		return 1;
	}
	double t5 = now(), c5 = cpu_now();
	ledger_close(l);
	struct ledger_verify_report rep;
	struct ledger_options ro = {target, 64ull << 20, 64ull << 30, false, false};
	if (ledger_restore(file, &ro, &ri, &rep, &e)) {
		fprintf(stderr, "restore: %s\n", e.msg);
		return 1;
	}
	double t6 = now(), c6 = cpu_now();
	printf("  backup:   %.2f s wall, %.2f s CPU, %.1f MiB file (%.0f bytes/person, "
	       "compacted: %s)\n",
	       t5 - t4, c5 - c4, (double)bi.bytes / 1048576.0, (double)bi.bytes / (double)persons,
	       bi.compacted ? "yes" : "no");
	printf("  restore:  %.2f s wall, %.2f s CPU (checksum, open, %llu events verified)\n",
	       t6 - t5, c6 - c5, (unsigned long long)rep.events);
	unlink(file);
	char rm[600];
	snprintf(rm, sizeof(rm), "rm -rf '%s'", target);
	if (system(rm) != 0)
		return 1;
	/* purpose statuses for the purpose check, untimed */
	struct ledger_options po = {dir, 64ull << 20, 64ull << 30, false, true};
	if (ledger_open(&l, &po, &e)) {
		fprintf(stderr, "purposes: %s\n", e.msg);
		return 1;
	}
	struct purp pb = {l, 0, 0};
	for (uint64_t i = 0; i < persons; i += BATCH) {
		pb.first = i;
		pb.n = persons - i < BATCH ? persons - i : BATCH;
		if (ledger_write(l, purposes_batch, &pb, &e)) {
			fprintf(stderr, "purposes: %s\n", e.msg);
			return 1;
		}
	}
	ledger_close(l);
	if (suppression(dir, persons))
		return 1;
	free(b);
	free(k);
	if (argc <= 2) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return 0;
}
