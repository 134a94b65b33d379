/* libFuzzer target: Salesforce query pages (the in-place JSON parser). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	struct sf_page pg = {0};
	struct err e;
	if (sf_page_parse(buf, size, &pg, &e) == 0) {
		for (size_t i = 0; i < pg.nrecs; i++) {
			(void)strlen(pg.recs[i].id);
			for (size_t k = 0; k < pg.recs[i].nvalues; k++)
				if (pg.recs[i].values[k].type == SF_STRING)
					(void)strlen(pg.recs[i].values[k].str);
		}
	}
	sf_page_free(&pg);
	free(buf);
	return 0;
}

/* The oracle: whether the page parses. */
int fuzz_accepts(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	struct sf_page pg = {0};
	struct err e;
	int ok = sf_page_parse(buf, size, &pg, &e) == 0;
	sf_page_free(&pg);
	free(buf);
	return ok;
}
