/* bench/salesforce-pull: how fast the Salesforce client reads query pages.
 *
 * Starts the fake Salesforce with N Contacts (default 100,000), pulls them
 * with the real client (SOQL pages of 2,000 with nextRecordsUrl), and
 * prints records per second and the client's own CPU seconds per 100,000
 * records (the fake runs in another process and is not counted). Each
 * record's fields are read as the sync engine does. Target (issue 4):
 * under 0.5 CPU seconds per 100,000 records.
 *
 * usage: salesforce-pull [N [OUTFILE]]
 * With OPTSYNC_BENCH_SF_URL set, it uses that fake instead of starting one,
 * and with OUTFILE it writes each record there as a JSON line (for the
 * comparison with jsforce, bench/compare_jsforce.py). */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "salesforce/sf.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct tally {
	size_t records, opted_out, pages;
	size_t bytes;
	FILE *out;
};

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int on_page(void *ctx, const struct sf_record *r, size_t n, struct err *e)
{
	(void)e;
	struct tally *t = ctx;
	t->pages++;
	for (size_t i = 0; i < n; i++) {
		const struct sf_value *o = sf_record_get(&r[i], "HasOptedOutOfEmail");
		const struct sf_value *em = sf_record_get(&r[i], "Email");
		const struct sf_value *ms = sf_record_get(&r[i], "SystemModstamp");
		t->opted_out += o && o->type == SF_BOOL && o->b;
		if (t->out) {
			fputc('{', t->out);
			for (size_t k = 0; k < r[i].nvalues; k++) {
				const struct sf_value *v = &r[i].values[k];
				fprintf(t->out, "%s\"%s\":", k ? "," : "", v->name);
				if (v->type == SF_STRING)
					json_str(t->out, v->str);
				else if (v->type == SF_BOOL)
					fputs(v->b ? "true" : "false", t->out);
				else if (v->type == SF_NUMBER)
					fprintf(t->out, "%.17g", v->num);
				else
					fputs("null", t->out);
			}
			fputs("}\n", t->out);
		}
		t->bytes +=
		    (em && em->str ? strlen(em->str) : 0) + (ms && ms->str ? strlen(ms->str) : 0);
		t->records++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* libcurl's global state first, as optsync's main does (sf.h) */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || atexit(curl_global_cleanup) != 0)
		return 1;
	long n = argc > 1 ? atol(argv[1]) : 100000;
	const char *given = getenv("OPTSYNC_BENCH_SF_URL");
	char dir[] = "/tmp/optsync-bench-sf-XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 1;
	char portfile[128], count[32];
	snprintf(portfile, sizeof(portfile), "%s/port", dir);
	snprintf(count, sizeof(count), "%ld", n);
	pid_t pid = 0;
	int port = 0;
	char url[256];
	if (given) {
		snprintf(url, sizeof(url), "%s", given);
	} else {
		pid = fork();
		if (pid == 0) {
			execlp("python3", "python3",
			       OPTSYNC_SOURCE_DIR "/tests/fake_salesforce/fake_sf.py",
			       "--port-file", portfile, "--contacts", count, (char *)NULL);
			_exit(127);
		}
		for (int i = 0; i < 1200 && port == 0; i++) {
			FILE *f = fopen(portfile, "r");
			if (f) {
				if (fscanf(f, "%d", &port) != 1)
					port = 0;
				fclose(f);
			}
			if (port == 0)
				usleep(100000);
		}
		if (port == 0) {
			fprintf(stderr, "the fake Salesforce did not start\n");
			kill(pid, SIGTERM);
			return 1;
		}
		snprintf(url, sizeof(url), "http://localhost:%d", port); /* its My Domain host */
	}
	struct sf_options o = {0};
	o.login_url = url;
	o.api_version = "62.0";
	o.auth = SF_AUTH_CLIENT_CREDENTIALS;
	o.client_id = "fake-client-id";
	o.client_secret = "fake-client-secret";
	struct sf_client *c;
	struct err e = {0};
	struct tally t = {0};
	if (argc > 2 && (t.out = fopen(argv[2], "w")) == NULL) {
		perror(argv[2]);
		return 1;
	}
	int rc = sf_client_new(&c, &o, &e);
	if (rc == 0)
		rc = sf_login(c, &e);
	double w0 = now(), c0 = cpu();
	if (rc == 0)
		rc = sf_query(
		    c,
		    "SELECT Id, Email, FirstName, LastName, HasOptedOutOfEmail, "
		    "Authorization_Type__c, Consent_Date__c, Processing_Purpose__c, "
		    "Source_Type__c, Source_Other__c, Authorization_Other__c, SystemModstamp "
		    "FROM Contact ORDER BY SystemModstamp, Id",
		    false, on_page, &t, &e);
	double w1 = now(), c1 = cpu();
	sf_client_free(c);
	if (t.out)
		fclose(t.out);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	unlink(portfile);
	rmdir(dir);
	if (rc) {
		fprintf(stderr, "pull failed: %s\n", e.msg);
		return 1;
	}
	printf("bench/salesforce-pull: %zu records in %zu pages from the fake Salesforce\n",
	       t.records, t.pages);
	printf("  wall:   %.0f records/s (%.2f s; includes the fake building its pages)\n",
	       (double)t.records / (w1 - w0), w1 - w0);
	printf("  client: %.3f CPU seconds per 100,000 records   target < 0.5\n",
	       (c1 - c0) * 100000.0 / (double)t.records);
	return 0;
}
