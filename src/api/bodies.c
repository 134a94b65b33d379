/* Request bodies: the members each route takes, checked before a use case runs. */
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

/* ---- request bodies ---- */

const char *http_jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int http_jtime(const cJSON *o, const char *k, int64_t *ms, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	*ms = 0;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || time_parse(v->valuestring, ms))
		return err_set(e, ERR_INVALID, "%s must be an RFC 3339 date-time", k);
	return 0;
}

/* Only the listed keys, each of the right JSON type (s: string or null). */
int http_check_keys(const cJSON *o, const char *const *allowed, struct err *e)
{
	if (!cJSON_IsObject(o))
		return err_set(e, ERR_USAGE, "the body must be a JSON object");
	const cJSON *it;
	cJSON_ArrayForEach(it, o)
	{
		int ok = 0;
		for (const char *const *a = allowed; *a; a++)
			ok |= strcmp(*a, it->string) == 0;
		if (!ok)
			return err_set(e, ERR_INVALID, "unknown field '%.60s'", it->string);
		if (!cJSON_IsString(it) && !cJSON_IsNull(it))
			return err_set(e, ERR_INVALID, "field '%s' must be a string", it->string);
	}
	return 0;
}

/* An authorization object {"type", "consent_date"?, "purpose"?, "other"?}
 * (PUT /authorization, a batch update's "authorization") into ch;
 * missing: the message when there is no type. */
int http_parse_authorization(const cJSON *o, struct conn_facts_change *ch, const char *missing,
                             struct err *e)
{
	static const char *const keys[] = {"type", "consent_date", "purpose", "other", NULL};
	int rc = http_check_keys(o, keys, e);
	if (rc)
		return rc;
	ch->authorization = http_jstr(o, "type");
	ch->purpose = http_jstr(o, "purpose");
	ch->other = http_jstr(o, "other");
	if (ch->authorization == NULL)
		return err_set(e, ERR_INVALID, "%s", missing);
	return http_jtime(o, "consent_date", &ch->consent_date, e);
}

/* A source object {"type", "other"?} into ch, likewise. */
int http_parse_source(const cJSON *o, struct conn_facts_change *ch, const char *missing,
                      struct err *e)
{
	static const char *const keys[] = {"type", "other", NULL};
	int rc = http_check_keys(o, keys, e);
	if (rc)
		return rc;
	ch->source = http_jstr(o, "type");
	ch->source_other = http_jstr(o, "other");
	return ch->source ? 0 : err_set(e, ERR_INVALID, "%s", missing);
}

int api_optout_parse(const cJSON *body, struct conn_optout *o, struct err *e)
{
	static const char *const keys[] = {"email",           "occurred_at", "source", "reason",
	                                   "idempotency_key", "purpose",     NULL};
	memset(o, 0, sizeof(*o));
	int rc = http_check_keys(body, keys, e);
	if (rc)
		return rc;
	o->email = http_jstr(body, "email");
	o->source = http_jstr(body, "source");
	o->reason = http_jstr(body, "reason");
	o->idempotency_key = http_jstr(body, "idempotency_key");
	o->purpose = http_jstr(body, "purpose");
	if (o->email == NULL)
		return err_set(e, ERR_INVALID, "email is required");
	return http_jtime(body, "occurred_at", &o->occurred_at, e);
}

void http_batch_row(const cJSON *it, struct conn_set_row *r, char *msg, size_t cap)
{
	static const char *const row_keys[] = {"email", "authorization", "source", NULL};
	struct err e = {0};
	if (!cJSON_IsObject(it)) {
		snprintf(msg, cap, "an update must be a JSON object");
		r->error = msg;
		return;
	}
	const cJSON *auth = cJSON_GetObjectItemCaseSensitive(it, "authorization");
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(it, "source");
	const cJSON *k;
	int rc = 0;
	cJSON_ArrayForEach(k, it)
	{
		int known = 0;
		for (const char *const *a = row_keys; *a; a++)
			known |= strcmp(*a, k->string) == 0;
		if (!known && rc == 0)
			rc = err_set(&e, ERR_INVALID, "unknown field '%.60s'", k->string);
	}
	r->email = http_jstr(it, "email");
	if (rc == 0 && auth)
		rc = http_parse_authorization(auth, &r->ch, "authorization needs a type", &e);
	if (rc == 0 && src)
		rc = http_parse_source(src, &r->ch, "source needs a type", &e);
	if (rc) {
		snprintf(msg, cap, "%.150s", e.msg);
		r->error = msg;
	}
}
