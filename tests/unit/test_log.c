#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

static char *redacted(const char *in)
{
	size_t n = strlen(in);
	char *s = malloc(n + 1);
	memcpy(s, in, n + 1);
	n = log_redact(s, n);
	s[n] = '\0';
	return s;
}

static void expect_masked(const char *in, const char *secret, const char *kept)
{
	char *out = redacted(in);
	if (strstr(out, secret) != NULL)
		fail_msg("secret '%s' survived in '%s'", secret, out);
	if (kept && strstr(out, kept) == NULL)
		fail_msg("'%s' was lost from '%s'", kept, out);
	free(out);
}

static void test_patterns(void **state)
{
	expect_masked("Authorization: Bearer 00Dxx0000001gPL!AR8AQJXg5oj8jXSgxJfA0lBog",
	              "AR8AQJXg5oj8", "Authorization:");
	expect_masked("sending bearer abc.def.ghi now", "abc.def.ghi", "now");
	expect_masked("{\"access_token\":\"00D5e!AQ4AQFhIjklmnop\",\"instance_url\":\"https://x\"}",
	              "AQ4AQFhIjklmnop", "instance_url");
	expect_masked("grant_type=urn%3Aietf&assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3Mi.sig&x=1",
	              "eyJhbGciOiJSUzI1NiJ9", "grant_type");
	expect_masked("client_secret=ABCDEF123456&client_id=visible", "ABCDEF123456",
	              "client_id=visible");
	expect_masked("refresh_token: 5Aep861TSESvWeug_x", "5Aep861TSESvWeug_x", NULL);
	expect_masked("token: 5Aep861TSESvWeug_y", "5Aep861TSESvWeug_y", NULL);
	expect_masked("{\"token\": \"Zq8-very-secret\"}", "Zq8-very-secret", NULL);
	expect_masked("X-Optsync-Admin: alice:tok-12345678", "tok-12345678", "X-Optsync-Admin");
	expect_masked("key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0\n-----END PRIVATE "
	              "KEY----- after",
	              "MIIEvQIBADANBgkqhkiG9w0", "after");
	expect_masked("cut -----BEGIN RSA PRIVATE KEY-----\nMIIEvQIBADANBgkq", "MIIEvQIBADANBgkq",
	              "cut");
}

static void test_registered_secret(void **state)
{
	assert_int_equal(log_add_secret("hunter2-long-secret", 19), 0);
	expect_masked("the value hunter2-long-secret appears twice: hunter2-long-secret.",
	              "hunter2-long-secret", "appears twice");
	log_forget_secrets();
	char *out = redacted("hunter2-long-secret");
	assert_string_equal(out, "hunter2-long-secret");
	free(out);
	/* too short to mask safely: ignored */
	assert_int_equal(log_add_secret("abc", 3), 0);
	out = redacted("abc");
	assert_string_equal(out, "abc");
	free(out);
}

static void test_plain_text_untouched(void **state)
{
	const char *msgs[] = {
	    "pulled 2000 Contact records in 0.4s", "token endpoint answered 400 invalid_grant",
	    "secret_file /run/secrets/x is group-readable", "config.toml:3: unknown key 'token'",
	    /* file names that end in a secret's name are not credentials */
	    "secret file /run/secrets/optsync-api-token: mode 644 lets group or others read it",
	    "cannot read /etc/optsync/webhook.secret: permission denied",
	    "the file sf_token: mode 640", "x-signature: not a header we mask"};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		char *out = redacted(msgs[i]);
		assert_string_equal(out, msgs[i]);
		free(out);
	}
}

/* Every line the writer emits, at every level, in both formats, is
 * redacted. */
static void test_writer_redacts(void **state)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	log_add_secret("PLANTED-SECRET-VALUE", 20);
	for (int fmt = 0; fmt < 2; fmt++) {
		log_setup(LOG_DEBUG, fmt ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT, fds[1]);
		log_error("t.e", "error PLANTED-SECRET-VALUE");
		log_warn("t.w", "Authorization: Bearer sk-live-9f8e7d6c5b4a");
		log_info("t.i", "access_token=abcdefghijklmnop");
		log_debug("t.d", "body {\"client_secret\": \"zyxwvutsrq\"}");
	}
	log_setup(LOG_WARN, LOG_FORMAT_TEXT, fds[1]);
	log_info("t.hidden", "not shown");
	close(fds[1]);
	char buf[8192];
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	close(fds[0]);
	log_forget_secrets();
	log_setup(LOG_INFO, LOG_FORMAT_TEXT, 2);
	const char *secrets[] = {"PLANTED-SECRET-VALUE", "sk-live-9f8e7d6c5b4a", "abcdefghijklmnop",
	                         "zyxwvutsrq"};
	for (size_t i = 0; i < 4; i++)
		if (strstr(buf, secrets[i]))
			fail_msg("secret %s reached the log:\n%s", secrets[i], buf);
	int lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 8);
	assert_non_null(strstr(buf, "\"level\":\"debug\""));
	assert_null(strstr(buf, "not shown"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_patterns),
	    cmocka_unit_test(test_registered_secret),
	    cmocka_unit_test(test_plain_text_untouched),
	    cmocka_unit_test(test_writer_redacts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
