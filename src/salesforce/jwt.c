/* RS256 JWTs for the OAuth 2.0 JWT bearer flow. */
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salesforce/sf.h"
#include "util/b64.h"

/* base64url without padding (RFC 7515 section 2), malloc'ed. */
static char *b64url(const unsigned char *in, size_t n)
{
	char *out = malloc(B64URL_LEN(n) + 1);
	if (out)
		b64url_encode(in, n, out);
	return out;
}

int sf_jwt_sign(const char *pem, const char *input, size_t len, char **out, struct err *e)
{
	*out = NULL;
	int rc = 0;
	unsigned char *sig = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	if (key == NULL) {
		rc = err_set(e, ERR_CONFIG,
		             "salesforce private key: not a PEM private key (or encrypted with a "
		             "passphrase, which is not supported)");
		goto out;
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA || EVP_PKEY_get_bits(key) < 2048) {
		rc = err_set(e, ERR_CONFIG,
		             "salesforce private key: Salesforce needs an RSA key of 2048 bits or "
		             "more (RS256)");
		goto out;
	}
	size_t siglen = 0;
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input, len) != 1 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, len) != 1) {
		rc = err_set(e, ERR_INTERNAL, "RS256 signing failed");
		goto out;
	}
	*out = b64url(sig, siglen);
	if (*out == NULL)
		rc = err_set(e, ERR_NOMEM, "out of memory");
out:
	free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	BIO_free(bio);
	return rc;
}

/* A JSON string with the few escapes claims can need. */
static int json_str(char *dst, size_t cap, const char *s)
{
	size_t o = 0;
	if (cap < 3)
		return -1;
	dst[o++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (o + 7 >= cap)
			return -1;
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
		} else {
			dst[o++] = (char)c;
		}
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return 0;
}

int sf_jwt_build(const char *pem, const char *iss, const char *sub, const char *aud, int64_t exp,
                 char **out, struct err *e)
{
	*out = NULL;
	char qi[512], qs[512], qa[512], claims[2048];
	if (json_str(qi, sizeof(qi), iss) || json_str(qs, sizeof(qs), sub) ||
	    json_str(qa, sizeof(qa), aud))
		return err_set(e, ERR_CONFIG,
		               "salesforce client_id, username or audience too long");
	int n = snprintf(claims, sizeof(claims), "{\"iss\":%s,\"sub\":%s,\"aud\":%s,\"exp\":%lld}",
	                 qi, qs, qa, (long long)exp);
	if (n < 0 || (size_t)n >= sizeof(claims))
		return err_set(e, ERR_CONFIG, "JWT claims too long");
	static const char header[] = "{\"alg\":\"RS256\"}";
	char *h = b64url((const unsigned char *)header, sizeof(header) - 1);
	char *c = b64url((const unsigned char *)claims, (size_t)n);
	char *input = NULL, *sig = NULL;
	int rc = 0;
	if (h == NULL || c == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	size_t il = strlen(h) + 1 + strlen(c);
	input = malloc(il + 1);
	if (input == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	snprintf(input, il + 1, "%s.%s", h, c);
	if ((rc = sf_jwt_sign(pem, input, il, &sig, e)))
		goto out;
	size_t total = il + 1 + strlen(sig) + 1;
	*out = malloc(total);
	if (*out == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	snprintf(*out, total, "%s.%s", input, sig);
out:
	free(h);
	free(c);
	free(input);
	free(sig);
	return rc;
}
