/* optsync config check */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "connector/connector.h"
#include "util/fileio.h"

struct dump {
	FILE *f;
	cJSON *json; /* settings object when --json */
	const char *section;
	int index;
};

static void print_key(void *ctx, const char *section, const char *key, const char *value, int index)
{
	struct dump *d = ctx;
	const char *shown = value ? value : "\"<redacted>\"";
	if (d->json) {
		cJSON *sec = d->json;
		/* "salesforce.fields" nests as salesforce -> fields */
		char name[64];
		snprintf(name, sizeof(name), "%s", section);
		for (char *part = name, *dot; part; part = dot ? dot + 1 : NULL) {
			dot = strchr(part, '.');
			if (dot)
				*dot = '\0';
			cJSON *next = cJSON_GetObjectItemCaseSensitive(sec, part);
			if (next == NULL) {
				next = strcmp(part, "admins") == 0 ||
				               strcmp(part, "purposes") == 0 ||
				               strcmp(part, "clients") == 0
				           ? cJSON_CreateArray()
				           : cJSON_CreateObject();
				cJSON_AddItemToObject(sec, part, next);
			}
			sec = next;
		}
		if (index >= 0) {
			cJSON *entry = cJSON_GetArrayItem(sec, index);
			if (entry == NULL) {
				entry = cJSON_CreateObject();
				cJSON_AddItemToArray(sec, entry);
			}
			sec = entry;
		}
		/* values are TOML literals; strings and arrays of strings are
		 * also valid JSON */
		cJSON *v = value ? cJSON_Parse(value) : cJSON_CreateString("<redacted>");
		cJSON_AddItemToObject(sec, key, v ? v : cJSON_CreateString(value));
		return;
	}
	if (index >= 0) {
		if (d->index != index || strcmp(d->section, section) != 0)
			fprintf(d->f, "\n[[%s]]\n", section);
	} else if (d->section == NULL || strcmp(d->section, section) != 0) {
		fprintf(d->f, "%s[%s]\n", d->section ? "\n" : "", section);
	}
	d->section = section;
	d->index = index;
	fprintf(d->f, "%s = %s\n", key, shown);
}

static const char check_help[] =
    "Reads the configuration (-c FILE, else $OPTSYNC_CONFIG, else ./optsync.toml),\n"
    "checks every key, and prints the effective configuration with defaults filled\n"
    "in. Secret values are never printed: for each *_file key it says where the\n"
    "secret comes from (the file, or its OPTSYNC_<SECTION>_<KEY> environment\n"
    "override) and whether it can be read; admin token hashes show as <redacted>.\n"
    "\n"
    "Options:\n"
    "  --json     print the result as JSON\n"
    "  --strict   also fail when a configured secret cannot be read (missing file,\n"
    "             wrong mode); without it, unreadable secrets are warnings, so that\n"
    "             a config can be checked where its secrets are not mounted. With\n"
    "             purposes mapped to Salesforce's consent objects, it also asks\n"
    "             Salesforce whether they exist (Data Protection and Privacy on)\n"
    "             and fails, saying so, when they do not; a Salesforce it cannot\n"
    "             reach is only a warning\n"
    "  --connect  also log in to Salesforce and describe each configured object:\n"
    "             every field optsync reads must be visible to the integration\n"
    "             user, every field it writes writable, every value of\n"
    "             [salesforce.values] an active picklist value; each problem is\n"
    "             said in plain words with what to change (implies --strict)\n"
    "\n"
    "Exit status: 0 valid; 3 invalid (every error is printed as FILE:LINE: KEY: what);\n"
    "1 --connect: the login failed or Salesforce lacks what optsync needs; --strict:\n"
    "Salesforce lacks the consent objects the purposes are mapped to.\n";

static int exec_check(struct cli *c, int argc, char **argv, struct err *e)
{
	int json = 0, strict = 0, connect = 0, npos;
	char *pos[1];
	const struct cli_opt opts[] = {
	    {"json", NULL, &json}, {"strict", NULL, &strict}, {"connect", NULL, &connect}, {0}};
	int rc = cli_args(argc, argv, opts, pos, 0, &npos, e);
	if (rc)
		return rc;
	rc = cli_config(c, e);
	if (rc)
		return rc;
	if (connect)
		strict = 1;
	struct dump d = {.f = c->out, .index = -1};
	cJSON *root = NULL, *secrets = NULL;
	if (json) {
		root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "config", c->cfg->path);
		d.json = cJSON_AddObjectToObject(root, "settings");
		secrets = cJSON_AddArrayToObject(root, "secrets");
	} else {
		fprintf(c->out, "# %s: valid\n", c->cfg->path);
	}
	config_visit(c->cfg, print_key, &d);

	int bad = 0;
	if (!json)
		fprintf(c->out, "\n# secrets\n");
	for (int id = 0; id < CONFIG_SECRET_COUNT; id++) {
		char src[512];
		if (config_secret_source(c->cfg, (enum config_secret_id)id, src, sizeof(src)) ==
		    NULL)
			continue;
		char *val;
		size_t len;
		struct err se = {0};
		int src_rc = config_secret(c->cfg, (enum config_secret_id)id, &val, &len, &se);
		secret_free(val, len);
		if (src_rc)
			bad++;
		if (json) {
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "key",
			                        config_secret_key((enum config_secret_id)id));
			cJSON_AddStringToObject(s, "source", src);
			cJSON_AddBoolToObject(s, "readable", src_rc == 0);
			if (src_rc)
				cJSON_AddStringToObject(s, "error", se.msg);
			cJSON_AddItemToArray(secrets, s);
		} else {
			fprintf(c->out, "# %s: %s, %s\n",
			        config_secret_key((enum config_secret_id)id), src,
			        src_rc ? "NOT READABLE" : "readable");
		}
		if (src_rc)
			fprintf(c->errs, "optsync: %s: %s\n", strict ? "error" : "warning", se.msg);
	}
	/* the unsubscribe link keys: secrets too, refused as the others are
	 * (unreadable here, or readable by others: an error with --strict), and
	 * too short is always wrong */
	int broken = 0;
	const struct config_list *old = &c->cfg->unsubscribe.old_key_files;
	for (size_t i = 0; c->cfg->unsubscribe.enabled && i <= old->n; i++) {
		const char *key = i ? "unsubscribe.old_key_files" : "unsubscribe.key_file";
		const char *path = i ? old->v[i - 1] : c->cfg->unsubscribe.key_file;
		if (path == NULL)
			continue;
		struct err se = {0};
		int krc = config_link_key_check(path, &se);
		bad += krc == ERR_CONFIG;
		broken += krc == ERR_INVALID;
		if (json) {
			cJSON *s = cJSON_CreateObject();
			cJSON_AddStringToObject(s, "key", key);
			char src[600];
			snprintf(src, sizeof(src), "file %s", path);
			cJSON_AddStringToObject(s, "source", src);
			cJSON_AddBoolToObject(s, "readable", krc != ERR_CONFIG);
			if (krc)
				cJSON_AddStringToObject(s, "error", se.msg);
			cJSON_AddItemToArray(secrets, s);
		} else {
			fprintf(c->out, "# %s: file %s, %s\n", key, path,
			        krc == ERR_INVALID ? "TOO SHORT"
			        : krc              ? "NOT READABLE"
			                           : "readable");
		}
		if (krc)
			fprintf(c->errs, "optsync: %s: %s: %s: %s\n",
			        krc == ERR_INVALID || strict ? "error" : "warning", c->cfg->path,
			        key, se.msg);
	}
	cJSON *sf = NULL;
	int sfrc = 0;
	struct err sfe = {0};
	if (connect && !bad) {
		sfrc = conn_check_salesforce(c->cfg, false, &sf, &sfe);
	} else if (strict && !bad && conn_consent_objects_used(c->cfg)) {
		/* the consent objects exist only with Data Protection and Privacy
		 * on: --strict asks Salesforce about them alone, and an org it
		 * cannot reach is a warning (--strict works offline otherwise) */
		if (conn_check_salesforce(c->cfg, true, &sf, &sfe))
			fprintf(c->errs,
			        "optsync: warning: purposes are mapped to Salesforce's consent "
			        "objects, and Salesforce could not be reached to check that they "
			        "exist (Data Protection and Privacy on): %s\n",
			        sfe.msg);
	}
	if (!connect && sf && !json) {
		fprintf(c->out,
		        "\n# salesforce (the consent objects only; --connect checks all)\n");
		const cJSON *o;
		cJSON_ArrayForEach(o, cJSON_GetObjectItem(sf, "consent_objects"))
		    fprintf(c->out, "# %s: %s\n", o->string, o->valuestring);
	}
	if (connect && !bad && !json) {
		fprintf(c->out, "\n# salesforce\n");
		if (sfrc) {
			fprintf(c->out, "# login: FAILED\n");
		} else {
			fprintf(c->out, "# login: ok\n");
			const cJSON *o;
			cJSON_ArrayForEach(o, cJSON_GetObjectItem(sf, "objects"))
			{
				fprintf(
				    c->out, "# %s: %.0f fields checked, %.0f problems\n", o->string,
				    cJSON_GetNumberValue(cJSON_GetObjectItem(o, "fields_checked")),
				    cJSON_GetNumberValue(cJSON_GetObjectItem(o, "problems")));
			}
			cJSON_ArrayForEach(o, cJSON_GetObjectItem(sf, "consent_objects"))
			    fprintf(c->out, "# %s: %s\n", o->string, o->valuestring);
		}
	}
	const cJSON *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItem(sf, "problems"))
	    fprintf(c->errs, "optsync: %s\n", p->valuestring);
	int sf_problems = sf ? cJSON_GetArraySize(cJSON_GetObjectItem(sf, "problems")) : 0;
	if (json) {
		if (sf)
			cJSON_AddItemToObject(root, "salesforce", sf);
		else if (sfrc && connect)
			cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "salesforce"),
			                        "login", sfe.msg);
		sf = NULL;
		cJSON_AddBoolToObject(root, "valid", !(strict && bad) && !broken);
		char *text = cJSON_Print(root);
		if (text) {
			fprintf(c->out, "%s\n", text);
			free(text);
		}
		cJSON_Delete(root);
	}
	cJSON_Delete(sf);
	if (broken)
		return err_set(e, ERR_CONFIG, "%d unsubscribe link key(s) too short", broken);
	if (strict && bad)
		return err_set(e, ERR_CONFIG, "%d secret(s) cannot be read (--strict)", bad);
	if (sfrc && connect) {
		*e = sfe;
		return sfrc;
	}
	if (sf_problems)
		return err_set(e, ERR_REMOTE,
		               "%d problem(s) with what Salesforce offers the integration user "
		               "(listed above)",
		               sf_problems);
	return 0;
}

const struct cli_cmd cmd_config_check = {
    .name = "config check",
    .usage = "[--json] [--strict] [--connect]",
    .summary = "validate the configuration and print it with secrets redacted",
    .help = check_help,
    .exec = exec_check,
};
