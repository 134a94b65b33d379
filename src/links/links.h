/* Unsubscribe link tokens: sealed, URL-safe, opaque.
 *
 * A token is base64url (no padding) of
 *   version (1) | key id (2) | nonce (12) | AES-256-GCM(claims) | tag (16)
 * with version and key id as associated data. The claims are the minting
 * time (4 bytes, seconds), the purpose and the campaign (a length byte
 * each, then the bytes) and the normalized email (the rest). A fresh
 * random nonce seals each token, so two links for one email differ and
 * neither shows it. The AEAD key is SHA-256 of a domain string and the key
 * file's bytes; the key id is 2 bytes of another such hash, so a token
 * names the key that sealed it without revealing it.
 *
 * Knows nothing of the ledger or HTTP. Thread-safe: a struct link_keys is
 * read-only after link_keys_new. */
#ifndef OPTSYNC_LINKS_LINKS_H
#define OPTSYNC_LINKS_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "util/err.h"

#define LINK_NAME_MAX  64  /* purpose and campaign, bytes */
#define LINK_EMAIL_MAX 254 /* the ledger's limit */
/* The longest token: 1+2+12+4+2+64+64+254+16 bytes in base64url, plus NUL. */
#define LINK_TOKEN_MAX 560

struct link_claims {
	char email[LINK_EMAIL_MAX + 1];   /* normalized */
	char purpose[LINK_NAME_MAX + 1];  /* "": all email */
	char campaign[LINK_NAME_MAX + 1]; /* "": none */
	int64_t minted_at;                /* ms; sealed to the second */
};

struct link_keys;

/* The current key first, then the old ones: each at least
 * CONFIG_LINK_KEY_MIN bytes (ERR_CONFIG otherwise, naming which).
 * lifetime_ms: older tokens are expired. */
int link_keys_new(struct link_keys **out, const uint8_t *const *keys, const size_t *lens, size_t n,
                  int64_t lifetime_ms, struct err *e);
/* From [unsubscribe] key_file and old_key_files; ERR_CONFIG naming the key
 * and file that cannot be read or is too short. */
int link_keys_load(struct link_keys **out, const struct config *cfg, struct err *e);
void link_keys_free(struct link_keys *k);

/* Whether s may be a purpose or campaign claim: at most LINK_NAME_MAX
 * bytes, no control characters. */
int link_name_ok(const char *s);

/* Seal c under the current key into out (LINK_TOKEN_MAX bytes), NUL
 * terminated. ERR_INVALID when a claim is too long or has bytes a claim
 * may not (control characters); ERR_INTERNAL when the crypto fails. */
int link_seal(const struct link_keys *k, const struct link_claims *c, char *out, struct err *e);

enum link_verdict {
	LINK_OK = 0,
	LINK_MALFORMED,   /* not a token, or changed: fails authentication */
	LINK_UNKNOWN_KEY, /* sealed under a key that is not configured */
	LINK_EXPIRED,     /* older than link_lifetime */
};
/* Open a token of len bytes at time now (ms). *out is set only for
 * LINK_OK and LINK_EXPIRED (the latter is not to be acted on). */
enum link_verdict link_open(const struct link_keys *k, const char *token, size_t len, int64_t now,
                            struct link_claims *out);
const char *link_verdict_name(enum link_verdict v);

#endif
