/* Opening and closing: the ledger, the Salesforce client, and email keys. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connector/internal.h"
#include "util/email.h"
#include "util/fileio.h"

int conn_open(struct conn **out, const struct config *cfg, bool create, volatile sig_atomic_t *stop,
              struct err *e)
{
	*out = NULL;
	json_init();
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	c->cfg = cfg;
	c->stop = stop;
	if ((c->supp = supp_index_new(cfg)) == NULL || (c->links = link_group_new()) == NULL) {
		supp_index_free(c->supp);
		free(c);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	struct ledger_options o = {cfg->state.path, cfg->state.map_size, cfg->state.max_map_size,
	                           create, false};
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
		link_group_free(c->links);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int conn_ledger_remove(const char *dir)
{
	return ledger_remove_dir(dir);
}

void conn_close(struct conn *c)
{
	if (c == NULL)
		return;
	sf_client_free(c->sf);
	supp_index_free(c->supp);
	link_group_free(c->links);
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

int conn_person_key(struct conn *c, const char *in, char email[LEDGER_EMAIL_MAX + 1],
                    uint8_t key[LEDGER_KEY_LEN], struct err *e)
{
	int rc = conn_email_normalize(in, email, e);
	if (rc == 0)
		ledger_person_key(c->l, email, strlen(email), key);
	return rc;
}

_Static_assert(EMAIL_MAX == LEDGER_EMAIL_MAX, "a normalized email fits a person");

int conn_email_normalize(const char *in, char *out, struct err *e)
{
	return email_normalize(in, out, e);
}

int conn_record_email(int object, const struct sf_record *r, char email[LEDGER_EMAIL_MAX + 1],
                      struct err *e)
{
	email[0] = '\0';
	const struct sf_value *v = sf_record_get(r, "Email");
	if (v == NULL || v->type != SF_STRING || v->str[0] == '\0')
		return err_set(e, ERR_NOTFOUND, "%s %.18s has no email", ledger_object_name(object),
		               r->id);
	int rc = email_normalize(v->str, email, e);
	if (rc == ERR_INVALID)
		err_prefix(e, "%s %.18s: Email: ", ledger_object_name(object), r->id);
	return rc;
}
