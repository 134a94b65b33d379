/* Salesforce's error answers, parsed without any network: the REST error
 * body and the per-record results of an sObject Collections call. Kept
 * apart from the client so that the fuzz target reaches them directly. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "salesforce/internal.h"

/* Salesforce error bodies are [{"message":..,"errorCode":..}]; a login
 * or proxy error may be an object or not JSON at all. */
void sf_error_of(const char *body, size_t len, char *code, size_t ccap, char *msg, size_t mcap)
{
	code[0] = msg[0] = '\0';
	cJSON *j = cJSON_ParseWithLength(body ? body : "", body ? len : 0);
	const cJSON *first = cJSON_IsArray(j) ? cJSON_GetArrayItem(j, 0) : j;
	const cJSON *ec = cJSON_GetObjectItemCaseSensitive(first, "errorCode");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(first, "message");
	if (cJSON_IsString(ec))
		snprintf(code, ccap, "%s", ec->valuestring);
	if (cJSON_IsString(m)) {
		/* a SOQL error echoes the whole query before what went wrong
		 * ("SELECT ... ^ ERROR at Row:1:Column:123 No such column ..."):
		 * keep what went wrong, so that no cap cuts it off */
		const char *text = m->valuestring, *at = strstr(text, "ERROR at Row:");
		if (at) {
			const char *p = strstr(at, "Column:");
			p = p ? p + 7 : at + 13;
			while (*p >= '0' && *p <= '9')
				p++;
			while (*p == ' ' || *p == '\n' || *p == '\r')
				p++;
			if (*p)
				text = p;
		}
		snprintf(msg, mcap, "%s", text);
		for (char *p = msg; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	cJSON_Delete(j);
}

int sf_collection_results(const cJSON *j, size_t n, struct sf_result *results, struct err *e)
{
	if (!cJSON_IsArray(j) || (size_t)cJSON_GetArraySize(j) != n)
		return err_set(e, ERR_RETRY,
		               "Salesforce collections answer has %d results for %zu records",
		               cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1, n);
	size_t i = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, j)
	{
		struct sf_result *res = &results[i++];
		memset(res, 0, sizeof(*res));
		res->success = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "success"));
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
		if (cJSON_IsString(id) && strlen(id->valuestring) < sizeof(res->id))
			snprintf(res->id, sizeof(res->id), "%s", id->valuestring);
		if (res->success)
			continue;
		const cJSON *errs = cJSON_GetObjectItemCaseSensitive(r, "errors");
		const cJSON *first = cJSON_GetArrayItem(errs, 0);
		const cJSON *sc = cJSON_GetObjectItemCaseSensitive(first, "statusCode");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(first, "message");
		const cJSON *fields = cJSON_GetObjectItemCaseSensitive(first, "fields");
		snprintf(res->status_code, sizeof(res->status_code), "%s",
		         cJSON_IsString(sc) ? sc->valuestring : "UNKNOWN_ERROR");
		snprintf(res->message, sizeof(res->message), "%s",
		         cJSON_IsString(msg) ? msg->valuestring : "");
		size_t o = 0;
		const cJSON *fld;
		cJSON_ArrayForEach(fld, fields)
		{
			if (!cJSON_IsString(fld) || o >= sizeof(res->fields) - 1)
				continue;
			int w = snprintf(res->fields + o, sizeof(res->fields) - o, "%s%s",
			                 o ? "," : "", fld->valuestring);
			if (w > 0)
				o += (size_t)w;
		}
		res->retryable = sf_classify(400, res->status_code) == SF_RETRY;
	}
	return 0;
}

/* ---- the collections answer of a call whose records were all written ---- */

struct scan {
	const char *p, *end;
};

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static bool take(struct scan *s, char c)
{
	skip_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	return false;
}

static bool take_word(struct scan *s, const char *w, size_t n)
{
	skip_ws(s);
	if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) {
		s->p += n;
		return true;
	}
	return false;
}

/* A string without escapes or control characters (anything else is left
 * to cJSON): its bytes at *at, *len of them. */
static bool take_plain_string(struct scan *s, const char **at, size_t *len)
{
	if (!take(s, '"'))
		return false;
	const char *start = s->p;
	while (s->p < s->end && *s->p != '"') {
		if (*s->p == '\\' || (unsigned char)*s->p < 0x20)
			return false;
		s->p++;
	}
	if (s->p == s->end)
		return false;
	*at = start;
	*len = (size_t)(s->p - start);
	s->p++;
	return true;
}

/* One {"id": ..., "success": true, "errors": []} (members in any order,
 * each once; others with a plain string, true, false or null skipped). */
static bool take_written(struct scan *s, struct sf_result *res)
{
	bool id = false, success = false, errors = false;
	const char *v;
	size_t vl;
	if (!take(s, '{'))
		return false;
	memset(res, 0, sizeof(*res));
	do {
		const char *k;
		size_t kl;
		if (!take_plain_string(s, &k, &kl) || !take(s, ':'))
			return false;
		if (kl == 2 && memcmp(k, "id", 2) == 0) {
			if (id || !take_plain_string(s, &v, &vl) || vl >= sizeof(res->id))
				return false;
			memcpy(res->id, v, vl);
			id = true;
		} else if (kl == 7 && memcmp(k, "success", 7) == 0) {
			if (success || !take_word(s, "true", 4))
				return false;
			success = true;
		} else if (kl == 6 && memcmp(k, "errors", 6) == 0) {
			if (errors || !take(s, '[') || !take(s, ']'))
				return false;
			errors = true;
		} else if (!take_plain_string(s, &v, &vl) && !take_word(s, "true", 4) &&
		           !take_word(s, "false", 5) && !take_word(s, "null", 4)) {
			return false;
		} else {
			/* a member of a name that may come twice: cJSON would read
			 * the first of a pair, this reads on; neither is used */
		}
	} while (take(s, ','));
	res->success = true;
	return take(s, '}') && id && success && errors;
}

int sf_collection_fast(const char *body, size_t len, size_t n, struct sf_result *results)
{
	struct scan s = {body, body + len};
	if (body == NULL || n == 0 || !take(&s, '['))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((i && !take(&s, ',')) || !take_written(&s, &results[i]))
			return 0;
	if (!take(&s, ']'))
		return 0;
	skip_ws(&s);
	return s.p == s.end;
}
