/* Queries, SOQL quoting and sObject Collections updates. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "salesforce/internal.h"
#include "util/log.h"

/* Where each name asked for was found last: the records of a page, and of
 * the pages after it, name the same fields in the same order, and a pull
 * asks about 20 names of each record. Per thread, keyed by the address of
 * the name asked for; a hint is only a first guess, checked by name. */
#define HINTS 64
static _Thread_local struct {
	const char *field;
	size_t at;
} hints[HINTS];

const struct sf_value *sf_record_get(const struct sf_record *r, const char *field)
{
	size_t h = ((uintptr_t)field >> 3) % HINTS;
	if (hints[h].field == field) {
		size_t at = hints[h].at;
		if (at < r->nvalues && strcasecmp(r->values[at].name, field) == 0)
			return &r->values[at];
	}
	/* names are ASCII identifiers: a first letter that differs even in its
	 * case-folded form rules most fields out without a call */
	unsigned char f0 = (unsigned char)field[0] | 0x20;
	for (size_t i = 0; i < r->nvalues; i++) {
		const char *n = r->values[i].name;
		if (((unsigned char)n[0] | 0x20) == f0 && strcasecmp(n, field) == 0) {
			hints[h].field = field;
			hints[h].at = i;
			return &r->values[i];
		}
	}
	return NULL;
}

int sf_soql_quote(const char *s, struct buf *out, struct err *e)
{
	int rc = buf_putc(out, '\'', e);
	for (const char *p = s; rc == 0 && *p; p++) {
		unsigned char ch = (unsigned char)*p;
		const char *esc = NULL;
		switch (ch) {
		case '\\':
			esc = "\\\\";
			break;
		case '\'':
			esc = "\\'";
			break;
		case '"':
			esc = "\\\"";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\f':
			esc = "\\f";
			break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				return err_set(
				    e, ERR_INVALID,
				    "control character 0x%02x cannot go into a SOQL string", ch);
		}
		rc = esc ? buf_puts(out, esc, e) : buf_putc(out, (char)ch, e);
	}
	return rc ? rc : buf_putc(out, '\'', e);
}

static int url_escape_into(struct buf *b, const char *s, struct err *e)
{
	char *q = curl_easy_escape(NULL, s, 0);
	if (q == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = buf_puts(b, q, e);
	curl_free(q);
	return rc;
}

static int parse_page(struct sf_client *c, void *ctx, struct err *e)
{
	if (c->body.data == NULL)
		return err_set(e, ERR_RETRY, "Salesforce answered a query with an empty body");
	return sf_page_parse(c->body.data, c->body.len, ctx, e);
}

int sf_query(struct sf_client *c, const char *soql, bool all, sf_page_fn fn, void *ctx,
             struct err *e)
{
	struct buf path;
	buf_init(&path, SF_URL_MAX);
	int rc = buf_printf(&path, e, "/services/data/v%s/%s?q=", c->api_version,
	                    all ? "queryAll" : "query");
	if (rc == 0)
		rc = url_escape_into(&path, soql, e);
	if (rc) {
		buf_free(&path);
		return rc == ERR_LIMIT ? err_set(e, ERR_INVALID, "SOQL query too long for a URL")
		                       : rc;
	}
	char *next = buf_detach(&path, NULL);
	struct sf_page pg = {0};
	size_t pages = 0, total = 0;
	while (next && rc == 0) {
		rc = sf_call(c, "GET", next, NULL, NULL, 0, parse_page, &pg, e);
		if (rc) {
			if (rc == ERR_REMOTE && strstr(e->msg, "INVALID_QUERY_LOCATOR"))
				e->code = rc = ERR_RETRY; /* the next cycle starts again */
			break;
		}
		free(next);
		next = NULL;
		if (!pg.done) {
			if (pg.next == NULL || strncmp(pg.next, "/services/data/", 15) != 0)
				rc = err_set(e, ERR_RETRY,
				             "Salesforce query page is not done but has no valid "
				             "nextRecordsUrl");
			else if ((next = strdup(pg.next)) == NULL)
				rc = err_set(e, ERR_NOMEM, "out of memory");
		}
		if (rc == 0) {
			pages++;
			total += pg.nrecs;
			log_debug("sf.query", "page %zu: %zu records (%zu so far)%s", pages,
			          pg.nrecs, total, next ? "" : ", done");
			rc = fn(ctx, pg.recs, pg.nrecs, e);
		}
	}
	free(next);
	sf_page_free(&pg);
	return rc;
}

/* Length of s once URL-encoded (as curl_easy_escape does it). */
static size_t escaped_len(const char *s)
{
	size_t n = 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
		            ch == '~';
		n += plain ? 1 : 3;
	}
	return n;
}

int sf_query_in(struct sf_client *c, const char *head, const char *const *values, size_t n,
                const char *tail, bool all, sf_page_fn fn, void *ctx, struct err *e)
{
	/* what is not the list: the instance URL, the path and head + tail */
	size_t fixed = strlen(c->instance_url ? c->instance_url : "https://x.my.salesforce.com") +
	               64 + escaped_len(head) + escaped_len(tail);
	if (fixed >= SF_URL_MAX)
		return err_set(e, ERR_INVALID, "SOQL query too long for a URL");
	struct buf q, item;
	buf_init(&q, SF_URL_MAX * 2);
	buf_init(&item, SF_URL_MAX);
	int rc = 0;
	size_t i = 0;
	while (rc == 0 && i < n) {
		buf_reset(&q);
		size_t used = fixed;
		rc = buf_puts(&q, head, e);
		size_t count = 0;
		while (rc == 0 && i < n) {
			buf_reset(&item);
			if ((rc = sf_soql_quote(values[i], &item, e)))
				break;
			size_t cost = escaped_len(item.data) + (count ? 6 : 0); /* ", " is %2C%20 */
			if (used + cost > SF_URL_MAX) {
				if (count == 0)
					rc = err_set(e, ERR_INVALID,
					             "a value is too long for a SOQL IN list");
				break;
			}
			rc = buf_printf(&q, e, "%s%s", count ? ", " : "", item.data);
			used += cost;
			count++;
			i++;
		}
		if (rc == 0)
			rc = buf_puts(&q, tail, e);
		if (rc == 0)
			rc = sf_query(c, q.data, all, fn, ctx, e);
	}
	buf_free(&q);
	buf_free(&item);
	return rc;
}

/* A JSON string, escaped as cJSON prints one: ", \ and the control
 * characters; every other byte (UTF-8 too) as it is. json_len counts the
 * bytes json_put writes (it writes no NUL). */
static size_t json_len(const char *s)
{
	size_t n = 2;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch >= 32 && ch != '"' && ch != '\\')
			n++;
		else if (ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' ||
		         ch == '\r' || ch == '\t')
			n += 2;
		else
			n += 6;
	}
	return n;
}

static char *json_put(char *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	*o++ = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch >= 32 && ch != '"' && ch != '\\') {
			*o++ = (char)ch;
			continue;
		}
		*o++ = '\\';
		switch (ch) {
		case '"':
		case '\\':
			*o++ = (char)ch;
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			memcpy(o, "u00", 3);
			o[3] = hex[ch >> 4];
			o[4] = hex[ch & 15];
			o += 5;
		}
	}
	*o++ = '"';
	return o;
}

static char *put_text(char *o, const char *t, size_t n)
{
	memcpy(o, t, n);
	return o + n;
}

#define COLLECTION_BODY_MAX (256u << 20)
#define NUMBER_TEXT_MAX     64 /* cJSON prints a double in at most 26 bytes */
#define BODY_HEAD           "{\"allOrNone\":false,\"records\":["
#define REC_HEAD            "{\"attributes\":{\"type\":"
#define REC_ID              ",\"id\":"

/* The bytes a value takes; 0 for one left out (a string value without a
 * string, as cJSON left it out). */
static size_t value_len(const struct sf_value *v)
{
	switch (v->type) {
	case SF_BOOL:
		return v->b ? 4 : 5;
	case SF_STRING:
		return v->str ? json_len(v->str) : 0;
	case SF_NUMBER:
		return NUMBER_TEXT_MAX;
	default:
		return 4;
	}
}

/* The body of a collections call, written as cJSON would print it (the
 * tree of ~12 allocations per record it would build cost more than the
 * rest of the call), measured first, then written in one allocation:
 * {"allOrNone":false,"records":[{"attributes":{"type":T},"id":I,NAME:VALUE,
 * ...},...]}. *out is malloc'ed and NUL-terminated. */
static int collection_body(char **out, size_t *len, const struct sf_update *recs, size_t n,
                           struct err *e)
{
	*out = NULL;
	size_t total = sizeof(BODY_HEAD) - 1 + 2; /* then "]}" */
	for (size_t i = 0; i < n; i++) {
		const struct sf_update *r = &recs[i];
		total += 1 + sizeof(REC_HEAD) - 1 + json_len(r->type) + 2;
		if (r->id)
			total += sizeof(REC_ID) - 1 + json_len(r->id);
		for (size_t k = 0; k < r->nvalues; k++)
			total += 2 + json_len(r->values[k].name) + value_len(&r->values[k]);
		if (total > COLLECTION_BODY_MAX)
			return err_set(e, ERR_LIMIT, "a collections call of more than %u bytes",
			               COLLECTION_BODY_MAX);
	}
	char *b = malloc(total + 1), *o = b;
	if (b == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	o = put_text(o, BODY_HEAD, sizeof(BODY_HEAD) - 1);
	for (size_t i = 0; i < n; i++) {
		const struct sf_update *r = &recs[i];
		if (i)
			*o++ = ',';
		o = json_put(put_text(o, REC_HEAD, sizeof(REC_HEAD) - 1), r->type);
		*o++ = '}';
		if (r->id)
			o = json_put(put_text(o, REC_ID, sizeof(REC_ID) - 1), r->id);
		for (size_t k = 0; k < r->nvalues; k++) {
			const struct sf_value *v = &r->values[k];
			char *num = NULL;
			if (v->type == SF_STRING && v->str == NULL)
				continue;
			if (v->type == SF_NUMBER) {
				/* cJSON's own formatting (no number is written today) */
				cJSON *nj = cJSON_CreateNumber(v->num);
				num = nj ? cJSON_PrintUnformatted(nj) : NULL;
				cJSON_Delete(nj);
				if (num == NULL || strlen(num) > NUMBER_TEXT_MAX) {
					cJSON_free(num);
					continue; /* left out, as cJSON left out what it could not
					             make */
				}
			}
			*o++ = ',';
			o = json_put(o, v->name);
			*o++ = ':';
			if (v->type == SF_BOOL)
				o = v->b ? put_text(o, "true", 4) : put_text(o, "false", 5);
			else if (v->type == SF_STRING)
				o = json_put(o, v->str);
			else if (num)
				o = put_text(o, num, strlen(num));
			else
				o = put_text(o, "null", 4);
			cJSON_free(num);
		}
		*o++ = '}';
	}
	o = put_text(o, "]}", 2);
	*o = '\0';
	*out = b;
	*len = (size_t)(o - b);
	return 0;
}

/* The answer of a collections call: read at once when every record was
 * written (sf_collection_fast), else as a cJSON tree for
 * sf_collection_results. */
struct answer {
	size_t n;
	struct sf_result *results;
	bool read; /* results filled */
	cJSON *j;
};

static int parse_answer(struct sf_client *c, void *ctx, struct err *e)
{
	struct answer *a = ctx;
	cJSON_Delete(a->j); /* an answer before, to a request sent again */
	a->j = NULL;
	a->read = sf_collection_fast(c->body.data, c->body.len, a->n, a->results) == 1;
	return a->read ? 0 : sf_parse_json(c, &a->j, e);
}

/* One collections call for recs[0..n); results[i] for recs[i]. PATCH
 * updates, POST creates (no id). */
static int collection_once(struct sf_client *c, const char *method, const struct sf_update *recs,
                           size_t n, struct sf_result *results, struct err *e)
{
	if (n == 0)
		return 0;
	if (n > SF_COLLECTION_MAX)
		return err_set(e, ERR_INTERNAL, "%zu records in one collection (at most %d)", n,
		               SF_COLLECTION_MAX);
	char *body;
	size_t blen = 0;
	int rc = collection_body(&body, &blen, recs, n, e);
	struct answer a = {n, results, false, NULL};
	char path[128];
	snprintf(path, sizeof(path), "/services/data/v%s/composite/sobjects", c->api_version);
	if (rc == 0)
		rc = sf_call(c, method, path, "application/json", body, blen, parse_answer, &a, e);
	free(body);
	if (rc == 0 && !a.read)
		rc = sf_collection_results(a.j, n, results, e);
	cJSON_Delete(a.j);
	return rc;
}

static int collection(struct sf_client *c, const char *method, const struct sf_update *recs,
                      size_t n, struct sf_result *results, struct err *e)
{
	int rc = collection_once(c, method, recs, n, results, e);
	/* Re-send, alone, the records that failed with a retryable error
	 * (UNABLE_TO_LOCK_ROW), with backoff, until they pass or the attempts
	 * run out; the others keep their first result. */
	struct sf_update *again = NULL;
	struct sf_result *res2 = NULL;
	size_t *where = NULL;
	for (int attempt = 1; rc == 0 && attempt < c->max_attempts; attempt++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			m += !results[i].success && results[i].retryable;
		if (m == 0)
			break;
		if (again == NULL) {
			again = malloc(n * sizeof(*again));
			res2 = malloc(n * sizeof(*res2));
			where = malloc(n * sizeof(*where));
			if (!again || !res2 || !where) {
				rc = err_set(e, ERR_NOMEM, "out of memory");
				break;
			}
		}
		m = 0;
		for (size_t i = 0; i < n; i++)
			if (!results[i].success && results[i].retryable) {
				again[m] = recs[i];
				where[m++] = i;
			}
		c->st.retries++;
		long ms = sf_backoff_ms(c->backoff_base_ms, c->backoff_max_ms, attempt, -1,
		                        sf_next_random(c));
		log_info("sf.retry",
		         "%zu record(s) locked in Salesforce (%s); trying again in %ld ms", m,
		         results[where[0]].status_code, ms);
		if (sf_sleep(c, ms))
			break;
		rc = collection_once(c, method, again, m, res2, e);
		for (size_t k = 0; rc == 0 && k < m; k++)
			results[where[k]] = res2[k];
	}
	free(again);
	free(res2);
	free(where);
	return rc;
}

int sf_update(struct sf_client *c, const struct sf_update *recs, size_t n,
              struct sf_result *results, struct err *e)
{
	return collection(c, "PATCH", recs, n, results, e);
}

int sf_create(struct sf_client *c, const struct sf_update *recs, size_t n,
              struct sf_result *results, struct err *e)
{
	return collection(c, "POST", recs, n, results, e);
}

/* ---- metadata ---- */

struct sf_describe {
	cJSON *root; /* the describe answer: {"name", "fields": [...]} */
};

int sf_describe(struct sf_client *c, const char *object, struct sf_describe **out, struct err *e)
{
	*out = NULL;
	for (const char *p = object; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return err_set(e, ERR_INVALID, "'%.60s' is not an object name", object);
	char path[256];
	int n = snprintf(path, sizeof(path), "/services/data/v%s/sobjects/%s/describe",
	                 c->api_version, object);
	if (n < 0 || (size_t)n >= sizeof(path))
		return err_set(e, ERR_INVALID, "object name too long: %.60s", object);
	cJSON *root = NULL;
	int rc = sf_call(c, "GET", path, NULL, NULL, 0, sf_parse_json, &root, e);
	if (rc == 0 && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "fields")))
		rc = err_set(e, ERR_RETRY, "Salesforce's describe of %s has no field list", object);
	struct sf_describe *d = rc == 0 ? malloc(sizeof(*d)) : NULL;
	if (rc == 0 && d == NULL)
		rc = err_set(e, ERR_NOMEM, "out of memory");
	if (rc) {
		cJSON_Delete(root);
		return rc;
	}
	d->root = root;
	*out = d;
	return 0;
}

void sf_describe_free(struct sf_describe *d)
{
	if (d == NULL)
		return;
	cJSON_Delete(d->root);
	free(d);
}

static const cJSON *describe_field(const struct sf_describe *d, const char *field)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(d->root, "fields"))
	{
		const char *name =
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "name"));
		if (name && strcasecmp(name, field) == 0)
			return f;
	}
	return NULL;
}

bool sf_describe_field(const struct sf_describe *d, const char *field, bool *updateable)
{
	const cJSON *f = describe_field(d, field);
	if (updateable)
		*updateable = f && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "updateable"));
	return f != NULL;
}

int sf_describe_picklist_has(const struct sf_describe *d, const char *field, const char *value)
{
	const cJSON *f = describe_field(d, field);
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "type"));
	if (f == NULL || type == NULL || strcmp(type, "picklist") != 0)
		return -1;
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(f, "picklistValues"))
	{
		const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "value"));
		if (s && strcmp(s, value) == 0 &&
		    !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(v, "active")))
			return 1;
	}
	return 0;
}
