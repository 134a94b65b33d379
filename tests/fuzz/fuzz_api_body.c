/* libFuzzer target: request bodies of the local API (POST /v1/optouts):
 * JSON parsing, the field checks, dates and the email normalization. */
#include <stdint.h>
#include <string.h>

#include "api/internal.h"
#include "state/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *body = cJSON_ParseWithLength((const char *)data, size);
	if (body == NULL)
		return 0;
	struct conn_optout o;
	struct err e;
	if (api_optout_parse(body, &o, &e) == 0) {
		char norm[LEDGER_EMAIL_MAX + 1];
		if (conn_email_normalize(o.email, norm, &e) == 0)
			(void)strlen(norm);
	}
	cJSON_Delete(body);
	return 0;
}

/* The oracle: whether the body is a valid POST /v1/optouts body. */
int fuzz_accepts(const uint8_t *data, size_t size)
{
	cJSON *body = cJSON_ParseWithLength((const char *)data, size);
	if (body == NULL)
		return 0;
	struct conn_optout o;
	struct err e;
	int ok = api_optout_parse(body, &o, &e) == 0;
	cJSON_Delete(body);
	return ok;
}
