/* The names of the ledger's enums, as the README and the API spell them. */
#include <stdlib.h>
#include <string.h>

#include "state/internal.h"

/* ---- enum names ---- */

static const char *const auth_names[] = {NULL,
                                         "consent",
                                         "legitimate_interest",
                                         "contract",
                                         "legal_obligation",
                                         "vital_interests",
                                         "public_interest",
                                         "other"};
static const char *const source_names[] = {
    NULL, "crm_sync", "import", "manual_upload", "browser_extension", "other"};
static const char *const object_names[] = {
    NULL, "Contact", "Lead", "ContactPointTypeConsent", "Individual", "Individual"};
static const char *const origin_names[] = {NULL, "salesforce", "local", "admin", "link"};
static const char *const kind_names[] = {
    NULL,      "optout", "optin",     "authorization", "source", "conflict", "erasure",
    "refused", "record", "retention", "unlinked",      "access", "merge"};
static const char *const conflict_kind_names[] = {NULL, "resubscribe", "invalid_value",
                                                  "concurrent_edit"};

#define NAME_OF(tab, v) ((v) > 0 && (size_t)(v) < sizeof(tab) / sizeof(tab[0]) ? tab[v] : NULL)

static int parse_name(const char *const *tab, size_t n, const char *s)
{
	for (size_t i = 1; i < n; i++)
		if (strcmp(tab[i], s) == 0)
			return (int)i;
	return -1;
}

const char *ledger_auth_name(int v)
{
	return NAME_OF(auth_names, v);
}

int ledger_auth_parse(const char *s)
{
	return parse_name(auth_names, sizeof(auth_names) / sizeof(auth_names[0]), s);
}

const char *ledger_source_name(int v)
{
	return NAME_OF(source_names, v);
}

int ledger_source_parse(const char *s)
{
	return parse_name(source_names, sizeof(source_names) / sizeof(source_names[0]), s);
}

const char *ledger_object_name(int v)
{
	return NAME_OF(object_names, v);
}

int ledger_object_parse(const char *s)
{
	return parse_name(object_names, sizeof(object_names) / sizeof(object_names[0]), s);
}

const char *ledger_origin_name(int v)
{
	return NAME_OF(origin_names, v);
}

const char *ledger_event_kind_name(int v)
{
	return NAME_OF(kind_names, v);
}

const char *ledger_conflict_kind_name(int v)
{
	return NAME_OF(conflict_kind_names, v);
}

void ledger_facts_init(struct ledger_facts *f)
{
	f->mask = 0;
	f->opted_out = false;
	f->auth_type = 0;
	f->source_type = 0;
	f->consent_date = 0;
	f->purpose[0] = f->auth_other[0] = f->source_other[0] = '\0';
}

/* recrefs travel as bytes: object byte then id */
