/* Opening, admin credentials, emails, value mapping and rendering. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/internal.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/timefmt.h"

int conn_open(struct conn **out, const struct config *cfg, bool create, volatile sig_atomic_t *stop,
              struct err *e)
{
	*out = NULL;
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	c->cfg = cfg;
	c->stop = stop;
	if ((c->supp = supp_index_new()) == NULL) {
		free(c);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	struct ledger_options o = {cfg->state.path, cfg->state.map_size, cfg->state.max_map_size,
	                           create};
	char data[4096];
	int n = snprintf(data, sizeof(data), "%s/data.mdb", cfg->state.path);
	int rc = 0;
	if (!create && n > 0 && (size_t)n < sizeof(data) && access(data, F_OK) != 0 &&
	    errno == ENOENT)
		rc = err_set(e, ERR_LEDGER,
		             "no ledger at %s (state.path): nothing has created one there yet; run "
		             "optsync sync --once (or optsync run) first, or check that state.path "
		             "points where the ledger is",
		             cfg->state.path);
	if (rc == 0)
		rc = ledger_open(&c->l, &o, e);
	if (rc) {
		supp_index_free(c->supp);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void conn_close(struct conn *c)
{
	if (c == NULL)
		return;
	sf_client_free(c->sf);
	supp_index_free(c->supp);
	ledger_close(c->l);
	free(c);
}

int sf_client_of(const struct config *cfg, volatile sig_atomic_t *stop, struct sf_client **out,
                 struct err *e)
{
	*out = NULL;
	struct sf_options o = {0};
	o.login_url = cfg->salesforce.login_url;
	o.audience = cfg->salesforce.audience;
	o.api_version = cfg->salesforce.api_version;
	o.auth = cfg->salesforce.auth == CONFIG_AUTH_JWT ? SF_AUTH_JWT
	         : cfg->salesforce.auth == CONFIG_AUTH_CLIENT_CREDENTIALS
	             ? SF_AUTH_CLIENT_CREDENTIALS
	             : SF_AUTH_REFRESH_TOKEN;
	o.client_id = cfg->salesforce.client_id;
	o.username = cfg->salesforce.username;
	o.ca_file = cfg->salesforce.ca_file;
	o.connect_timeout_ms = (long)cfg->salesforce.connect_timeout_ms;
	o.timeout_ms = (long)cfg->salesforce.timeout_ms;
	o.stop = stop;
	char *key = NULL, *secret = NULL, *refresh = NULL;
	size_t kl = 0, sl = 0, rl = 0;
	int rc = 0;
	if (o.auth == SF_AUTH_JWT)
		rc = config_secret(cfg, CONFIG_SECRET_PRIVATE_KEY, &key, &kl, e);
	if (rc == 0 &&
	    (o.auth == SF_AUTH_CLIENT_CREDENTIALS ||
	     (o.auth == SF_AUTH_REFRESH_TOKEN &&
	      config_secret_source(cfg, CONFIG_SECRET_CLIENT_SECRET, (char[512]){0}, 512))))
		rc = config_secret(cfg, CONFIG_SECRET_CLIENT_SECRET, &secret, &sl, e);
	if (rc == 0 && o.auth == SF_AUTH_REFRESH_TOKEN)
		rc = config_secret(cfg, CONFIG_SECRET_REFRESH_TOKEN, &refresh, &rl, e);
	o.private_key = key;
	o.client_secret = secret;
	o.refresh_token = refresh;
	if (rc == 0)
		rc = sf_client_new(out, &o, e);
	secret_free(key, kl);
	secret_free(secret, sl);
	secret_free(refresh, rl);
	return rc;
}

int conn_sf(struct conn *c, struct sf_client **out, struct err *e)
{
	if (c->sf == NULL) {
		int rc = sf_client_of(c->cfg, c->stop, &c->sf, e);
		if (rc)
			return rc;
	}
	*out = c->sf;
	return 0;
}

/* ---- emails ---- */

int conn_email_normalize(const char *in, char *out, struct err *e)
{
	const char *s = in, *end = in + strlen(in);
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	size_t n = (size_t)(end - s);
	if (n == 0 || n > LEDGER_EMAIL_MAX)
		return err_set(e, ERR_INVALID, "'%.80s' is not an email address (%s)", in,
		               n == 0 ? "empty" : "longer than 254 bytes");
	const char *at = NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch == 0x7f || ch == '"' || ch == '\\' || ch == ',' || ch == ';' ||
		    ch == '<' || ch == '>' || ch == '(' || ch == ')' || ch == '[' || ch == ']')
			return err_set(e, ERR_INVALID,
			               "'%.80s' is not an email address (character 0x%02x)", in,
			               ch);
		if (ch == '@') {
			if (at)
				return err_set(e, ERR_INVALID,
				               "'%.80s' is not an email address (two '@')", in);
			at = s + i;
		}
		out[i] = (char)tolower(ch);
	}
	out[n] = '\0';
	if (at == NULL || at == s || at == end - 1 || strchr(at, '.') == NULL || at[1] == '.' ||
	    end[-1] == '.' || strstr(out, ".."))
		return err_set(e, ERR_INVALID, "'%.80s' is not an email address", in);
	return 0;
}

/* ---- admin credentials ---- */

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

/* ---- mapping ---- */

void config_field_keys(const struct config *cfg, struct field_key out[CONFIG_FIELD_KEYS])
{
	const struct config_fields *f = &cfg->salesforce.fields;
	const struct field_key keys[CONFIG_FIELD_KEYS] = {
	    {"opted_out", f->opted_out},
	    {"authorization_type", f->authorization_type},
	    {"authorization_other", f->authorization_other},
	    {"consent_date", f->consent_date},
	    {"purpose", f->purpose},
	    {"source_type", f->source_type},
	    {"source_other", f->source_other}};
	memcpy(out, keys, sizeof(keys));
}

int object_of(const char *name)
{
	int o = ledger_object_parse(name);
	return o < 0 ? 0 : o;
}

int facts_valid(const struct ledger_facts *f, uint32_t groups, int64_t now, char *why, size_t cap)
{
	if (groups & LEDGER_F_AUTH_TYPE) {
		int type = (f->mask & LEDGER_F_AUTH_TYPE) ? f->auth_type : 0;
		int has_date = (f->mask & LEDGER_F_CONSENT_DATE) && f->consent_date != 0;
		int has_purpose = (f->mask & LEDGER_F_PURPOSE) && f->purpose[0];
		int has_other = (f->mask & LEDGER_F_AUTH_OTHER) && f->auth_other[0];
		if (type == LEDGER_AUTH_CONSENT && (!has_date || !has_purpose)) {
			snprintf(why, cap,
			         "authorization type consent needs a consent date and a "
			         "purpose");
			return 0;
		}
		if (type != LEDGER_AUTH_CONSENT && (has_date || has_purpose)) {
			snprintf(why, cap,
			         "a consent date and a purpose go only with authorization "
			         "type consent");
			return 0;
		}
		if (has_date && f->consent_date > now + FUTURE_TOLERANCE_MS) {
			snprintf(why, cap, "the consent date is in the future");
			return 0;
		}
		if (type == LEDGER_AUTH_OTHER && !has_other) {
			snprintf(why, cap, "authorization type other needs a description (other)");
			return 0;
		}
		if (type != LEDGER_AUTH_OTHER && has_other) {
			snprintf(why, cap,
			         "an authorization description (other) goes only with "
			         "type other");
			return 0;
		}
	}
	if (groups & LEDGER_F_SOURCE_TYPE) {
		int type = (f->mask & LEDGER_F_SOURCE_TYPE) ? f->source_type : 0;
		int has_other = (f->mask & LEDGER_F_SOURCE_OTHER) && f->source_other[0];
		if (type == LEDGER_SOURCE_OTHER && !has_other) {
			snprintf(why, cap, "source type other needs a description");
			return 0;
		}
		if (type != LEDGER_SOURCE_OTHER && has_other) {
			snprintf(why, cap, "a source description goes only with source type other");
			return 0;
		}
	}
	return 1;
}

/* ---- rendering ---- */

void hex32(const uint8_t in[32], char out[65])
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[64] = '\0';
}

int add_time(cJSON *o, const char *name, int64_t ms)
{
	if (ms == 0)
		return cJSON_AddNullToObject(o, name) != NULL;
	char t[TIME_STR_MAX];
	time_format(ms, t);
	return cJSON_AddStringToObject(o, name, t) != NULL;
}

static cJSON *render_auth(const struct ledger_facts *f)
{
	cJSON *a = cJSON_CreateObject();
	int type = (f->mask & LEDGER_F_AUTH_TYPE) ? f->auth_type : 0;
	if (type)
		cJSON_AddStringToObject(a, "type", ledger_auth_name(type));
	else
		cJSON_AddNullToObject(a, "type");
	if (type == LEDGER_AUTH_CONSENT) {
		add_time(a, "consent_date", f->consent_date);
		cJSON_AddStringToObject(a, "purpose", f->purpose);
	}
	if (type == LEDGER_AUTH_OTHER)
		cJSON_AddStringToObject(a, "other", f->auth_other);
	return a;
}

static cJSON *render_source(const struct ledger_facts *f)
{
	cJSON *s = cJSON_CreateObject();
	int type = (f->mask & LEDGER_F_SOURCE_TYPE) ? f->source_type : 0;
	if (type)
		cJSON_AddStringToObject(s, "type", ledger_source_name(type));
	else
		cJSON_AddNullToObject(s, "type");
	if (type == LEDGER_SOURCE_OTHER)
		cJSON_AddStringToObject(s, "other", f->source_other);
	return s;
}

cJSON *render_person(const struct config *cfg, const struct ledger_person *p)
{
	(void)cfg;
	cJSON *o = cJSON_CreateObject();
	char key[65];
	hex32(p->key, key);
	if (p->flags & LEDGER_PERSON_ERASED)
		cJSON_AddNullToObject(o, "email");
	else
		cJSON_AddStringToObject(o, "email", p->email);
	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddBoolToObject(o, "opted_out", p->facts.opted_out);
	add_time(o, "opted_out_at", p->facts.opted_out ? p->opted_out_at : 0);
	cJSON_AddItemToObject(o, "authorization", render_auth(&p->facts));
	cJSON_AddItemToObject(o, "source", render_source(&p->facts));
	cJSON *recs = cJSON_AddArrayToObject(o, "salesforce_records");
	for (uint32_t i = 0; i < p->nrecords; i++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "object", ledger_object_name(p->records[i].object));
		cJSON_AddStringToObject(r, "id", p->records[i].id);
		cJSON_AddItemToArray(recs, r);
	}
	cJSON_AddBoolToObject(o, "erased", (p->flags & LEDGER_PERSON_ERASED) != 0);
	add_time(o, "created_at", p->created_at);
	add_time(o, "updated_at", p->updated_at);
	return o;
}

cJSON *render_record(const struct ledger_record *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "object", ledger_object_name(r->object));
	cJSON_AddStringToObject(o, "id", r->id);
	cJSON_AddBoolToObject(o, "opted_out", r->seen.opted_out);
	cJSON_AddItemToObject(o, "authorization", render_auth(&r->seen));
	cJSON_AddItemToObject(o, "source", render_source(&r->seen));
	cJSON_AddStringToObject(o, "first_name", r->first_name);
	cJSON_AddStringToObject(o, "last_name", r->last_name);
	cJSON_AddStringToObject(o, "company", r->company);
	cJSON_AddStringToObject(o, "title", r->title);
	cJSON_AddStringToObject(o, "phone", r->phone);
	add_time(o, "created", r->sf_created);
	add_time(o, "modified", r->sf_modified);
	add_time(o, "system_modstamp", r->modstamp);
	add_time(o, "last_written", r->written_at);
	cJSON_AddBoolToObject(o, "converted", (r->flags & LEDGER_RECORD_CONVERTED) != 0);
	return o;
}

cJSON *render_event(const struct ledger_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "seq", (double)ev->seq);
	add_time(o, "at", ev->at);
	cJSON_AddStringToObject(
	    o, "kind", ledger_event_kind_name(ev->kind) ? ledger_event_kind_name(ev->kind) : "?");
	cJSON_AddStringToObject(
	    o, "origin", ledger_origin_name(ev->origin) ? ledger_origin_name(ev->origin) : "?");
	cJSON_AddStringToObject(o, "actor", ev->actor);
	if (ev->record.object) {
		cJSON *r = cJSON_AddObjectToObject(o, "record");
		cJSON_AddStringToObject(r, "object", ledger_object_name(ev->record.object));
		cJSON_AddStringToObject(r, "id", ev->record.id);
	}
	if (ev->facts.mask & LEDGER_F_OPTED_OUT)
		cJSON_AddBoolToObject(o, "opted_out", ev->facts.opted_out);
	if (ev->facts.mask & LEDGER_F_AUTH_TYPE)
		cJSON_AddItemToObject(o, "authorization", render_auth(&ev->facts));
	if (ev->facts.mask & LEDGER_F_SOURCE_TYPE)
		cJSON_AddItemToObject(o, "source", render_source(&ev->facts));
	if (ev->conflict_id)
		cJSON_AddNumberToObject(o, "conflict_id", (double)ev->conflict_id);
	if (ev->reason[0])
		cJSON_AddStringToObject(o, "reason", ev->reason);
	if (ev->evidence_ref[0] || ev->evidence_sha256[0]) {
		cJSON *x = cJSON_AddObjectToObject(o, "evidence");
		cJSON_AddStringToObject(x, "ref", ev->evidence_ref);
		if (ev->evidence_sha256[0])
			cJSON_AddStringToObject(x, "sha256", ev->evidence_sha256);
	}
	if (ev->erased)
		cJSON_AddBoolToObject(o, "erased", true);
	return o;
}

static const char *field_name(uint32_t f)
{
	switch (f) {
	case LEDGER_F_OPTED_OUT:
		return "opted_out";
	case LEDGER_F_AUTH_TYPE:
		return "authorization";
	case LEDGER_F_SOURCE_TYPE:
		return "source";
	default:
		return "field";
	}
}

cJSON *render_conflict(const struct ledger_conflict *cf)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)cf->id);
	cJSON_AddStringToObject(
	    o, "kind",
	    ledger_conflict_kind_name(cf->kind) ? ledger_conflict_kind_name(cf->kind) : "?");
	/* reverted: closed by optsync itself once Salesforce holds the opt-out
	 * again (resubscribe_policy = "revert"); open: a human must decide */
	cJSON_AddStringToObject(o, "status",
	                        cf->status == LEDGER_CONFLICT_OPEN               ? "open"
	                        : strcmp(cf->resolution, CONFLICT_REVERTED) == 0 ? "reverted"
	                                                                         : "resolved");
	cJSON_AddStringToObject(o, "field", field_name(cf->field));
	char key[65];
	hex32(cf->person, key);
	cJSON_AddStringToObject(o, "person", key);
	if (cf->record.object) {
		cJSON *r = cJSON_AddObjectToObject(o, "record");
		cJSON_AddStringToObject(r, "object", ledger_object_name(cf->record.object));
		cJSON_AddStringToObject(r, "id", cf->record.id);
	}
	cJSON_AddStringToObject(o, "local_value", cf->local_value);
	cJSON_AddStringToObject(o, "salesforce_value", cf->sf_value);
	add_time(o, "detected_at", cf->detected_at);
	cJSON_AddBoolToObject(o, "auto_resolved", cf->auto_resolved);
	if (cf->status == LEDGER_CONFLICT_RESOLVED) {
		cJSON_AddStringToObject(o, "resolution", cf->resolution);
		cJSON_AddStringToObject(o, "resolved_by", cf->resolved_by);
		add_time(o, "resolved_at", cf->resolved_at);
	}
	return o;
}
