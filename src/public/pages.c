/* Pages and texts (pages.h). */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "public/pages.h"

/* ---- the strings, one table per language ---- */

/* {1} and {2} stand for the arguments, escaped; translations may order
 * them as their grammar needs. */
struct strings {
	const char *lang;
	const char *confirm_title, *confirm_heading, *confirm_text, *button, *confirm_note;
	const char *done_title, *done_text;
	const char *invalid_title, *invalid_text;
	const char *expired_title, *expired_text;
	const char *retry_title, *retry_text;
	const char *privacy_link;
	const char *one_click;
	const char *purposes_legend, *purposes_button, *done_purposes_text;
};

static const struct strings en = {
    .lang = "en",
    .confirm_title = "Unsubscribe",
    .confirm_heading = "Unsubscribe from email",
    .confirm_text = "Unsubscribe {1} from email from {2}?",
    .button = "Unsubscribe",
    .confirm_note = "Nothing changes until you press the button.",
    .done_title = "You are unsubscribed",
    .done_text = "{1} will no longer get email from {2}.",
    .invalid_title = "This link is not valid",
    .invalid_text = "This unsubscribe link is incomplete or was changed. To unsubscribe, "
                    "reply to the email or contact {2}.",
    .expired_title = "This link has expired",
    .expired_text = "This unsubscribe link is too old to use. To unsubscribe, reply to the "
                    "email or contact {2}.",
    .retry_title = "Please try again",
    .retry_text = "Your request could not be recorded just now. Please try again in a "
                  "minute.",
    .privacy_link = "Privacy information and contact details",
    .one_click = "You are unsubscribed.\n",
    .purposes_legend = "Or leave only some of our emails:",
    .purposes_button = "Leave the ones chosen",
    .done_purposes_text = "{1} will no longer get the chosen emails from {2}.",
};

static const struct strings nl = {
    .lang = "nl",
    .confirm_title = "Afmelden",
    .confirm_heading = "Afmelden voor e-mail",
    .confirm_text = "{1} afmelden voor e-mail van {2}?",
    .button = "Afmelden",
    .confirm_note = "Er verandert niets totdat u op de knop drukt.",
    .done_title = "U bent afgemeld",
    .done_text = "{1} krijgt geen e-mail meer van {2}.",
    .invalid_title = "Deze link is niet geldig",
    .invalid_text = "Deze afmeldlink is onvolledig of gewijzigd. Om u af te melden, "
                    "beantwoordt u de e-mail of neemt u contact op met {2}.",
    .expired_title = "Deze link is verlopen",
    .expired_text = "Deze afmeldlink is te oud. Om u af te melden, beantwoordt u de e-mail "
                    "of neemt u contact op met {2}.",
    .retry_title = "Probeer het opnieuw",
    .retry_text = "Uw verzoek kon nu niet worden vastgelegd. Probeer het over een minuut "
                  "opnieuw.",
    .privacy_link = "Privacyverklaring en contactgegevens",
    .one_click = "U bent afgemeld.\n",
    .purposes_legend = "Of meld u alleen af voor sommige e-mails:",
    .purposes_button = "Afmelden voor de gekozen e-mails",
    .done_purposes_text = "{1} krijgt de gekozen e-mails van {2} niet meer.",
};

static const struct strings sv = {
    .lang = "sv",
    .confirm_title = "Avregistrera",
    .confirm_heading = "Avregistrera dig från e-post",
    .confirm_text = "Vill du avregistrera {1} från e-post från {2}?",
    .button = "Avregistrera",
    .confirm_note = "Inget ändras förrän du trycker på knappen.",
    .done_title = "Du är avregistrerad",
    .done_text = "{1} får inte längre e-post från {2}.",
    .invalid_title = "Länken är inte giltig",
    .invalid_text = "Avregistreringslänken är ofullständig eller har ändrats. Svara på "
                    "e-postmeddelandet eller kontakta {2} för att avregistrera dig.",
    .expired_title = "Länken har slutat gälla",
    .expired_text = "Avregistreringslänken är för gammal. Svara på e-postmeddelandet eller "
                    "kontakta {2} för att avregistrera dig.",
    .retry_title = "Försök igen",
    .retry_text = "Din begäran kunde inte registreras just nu. Försök igen om en minut.",
    .privacy_link = "Integritetspolicy och kontaktuppgifter",
    .one_click = "Du är avregistrerad.\n",
    .purposes_legend = "Eller avregistrera dig bara från vissa e-postutskick:",
    .purposes_button = "Avregistrera från de valda",
    .done_purposes_text = "{1} får inte längre de valda e-postutskicken från {2}.",
};

static const struct strings *const tables[CONFIG_LANG_COUNT] = {&en, &nl, &sv};

/* ---- language ---- */

enum config_language page_language(const char *al, enum config_language dflt)
{
	if (al == NULL)
		return dflt;
	int best = -1;
	double best_q = 0;
	const char *p = al;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *tag = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ')
			p++;
		size_t tl = (size_t)(p - tag);
		double q = 1.0;
		while (*p && *p != ',') {
			if (*p == ';') {
				const char *s = p + 1;
				while (*s == ' ')
					s++;
				if ((s[0] == 'q' || s[0] == 'Q') && s[1] == '=') {
					char *end;
					q = strtod(s + 2, &end);
					if (end == s + 2 || q < 0 || q > 1)
						q = 0;
				}
			}
			p++;
		}
		/* the primary subtag: "nl" in "nl-BE" */
		size_t pl = strcspn(tag, "-_,; ");
		if (pl > tl)
			pl = tl;
		for (int i = 0; i < CONFIG_LANG_COUNT; i++)
			if (pl == strlen(tables[i]->lang) &&
			    strncasecmp(tag, tables[i]->lang, pl) == 0 && q > best_q) {
				best = i;
				best_q = q;
			}
	}
	return best >= 0 ? (enum config_language)best : dflt;
}

/* ---- style and policy ---- */

static const char css[] =
    "body{margin:0;font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
    "line-height:1.5;color:#1a1a1a;background:#fff}"
    "main{max-width:32rem;margin:0 auto;padding:2rem 1rem}"
    "h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}"
    "p{margin:0 0 1rem}"
    "button{font:inherit;font-size:1.125rem;padding:.75rem 1.5rem;min-height:44px;"
    "border:0;border-radius:.375rem;background:#1d4ed8;color:#fff;cursor:pointer}"
    "button:hover{background:#1e3a8a}"
    "button:focus-visible,a:focus-visible{outline:3px solid #b45309;outline-offset:2px}"
    "a{color:#1d4ed8}"
    ".note{color:#4b5563;font-size:.9375rem}"
    "fieldset{border:1px solid #6b7280;border-radius:.375rem;margin:0 0 1rem;padding:.75rem 1rem}"
    "legend{padding:0 .25rem}"
    ".choice{display:flex;align-items:center;gap:.5rem;min-height:44px}"
    ".choice input{width:1.5rem;height:1.5rem;margin:0}"
    "input:focus-visible{outline:3px solid #b45309;outline-offset:2px}"
    "button.secondary{background:#fff;color:#1d4ed8;border:2px solid #1d4ed8}"
    "button.secondary:hover{background:#eff6ff}";

static char csp[256];
static pthread_once_t csp_once = PTHREAD_ONCE_INIT;

static void csp_init(void)
{
	unsigned char h[32];
	unsigned char b64[64];
	unsigned int hl = 0;
	if (EVP_Digest(css, sizeof(css) - 1, h, &hl, EVP_sha256(), NULL) != 1 ||
	    EVP_EncodeBlock(b64, h, 32) <= 0) {
		/* no hash: no style, the page still works */
		snprintf(csp, sizeof(csp),
		         "default-src 'none'; form-action 'self'; frame-ancestors 'none'; "
		         "base-uri 'none'");
		return;
	}
	snprintf(csp, sizeof(csp),
	         "default-src 'none'; style-src 'sha256-%s'; form-action 'self'; "
	         "frame-ancestors 'none'; base-uri 'none'",
	         b64);
}

const char *page_csp(void)
{
	pthread_once(&csp_once, csp_init);
	return csp;
}

/* ---- rendering ---- */

static int put_escaped(struct buf *b, const char *s, struct err *e)
{
	const char *run = s;
	int rc = 0;
	for (; *s && rc == 0; s++) {
		const char *ent = NULL;
		switch (*s) {
		case '&':
			ent = "&amp;";
			break;
		case '<':
			ent = "&lt;";
			break;
		case '>':
			ent = "&gt;";
			break;
		case '"':
			ent = "&quot;";
			break;
		case '\'':
			ent = "&#39;";
			break;
		default:
			continue;
		}
		rc = buf_append(b, run, (size_t)(s - run), e);
		if (rc == 0)
			rc = buf_append(b, ent, strlen(ent), e);
		run = s + 1;
	}
	return rc ? rc : buf_append(b, run, strlen(run), e);
}

static int put(struct buf *b, const char *s, struct err *e)
{
	return buf_append(b, s, strlen(s), e);
}

/* tpl with {1} and {2} replaced by a1 and a2, escaped and in <strong>. */
static int put_tpl(struct buf *b, const char *tpl, const char *a1, const char *a2, struct err *e)
{
	int rc = 0;
	const char *p = tpl;
	while (rc == 0 && *p) {
		const char *m = strchr(p, '{');
		if (m == NULL || (m[1] != '1' && m[1] != '2') || m[2] != '}') {
			size_t n = m ? (size_t)(m - p) + 1 : strlen(p);
			rc = buf_append(b, p, n, e);
			p += n;
			continue;
		}
		rc = buf_append(b, p, (size_t)(m - p), e);
		if (rc == 0)
			rc = put(b, "<strong>", e);
		if (rc == 0)
			rc = put_escaped(b, m[1] == '1' ? (a1 ? a1 : "") : (a2 ? a2 : ""), e);
		if (rc == 0)
			rc = put(b, "</strong>", e);
		p = m + 3;
	}
	return rc;
}

/* The purposes to leave one by one: checkboxes in a fieldset, and their
 * own button. */
static int put_purposes(struct buf *b, const struct strings *t, const struct page_purpose *ps,
                        size_t n, struct err *e)
{
	int rc = put(b, "<form method=\"post\">\n<fieldset>\n<legend>", e);
	if (rc == 0)
		rc = put_escaped(b, t->purposes_legend, e);
	if (rc == 0)
		rc = put(b, "</legend>\n", e);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = put(b, "<div class=\"choice\"><input type=\"checkbox\" id=\"p-", e);
		if (rc == 0)
			rc = put_escaped(b, ps[i].name, e);
		if (rc == 0)
			rc = put(b, "\" name=\"purpose\" value=\"", e);
		if (rc == 0)
			rc = put_escaped(b, ps[i].name, e);
		if (rc == 0)
			rc = put(b, "\"><label for=\"p-", e);
		if (rc == 0)
			rc = put_escaped(b, ps[i].name, e);
		if (rc == 0)
			rc = put(b, "\">", e);
		if (rc == 0)
			rc = put_escaped(b, ps[i].label, e);
		if (rc == 0)
			rc = put(b, "</label></div>\n", e);
	}
	if (rc == 0)
		rc = put(b,
		         "</fieldset>\n<input type=\"hidden\" name=\"action\" value=\"purposes\">\n"
		         "<p><button type=\"submit\" class=\"secondary\">",
		         e);
	if (rc == 0)
		rc = put_escaped(b, t->purposes_button, e);
	if (rc == 0)
		rc = put(b, "</button></p>\n</form>\n", e);
	return rc;
}

int page_render(struct buf *b, enum page_kind kind, enum config_language lang,
                const struct page_site *site, const char *masked,
                const struct page_purpose *purposes, size_t npurposes, struct err *e)
{
	const struct strings *t = tables[lang < CONFIG_LANG_COUNT ? lang : 0];
	const char *title, *heading, *text;
	switch (kind) {
	case PAGE_CONFIRM:
		title = t->confirm_title;
		heading = t->confirm_heading;
		text = t->confirm_text;
		break;
	case PAGE_DONE:
		title = heading = t->done_title;
		text = t->done_text;
		break;
	case PAGE_DONE_PURPOSES:
		title = heading = t->done_title;
		text = t->done_purposes_text;
		break;
	case PAGE_INVALID:
		title = heading = t->invalid_title;
		text = t->invalid_text;
		break;
	case PAGE_EXPIRED:
		title = heading = t->expired_title;
		text = t->expired_text;
		break;
	default:
		title = heading = t->retry_title;
		text = t->retry_text;
		break;
	}
	int rc = put(b, "<!doctype html>\n<html lang=\"", e);
	if (rc == 0)
		rc = put(b, t->lang, e);
	if (rc == 0)
		rc =
		    put(b,
		        "\">\n<head>\n<meta charset=\"utf-8\">\n"
		        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		        "<meta name=\"robots\" content=\"noindex\">\n<title>",
		        e);
	if (rc == 0)
		rc = put_escaped(b, title, e);
	if (rc == 0)
		rc = put(b, " – ", e);
	if (rc == 0)
		rc = put_escaped(b, site->organization, e);
	if (rc == 0)
		rc = put(b, "</title>\n<style>", e);
	if (rc == 0)
		rc = put(b, css, e);
	if (rc == 0)
		rc = put(b, "</style>\n</head>\n<body>\n<main>\n<h1>", e);
	if (rc == 0)
		rc = put_escaped(b, heading, e);
	if (rc == 0)
		rc = put(b, "</h1>\n<p>", e);
	if (rc == 0)
		rc = put_tpl(b, text, masked, site->organization, e);
	if (rc == 0)
		rc = put(b, "</p>\n", e);
	if (rc == 0 && kind == PAGE_CONFIRM) {
		rc = put(b,
		         "<form method=\"post\">\n"
		         "<input type=\"hidden\" name=\"action\" value=\"unsubscribe\">\n"
		         "<p><button type=\"submit\">",
		         e);
		if (rc == 0)
			rc = put_escaped(b, t->button, e);
		if (rc == 0)
			rc = put(b, "</button></p>\n</form>\n", e);
		if (rc == 0 && npurposes)
			rc = put_purposes(b, t, purposes, npurposes, e);
		if (rc == 0)
			rc = put(b, "<p class=\"note\">", e);
		if (rc == 0)
			rc = put_escaped(b, t->confirm_note, e);
		if (rc == 0)
			rc = put(b, "</p>\n", e);
	}
	if (rc == 0)
		rc = put(b, "<p><a href=\"", e);
	if (rc == 0)
		rc = put_escaped(b, site->privacy_url, e);
	if (rc == 0)
		rc = put(b, "\">", e);
	if (rc == 0)
		rc = put_escaped(b, t->privacy_link, e);
	if (rc == 0)
		rc = put(b, "</a></p>\n</main>\n</body>\n</html>\n", e);
	return rc;
}

const char *page_purpose_label(const char *const labels[CONFIG_LANG_COUNT], const char *name,
                               enum config_language lang)
{
	if (lang < CONFIG_LANG_COUNT && labels[lang])
		return labels[lang];
	return labels[CONFIG_LANG_EN] ? labels[CONFIG_LANG_EN] : name;
}

const char *page_one_click_text(enum config_language lang)
{
	return tables[lang < CONFIG_LANG_COUNT ? lang : 0]->one_click;
}
