/* SHA-256 and HMAC-SHA256 for the ledger's hot paths.
 *
 * OpenSSL 3 deprecates the low-level SHA256_* functions in favour of EVP,
 * but EVP cannot snapshot a digest state without allocating: with EVP a
 * person key (HMAC with a fixed key, computed on every lookup) costs
 * ~240 ns, with a copied SHA256_CTX ~120 ns (measured on this machine).
 * The low-level functions stay in OpenSSL 3.x; this file is the only user,
 * so a move to another implementation touches nothing else. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

#include "state/sha.h"

struct hmac_key {
	SHA256_CTX inner, outer; /* states after the padded key */
};

struct hmac_key *sha_hmac_key_new(const uint8_t key[32])
{
	struct hmac_key *k = OPENSSL_malloc(sizeof(*k));
	if (k == NULL)
		return NULL;
	uint8_t ipad[64], opad[64];
	for (int i = 0; i < 64; i++) {
		uint8_t b = i < 32 ? key[i] : 0;
		ipad[i] = b ^ 0x36;
		opad[i] = b ^ 0x5c;
	}
	SHA256_Init(&k->inner);
	SHA256_Update(&k->inner, ipad, 64);
	SHA256_Init(&k->outer);
	SHA256_Update(&k->outer, opad, 64);
	OPENSSL_cleanse(ipad, sizeof(ipad));
	OPENSSL_cleanse(opad, sizeof(opad));
	return k;
}

void sha_hmac_key_free(struct hmac_key *k)
{
	if (k)
		OPENSSL_clear_free(k, sizeof(*k));
}

void sha_hmac(const struct hmac_key *k, const void *msg, size_t len, uint8_t out[32])
{
	uint8_t inner[32];
	SHA256_CTX c = k->inner;
	SHA256_Update(&c, msg, len);
	SHA256_Final(inner, &c);
	c = k->outer;
	SHA256_Update(&c, inner, 32);
	SHA256_Final(out, &c);
	OPENSSL_cleanse(&c, sizeof(c));
}

void sha256_2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32])
{
	SHA256_CTX c;
	SHA256_Init(&c);
	SHA256_Update(&c, a, an);
	if (bn)
		SHA256_Update(&c, b, bn);
	SHA256_Final(out, &c);
}

void sha256_parts(const struct sha_part *parts, size_t n, uint8_t out[32])
{
	SHA256_CTX c;
	SHA256_Init(&c);
	for (size_t i = 0; i < n; i++)
		if (parts[i].n)
			SHA256_Update(&c, parts[i].p, parts[i].n);
	SHA256_Final(out, &c);
}
