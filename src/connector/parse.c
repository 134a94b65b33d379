/* The inputs both adapters take, parsed once: conflict ids, conflict
 * filters, resolutions, admin credentials. The command line and the HTTP
 * API call these, so they accept and refuse the same things. */
#include <string.h>

#include "connector/internal.h"
#include "util/email.h"

_Static_assert((int)CONN_ORIGIN_LOCAL == LEDGER_ORIGIN_LOCAL, "origins match the ledger's");
_Static_assert((int)CONN_ORIGIN_ADMIN == LEDGER_ORIGIN_ADMIN, "origins match the ledger's");
_Static_assert((int)CONN_ORIGIN_LINK == LEDGER_ORIGIN_LINK, "origins match the ledger's");
_Static_assert((int)CONN_OBJ_CONTACT == LEDGER_OBJ_CONTACT, "objects match the ledger's");
_Static_assert((int)CONN_OBJ_LEAD == LEDGER_OBJ_LEAD, "objects match the ledger's");

/* s[0..len) as a whole number: digits only, no sign or space, at most
 * 2^64-1; from 1 unless zero is allowed, no leading zero but "0" itself. */
static bool whole_number(const char *s, size_t len, bool zero, uint64_t *out)
{
	uint64_t v = 0;
	bool ok = len > 0 && s[0] >= (zero && len == 1 ? '0' : '1') && s[0] <= '9';
	for (size_t i = 0; ok && i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');
		ok = s[i] >= '0' && s[i] <= '9' && v <= (UINT64_MAX - d) / 10;
		v = v * 10 + d;
	}
	*out = ok ? v : 0;
	return ok;
}

int conn_seq_parse(const char *s, uint64_t *seq, struct err *e)
{
	if (whole_number(s, strlen(s), true, seq))
		return 0;
	char q[4 * 40 + 4]; /* a query's value: any bytes */
	email_quote(s, strlen(s), 40, q, sizeof(q));
	return err_set(e, ERR_INVALID,
	               "after: '%s' is not a sequence number (a whole number from 0 to "
	               "18446744073709551615, digits only)",
	               q);
}

int conn_conflict_id_parse(const char *s, size_t len, uint64_t *id, struct err *e)
{
	uint64_t v;
	bool ok = whole_number(s, len, false, &v);
	*id = 0;
	if (!ok)
		return err_set(e, ERR_USAGE,
		               "'%.*s' is not a conflict ID (a whole number from 1, digits only)",
		               (int)(len > 40 ? 40 : len), s);
	*id = v;
	return 0;
}

int conn_conflict_filter_parse(const char *s, enum conn_conflict_filter *f, struct err *e)
{
	static const struct {
		const char *name;
		enum conn_conflict_filter f;
	} names[] = {{"open", CONN_CONFLICTS_OPEN},
	             {"resolved", CONN_CONFLICTS_RESOLVED},
	             {"all", CONN_CONFLICTS_ALL}};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*f = names[i].f;
			return 0;
		}
	return err_set(e, ERR_USAGE, "status must be open, resolved or all, not '%.40s'", s);
}

int conn_resolution_parse(const char *s, enum conn_resolution *how, struct err *e)
{
	static const struct {
		const char *name;
		enum conn_resolution how;
	} names[] = {{"keep_optout", CONN_KEEP_OPTOUT},
	             {"resubscribe", CONN_RESUBSCRIBE},
	             {"take_salesforce", CONN_TAKE_SALESFORCE},
	             {"take_local", CONN_TAKE_LOCAL}};
	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*how = names[i].how;
			return 0;
		}
	/* a value in a body or a flag's word: invalid input (422, exit 2) */
	return err_set(e, ERR_INVALID,
	               "the action must be keep_optout, resubscribe, take_salesforce or "
	               "take_local");
}

int conn_admin_actor(struct conn *c, const char *name, const char *token, const char *email,
                     struct conn_actor *who, char *namebuf, size_t cap, struct err *e)
{
	if (name && strlen(name) >= cap)
		name = NULL; /* no admin has so long a name: refused as unknown */
	int rc = conn_admin_check(c, name, token, email, e);
	if (rc)
		return rc;
	if (namebuf != name)
		memmove(namebuf, name, strlen(name) + 1);
	who->origin = CONN_ORIGIN_ADMIN;
	who->name = namebuf;
	return 0;
}

int conn_admin_actor_header(struct conn *c, const char *header, const char *email,
                            struct conn_actor *who, char *namebuf, size_t cap, struct err *e)
{
	const char *colon = header ? strchr(header, ':') : NULL;
	if (colon == NULL || (size_t)(colon - header) >= cap) {
		conn_admin_check(c, NULL, NULL, email, e); /* recorded as a refusal */
		return err_set(e, ERR_REFUSED,
		               "this needs admin credentials: X-Optsync-Admin: "
		               "NAME:TOKEN");
	}
	char name[LEDGER_ACTOR_MAX + 1];
	size_t nl = (size_t)(colon - header);
	if (nl >= sizeof(name))
		nl = sizeof(name) - 1;
	memcpy(name, header, nl);
	name[nl] = '\0';
	return conn_admin_actor(c, name, colon + 1, email, who, namebuf, cap, e);
}
