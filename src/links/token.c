/* Unsubscribe link tokens (links.h): AES-256-GCM through OpenSSL's EVP
 * interface, a fresh random nonce per token, base64url. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "links/links.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/fileio.h"

#define VERSION    1
#define KID_LEN    2
#define NONCE_LEN  12
#define TAG_LEN    16
#define HEAD_LEN   (1 + KID_LEN + NONCE_LEN)
#define CLAIMS_MAX (4 + 1 + LINK_NAME_MAX + 1 + LINK_NAME_MAX + LINK_EMAIL_MAX)
#define RAW_MAX    (HEAD_LEN + CLAIMS_MAX + TAG_LEN)
#define KEYS_MAX   16
#define FUTURE_MS  (5 * 60 * 1000LL) /* clock skew a minting time may have */

_Static_assert((RAW_MAX * 4 + 2) / 3 + 1 <= LINK_TOKEN_MAX, "LINK_TOKEN_MAX fits a token");

struct link_key {
	uint8_t aead[32];
	uint8_t kid[KID_LEN];
};

struct link_keys {
	struct link_key k[KEYS_MAX];
	size_t n;
	int64_t lifetime_ms;
	EVP_CIPHER *gcm;
};

#define KEY_FILE_MAX 4096

/* SHA-256(domain NUL key) */
static int domain_hash(const char *domain, const uint8_t *key, size_t len, uint8_t out[32])
{
	uint8_t buf[64 + KEY_FILE_MAX];
	size_t dl = strlen(domain) + 1;
	if (dl > 64 || len > KEY_FILE_MAX)
		return -1;
	memcpy(buf, domain, dl);
	memcpy(buf + dl, key, len);
	int ok = EVP_Digest(buf, dl + len, out, NULL, EVP_sha256(), NULL) == 1;
	OPENSSL_cleanse(buf, dl + len);
	return ok ? 0 : -1;
}

static int derive(const uint8_t *key, size_t len, struct link_key *out)
{
	uint8_t h[32];
	if (domain_hash("optsync link key v1", key, len, out->aead) ||
	    domain_hash("optsync link key id v1", key, len, h))
		return -1;
	memcpy(out->kid, h, KID_LEN);
	return 0;
}

int link_keys_new(struct link_keys **out, const uint8_t *const *keys, const size_t *lens, size_t n,
                  int64_t lifetime_ms, struct err *e)
{
	*out = NULL;
	if (n == 0 || n > KEYS_MAX)
		return err_set(e, ERR_CONFIG, "unsubscribe: 1 to %d link keys, got %zu", KEYS_MAX,
		               n);
	for (size_t i = 0; i < n; i++)
		if (lens[i] < CONFIG_LINK_KEY_MIN || lens[i] > KEY_FILE_MAX)
			return err_set(e, ERR_CONFIG,
			               "unsubscribe: link key %zu holds %zu bytes; %d to %d are "
			               "needed",
			               i, lens[i], CONFIG_LINK_KEY_MIN, KEY_FILE_MAX);
	struct link_keys *k = calloc(1, sizeof(*k));
	if (k == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	k->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (k->gcm == NULL) {
		free(k);
		return err_set(e, ERR_INTERNAL, "OpenSSL has no AES-256-GCM");
	}
	for (size_t i = 0; i < n; i++)
		if (derive(keys[i], lens[i], &k->k[i])) {
			link_keys_free(k);
			return err_set(e, ERR_INTERNAL, "deriving a link key failed in OpenSSL");
		}
	k->n = n;
	k->lifetime_ms = lifetime_ms;
	*out = k;
	return 0;
}

void link_keys_free(struct link_keys *k)
{
	if (k == NULL)
		return;
	EVP_CIPHER_free(k->gcm);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

int link_keys_load(struct link_keys **out, const struct config *cfg, struct err *e)
{
	*out = NULL;
	const struct config_list *old = &cfg->unsubscribe.old_key_files;
	if (!cfg->unsubscribe.enabled || cfg->unsubscribe.key_file == NULL)
		return err_set(e, ERR_CONFIG,
		               "unsubscribe links need [unsubscribe] with key_file in %s",
		               cfg->path ? cfg->path : "the configuration");
	if (old->n + 1 > KEYS_MAX)
		return err_set(e, ERR_CONFIG, "unsubscribe.old_key_files: at most %d keys",
		               KEYS_MAX - 1);
	struct buf files[KEYS_MAX];
	const uint8_t *keys[KEYS_MAX];
	size_t lens[KEYS_MAX], n = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i <= old->n; i++) {
		const char *path = i == 0 ? cfg->unsubscribe.key_file : old->v[i - 1];
		const char *key = i == 0 ? "key_file" : "old_key_files";
		/* a secret like the others: refused when the group or others
		 * may read it (fileio.h has the rule) */
		rc = file_read_secret_bytes(path, KEY_FILE_MAX, &files[n], e);
		if (rc) {
			if (rc != ERR_NOMEM)
				err_prefix(e,
				           "%s: unsubscribe.%s: ", cfg->path ? cfg->path : "config",
				           key);
			break;
		}
		if (files[n].len < CONFIG_LINK_KEY_MIN)
			rc = err_set(
			    e, ERR_CONFIG,
			    "unsubscribe.%s: %s holds %zu bytes; a link key needs at least "
			    "%d random bytes (make one with: head -c 32 /dev/urandom > FILE)",
			    key, path, files[n].len, CONFIG_LINK_KEY_MIN);
		keys[n] = (const uint8_t *)files[n].data;
		lens[n] = files[n].len;
		n++;
	}
	if (rc == 0)
		rc = link_keys_new(out, keys, lens, n, cfg->unsubscribe.link_lifetime_ms, e);
	for (size_t i = 0; i < n; i++) {
		OPENSSL_cleanse(files[i].data, files[i].len);
		buf_free(&files[i]);
	}
	return rc;
}

/* ---- sealing ---- */

static int claim_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int link_name_ok(const char *s)
{
	return claim_ok(s, LINK_NAME_MAX);
}

/* One cipher context per thread, freed when the thread ends. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *p)
{
	EVP_CIPHER_CTX_free(p);
}

static void ctx_init(void)
{
	(void)pthread_key_create(&ctx_key, ctx_free);
}

static EVP_CIPHER_CTX *ctx_get(void)
{
	pthread_once(&ctx_once, ctx_init);
	EVP_CIPHER_CTX *x = pthread_getspecific(ctx_key);
	if (x == NULL && (x = EVP_CIPHER_CTX_new()) != NULL &&
	    pthread_setspecific(ctx_key, x) != 0) {
		EVP_CIPHER_CTX_free(x);
		x = NULL;
	}
	return x;
}

int link_seal(const struct link_keys *k, const struct link_claims *c, char *out, struct err *e)
{
	out[0] = '\0';
	size_t pl = strlen(c->purpose), cl = strlen(c->campaign), el = strlen(c->email);
	if (el == 0 || !claim_ok(c->email, LINK_EMAIL_MAX))
		return err_set(e, ERR_INVALID, "a link needs an email of 1 to %d bytes",
		               LINK_EMAIL_MAX);
	if (!link_name_ok(c->purpose))
		return err_set(e, ERR_INVALID, "purpose: at most %d bytes, no control characters",
		               LINK_NAME_MAX);
	if (!link_name_ok(c->campaign))
		return err_set(e, ERR_INVALID, "campaign: at most %d bytes, no control characters",
		               LINK_NAME_MAX);
	uint8_t raw[RAW_MAX], pt[CLAIMS_MAX];
	const struct link_key *key = &k->k[0];
	raw[0] = VERSION;
	memcpy(raw + 1, key->kid, KID_LEN);
	if (RAND_bytes(raw + 1 + KID_LEN, NONCE_LEN) != 1)
		return err_set(e, ERR_INTERNAL, "no random bytes for a link's nonce");
	uint32_t secs = (uint32_t)(c->minted_at / 1000);
	size_t n = 0;
	pt[n++] = (uint8_t)(secs >> 24);
	pt[n++] = (uint8_t)(secs >> 16);
	pt[n++] = (uint8_t)(secs >> 8);
	pt[n++] = (uint8_t)secs;
	pt[n++] = (uint8_t)pl;
	memcpy(pt + n, c->purpose, pl);
	n += pl;
	pt[n++] = (uint8_t)cl;
	memcpy(pt + n, c->campaign, cl);
	n += cl;
	memcpy(pt + n, c->email, el);
	n += el;
	EVP_CIPHER_CTX *x = ctx_get();
	int len = 0, fl = 0;
	bool ok = x && EVP_EncryptInit_ex2(x, k->gcm, key->aead, raw + 1 + KID_LEN, NULL) == 1 &&
	          EVP_EncryptUpdate(x, NULL, &len, raw, 1 + KID_LEN) == 1 &&
	          EVP_EncryptUpdate(x, raw + HEAD_LEN, &len, pt, (int)n) == 1 &&
	          EVP_EncryptFinal_ex(x, raw + HEAD_LEN + len, &fl) == 1 &&
	          EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + HEAD_LEN + n) == 1;
	OPENSSL_cleanse(pt, n);
	if (!ok)
		return err_set(e, ERR_INTERNAL, "sealing a link failed in OpenSSL");
	b64url_encode(raw, HEAD_LEN + n + TAG_LEN, out);
	return 0;
}

static int copy_claim(char *dst, size_t max, const uint8_t *src, size_t n)
{
	if (n > max || memchr(src, '\0', n))
		return -1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return claim_ok(dst, max) ? 0 : -1;
}

static int parse_claims(const uint8_t *pt, size_t n, struct link_claims *out)
{
	if (n < 6)
		return -1;
	uint32_t secs =
	    (uint32_t)pt[0] << 24 | (uint32_t)pt[1] << 16 | (uint32_t)pt[2] << 8 | pt[3];
	size_t o = 4, pl = pt[o++];
	if (o + pl + 1 > n || copy_claim(out->purpose, LINK_NAME_MAX, pt + o, pl))
		return -1;
	o += pl;
	size_t cl = pt[o++];
	if (o + cl > n || copy_claim(out->campaign, LINK_NAME_MAX, pt + o, cl))
		return -1;
	o += cl;
	if (n - o == 0 || copy_claim(out->email, LINK_EMAIL_MAX, pt + o, n - o))
		return -1;
	out->minted_at = (int64_t)secs * 1000;
	return 0;
}

enum link_verdict link_open(const struct link_keys *k, const char *token, size_t len, int64_t now,
                            struct link_claims *out)
{
	uint8_t raw[RAW_MAX + 3], pt[CLAIMS_MAX];
	size_t n;
	if (len > LINK_TOKEN_MAX || b64url_decode(token, len, raw, sizeof(raw), &n) ||
	    n < HEAD_LEN + 6 + TAG_LEN || n > RAW_MAX || raw[0] != VERSION)
		return LINK_MALFORMED;
	size_t ctl = n - HEAD_LEN - TAG_LEN;
	bool known = false;
	for (size_t i = 0; i < k->n; i++) {
		const struct link_key *key = &k->k[i];
		if (memcmp(raw + 1, key->kid, KID_LEN) != 0)
			continue; /* two keys may share an id: each is tried */
		known = true;
		EVP_CIPHER_CTX *x = ctx_get();
		int l = 0, fl = 0;
		bool ok =
		    x && EVP_DecryptInit_ex2(x, k->gcm, key->aead, raw + 1 + KID_LEN, NULL) == 1 &&
		    EVP_DecryptUpdate(x, NULL, &l, raw, 1 + KID_LEN) == 1 &&
		    EVP_DecryptUpdate(x, pt, &l, raw + HEAD_LEN, (int)ctl) == 1 &&
		    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + HEAD_LEN + ctl) ==
		        1 &&
		    EVP_DecryptFinal_ex(x, pt + l, &fl) == 1;
		if (!ok)
			continue;
		memset(out, 0, sizeof(*out));
		int bad = parse_claims(pt, ctl, out);
		OPENSSL_cleanse(pt, ctl);
		if (bad)
			return LINK_MALFORMED; /* authentic, yet not ours: a bug or an old format */
		if (out->minted_at > now + FUTURE_MS)
			return LINK_MALFORMED;
		if (now - out->minted_at > k->lifetime_ms)
			return LINK_EXPIRED;
		return LINK_OK;
	}
	return known ? LINK_MALFORMED : LINK_UNKNOWN_KEY;
}

const char *link_verdict_name(enum link_verdict v)
{
	static const char *const names[] = {"ok", "malformed", "unknown_key", "expired"};
	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}
