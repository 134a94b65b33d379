/* libFuzzer target: the ledger's value encoding (codec.c) and the decoders
 * of every stored kind (persons, records, changes, conflicts, pushes and
 * history events). A corrupt or hostile data.mdb must be refused, never
 * read out of bounds. The input is one byte of key length, the key, then
 * the value. Consent facts that decode must also re-encode canonically:
 * encode(decode(x)) decodes and encodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/codec.h"
#include "state/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

static void facts_roundtrip(const struct field *f)
{
	static struct ledger_facts a, b;
	static uint8_t one[CODEC_MAX], two[CODEC_MAX];
	if (dec_facts(f, &a))
		return;
	struct enc e1, e2;
	enc_init(&e1, one, sizeof(one));
	enc_facts(&e1, 1, &a, 1);
	if (e1.overflow)
		return;
	struct dec d;
	struct field g;
	/* empty facts encode to no field at all (zeros are left out) */
	int r = dec_init(&d, one, e1.len) ? -1 : dec_next(&d, &g);
	if (r == 0)
		ledger_facts_init(&b);
	else if (r != 1 || dec_facts(&g, &b))
		abort(); /* what we wrote we cannot read back */
	enc_init(&e2, two, sizeof(two));
	enc_facts(&e2, 1, &b, 1);
	if (e2.overflow || e2.len != e1.len || memcmp(one, two, e1.len) != 0)
		abort(); /* the encoding is not canonical */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t kl = data[0] % 48;
	if (kl > size - 1)
		kl = size - 1;
	const uint8_t *k = data + 1, *v = data + 1 + kl;
	size_t vl = size - 1 - kl;

	struct dec d;
	struct field f;
	if (dec_init(&d, v, vl) == 0) {
		char s[512];
		while (dec_next(&d, &f) == 1) {
			if (f.wire == W_BYTES) {
				(void)dec_str(&f, s, sizeof(s));
				facts_roundtrip(&f);
			}
		}
	}
	(void)ledger_probe_entities(k, kl, v, vl);
	(void)ledger_probe_event(k, kl, v, vl);
	return 0;
}

/* The oracle: whether some kind of stored value decodes from it (the first
 * byte says how long the key is, as above). */
int fuzz_accepts(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t kl = data[0] % 48;
	if (kl > size - 1)
		kl = size - 1;
	const uint8_t *k = data + 1, *v = data + 1 + kl;
	size_t vl = size - 1 - kl;
	return ledger_probe_entities(k, kl, v, vl) > 0 || ledger_probe_event(k, kl, v, vl);
}
