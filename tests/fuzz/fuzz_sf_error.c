/* libFuzzer target: Salesforce's error answers: the REST error body
 * ([{"errorCode":..,"message":..}], or anything a proxy sends instead),
 * the per-record results of an sObject Collections PATCH (read from
 * cJSON's tree, and by the fast path, which must agree), and the
 * classification of the error codes found in them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char code[128], msg[512];
	sf_error_of((const char *)data, size, code, sizeof(code), msg, sizeof(msg));
	if (strlen(code) >= sizeof(code) || strlen(msg) >= sizeof(msg) || strchr(msg, '\n'))
		abort();
	(void)sf_classify(400, code[0] ? code : NULL);
	(void)sf_classify(403, code[0] ? code : NULL);

	static struct sf_result res[SF_COLLECTION_MAX], fast[SF_COLLECTION_MAX];
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (j == NULL) {
		/* what cJSON cannot read, the fast path does not take either */
		for (size_t n = 1; n <= 3; n++)
			if (sf_collection_fast((const char *)data, size, n, fast))
				abort();
		return 0;
	}
	int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
	struct err e;
	int rc =
	    n >= 0 && n <= SF_COLLECTION_MAX ? sf_collection_results(j, (size_t)n, res, &e) : -1;
	if (rc == 0) {
		for (int i = 0; i < n; i++)
			if (strlen(res[i].status_code) >= sizeof(res[i].status_code) ||
			    strlen(res[i].fields) >= sizeof(res[i].fields) ||
			    (res[i].success && res[i].status_code[0]))
				abort();
	}
	/* the fast path reads an answer as the tree does, or leaves it */
	if (n > 0 && n <= SF_COLLECTION_MAX &&
	    sf_collection_fast((const char *)data, size, (size_t)n, fast)) {
		if (rc != 0)
			abort();
		for (int i = 0; i < n; i++)
			if (fast[i].success != res[i].success ||
			    fast[i].retryable != res[i].retryable ||
			    strcmp(fast[i].id, res[i].id) != 0 ||
			    strcmp(fast[i].status_code, res[i].status_code) != 0 ||
			    strcmp(fast[i].message, res[i].message) != 0 ||
			    strcmp(fast[i].fields, res[i].fields) != 0)
				abort();
	}
	if (n > 1 && sf_collection_fast((const char *)data, size, (size_t)n - 1, fast))
		abort(); /* another count */
	cJSON_Delete(j);
	return 0;
}

/* The oracle: whether an errorCode is found in the body. */
int fuzz_accepts(const uint8_t *data, size_t size)
{
	char code[128], msg[512];
	sf_error_of((const char *)data, size, code, sizeof(code), msg, sizeof(msg));
	return code[0] != '\0';
}
