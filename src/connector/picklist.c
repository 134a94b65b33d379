/* The Salesforce picklist values of optsync's enums, as [salesforce.values]
 * names them: one table per enum, for reading, writing and checking. */
#include <string.h>

#include "connector/internal.h"

size_t picklist_of(const struct config *cfg, uint32_t typebit,
                   struct picklist_entry out[PICKLIST_MAX])
{
	const struct config_values *v = &cfg->salesforce.values;
	if (typebit == LEDGER_F_AUTH_TYPE) {
		const char *const vals[AUTH_TYPES] = {
		    v->consent,         v->legitimate_interest, v->contract, v->legal_obligation,
		    v->vital_interests, v->public_interest,     v->other};
		for (int i = 0; i < AUTH_TYPES; i++)
			out[i] = (struct picklist_entry){ledger_auth_name(i + 1), vals[i]};
		return AUTH_TYPES;
	}
	const char *const vals[SOURCE_TYPES] = {v->crm_sync, v->import, v->manual_upload,
	                                        v->browser_extension, v->other};
	for (int i = 0; i < SOURCE_TYPES; i++)
		out[i] = (struct picklist_entry){ledger_source_name(i + 1), vals[i]};
	return SOURCE_TYPES;
}

/* The enum value (1-based) whose picklist value is s, or -1. */
static int from_sf(const struct config *cfg, uint32_t typebit, const char *s)
{
	struct picklist_entry t[PICKLIST_MAX];
	size_t n = picklist_of(cfg, typebit, t);
	for (size_t i = 0; i < n; i++)
		if (t[i].value && strcmp(t[i].value, s) == 0)
			return (int)i + 1;
	return -1;
}

static const char *to_sf(const struct config *cfg, uint32_t typebit, int x)
{
	struct picklist_entry t[PICKLIST_MAX];
	size_t n = picklist_of(cfg, typebit, t);
	return x >= 1 && (size_t)x <= n ? t[x - 1].value : NULL;
}

int map_auth_from_sf(const struct config *cfg, const char *s)
{
	return from_sf(cfg, LEDGER_F_AUTH_TYPE, s);
}

int map_source_from_sf(const struct config *cfg, const char *s)
{
	return from_sf(cfg, LEDGER_F_SOURCE_TYPE, s);
}

const char *map_auth_to_sf(const struct config *cfg, int v)
{
	return to_sf(cfg, LEDGER_F_AUTH_TYPE, v);
}

const char *map_source_to_sf(const struct config *cfg, int v)
{
	return to_sf(cfg, LEDGER_F_SOURCE_TYPE, v);
}

/* ---- field keys and objects ---- */

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
	return o == LEDGER_OBJ_CONTACT || o == LEDGER_OBJ_LEAD ? o : 0; /* the objects polled */
}
