/* The public listener's pages (escaping, languages, the CSP's style hash)
 * and form bodies (both content types, limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "public/form.h"
#include "public/pages.h"

static void test_language(void **state)
{
	(void)state;
	assert_int_equal(page_language(NULL, CONFIG_LANG_SV), CONFIG_LANG_SV);
	assert_int_equal(page_language("", CONFIG_LANG_NL), CONFIG_LANG_NL);
	assert_int_equal(page_language("nl-BE", CONFIG_LANG_EN), CONFIG_LANG_NL);
	assert_int_equal(page_language("fr-FR,fr;q=0.9,sv;q=0.8,en;q=0.7", CONFIG_LANG_EN),
	                 CONFIG_LANG_SV);
	assert_int_equal(page_language("en;q=0.2, NL;q=0.9", CONFIG_LANG_SV), CONFIG_LANG_NL);
	assert_int_equal(page_language("de, fr", CONFIG_LANG_NL), CONFIG_LANG_NL);
	assert_int_equal(page_language("sv;q=0, en", CONFIG_LANG_NL), CONFIG_LANG_EN);
	assert_int_equal(page_language("english", CONFIG_LANG_NL), CONFIG_LANG_NL);
	assert_int_equal(page_language("*", CONFIG_LANG_SV), CONFIG_LANG_SV);
}

static char *render(enum page_kind k, enum config_language lang, const char *org,
                    const char *masked, struct buf *b)
{
	struct err e;
	const struct page_site site = {org, "https://example.com/privacy?a=1&b=\"2\""};
	buf_init(b, 1 << 20);
	assert_int_equal(page_render(b, k, lang, &site, masked, NULL, 0, &e), 0);
	assert_int_equal(buf_putc(b, '\0', &e), 0);
	return b->data;
}

static void test_escaping(void **state)
{
	(void)state;
	struct buf b;
	char *html = render(PAGE_CONFIRM, CONFIG_LANG_EN, "A&B <Corp> \"Ltd\" 'x'",
	                    "\"***@<script>&.example", &b);
	assert_non_null(strstr(html, "A&amp;B &lt;Corp&gt; &quot;Ltd&quot; &#39;x&#39;"));
	assert_non_null(strstr(html, "&quot;***@&lt;script&gt;&amp;.example"));
	assert_non_null(
	    strstr(html, "href=\"https://example.com/privacy?a=1&amp;b=&quot;2&quot;\""));
	assert_null(strstr(html, "<script"));
	assert_non_null(strstr(html, "<html lang=\"en\">"));
	assert_non_null(strstr(html, "<form method=\"post\">"));
	assert_non_null(strstr(html, "name=\"action\" value=\"unsubscribe\""));
	buf_free(&b);
	/* the invalid page names no person and has no form */
	html = render(PAGE_INVALID, CONFIG_LANG_SV, "Org", NULL, &b);
	assert_non_null(strstr(html, "<html lang=\"sv\">"));
	assert_non_null(strstr(html, "Länken är inte giltig"));
	assert_null(strstr(html, "<form"));
	assert_null(strstr(html, "***"));
	buf_free(&b);
	html = render(PAGE_DONE, CONFIG_LANG_NL, "Org", "a***@b.nl", &b);
	assert_non_null(strstr(html, "U bent afgemeld"));
	assert_non_null(strstr(html, "<strong>a***@b.nl</strong>"));
	buf_free(&b);
	assert_string_equal(page_one_click_text(CONFIG_LANG_EN), "You are unsubscribed.\n");
}

/* The purposes to leave one by one: a labelled checkbox each, escaped. */
static void test_purposes(void **state)
{
	(void)state;
	struct buf b;
	struct err e;
	const struct page_site site = {"Org", "https://example.com/p"};
	const struct page_purpose ps[] = {{"news", "A<B & \"C\""}, {"events", "Events"}};
	buf_init(&b, 1 << 20);
	assert_int_equal(
	    page_render(&b, PAGE_CONFIRM, CONFIG_LANG_EN, &site, "a***@b.c", ps, 2, &e), 0);
	assert_int_equal(buf_putc(&b, '\0', &e), 0);
	assert_non_null(strstr(b.data, "<input type=\"checkbox\" id=\"p-news\" name=\"purpose\" "
	                               "value=\"news\"><label for=\"p-news\">A&lt;B &amp; "
	                               "&quot;C&quot;</label>"));
	assert_non_null(strstr(b.data, "name=\"action\" value=\"purposes\""));
	assert_non_null(strstr(b.data, "<legend>Or leave only some of our emails:</legend>"));
	buf_free(&b);
	const char *labels[CONFIG_LANG_COUNT] = {"Newsletter", NULL, "Nyhetsbrev"};
	assert_string_equal(page_purpose_label(labels, "n", CONFIG_LANG_SV), "Nyhetsbrev");
	assert_string_equal(page_purpose_label(labels, "n", CONFIG_LANG_NL), "Newsletter");
	const char *none[CONFIG_LANG_COUNT] = {NULL, NULL, NULL};
	assert_string_equal(page_purpose_label(none, "n", CONFIG_LANG_NL), "n");
	struct form f;
	const char *body = "action=purposes&purpose=news&purpose=events";
	assert_int_equal(form_parse("application/x-www-form-urlencoded", body, strlen(body), &f),
	                 0);
	assert_true(f.leave_purposes);
	assert_int_equal(f.npurposes, 2);
}

/* The CSP allows exactly the page's style, by its SHA-256. */
static void test_csp_hash(void **state)
{
	(void)state;
	struct buf b;
	char *html = render(PAGE_CONFIRM, CONFIG_LANG_EN, "Org", "a***@b.c", &b);
	char *s = strstr(html, "<style>"), *end = strstr(html, "</style>");
	assert_non_null(s);
	assert_non_null(end);
	s += 7;
	unsigned char h[32], b64[64];
	unsigned int hl;
	assert_int_equal(EVP_Digest(s, (size_t)(end - s), h, &hl, EVP_sha256(), NULL), 1);
	EVP_EncodeBlock(b64, h, 32);
	char want[128];
	snprintf(want, sizeof(want), "style-src 'sha256-%s'", b64);
	assert_non_null(strstr(page_csp(), want));
	assert_non_null(strstr(page_csp(), "default-src 'none'"));
	assert_non_null(strstr(page_csp(), "frame-ancestors 'none'"));
	assert_non_null(strstr(page_csp(), "form-action 'self'"));
	buf_free(&b);
}

static void test_forms(void **state)
{
	(void)state;
	struct form f;
	const char *ue = "application/x-www-form-urlencoded";
	assert_int_equal(form_parse(ue, "List-Unsubscribe=One-Click", 26, &f), 0);
	assert_true(f.one_click);
	assert_false(f.unsubscribe);
	assert_int_equal(form_parse("Application/X-WWW-Form-Urlencoded; charset=UTF-8",
	                            "List-Unsubscribe=One%2dClick", 28, &f),
	                 0);
	assert_true(f.one_click);
	const char *body = "action=unsubscribe&purpose=news&purpose=events&purpose=news&x=%41";
	assert_int_equal(form_parse(ue, body, strlen(body), &f), 0);
	assert_true(f.unsubscribe);
	assert_int_equal(f.npurposes, 2);
	assert_string_equal(f.purposes[1], "events");
	/* not the one-click value */
	assert_int_equal(form_parse(ue, "List-Unsubscribe=one-click", 26, &f), 0);
	assert_false(f.one_click);
	assert_int_equal(form_parse(ue, "a%zz=1", 6, &f), -1);
	assert_int_equal(form_parse("text/plain", "List-Unsubscribe=One-Click", 26, &f), -1);
	assert_int_equal(form_parse(NULL, "List-Unsubscribe=One-Click", 26, &f), -1);
	/* multipart, CRLF and LF, plain and quoted boundaries, a preamble */
	const char *mp = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; "
	                 "name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
	assert_int_equal(form_parse("multipart/form-data; boundary=XyZ", mp, strlen(mp), &f), 0);
	assert_true(f.one_click);
	const char *lf = "--q q\nContent-Type: text/plain\ncontent-disposition: form-data; "
	                 "name=action\n\nunsubscribe\n--q q--\n";
	assert_int_equal(form_parse("multipart/form-data; boundary=\"q q\"", lf, strlen(lf), &f),
	                 0);
	assert_true(f.unsubscribe);
	assert_int_equal(form_parse("multipart/form-data", mp, strlen(mp), &f), -1);
	assert_int_equal(form_parse("multipart/form-data; boundary=nope", mp, strlen(mp), &f), -1);
	const char *cut = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n";
	assert_int_equal(form_parse("multipart/form-data; boundary=XyZ", cut, strlen(cut), &f), -1);
	/* the size limit */
	static char big[FORM_BODY_MAX + 2];
	memset(big, 'a', sizeof(big));
	assert_int_equal(form_parse(ue, big, FORM_BODY_MAX + 1, &f), -1);
	assert_int_equal(form_parse(ue, big, FORM_BODY_MAX, &f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_language), cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_csp_hash), cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_purposes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
