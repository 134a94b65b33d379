/* Crash test for the ledger.
 *
 * A child process writes batches: one write transaction each holding N
 * persons (each with a Salesforce record and a history event) and the
 * advance of a cursor to the batch number; after each commit it writes the
 * batch number to a pipe (the acknowledgement). The parent kills it with
 * SIGKILL at a random moment, then opens the ledger and checks that every
 * acknowledged batch is there in full, that no batch is half applied, and
 * that the history chain verifies. It does this KILLS times (default 200)
 * and prints the counts.
 *
 * usage: crash_ledger [KILLS]            (parent)
 *        crash_ledger --child DIR        (child, started by the parent)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "state/ledger.h"

#define N 20 /* persons per batch */

struct batch_ctx {
	struct ledger *l;
	uint64_t batch;
	struct ledger_person p;
	struct ledger_record r;
	struct ledger_event ev;
};

static void email_of(char *out, size_t cap, uint64_t batch, int i)
{
	snprintf(out, cap, "b%llu-%d@crash.example", (unsigned long long)batch, i);
}

static int write_batch(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct batch_ctx *b = ctx;
	struct ledger_cursor cur;
	int rc = ledger_cursor_get(t, LEDGER_OBJ_CONTACT, &cur, e);
	if (rc == ERR_NOTFOUND)
		rc = 0;
	if (rc)
		return rc;
	b->batch = (uint64_t)cur.modstamp + 1;
	for (int i = 0; i < N && rc == 0; i++) {
		struct ledger_person *p = &b->p;
		memset(p, 0, sizeof(*p));
		email_of(p->email, sizeof(p->email), b->batch, i);
		ledger_person_key(b->l, p->email, strlen(p->email), p->key);
		ledger_facts_init(&p->facts);
		p->facts.mask = LEDGER_F_OPTED_OUT;
		p->facts.opted_out = true;
		struct ledger_recref ref = {LEDGER_OBJ_CONTACT, ""};
		snprintf(ref.id, sizeof(ref.id), "003%09llu%02dAAA", (unsigned long long)b->batch,
		         i);
		if ((rc = ledger_person_record_add(t, p, &ref, e)))
			break;
		memset(&b->r, 0, sizeof(b->r));
		ledger_facts_init(&b->r.seen);
		ledger_facts_init(&b->r.written);
		b->r.object = LEDGER_OBJ_CONTACT;
		memcpy(b->r.id, ref.id, sizeof(b->r.id));
		memcpy(b->r.person, p->key, LEDGER_KEY_LEN);
		rc = ledger_record_put(t, &b->r, e);
		if (rc)
			break;
		ledger_event_init(&b->ev);
		b->ev.kind = LEDGER_EV_OPTOUT;
		b->ev.origin = LEDGER_ORIGIN_LOCAL;
		b->ev.at = (int64_t)b->batch;
		snprintf(b->ev.reason, sizeof(b->ev.reason), "crash test batch %llu",
		         (unsigned long long)b->batch);
		rc = ledger_event_append(t, p, &b->ev, e); /* stores p too */
	}
	if (rc == 0) {
		cur.modstamp = (int64_t)b->batch;
		cur.pulled += N;
		rc = ledger_cursor_put(t, LEDGER_OBJ_CONTACT, &cur, e);
	}
	return rc;
}

static int child(const char *dir)
{
	/* A small map, so that growth happens under the kills too. */
	struct ledger_options o = {dir, 1u << 20, 1u << 30, true, false};
	struct ledger *l;
	struct err e = {0};
	if (ledger_open(&l, &o, &e)) {
		fprintf(stderr, "child: %s\n", e.msg);
		return 1;
	}
	struct batch_ctx *b = calloc(1, sizeof(*b));
	b->l = l;
	for (;;) {
		if (ledger_write(l, write_batch, b, &e)) {
			fprintf(stderr, "child: %s\n", e.msg);
			return 1;
		}
		char line[32];
		int n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)b->batch);
		if (write(1, line, (size_t)n) != n)
			return 1;
	}
}

struct check_ctx {
	struct ledger *l;
	uint64_t cursor;
	uint64_t persons, missing;
};

static int check(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct check_ctx *c = ctx;
	struct ledger_cursor cur;
	int rc = ledger_cursor_get(t, LEDGER_OBJ_CONTACT, &cur, e);
	if (rc == ERR_NOTFOUND)
		cur.modstamp = 0, rc = 0;
	if (rc)
		return rc;
	c->cursor = (uint64_t)cur.modstamp;
	struct ledger_stats st;
	if ((rc = ledger_stats(t, &st, e)))
		return rc;
	c->persons = st.persons;
	/* every person of the last two batches, one by one */
	struct ledger_person *p = malloc(sizeof(*p));
	c->missing = 0;
	for (uint64_t b = c->cursor > 1 ? c->cursor - 1 : 1; b <= c->cursor; b++)
		for (int i = 0; i < N; i++) {
			char email[64];
			uint8_t key[LEDGER_KEY_LEN];
			email_of(email, sizeof(email), b, i);
			ledger_person_key(c->l, email, strlen(email), key);
			int r = ledger_person_get(t, key, p, e);
			if (r == ERR_NOTFOUND)
				c->missing++;
			else if (r) {
				free(p);
				return r;
			}
		}
	free(p);
	return 0;
}

static int fail(const char *what, int iter)
{
	printf("FAIL after kill %d: %s\n", iter, what);
	printf("0 passed, 1 failed\n");
	return 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--child") == 0)
		return child(argv[2]);
	int kills = argc > 1 ? atoi(argv[1]) : 200;
	char dir[] = "/tmp/optsync-crash-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 1;
	char ledger_dir[64];
	snprintf(ledger_dir, sizeof(ledger_dir), "%s/ledger", dir);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());

	uint64_t acked_total = 0, ahead = 0, events = 0, last_cursor = 0;
	for (int iter = 1; iter <= kills; iter++) {
		int fds[2];
		if (pipe(fds))
			return 1;
		pid_t pid = fork();
		if (pid == 0) {
			dup2(fds[1], 1);
			close(fds[0]);
			close(fds[1]);
			execl("/proc/self/exe", argv[0], "--child", ledger_dir, (char *)NULL);
			_exit(127);
		}
		close(fds[1]);
		/* Kill at a random moment: mostly mid-write, sometimes during open. */
		usleep((useconds_t)(rand() % 40000));
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		if (!WIFSIGNALED(status)) {
			close(fds[0]);
			return fail("the child exited by itself (see its message above)", iter);
		}
		uint64_t last_ack = 0;
		char buf[4096], part[32] = "";
		ssize_t n;
		size_t pl = 0;
		while ((n = read(fds[0], buf, sizeof(buf))) > 0)
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] == '\n') {
					part[pl] = '\0';
					last_ack = strtoull(part, NULL, 10);
					acked_total++;
					pl = 0;
				} else if (pl + 1 < sizeof(part)) {
					part[pl++] = buf[i];
				}
			}
		close(fds[0]);

		struct ledger_options o = {ledger_dir, 1u << 20, 1u << 30, false, false};
		struct ledger *l;
		struct err e = {0};
		if (ledger_open(&l, &o, &e)) {
			if (last_cursor == 0 && last_ack == 0)
				continue; /* killed before the first ledger existed */
			return fail(e.msg, iter);
		}
		struct check_ctx c = {l, 0, 0, 0};
		if (ledger_read(l, check, &c, &e)) {
			ledger_close(l);
			return fail(e.msg, iter);
		}
		if (c.cursor < last_ack || c.cursor < last_cursor) {
			ledger_close(l);
			return fail("an acknowledged batch is missing", iter);
		}
		if (c.cursor > (last_ack > last_cursor ? last_ack : last_cursor) + 1) {
			ledger_close(l);
			return fail("more batches than were written", iter);
		}
		if (c.cursor > last_ack && c.cursor > last_cursor)
			ahead++; /* committed, killed before the acknowledgement */
		if (c.persons != c.cursor * N || c.missing) {
			ledger_close(l);
			return fail("a half-applied batch is visible", iter);
		}
		struct ledger_verify_report rep;
		if (ledger_verify(l, &rep, &e)) {
			ledger_close(l);
			return fail(e.msg, iter);
		}
		if (rep.events != c.cursor * N) {
			ledger_close(l);
			return fail("history events do not match the batches", iter);
		}
		events = rep.events;
		last_cursor = c.cursor;
		ledger_close(l);
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	printf("ledger crash test: %d kills; %llu batches committed (%d persons each), %llu "
	       "acknowledged, %llu committed but killed before the acknowledgement; 0 lost, 0 "
	       "half-applied; chain verified over %llu events\n",
	       kills, (unsigned long long)last_cursor, N, (unsigned long long)acked_total,
	       (unsigned long long)ahead, (unsigned long long)events);
	printf("%d passed, 0 failed\n", kills);
	return 0;
}
