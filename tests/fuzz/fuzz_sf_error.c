/* libFuzzer target: Salesforce's error answers: the REST error body
 * ([{"errorCode":..,"message":..}], or anything a proxy sends instead),
 * the per-record results of an sObject Collections PATCH, and the
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

	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (j == NULL)
		return 0;
	static struct sf_result res[SF_COLLECTION_MAX];
	int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : 1;
	struct err e;
	if (n >= 0 && n <= SF_COLLECTION_MAX && sf_collection_results(j, (size_t)n, res, &e) == 0) {
		for (int i = 0; i < n; i++)
			if (strlen(res[i].status_code) >= sizeof(res[i].status_code) ||
			    strlen(res[i].fields) >= sizeof(res[i].fields) ||
			    (res[i].success && res[i].status_code[0]))
				abort();
	}
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
