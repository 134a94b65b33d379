/* libFuzzer target: the TOML parser must never crash, leak or read out of
 * bounds, whatever the input; a parsed tree must be walkable. */
#include <stddef.h>
#include <stdint.h>

#include "config/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

static size_t walk(const struct toml_value *v, int depth)
{
	size_t n = 1;
	if (depth > 10000)
		return n;
	if (toml_type_of(v) == TOML_TABLE) {
		for (size_t i = 0; i < toml_table_len(v); i++) {
			size_t kl;
			(void)toml_table_key(v, i, &kl);
			n += walk(toml_table_value(v, i), depth + 1);
		}
	} else if (toml_type_of(v) == TOML_ARRAY) {
		for (size_t i = 0; i < toml_array_len(v); i++)
			n += walk(toml_array_get(v, i), depth + 1);
	} else if (toml_type_of(v) == TOML_STRING) {
		size_t len;
		const char *s = toml_string(v, &len);
		if (len)
			n += (unsigned char)s[len - 1] & 1;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct toml_value *root;
	struct err e;
	if (toml_parse(&root, (const char *)data, size, "fuzz", &e) == 0) {
		walk(root, 0);
		toml_free(root);
	}
	return 0;
}

/* The oracle: whether the document parses. */
int fuzz_accepts(const uint8_t *data, size_t size)
{
	struct toml_value *root;
	struct err e;
	if (toml_parse(&root, (const char *)data, size, "fuzz", &e))
		return 0;
	toml_free(root);
	return 1;
}
