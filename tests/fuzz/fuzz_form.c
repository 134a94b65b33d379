/* libFuzzer target: the public listener's form bodies (form_parse). The
 * first byte picks the content type (urlencoded, multipart with a plain or
 * a quoted boundary, or a type we do not take); the rest is the body. No
 * input may crash it; what it returns must hold together (purposes
 * non-empty, at most 64 bytes, no duplicates); the exact RFC 8058 body
 * must read as one-click in both encodings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "public/form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

static const char *const ctypes[] = {
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b0undary",
    "multipart/form-data; boundary=\"b0undary\"; charset=utf-8",
    "text/plain",
};

static int parse(const uint8_t *data, size_t size, struct form *f)
{
	if (size == 0)
		return -1;
	const char *ct = ctypes[data[0] % 4];
	return form_parse(ct, (const char *)data + 1, size - 1, f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct form f;
	if (parse(data, size, &f) != 0)
		return 0;
	if (f.npurposes > FORM_PURPOSE_MAX)
		abort();
	for (size_t i = 0; i < f.npurposes; i++) {
		size_t n = strnlen(f.purposes[i], sizeof(f.purposes[i]));
		if (n == 0 || n > 64)
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(f.purposes[i], f.purposes[j]) == 0)
				abort();
	}
	/* the exact one-click body, in both encodings, always reads as such */
	static const char oc[] = "List-Unsubscribe=One-Click";
	static const char mp[] = "--b0undary\r\nContent-Disposition: form-data; "
	                         "name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b0undary--\r\n";
	struct form g;
	if (form_parse(ctypes[0], oc, sizeof(oc) - 1, &g) != 0 || !g.one_click)
		abort();
	if (form_parse(ctypes[1], mp, sizeof(mp) - 1, &g) != 0 || !g.one_click)
		abort();
	return 0;
}

int fuzz_accepts(const uint8_t *data, size_t size)
{
	struct form f;
	return parse(data, size, &f) == 0 && (f.one_click || f.unsubscribe || f.leave_purposes);
}
