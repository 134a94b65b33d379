/* Internal: SHA-256 helpers (see sha.c for why not EVP). */
#ifndef OPTSYNC_STATE_SHA_H
#define OPTSYNC_STATE_SHA_H

#include <stddef.h>
#include <stdint.h>

struct hmac_key;
struct hmac_key *sha_hmac_key_new(const uint8_t key[32]);
void sha_hmac_key_free(struct hmac_key *k);
/* HMAC-SHA256; safe to call from many threads at once with one key. */
void sha_hmac(const struct hmac_key *k, const void *msg, size_t len, uint8_t out[32]);
/* SHA-256 of a followed by b. */
void sha256_2(const void *a, size_t an, const void *b, size_t bn, uint8_t out[32]);
/* SHA-256 of n parts, one after the other. */
struct sha_part {
	const void *p;
	size_t n;
};
void sha256_parts(const struct sha_part *parts, size_t n, uint8_t out[32]);

#endif
