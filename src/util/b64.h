/* base64url without padding (RFC 4648 section 5; RFC 7515 section 2). */
#ifndef OPTSYNC_UTIL_B64_H
#define OPTSYNC_UTIL_B64_H

#include <stddef.h>
#include <stdint.h>

/* The encoded length of n bytes, without the NUL. */
#define B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Encode n bytes into out (B64URL_LEN(n) + 1 bytes), NUL-terminated;
 * returns the length. */
size_t b64url_encode(const uint8_t *in, size_t n, char *out);
/* Decode len characters into out (cap bytes): 0, or -1 for a character
 * outside the alphabet, a length no encoding has, leftover bits that are
 * not zero (only the canonical spelling decodes) or too small a cap. */
int b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);

#endif
