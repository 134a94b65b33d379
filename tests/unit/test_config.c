#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "util/fileio.h"

static char dir[] = "/tmp/optsync-test-config-XXXXXX";

static const char *write_file(const char *name, const char *text, mode_t mode)
{
	static char path[4][256];
	static int slot;
	char *p = path[slot++ % 4];
	snprintf(p, 256, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	return p;
}

#define BASE                                                                                       \
	"[salesforce]\nclient_id = \"cid\"\nusername = \"u@example.com\"\n"                        \
	"private_key_file = \"/nonexistent/key.pem\"\n"

static struct config *load_ok(const char *text)
{
	const char *p = write_file("ok.toml", text, 0644);
	struct config *cfg = NULL;
	struct err e = {0};
	if (config_load(&cfg, p, NULL, &e))
		fail_msg("unexpected error: %s", e.msg);
	return cfg;
}

/* Loads text, expects failure, and checks that the first error contains
 * each of the given fragments. */
static void expect_errors(const char *text, size_t nerrors, const char *frag1, const char *frag2)
{
	const char *p = write_file("bad.toml", text, 0644);
	struct config *cfg = NULL;
	struct err e = {0};
	struct config_errors all;
	assert_int_equal(config_load(&cfg, p, &all, &e), ERR_CONFIG);
	assert_null(cfg);
	assert_int_equal(all.n, nerrors);
	if (strstr(e.msg, frag1) == NULL || (frag2 && strstr(e.msg, frag2) == NULL))
		fail_msg("error '%s' lacks '%s' / '%s'", e.msg, frag1, frag2 ? frag2 : "");
	assert_non_null(strstr(e.msg, "bad.toml:"));
}

static void test_defaults(void **state)
{
	struct config *cfg = load_ok(BASE);
	assert_string_equal(cfg->salesforce.login_url, "https://login.salesforce.com");
	assert_string_equal(cfg->salesforce.audience, "https://login.salesforce.com");
	assert_string_equal(cfg->salesforce.api_version, "62.0");
	assert_int_equal(cfg->salesforce.auth, CONFIG_AUTH_JWT);
	assert_int_equal(cfg->salesforce.nobjects, 2);
	assert_string_equal(cfg->salesforce.objects[1], "Lead");
	assert_string_equal(cfg->salesforce.fields.opted_out, "HasOptedOutOfEmail");
	assert_string_equal(cfg->salesforce.values.contract, "Performance of a Contract");
	assert_int_equal(cfg->sync.interval_ms, 60000);
	assert_int_equal(cfg->sync.overlap_ms, 300000);
	assert_int_equal(cfg->sync.resubscribe_policy, CONFIG_RESUB_REVERT);
	assert_true(cfg->state.map_size == (64ull << 20));
	assert_string_equal(cfg->api.listen, "127.0.0.1:8425");
	assert_false(cfg->webhook.enabled);
	assert_int_equal(cfg->log.level, LOG_INFO);
	assert_int_equal(cfg->log.format, LOG_FORMAT_JSON);
	config_free(cfg);
}

static void test_example_config(void **state)
{
	struct config *cfg = NULL;
	struct err e = {0};
	if (config_load(&cfg, OPTSYNC_SOURCE_DIR "/config.example.toml", NULL, &e))
		fail_msg("config.example.toml: %s", e.msg);
	assert_true(cfg->webhook.enabled);
	assert_int_equal(cfg->nadmins, 1);
	assert_string_equal(cfg->admins[0].name, "alice");
	config_free(cfg);
}

static void test_unknown_key(void **state)
{
	expect_errors(BASE "[sync]\nintervall = \"5s\"\n", 1,
	              "bad.toml:6:", "unknown key 'intervall' in [sync]");
	expect_errors(BASE "[archive]\nx = 1\n", 1, "bad.toml:5:", "unknown section [archive]");
	expect_errors("top = 1\n" BASE, 1, "bad.toml:1:", "unknown key 'top'");
}

static void test_wrong_type(void **state)
{
	expect_errors(BASE "[sync]\ninterval = 60\n", 1,
	              "bad.toml:6:", "sync.interval: expected a string, got integer");
	expect_errors(BASE "objects = \"Contact\"\n", 1, "bad.toml:5:", "salesforce.objects");
}

static void test_bad_values(void **state)
{
	expect_errors("[salesforce]\nauth = \"password\"\nclient_id = \"c\"\n", 1,
	              "bad.toml:2:", "salesforce.auth: \"password\" is not one of");
	expect_errors(BASE "[sync]\nresubscribe_policy = \"allow\"\n", 1,
	              "bad.toml:6:", "resubscribe_policy");
	expect_errors(BASE "[sync]\ninterval = \"5 minutes\"\n", 1, "bad.toml:6:", "duration");
	expect_errors(BASE "[state]\nmap_size = \"lots\"\n", 1, "bad.toml:6:", "size");
	expect_errors(BASE "[salesforce.fields]\nopted_out = \"x' OR 1=1\"\n", 1,
	              "bad.toml:6:", "API field name");
	expect_errors(BASE "objects = [\"Account\"]\n", 1, "bad.toml:5:", "unsupported object");
	expect_errors(BASE "[api]\nlisten = \"localhost\"\n", 1, "bad.toml:6:", "host:port");
	expect_errors(BASE "login_url = \"ftp://x\"\n", 1, "bad.toml:5:", "URL");
}

static void test_missing_required(void **state)
{
	expect_errors("[salesforce]\nusername = \"u\"\nprivate_key_file = \"/k\"\n", 1,
	              "bad.toml:1:", "missing required key 'client_id'");
	expect_errors("[salesforce]\nclient_id = \"c\"\nauth = \"client_credentials\"\n", 1,
	              "bad.toml:1:", "missing required key 'client_secret_file'");
	expect_errors(BASE "[webhook]\nurl = \"http://127.0.0.1:9/x\"\n", 1,
	              "bad.toml:5:", "'secret_file'");
	expect_errors(BASE "[[admins]]\nname = \"bob\"\n", 1, "bad.toml:5:", "'token_hash'");
	expect_errors(BASE "[[admins]]\nname = \"a\"\ntoken_hash = \"h\"\n[[admins]]\nname = "
	                   "\"a\"\ntoken_hash = \"h\"\n",
	              1, "bad.toml:8:", "used twice");
}

static void test_all_errors_reported(void **state)
{
	expect_errors(BASE "[sync]\nfoo = 1\ninterval = 1\n[log]\nlevel = \"loud\"\n", 3,
	              "bad.toml:6:", "unknown key 'foo'");
}

static void test_syntax_error(void **state)
{
	expect_errors(BASE "[sync\n", 1, "bad.toml:5:", "']'");
}

static void test_env_override(void **state)
{
	setenv("OPTSYNC_SALESFORCE_CLIENT_SECRET", "s3cret-from-env", 1);
	struct config *cfg =
	    load_ok("[salesforce]\nclient_id = \"c\"\nauth = \"client_credentials\"\n");
	char src[128];
	assert_string_equal(
	    config_secret_source(cfg, CONFIG_SECRET_CLIENT_SECRET, src, sizeof(src)),
	    "env OPTSYNC_SALESFORCE_CLIENT_SECRET");
	char *val;
	size_t len;
	struct err e;
	assert_int_equal(config_secret(cfg, CONFIG_SECRET_CLIENT_SECRET, &val, &len, &e), 0);
	assert_string_equal(val, "s3cret-from-env");
	secret_free(val, len);
	assert_int_equal(config_secret(cfg, CONFIG_SECRET_API_TOKEN, &val, &len, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "api.token_file"));
	unsetenv("OPTSYNC_SALESFORCE_CLIENT_SECRET");
	config_free(cfg);
}

static void test_secret_files(void **state)
{
	const char *open_file = write_file("open-secret", "abcd-secret\n", 0644);
	const char *tight = write_file("tight-secret", "abcd-secret\r\n", 0600);
	char text[1024];
	snprintf(text, sizeof(text), BASE "[api]\ntoken_file = \"%s\"\n", open_file);
	struct config *cfg = load_ok(text);
	char *val;
	size_t len;
	struct err e;
	assert_int_equal(config_secret(cfg, CONFIG_SECRET_API_TOKEN, &val, &len, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "chmod 600"));
	assert_null(strstr(e.msg, "abcd-secret"));
	config_free(cfg);
	snprintf(text, sizeof(text), BASE "[api]\ntoken_file = \"%s\"\n", tight);
	cfg = load_ok(text);
	assert_int_equal(config_secret(cfg, CONFIG_SECRET_API_TOKEN, &val, &len, &e), 0);
	assert_string_equal(val, "abcd-secret");
	assert_int_equal(len, 11);
	secret_free(val, len);
	config_free(cfg);
}

static void test_parse_units(void **state)
{
	int64_t ms;
	uint64_t b;
	assert_int_equal(config_parse_duration("1h30m", &ms), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(config_parse_duration("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(config_parse_duration("2d", &ms), 0);
	assert_int_equal(ms, 172800000);
	assert_int_equal(config_parse_duration("5", &ms), -1);
	assert_int_equal(config_parse_duration("5x", &ms), -1);
	assert_int_equal(config_parse_duration("", &ms), -1);
	assert_int_equal(config_parse_duration("99999999999999999999s", &ms), -1);
	assert_int_equal(config_parse_size("1GiB", &b), 0);
	assert_true(b == 1073741824ull);
	assert_int_equal(config_parse_size("10MB", &b), 0);
	assert_true(b == 10000000ull);
	assert_int_equal(config_parse_size("4096", &b), 0);
	assert_true(b == 4096);
	assert_int_equal(config_parse_size("1.5GiB", &b), -1);
	assert_int_equal(config_parse_size("99999999999TiB", &b), -1);
}

static void test_missing_file(void **state)
{
	struct config *cfg;
	struct err e;
	struct config_errors all;
	assert_int_equal(config_load(&cfg, "/nonexistent/optsync.toml", &all, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "/nonexistent/optsync.toml"));
	assert_int_equal(all.n, 1);
}

/* [unsubscribe]: required keys, the link key's size, links' base URL,
 * trusted proxies; and what a good section loads as. */
static void test_unsubscribe(void **state)
{
	char text[1024];
	/* copies: write_file's paths live in a ring of four, which the loads
	 * below reuse */
	char key[256], shortkey[256];
	snprintf(key, sizeof(key), "%s",
	         write_file("link.key", "0123456789abcdef0123456789abcdef", 0600));
	snprintf(shortkey, sizeof(shortkey), "%s", write_file("short.key", "too short", 0600));
#define UNSUB                                                                                      \
	"[unsubscribe]\nbase_url = \"https://u.example.com\"\norganization = \"Ex\"\n"             \
	"privacy_url = \"https://example.com/privacy\"\n"
	snprintf(text, sizeof(text),
	         BASE UNSUB
	         "key_file = \"%s\"\nold_key_files = [\"%s\"]\n"
	         "trusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.1\"]\n"
	         "default_language = \"nl\"\ninvalid_per_minute = 7\nlink_lifetime = \"30d\"\n",
	         key, key);
	struct config *cfg = load_ok(text);
	assert_true(cfg->unsubscribe.enabled);
	assert_string_equal(cfg->unsubscribe.listen, "0.0.0.0:8426");
	assert_int_equal(cfg->unsubscribe.default_language, CONFIG_LANG_NL);
	assert_int_equal(cfg->unsubscribe.invalid_per_minute, 7);
	assert_int_equal(cfg->unsubscribe.link_lifetime_ms, 30LL * 86400000);
	assert_int_equal(cfg->unsubscribe.old_key_files.n, 1);
	assert_int_equal(cfg->unsubscribe.trusted_proxies.n, 3);
	struct config_cidr c;
	assert_int_equal(config_parse_cidr(cfg->unsubscribe.trusted_proxies.v[0], &c), 0);
	unsigned char in[4] = {10, 1, 2, 3}, out4[4] = {11, 0, 0, 1};
	unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 9, 9, 9};
	assert_true(config_cidr_match(&c, AF_INET, in));
	assert_false(config_cidr_match(&c, AF_INET, out4));
	assert_true(config_cidr_match(&c, AF_INET6, mapped));
	assert_int_equal(config_parse_cidr("192.0.2.1/33", &c), -1);
	assert_int_equal(config_parse_cidr("::1/129", &c), -1);
	assert_int_equal(config_parse_cidr("1.2.3.4/", &c), -1);
	config_free(cfg);
	/* without the section: off */
	cfg = load_ok(BASE);
	assert_false(cfg->unsubscribe.enabled);
	config_free(cfg);

	expect_errors(BASE "[unsubscribe]\n", 4, "bad.toml:5:", "missing required key 'base_url'");
	/* key files are secrets: read at start (and by config check), not at load */
	struct err ke = {0};
	assert_int_equal(config_link_key_check(key, &ke), 0);
	assert_int_equal(config_link_key_check(shortkey, &ke), ERR_INVALID);
	assert_non_null(strstr(ke.msg, "holds 9 bytes; a link key needs at least 32"));
	snprintf(text, sizeof(text), "%s/none", dir);
	assert_int_equal(config_link_key_check(text, &ke), ERR_CONFIG);
	assert_non_null(strstr(ke.msg, "cannot open"));
	/* and refused, as every secret file, when others or the group may at it */
	const char *open_key = write_file("open.key", "0123456789abcdef0123456789abcdef", 0644);
	assert_int_equal(config_link_key_check(open_key, &ke), ERR_CONFIG);
	assert_non_null(strstr(ke.msg, "mode 644 lets others read it; chmod 600 it"));
	chmod(open_key, 0660);
	assert_int_equal(config_link_key_check(open_key, &ke), ERR_CONFIG);
	assert_non_null(strstr(ke.msg, "mode 660 lets the group write it"));
	snprintf(text, sizeof(text),
	         BASE "[unsubscribe]\nbase_url = \"http://u.example.com\"\norganization = \"Ex\"\n"
	              "privacy_url = \"https://example.com/p\"\nkey_file = \"%s\"\n",
	         key);
	expect_errors(text, 1, "unsubscribe.base_url", "http:// only for localhost");
	snprintf(text, sizeof(text),
	         BASE UNSUB "key_file = \"%s\"\ntrusted_proxies = [\"10.0.0.0/99\"]\n", key);
	expect_errors(text, 1, "unsubscribe.trusted_proxies", "10.0.0.0/99");
	snprintf(text, sizeof(text), BASE UNSUB "key_file = \"%s\"\ndefault_language = \"de\"\n",
	         key);
	expect_errors(text, 1, "unsubscribe.default_language", "\"en\", \"nl\", \"sv\"");
	snprintf(text, sizeof(text), BASE UNSUB "key_file = \"%s\"\nlisten = \"127.0.0.1:8425\"\n",
	         key);
	expect_errors(text, 1, "unsubscribe.listen", "the local API's address");
#undef UNSUB
}

/* [[purposes]]: what loads, and errors that name the line and the key. */
static void test_purposes(void **state)
{
	struct config *cfg =
	    load_ok(BASE "create_individuals = true\n"
	                 "[[purposes]]\nname = \"newsletter\"\nlabel = { en = \"Newsletter\", sv = "
	                 "\"Nyhetsbrev\" }\nbasis = \"consent\"\nsalesforce = { field = "
	                 "\"Newsletter_Opt_Out__c\" }\n"
	                 "[[purposes]]\nname = \"offers_2\"\nbasis = \"soft_opt_in\"\n"
	                 "salesforce = { data_use_purpose = \"Offers\" }\n");
	assert_true(cfg->salesforce.create_individuals);
	assert_int_equal(cfg->npurposes, 2);
	const struct config_purpose *p = config_purpose_find(cfg, "newsletter");
	assert_non_null(p);
	assert_string_equal(p->label[CONFIG_LANG_SV], "Nyhetsbrev");
	assert_null(p->label[CONFIG_LANG_NL]);
	assert_string_equal(p->sf_field, "Newsletter_Opt_Out__c");
	assert_int_equal(config_purpose_find(cfg, "offers_2")->basis, CONFIG_BASIS_SOFT_OPT_IN);
	assert_null(config_purpose_find(cfg, "events"));
	config_free(cfg);
#define P(body) BASE "[[purposes]]\n" body
	expect_errors(
	    P("name = \"News\"\nbasis = \"consent\"\nsalesforce = { field = \"F__c\" }\n"), 1,
	    "bad.toml:6:", "purposes.name: \"News\": use 1 to 32 of a-z, 0-9 and _");
	expect_errors(P("name = \"n\"\nbasis = \"maybe\"\nsalesforce = { field = \"F__c\" }\n"), 1,
	              "bad.toml:7:", "purposes.basis: \"maybe\" is not one of");
	expect_errors(P("name = \"n\"\nbasis = \"consent\"\n"), 1,
	              "bad.toml:5:", "missing required key 'salesforce'");
	expect_errors(P("name = \"n\"\nbasis = \"consent\"\nsalesforce = { field = \"F__c\", "
	                "data_use_purpose = \"X\" }\n"),
	              1, "bad.toml:8:", "give exactly one of field");
	expect_errors(P("name = \"n\"\nbasis = \"consent\"\nlabel = { de = \"x\" }\nsalesforce = "
	                "{ field = \"F__c\" }\n"),
	              1, "bad.toml:8:", "purposes.label: \"de\" is not one of");
	expect_errors(P("name = \"n\"\nbasis = \"consent\"\nsalesforce = { field = \"F__c\" }\n"
	                "colour = \"red\"\n"),
	              1, "bad.toml:9:", "unknown key 'colour' in [[purposes]]");
	expect_errors(P("name = \"n\"\nbasis = \"consent\"\nsalesforce = { field = \"F__c\" }\n"
	                "[[purposes]]\nname = \"n\"\nbasis = \"consent\"\nsalesforce = { field = "
	                "\"F__c\" }\n"),
	              2, "bad.toml:9:", "name \"n\" is used twice");
	expect_errors(BASE "create_individuals = \"yes\"\n", 1,
	              "bad.toml:5:", "salesforce.create_individuals: expected true or false");
#undef P
}

/* A purpose on an opt-in checkbox and its consent date: the two go
 * together, and with neither field nor data_use_purpose. */
static void test_purpose_opt_in_field(void **state)
{
	(void)state;
	struct config *cfg =
	    load_ok(BASE "[[purposes]]\nname = \"newsletter\"\nbasis = \"consent\"\n"
	                 "salesforce = { opt_in_field = \"Newsletter_Opt_In__c\", "
	                 "consent_date_field = \"Newsletter_Consent_Date__c\" }\n");
	const struct config_purpose *p = config_purpose_find(cfg, "newsletter");
	assert_non_null(p);
	assert_null(p->sf_field);
	assert_null(p->sf_data_use_purpose);
	assert_string_equal(p->sf_opt_in_field, "Newsletter_Opt_In__c");
	assert_string_equal(p->sf_consent_date_field, "Newsletter_Consent_Date__c");
	config_free(cfg);
#define P(map) BASE "[[purposes]]\nname = \"n\"\nbasis = \"consent\"\nsalesforce = " map "\n"
	expect_errors(P("{ opt_in_field = \"In__c\" }"), 1, "bad.toml:8:",
	              "purposes.salesforce.consent_date_field: required with opt_in_field");
	expect_errors(P("{ consent_date_field = \"D__c\" }"), 1, "bad.toml:8:",
	              "purposes.salesforce.opt_in_field: required with consent_date_field");
	expect_errors(P("{ field = \"F__c\", opt_in_field = \"In__c\", consent_date_field = "
	                "\"D__c\" }"),
	              1, "bad.toml:8:", "give exactly one of field");
	expect_errors(P("{ data_use_purpose = \"X\", opt_in_field = \"In__c\", "
	                "consent_date_field = \"D__c\" }"),
	              1, "bad.toml:8:", "opt_in_field");
	expect_errors(P("{ opt_in_field = \"In-box\", consent_date_field = \"D__c\" }"), 1,
	              "bad.toml:8:",
	              "purposes.salesforce.opt_in_field: \"In-box\" is not a Salesforce API field");
	expect_errors(P("{ opt_in_field = \"In__c\", consent_date_field = \"In__c\" }"), 1,
	              "bad.toml:8:", "opt_in_field and consent_date_field name the same field");
	expect_errors(P("{ opt_in_field = \"In__c\", consent_date_field = 3 }"), 1,
	              "bad.toml:8:", "purposes.salesforce");
	/* a field is mapped by one purpose only, whichever key names it */
	expect_errors(BASE "[[purposes]]\nname = \"a\"\nbasis = \"consent\"\n"
	                   "salesforce = { field = \"F__c\" }\n"
	                   "[[purposes]]\nname = \"b\"\nbasis = \"consent\"\n"
	                   "salesforce = { opt_in_field = \"In__c\", consent_date_field = "
	                   "\"F__c\" }\n",
	              1, "bad.toml:9:", "field F__c is mapped by two purposes");
#undef P
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_example_config),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_wrong_type),
	    cmocka_unit_test(test_bad_values),
	    cmocka_unit_test(test_missing_required),
	    cmocka_unit_test(test_all_errors_reported),
	    cmocka_unit_test(test_syntax_error),
	    cmocka_unit_test(test_env_override),
	    cmocka_unit_test(test_secret_files),
	    cmocka_unit_test(test_parse_units),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_unsubscribe),
	    cmocka_unit_test(test_purposes),
	    cmocka_unit_test(test_purpose_opt_in_field),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
