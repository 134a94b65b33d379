/* libFuzzer target: the unsubscribe link token decoder (link_open). No
 * input may crash it; a token that opens must give the same claims when
 * they are sealed again and opened (a round trip), and no claim may hold
 * a control character. The keys and the clock are fixed, so a corpus of
 * real tokens stays valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "links/links.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_accepts(const uint8_t *data, size_t size);

#define FUZZ_NOW      1798761600000LL /* 2027-01-01 */
#define FUZZ_LIFETIME (100LL * 365 * 86400000)

static struct link_keys *keys(void)
{
	static struct link_keys *k;
	if (k == NULL) {
		static const uint8_t cur[32] = "optsync fuzz link key, current.";
		static const uint8_t old[40] = "optsync fuzz link key, the old one......";
		const uint8_t *ks[2] = {cur, old};
		size_t ls[2] = {sizeof(cur), sizeof(old)};
		struct err e;
		if (link_keys_new(&k, ks, ls, 2, FUZZ_LIFETIME, &e))
			abort();
	}
	return k;
}

static void check_claim(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct link_claims c, again;
	enum link_verdict v = link_open(keys(), (const char *)data, size, FUZZ_NOW, &c);
	if (v != LINK_OK && v != LINK_EXPIRED)
		return 0;
	check_claim(c.email, LINK_EMAIL_MAX);
	check_claim(c.purpose, LINK_NAME_MAX);
	check_claim(c.campaign, LINK_NAME_MAX);
	if (c.email[0] == '\0')
		abort();
	if (v == LINK_EXPIRED)
		return 0;
	char tok[LINK_TOKEN_MAX];
	struct err e;
	if (link_seal(keys(), &c, tok, &e) != 0)
		abort(); /* what opened must seal */
	if (link_open(keys(), tok, strlen(tok), FUZZ_NOW, &again) != LINK_OK)
		abort();
	if (strcmp(c.email, again.email) || strcmp(c.purpose, again.purpose) ||
	    strcmp(c.campaign, again.campaign) || c.minted_at / 1000 != again.minted_at / 1000)
		abort();
	return 0;
}

int fuzz_accepts(const uint8_t *data, size_t size)
{
	struct link_claims c;
	return link_open(keys(), (const char *)data, size, FUZZ_NOW, &c) == LINK_OK;
}
