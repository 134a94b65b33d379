/* bench/links: minting unsubscribe links on one core (the use case the CLI
 * and POST /v1/unsubscribe-links call: normalize the email, seal the token
 * with AES-256-GCM under a fresh nonce, format the URL and the header
 * value), and opening them (what every request to the public listener
 * does first). Target (issue 15): >= 200,000 links/s on one core, so a
 * campaign of 1M recipients gets its links in under 5 s.
 *
 * usage: links [COUNT]   (default 1,000,000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "connector/connector.h"

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	char dir[] = "/tmp/optsync-bench-links-XXXXXX", key[64], cfgp[64];
	if (n <= 0 || mkdtemp(dir) == NULL)
		return 2;
	snprintf(key, sizeof(key), "%s/key", dir);
	snprintf(cfgp, sizeof(cfgp), "%s/optsync.toml", dir);
	FILE *f = fopen(key, "w");
	fputs("0123456789abcdef0123456789abcdef", f);
	fclose(f);
	chmod(key, 0600); /* a secret file: refused when others may read it */
	f = fopen(cfgp, "w");
	fprintf(f,
	        "[salesforce]\nclient_id = \"x\"\nauth = \"client_credentials\"\n"
	        "client_secret_file = \"/nonexistent\"\n[unsubscribe]\n"
	        "base_url = \"https://unsubscribe.example.com\"\nkey_file = \"%s\"\n"
	        "organization = \"Example B.V.\"\nprivacy_url = \"https://example.com/privacy\"\n",
	        key);
	fclose(f);
	struct config *cfg;
	struct conn_links *k;
	struct err e;
	if (config_load(&cfg, cfgp, NULL, &e) || conn_links_open(cfg, &k, &e)) {
		fprintf(stderr, "links: %s\n", e.msg);
		return 1;
	}
	char(*tokens)[CONN_LINK_URL_MAX] = malloc(1000 * sizeof(*tokens));
	char email[96];
	struct conn_link l;
	size_t bytes = 0;
	double c0 = cpu_now(), w0 = wall_now();
	for (long i = 0; i < n; i++) {
		snprintf(email, sizeof(email), "Person.Number%ld@Company%ld.example", i, i % 5000);
		if (conn_link_mint(k, email, NULL, i % 2 ? "2026-spring" : NULL, &l, &e)) {
			fprintf(stderr, "links: %s\n", e.msg);
			return 1;
		}
		bytes += strlen(l.url);
		if (i < 1000)
			memcpy(tokens[i], l.url, sizeof(l.url));
	}
	double cpu = cpu_now() - c0, wall = wall_now() - w0;
	printf("bench/links: minted %ld links in %.2f s (%.2f CPU s, one thread): %.0f links/s; "
	       "average URL %.0f characters   target: >= 200,000/s\n",
	       n, wall, cpu, (double)n / cpu, (double)bytes / (double)n);
	long opens = n < 1000000 ? n : 1000000;
	struct conn_link_view v;
	c0 = cpu_now();
	for (long i = 0; i < opens; i++) {
		const char *t = strstr(tokens[i % 1000], "/u/") + 3;
		conn_link_open(k, t, strlen(t), &v);
		if (v.state != CONN_LINK_VALID)
			return 1;
	}
	cpu = cpu_now() - c0;
	printf("bench/links: opened %ld tokens in %.2f CPU s: %.0f/s\n", opens, cpu,
	       (double)opens / cpu);
	free(tokens);
	conn_links_close(k);
	config_free(cfg);
	unlink(key);
	unlink(cfgp);
	rmdir(dir);
	return 0;
}
