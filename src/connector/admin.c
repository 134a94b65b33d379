/* Admin credentials: scrypt hashes in the credentials file, checked for
 * re-subscribes and conflict resolutions; each refusal is recorded. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/timefmt.h"

#define SCRYPT_N (1u << 15)
#define SCRYPT_R 8u
#define SCRYPT_P 1u

static int scrypt(const char *tok, size_t len, const uint8_t *salt, size_t sl, uint64_t n,
                  uint64_t r, uint64_t p, uint8_t out[32])
{
	return EVP_PBE_scrypt(tok, len, salt, sl, n, r, p, 256ull << 20, out, 32) == 1 ? 0 : -1;
}

int conn_admin_hash(const char *token, size_t len, char *out, size_t cap, struct err *e)
{
	if (len < 16)
		return err_set(e, ERR_INVALID, "an admin token must be at least 16 characters");
	uint8_t salt[16], h[32];
	unsigned char sb[32], hb[64];
	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    scrypt(token, len, salt, sizeof(salt), SCRYPT_N, SCRYPT_R, SCRYPT_P, h))
		return err_set(e, ERR_INTERNAL, "scrypt failed");
	EVP_EncodeBlock(sb, salt, sizeof(salt));
	EVP_EncodeBlock(hb, h, sizeof(h));
	OPENSSL_cleanse(h, sizeof(h));
	int n = snprintf(out, cap, "$scrypt$ln=15,r=8,p=1$%s$%s", sb, hb);
	return n < 0 || (size_t)n >= cap ? err_set(e, ERR_INTERNAL, "hash too long") : 0;
}

/* Check token against a "$scrypt$ln=..,r=..,p=..$salt$hash" line. */
static int hash_matches(const char *line, const char *token, size_t len)
{
	unsigned ln, r, p;
	char sb[64], hb[96];
	if (sscanf(line, "$scrypt$ln=%u,r=%u,p=%u$%63[^$]$%95s", &ln, &r, &p, sb, hb) != 5 ||
	    ln < 10 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16)
		return 0;
	uint8_t salt[64], want[72], got[32];
	int sl = EVP_DecodeBlock(salt, (const unsigned char *)sb, (int)strlen(sb));
	int hl = EVP_DecodeBlock(want, (const unsigned char *)hb, (int)strlen(hb));
	if (sl < 16 || hl < 32)
		return 0;
	sl -= (int)(strlen(sb) - strcspn(sb, "=")); /* padding */
	if (scrypt(token, len, salt, (size_t)sl, 1ull << ln, r, p, got))
		return 0;
	int ok = CRYPTO_memcmp(got, want, 32) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return ok;
}

struct refusal {
	struct ledger *l;
	const struct ledger_event *ev;
	const char *email; /* normalized, or NULL */
};

/* The refused attempt goes into the history, on the person when known. */
static int write_refusal(struct ledger_txn *t, void *ctx, struct err *e)
{
	struct refusal *r = ctx;
	struct ledger_event *ev = malloc(sizeof(*ev));
	struct ledger_person *p = malloc(sizeof(*p));
	int rc = 0;
	if (ev == NULL || p == NULL) {
		rc = err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	*ev = *r->ev; /* a copy: the transaction may run again */
	int known = 0;
	if (r->email) {
		ledger_person_key(r->l, r->email, strlen(r->email), p->key);
		rc = ledger_person_get(t, p->key, p, e);
		known = rc == 0;
		if (rc == ERR_NOTFOUND)
			rc = 0;
	}
	if (rc == 0)
		rc = ledger_event_append(t, known ? p : NULL, ev, e);
out:
	free(ev);
	free(p);
	return rc;
}

int conn_admin_check(struct conn *c, const char *name, const char *token, const char *email,
                     struct err *e)
{
	const struct config *cfg = c->cfg;
	int ok = 0, found = 0;
	size_t tl = token ? strlen(token) : 0;
	for (size_t i = 0; name && token && i < cfg->nadmins; i++) {
		if (strcmp(cfg->admins[i].name, name) != 0)
			continue;
		found = 1;
		ok = hash_matches(cfg->admins[i].token_hash, token, tl);
	}
	if (!found && token) {
		/* the same work for an unknown name, so timing tells nothing */
		uint8_t dummy[32];
		scrypt(token, tl, (const uint8_t *)"optsync-dummy-salt", 18, SCRYPT_N, SCRYPT_R,
		       SCRYPT_P, dummy);
	}
	if (ok)
		return 0;
	struct ledger_event *ev = malloc(sizeof(*ev));
	if (ev) {
		ledger_event_init(ev);
		ev->at = time_now_ms();
		ev->kind = LEDGER_EV_REFUSED;
		ev->origin = LEDGER_ORIGIN_ADMIN;
		snprintf(ev->actor, sizeof(ev->actor), "%s", name && *name ? name : "(none)");
		snprintf(ev->reason, sizeof(ev->reason), "%s",
		         token ? "admin credentials did not match" : "no admin credentials");
		char norm[LEDGER_EMAIL_MAX + 1];
		struct err ie, we;
		struct refusal r = {
		    c->l, ev, email && conn_email_normalize(email, norm, &ie) == 0 ? norm : NULL};
		if (ledger_write(c->l, write_refusal, &r, &we))
			log_warn("admin.refused", "could not record a refused admin action: %s",
			         we.msg);
		free(ev);
	}
	log_warn("admin.refused", "admin credentials refused for '%s'", name ? name : "(none)");
	return err_set(e, ERR_REFUSED,
	               token ? "admin credentials refused (unknown admin or wrong token)"
	                     : "this needs admin credentials: set OPTSYNC_ADMIN and "
	                       "OPTSYNC_ADMIN_TOKEN");
}
