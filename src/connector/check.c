/* optsync config check --connect: log in, describe each configured object,
 * and say in plain words what is missing: a field, the right to read or
 * write it, a picklist value, a purpose's checkbox, the consent objects. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "connector/internal.h"

struct check {
	cJSON *problems; /* strings */
	size_t fields;   /* fields checked */
};

static void problem(struct check *k, const char *fmt, ...) ERR_PRINTF(2, 3);
static void problem(struct check *k, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_append(k->problems, cJSON_CreateString(msg));
}

/* A field optsync only reads. */
static void need_read(struct check *k, const struct sf_describe *d, const char *obj,
                      const char *field)
{
	k->fields++;
	if (!sf_describe_field(d, field, NULL))
		problem(k,
		        "the integration user cannot see %s.%s, which optsync reads: give it read "
		        "access (field-level security, or the optsync Integration permission set)",
		        obj, field);
}

/* A field optsync reads and writes, named by salesforce.fields.KEY. */
static void need_write(struct check *k, const struct sf_describe *d, const char *obj,
                       const char *field, const char *key)
{
	k->fields++;
	bool updateable = false;
	if (!sf_describe_field(d, field, &updateable))
		problem(k,
		        "%s has no field %s that the integration user can see "
		        "(salesforce.fields.%s names it): deploy the fields and the permission "
		        "set optsync ships (its salesforce/ folder) and assign the permission set, "
		        "or set salesforce.fields.%s to the field's API name",
		        obj, field, key, key);
	else if (!updateable)
		problem(
		    k,
		    "the integration user can read %s.%s (salesforce.fields.%s) but not write "
		    "it, so optsync cannot push opt-outs or compliance facts to it: give it edit "
		    "access",
		    obj, field, key);
}

/* A purpose's field (key: field, a checkbox true = out of that purpose;
 * opt_in_field, a checkbox true = in; consent_date_field, the date of that
 * consent), which optsync reads and writes on every record. */
static void need_purpose_field(struct check *k, const struct sf_describe *d, const char *obj,
                               const struct config_purpose *p, const char *field, const char *key)
{
	k->fields++;
	bool updateable = false;
	const char *what = strcmp(key, "consent_date_field") == 0 ? "date-time field" : "checkbox";
	if (!sf_describe_field(d, field, &updateable))
		problem(k,
		        "%s has no field %s that the integration user can see (purpose '%s' maps "
		        "to it: [[purposes]] salesforce.%s): create the %s on Contact and "
		        "Lead and give the integration user access to it, or correct the name",
		        obj, field, p->name, key, what);
	else if (!updateable)
		problem(k,
		        "the integration user can read %s.%s (purpose '%s') but not write it, so "
		        "optsync cannot push opt-ins and opt-outs of that purpose: give it edit "
		        "access",
		        obj, field, p->name);
}

/* Purposes mapped to Salesforce's consent objects need Data Protection and
 * Privacy: the objects exist only when it is on. */
static void need_consent_objects(struct check *k, struct sf_client *sf, const struct config *cfg,
                                 cJSON *objs)
{
	const char *first = NULL;
	for (size_t i = 0; i < cfg->npurposes && first == NULL; i++)
		if (cfg->purposes[i].sf_data_use_purpose)
			first = cfg->purposes[i].name;
	if (first == NULL)
		return;
	static const char *const needed[] = {"Individual", "ContactPointTypeConsent",
	                                     "DataUsePurpose"};
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		struct sf_describe *d = NULL;
		struct err de = {0};
		if (sf_describe(sf, needed[i], &d, &de)) {
			problem(
			    k,
			    "Salesforce's consent object %s is not available to the integration "
			    "user, and purpose '%s' is mapped to the consent objects "
			    "(data_use_purpose): turn on Data Protection and Privacy (Setup, "
			    "Company Settings, Data Protection and Privacy) and give the "
			    "integration user access to Individual, ContactPointTypeConsent and "
			    "DataUsePurpose, or map the purpose to a checkbox field instead "
			    "(Salesforce said: %s)",
			    needed[i], first, de.msg);
			cJSON_AddStringToObject(objs, needed[i], "not available");
			continue;
		}
		sf_describe_free(d);
		cJSON_AddStringToObject(objs, needed[i], "available");
	}
}

/* Each enum member's configured picklist value is an active value of the
 * field (typebit: which enum). */
static void need_values(struct check *k, const struct config *cfg, const struct sf_describe *d,
                        const char *obj, const char *field, uint32_t typebit)
{
	struct picklist_entry t[PICKLIST_MAX];
	size_t n = picklist_of(cfg, typebit, t);
	for (size_t i = 0; i < n; i++) {
		int has = sf_describe_picklist_has(d, field, t[i].value);
		if (has < 0)
			return; /* not a picklist (a text field), or reported missing above */
		if (has == 0)
			problem(k,
			        "%s.%s has no active picklist value '%s' (salesforce.values.%s): "
			        "add it "
			        "to the picklist, or set salesforce.values.%s to the value it has",
			        obj, field, t[i].value, t[i].key, t[i].key);
	}
}

int conn_check_salesforce(const struct config *cfg, bool consent_only, cJSON **out, struct err *e)
{
	*out = NULL;
	struct sf_client *sf = NULL;
	int rc = sf_client_of(cfg, NULL, &sf, e);
	if (rc == 0)
		rc = sf_login(sf, e);
	if (rc) {
		sf_client_free(sf);
		return rc;
	}
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "login", "ok");
	cJSON *objs = cJSON_AddObjectToObject(doc, "objects");
	struct check k = {cJSON_AddArrayToObject(doc, "problems"), 0};
	const struct config_fields *f = &cfg->salesforce.fields;
	for (size_t i = 0; i < (consent_only ? 0 : cfg->salesforce.nobjects); i++) {
		const char *obj = cfg->salesforce.objects[i];
		size_t before = (size_t)cJSON_GetArraySize(k.problems), fields_before = k.fields;
		struct sf_describe *d = NULL;
		struct err de = {0};
		if (sf_describe(sf, obj, &d, &de)) {
			problem(&k, "cannot describe %s: %s", obj, de.msg);
			cJSON_AddStringToObject(objs, obj, "cannot describe");
			continue;
		}
		static const char *const read[] = {
		    "Email", "FirstName",   "LastName",         "Title",
		    "Phone", "CreatedDate", "LastModifiedDate", "SystemModstamp"};
		for (size_t j = 0; j < sizeof(read) / sizeof(read[0]); j++)
			need_read(&k, d, obj, read[j]);
		if (strcmp(obj, "Lead") == 0) {
			need_read(&k, d, obj, "Company");
			need_read(&k, d, obj, "IsConverted");
		}
		struct field_key written[CONFIG_FIELD_KEYS];
		config_field_keys(cfg, written);
		for (size_t j = 0; j < CONFIG_FIELD_KEYS; j++)
			need_write(&k, d, obj, written[j].field, written[j].key);
		need_values(&k, cfg, d, obj, f->authorization_type, LEDGER_F_AUTH_TYPE);
		need_values(&k, cfg, d, obj, f->source_type, LEDGER_F_SOURCE_TYPE);
		for (size_t j = 0; j < cfg->npurposes; j++) {
			const struct config_purpose *p = &cfg->purposes[j];
			if (p->sf_field)
				need_purpose_field(&k, d, obj, p, p->sf_field, "field");
			if (p->sf_opt_in_field) {
				need_purpose_field(&k, d, obj, p, p->sf_opt_in_field,
				                   "opt_in_field");
				need_purpose_field(&k, d, obj, p, p->sf_consent_date_field,
				                   "consent_date_field");
			}
		}
		sf_describe_free(d);
		cJSON *o = cJSON_AddObjectToObject(objs, obj);
		cJSON_AddNumberToObject(o, "fields_checked", (double)(k.fields - fields_before));
		cJSON_AddNumberToObject(o, "problems",
		                        (double)((size_t)cJSON_GetArraySize(k.problems) - before));
	}
	if (cfg->npurposes)
		need_consent_objects(&k, sf, cfg, cJSON_AddObjectToObject(doc, "consent_objects"));
	sf_client_free(sf);
	cJSON_AddBoolToObject(doc, "ok", cJSON_GetArraySize(k.problems) == 0);
	*out = doc;
	return 0;
}

bool conn_consent_objects_used(const struct config *cfg)
{
	return consent_configured(cfg);
}
