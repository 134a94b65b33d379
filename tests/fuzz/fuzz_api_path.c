/* libFuzzer target: the paths of the local API (after MHD unescaped them):
 * /v1/contacts/EMAIL[/sub], the email in it normalized as the use cases do,
 * and /v1/conflicts[/ID[/resolve]]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "state/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);
	if (path == NULL)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0'; /* MHD hands the path over as a C string */
	uint64_t id;
	int kind = api_conflict_path(path, &id);
	if ((kind == API_CONFLICT_SHOW || kind == API_CONFLICT_RESOLVE) && id == 0)
		abort();
	const char *email, *sub;
	if (api_contact_path(path, &email, &sub) == 0) {
		if (email[0] == '\0' || strchr(email, '/'))
			abort();
		char norm[LEDGER_EMAIL_MAX + 1];
		struct err e;
		if (conn_email_normalize(email, norm, &e) == 0 && strlen(norm) > LEDGER_EMAIL_MAX)
			abort();
	}
	free(path);
	return 0;
}

/* The oracle: whether the text is a path tail the API routes: what
 * follows /v1/conflicts, or what follows /v1/contacts/. */
int fuzz_accepts(const uint8_t *data, size_t size)
{
	char *path = malloc(size + 1);
	if (path == NULL)
		return 0;
	memcpy(path, data, size);
	path[size] = '\0';
	uint64_t id;
	const char *email, *sub;
	int ok = api_conflict_path(path, &id) >= 0 || api_contact_path(path, &email, &sub) == 0;
	free(path);
	return ok;
}
