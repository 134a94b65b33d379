/* The HTTP API's answers: JSON, errors from the one status table, counting. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

/* the statuses the API answers with; anything else counts as "other" */
const unsigned http_statuses[N_STATUS - 1] = {200, 202, 400, 401, 403, 404, 405,
                                              409, 413, 422, 429, 500, 503};

int64_t http_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void http_count(struct sidecar *s, const struct api_client *client, enum route r, unsigned status,
                int64_t start)
{
	static const double bounds[N_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01,
	                                         0.025,  0.05,  0.1,   0.5,   1.0};
	double secs = (double)(http_now_us() - start) / 1e6;
	int ci = N_STATUS - 1;
	for (int i = 0; i < N_STATUS - 1; i++)
		if (http_statuses[i] == status)
			ci = i;
	pthread_mutex_lock(&s->mu);
	s->m.requests[r][ci]++;
	if (client && s->client_requests)
		s->client_requests[(size_t)(client - s->clients) * N_ROUTES + (size_t)r]++;
	int b = N_BUCKETS;
	for (int i = 0; i < N_BUCKETS; i++)
		if (secs <= bounds[i]) {
			b = i;
			break;
		}
	s->m.latency[b]++;
	s->m.latency_sum += secs;
	s->m.latency_count++;
	pthread_mutex_unlock(&s->mu);
}

/* ---- responses ---- */

enum MHD_Result http_send_text(struct MHD_Connection *con, unsigned status, const char *ctype,
                               char *text, size_t len, const char *extra_header,
                               const char *extra_value)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (extra_header)
		MHD_add_response_header(resp, extra_header, extra_value);
	enum MHD_Result r = MHD_queue_response(con, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result http_send_json(struct MHD_Connection *con, unsigned status, cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	if (text == NULL)
		return MHD_NO;
	return http_send_text(con, status, "application/json", text, strlen(text), NULL, NULL);
}

/* The one table from error codes to HTTP statuses. */
unsigned http_status_of(int code)
{
	switch (code) {
	case ERR_INVALID:
	case ERR_EVIDENCE: /* a body without enough evidence, whatever the route */
		return 422;
	case ERR_USAGE:
		return 400;
	case ERR_NOTFOUND:
		return 404;
	case ERR_REFUSED:
		return 403;
	case ERR_CONFLICT:
		return 409;
	case ERR_LIMIT:
		return 413;
	case ERR_LEDGER:
	case ERR_BUSY:
	case ERR_NOMEM: /* passing: worth trying again */
		return 503;
	case ERR_RATE:
		return 429;
	default:
		return 500;
	}
}

const char *http_code_of(unsigned status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 401:
		return "unauthorized";
	case 403:
		return "forbidden";
	case 404:
		return "not_found";
	case 405:
		return "method_not_allowed";
	case 409:
		return "conflict";
	case 413:
		return "too_large";
	case 422:
		return "invalid";
	case 429:
		return "rate_limited";
	case 503:
		return "unavailable";
	default:
		return "internal";
	}
}

/* An error document; header/value, when set, go with it (WWW-Authenticate
 * on 401, Allow on 405, Retry-After on 429 and 503). A 503 without one of
 * its own gets Retry-After: HTTP_RETRY_AFTER. */
enum MHD_Result http_send_error_with(struct MHD_Connection *con, unsigned status, const char *msg,
                                     const char *header, const char *value)
{
	if (status == 503 && header == NULL) {
		header = MHD_HTTP_HEADER_RETRY_AFTER;
		value = HTTP_RETRY_AFTER;
	}
	cJSON *doc = cJSON_CreateObject(), *er = cJSON_AddObjectToObject(doc, "error");
	cJSON_AddStringToObject(er, "code", http_code_of(status));
	cJSON_AddStringToObject(er, "message", msg);
	char *text = cJSON_PrintUnformatted(doc);
	cJSON_Delete(doc);
	return text ? http_send_text(con, status, "application/json", text, strlen(text), header,
	                             value)
	            : MHD_NO;
}

enum MHD_Result http_send_error(struct MHD_Connection *con, unsigned status, const char *msg)
{
	if (status == 401)
		return http_send_error_with(con, status, msg, "WWW-Authenticate", "Bearer");
	return http_send_error_with(con, status, msg, NULL, NULL);
}
