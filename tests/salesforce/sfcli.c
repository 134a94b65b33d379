/* sfcli: drives the real Salesforce client from the integration tests.
 *
 *   sfcli [options] query [--all] SOQL
 *   sfcli [options] query-in HEAD TAIL VALUE...
 *   sfcli [options] update            (JSON lines on stdin:
 *                                      {"type":..,"id":..,"fields":{..}})
 *
 * options: --login-url U --auth jwt|client_credentials|refresh_token
 *          --client-id X --username U --key PEMFILE --secret S --refresh R
 *          --attempts N --backoff MS --timeout MS --debug
 *
 * query prints one JSON line per record and "pages N records M" on stderr;
 * update prints one JSON line per result. Every command ends with a stats
 * line on stderr. Exit status: 0 ok, 1 retryable failure, 2 permanent. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/sf.h"
#include "util/fileio.h"
#include "util/log.h"

static size_t pages, records;

static int print_page(void *ctx, const struct sf_record *recs, size_t n, struct err *e)
{
	(void)ctx;
	(void)e;
	pages++;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject(), *v = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", recs[i].type);
		cJSON_AddStringToObject(o, "id", recs[i].id);
		for (size_t k = 0; k < recs[i].nvalues; k++) {
			const struct sf_value *x = &recs[i].values[k];
			cJSON_AddItemToObject(v, x->name,
			                      x->type == SF_STRING   ? cJSON_CreateString(x->str)
			                      : x->type == SF_BOOL   ? cJSON_CreateBool(x->b)
			                      : x->type == SF_NUMBER ? cJSON_CreateNumber(x->num)
			                                             : cJSON_CreateNull());
		}
		cJSON_AddItemToObject(o, "values", v);
		char *s = cJSON_PrintUnformatted(o);
		puts(s);
		free(s);
		cJSON_Delete(o);
		records++;
	}
	return 0;
}

static int do_update(struct sf_client *c, struct err *e)
{
	char line[65536];
	struct sf_update up[SF_COLLECTION_MAX];
	struct sf_value vals[SF_COLLECTION_MAX][16];
	cJSON *docs[SF_COLLECTION_MAX];
	struct sf_result res[SF_COLLECTION_MAX];
	size_t n = 0;
	int rc = 0, eof = 0;
	while (!eof) {
		eof = fgets(line, sizeof(line), stdin) == NULL;
		if (!eof) {
			cJSON *d = cJSON_Parse(line);
			if (d == NULL)
				continue;
			docs[n] = d;
			up[n].type = cJSON_GetObjectItem(d, "type")->valuestring;
			up[n].id = cJSON_GetObjectItem(d, "id")->valuestring;
			up[n].values = vals[n];
			up[n].nvalues = 0;
			cJSON *f;
			cJSON_ArrayForEach(f, cJSON_GetObjectItem(d, "fields"))
			{
				struct sf_value *v = &vals[n][up[n].nvalues++];
				v->name = f->string;
				v->type = cJSON_IsString(f)   ? SF_STRING
				          : cJSON_IsBool(f)   ? SF_BOOL
				          : cJSON_IsNumber(f) ? SF_NUMBER
				                              : SF_NULL;
				v->str = f->valuestring;
				v->b = cJSON_IsTrue(f);
				v->num = f->valuedouble;
			}
			n++;
		}
		if (n == SF_COLLECTION_MAX || (eof && n > 0)) {
			rc = sf_update(c, up, n, res, e);
			for (size_t i = 0; rc == 0 && i < n; i++)
				printf("{\"id\":\"%s\",\"success\":%s,\"statusCode\":\"%s\","
				       "\"retryable\":%s,"
				       "\"fields\":\"%s\"}\n",
				       up[i].id, res[i].success ? "true" : "false",
				       res[i].status_code, res[i].retryable ? "true" : "false",
				       res[i].fields);
			for (size_t i = 0; i < n; i++)
				cJSON_Delete(docs[i]);
			n = 0;
			if (rc)
				return rc;
		}
	}
	return rc;
}

int main(int argc, char **argv)
{
	/* libcurl's global state first, as optsync's main does (sf.h) */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || atexit(curl_global_cleanup) != 0)
		return 1;
	struct sf_options o = {0};
	o.api_version = "62.0";
	o.client_id = "fake-client-id";
	o.username = "sync@example.com";
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 200;
	const char *keyfile = NULL;
	int i = 1, debug = 0;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		const char *k = argv[i] + 2, *v = i + 1 < argc ? argv[i + 1] : "";
		if (strcmp(k, "debug") == 0) {
			debug = 1;
			i--;
		} else if (strcmp(k, "login-url") == 0)
			o.login_url = v;
		else if (strcmp(k, "auth") == 0)
			o.auth = strcmp(v, "jwt") == 0                  ? SF_AUTH_JWT
			         : strcmp(v, "client_credentials") == 0 ? SF_AUTH_CLIENT_CREDENTIALS
			                                                : SF_AUTH_REFRESH_TOKEN;
		else if (strcmp(k, "client-id") == 0)
			o.client_id = v;
		else if (strcmp(k, "username") == 0)
			o.username = v;
		else if (strcmp(k, "key") == 0)
			keyfile = v;
		else if (strcmp(k, "secret") == 0)
			o.client_secret = v;
		else if (strcmp(k, "refresh") == 0)
			o.refresh_token = v;
		else if (strcmp(k, "attempts") == 0)
			o.max_attempts = atoi(v);
		else if (strcmp(k, "backoff") == 0)
			o.backoff_base_ms = atol(v);
		else if (strcmp(k, "timeout") == 0)
			o.timeout_ms = atol(v);
		else if (strcmp(k, "ca") == 0)
			o.ca_file = v;
		else {
			fprintf(stderr, "sfcli: unknown option --%s\n", k);
			return 2;
		}
	}
	log_setup(debug ? LOG_DEBUG : LOG_WARN, LOG_FORMAT_TEXT, 2);
	struct err e = {0};
	struct buf key = {0};
	if (keyfile) {
		if (file_read_all(keyfile, 1 << 16, &key, &e)) {
			fprintf(stderr, "sfcli: %s\n", e.msg);
			return 2;
		}
		o.private_key = key.data;
		log_add_secret(key.data, key.len);
	}
	if (o.client_secret)
		log_add_secret(o.client_secret, strlen(o.client_secret));
	if (o.refresh_token)
		log_add_secret(o.refresh_token, strlen(o.refresh_token));
	struct sf_client *c;
	if (sf_client_new(&c, &o, &e)) {
		fprintf(stderr, "sfcli: %s\n", e.msg);
		return 2;
	}
	int rc = 0;
	const char *cmd = i < argc ? argv[i] : "";
	if (strcmp(cmd, "login") == 0) {
		rc = sf_login(c, &e);
	} else if (strcmp(cmd, "query") == 0) {
		int all = i + 1 < argc && strcmp(argv[i + 1], "--all") == 0;
		rc = sf_query(c, argv[i + 1 + all], all, print_page, NULL, &e);
	} else if (strcmp(cmd, "query-in") == 0 && i + 2 < argc) {
		rc = sf_query_in(c, argv[i + 1], (const char *const *)argv + i + 3,
		                 (size_t)(argc - i - 3), argv[i + 2], false, print_page, NULL, &e);
	} else if (strcmp(cmd, "update") == 0) {
		rc = do_update(c, &e);
	} else {
		fprintf(stderr, "sfcli: unknown command '%s'\n", cmd);
		rc = ERR_USAGE;
	}
	struct sf_stats st;
	sf_stats_get(c, &st);
	fprintf(stderr, "pages %zu records %zu\n", pages, records);
	fprintf(stderr, "stats requests=%llu token_calls=%llu retries=%llu api=%ld/%ld\n",
	        (unsigned long long)st.requests, (unsigned long long)st.token_calls,
	        (unsigned long long)st.retries, st.api_used, st.api_max);
	if (rc)
		fprintf(stderr, "error %s: %s\n", err_code_name(rc), e.msg);
	sf_client_free(c);
	buf_free(&key);
	log_forget_secrets();
	return rc == 0 ? 0 : rc == ERR_RETRY ? 1 : 2;
}
