/* The pages and texts of the public unsubscribe listener, in every
 * language it speaks (one string table per language, pages.c). Everything
 * printed is HTML-escaped; no page needs JavaScript or loads anything from
 * elsewhere. */
#ifndef OPTSYNC_PUBLIC_PAGES_H
#define OPTSYNC_PUBLIC_PAGES_H

#include <stdbool.h>

#include "config/config.h"
#include "util/buf.h"

/* The language of Accept-Language's most preferred one we speak, else
 * dflt. */
enum config_language page_language(const char *accept_language, enum config_language dflt);

/* The Content-Security-Policy every page is sent with: nothing from
 * elsewhere, the one inline style by its hash, frame-ancestors 'none',
 * form-action 'self'. */
const char *page_csp(void);

struct page_site {
	const char *organization, *privacy_url;
};

/* A purpose the confirm page offers to leave on its own. */
struct page_purpose {
	const char *name;  /* the form's value */
	const char *label; /* in the page's language */
};

enum page_kind {
	PAGE_CONFIRM,       /* GET: the Unsubscribe button; changes nothing */
	PAGE_DONE,          /* after the form's POST */
	PAGE_INVALID,       /* 400: not a valid link */
	PAGE_EXPIRED,       /* 400: too old */
	PAGE_RETRY,         /* 503: could not record it now */
	PAGE_DONE_PURPOSES, /* after leaving chosen purposes */
};
/* The page into b (appended). masked: the masked email (PAGE_CONFIRM and
 * PAGE_DONE only). ERR_NOMEM or ERR_LIMIT from b. */
int page_render(struct buf *b, enum page_kind kind, enum config_language lang,
                const struct page_site *site, const char *masked,
                const struct page_purpose *purposes, size_t npurposes, struct err *e);
/* A purpose's label in lang: its own, else English, else its name. */
const char *page_purpose_label(const char *const labels[CONFIG_LANG_COUNT], const char *name,
                               enum config_language lang);
/* The plain-text answer to a one-click POST. */
const char *page_one_click_text(enum config_language lang);

#endif
