/* Rule 5: the compliance fields (authorization, source), decided and
 * checked without the ledger. */
#include <stdio.h>
#include <string.h>

#include "connector/rules/rules.h"
#include "util/timefmt.h"

enum facts_action facts_decide(const struct facts_seen *s)
{
	if (s->invalid)
		/* not applied; raised once until the value changes */
		return s->raised ? FACTS_KEEP : FACTS_INVALID;
	if (!s->sf_has && s->is_new && s->person_has && s->writable)
		return FACTS_FILL; /* a new record without these facts gets the person's */
	if (!s->sf_has && !s->seen_has)
		return FACTS_KEEP; /* nothing on either side */
	if (!s->is_new && s->unchanged)
		return FACTS_KEEP; /* unchanged since optsync last read it */
	if (s->agrees)
		return FACTS_AGREES;
	/* both sides changed? a local change still queued for this record */
	if (s->queued < 0)
		return FACTS_NEED_QUEUED;
	if (s->queued)
		return s->sf_newer ? FACTS_CONCURRENT_SF : FACTS_CONCURRENT_LOCAL;
	return FACTS_APPLY;
}

static int auth_equal(const struct ledger_facts *a, const struct ledger_facts *b)
{
	int ta = (a->mask & LEDGER_F_AUTH_TYPE) ? a->auth_type : 0;
	int tb = (b->mask & LEDGER_F_AUTH_TYPE) ? b->auth_type : 0;
	int64_t da = (a->mask & LEDGER_F_CONSENT_DATE) ? a->consent_date : 0;
	int64_t db = (b->mask & LEDGER_F_CONSENT_DATE) ? b->consent_date : 0;
	const char *pa = (a->mask & LEDGER_F_PURPOSE) ? a->purpose : "";
	const char *pb = (b->mask & LEDGER_F_PURPOSE) ? b->purpose : "";
	const char *oa = (a->mask & LEDGER_F_AUTH_OTHER) ? a->auth_other : "";
	const char *ob = (b->mask & LEDGER_F_AUTH_OTHER) ? b->auth_other : "";
	/* Salesforce keeps whole seconds at best: compare dates to the second */
	return ta == tb && da / 1000 == db / 1000 && strcmp(pa, pb) == 0 && strcmp(oa, ob) == 0;
}

static int source_equal(const struct ledger_facts *a, const struct ledger_facts *b)
{
	int ta = (a->mask & LEDGER_F_SOURCE_TYPE) ? a->source_type : 0;
	int tb = (b->mask & LEDGER_F_SOURCE_TYPE) ? b->source_type : 0;
	const char *oa = (a->mask & LEDGER_F_SOURCE_OTHER) ? a->source_other : "";
	const char *ob = (b->mask & LEDGER_F_SOURCE_OTHER) ? b->source_other : "";
	return ta == tb && strcmp(oa, ob) == 0;
}

int facts_group_equal(const struct ledger_facts *a, const struct ledger_facts *b, uint32_t group)
{
	return ((group & LEDGER_F_AUTH_TYPE) == 0 || auth_equal(a, b)) &&
	       ((group & LEDGER_F_SOURCE_TYPE) == 0 || source_equal(a, b));
}

/* src's text field of bit, or "" when src has none */
static const char *text_of(const struct ledger_facts *src, uint32_t bit, const char *s)
{
	return (src->mask & bit) ? s : "";
}

void facts_copy_group(struct ledger_facts *dst, const struct ledger_facts *src, uint32_t group)
{
	dst->mask = (dst->mask & ~group) | (src->mask & group) | group;
	if (group & LEDGER_F_OPTED_OUT)
		dst->opted_out = (src->mask & LEDGER_F_OPTED_OUT) ? src->opted_out : false;
	if (group & LEDGER_F_AUTH_TYPE) {
		dst->auth_type = (src->mask & LEDGER_F_AUTH_TYPE) ? src->auth_type : 0;
		dst->consent_date = (src->mask & LEDGER_F_CONSENT_DATE) ? src->consent_date : 0;
		const char *p = text_of(src, LEDGER_F_PURPOSE, src->purpose);
		memmove(dst->purpose, p, strlen(p) + 1);
		const char *o = text_of(src, LEDGER_F_AUTH_OTHER, src->auth_other);
		memmove(dst->auth_other, o, strlen(o) + 1);
	}
	if (group & LEDGER_F_SOURCE_TYPE) {
		dst->source_type = (src->mask & LEDGER_F_SOURCE_TYPE) ? src->source_type : 0;
		const char *o = text_of(src, LEDGER_F_SOURCE_OTHER, src->source_other);
		memmove(dst->source_other, o, strlen(o) + 1);
	}
}

void facts_group_text(const struct ledger_facts *f, uint32_t group, char *out, size_t cap)
{
	if (group == LEDGER_F_OPTED_OUT) {
		snprintf(out, cap, "%s",
		         (f->mask & LEDGER_F_OPTED_OUT) && f->opted_out ? "opted_out" : "opted_in");
		return;
	}
	if (group & LEDGER_F_AUTH_TYPE) {
		const char *t =
		    (f->mask & LEDGER_F_AUTH_TYPE) ? ledger_auth_name(f->auth_type) : NULL;
		char d[TIME_STR_MAX] = "";
		if ((f->mask & LEDGER_F_CONSENT_DATE) && f->consent_date)
			time_format(f->consent_date, d);
		snprintf(out, cap, "%s%s%s%s%s%s%s", t ? t : "(none)", d[0] ? " " : "", d,
		         f->purpose[0] ? " purpose=" : "", f->purpose,
		         f->auth_other[0] ? " other=" : "", f->auth_other);
		return;
	}
	const char *t =
	    (f->mask & LEDGER_F_SOURCE_TYPE) ? ledger_source_name(f->source_type) : NULL;
	snprintf(out, cap, "%s%s%s", t ? t : "(none)", f->source_other[0] ? " other=" : "",
	         f->source_other);
}

static int invalid(char *why, size_t cap, const char *reason)
{
	snprintf(why, cap, "%s", reason);
	return 0;
}

int facts_valid(const struct ledger_facts *f, uint32_t groups, int64_t now, char *why, size_t cap)
{
	if (groups & LEDGER_F_AUTH_TYPE) {
		int type = (f->mask & LEDGER_F_AUTH_TYPE) ? f->auth_type : 0;
		int has_date = (f->mask & LEDGER_F_CONSENT_DATE) && f->consent_date != 0;
		int has_purpose = (f->mask & LEDGER_F_PURPOSE) && f->purpose[0];
		int has_other = (f->mask & LEDGER_F_AUTH_OTHER) && f->auth_other[0];
		if (type == LEDGER_AUTH_CONSENT && (!has_date || !has_purpose))
			return invalid(why, cap,
			               "authorization type consent needs a consent date and a "
			               "purpose");
		if (type != LEDGER_AUTH_CONSENT && (has_date || has_purpose))
			return invalid(why, cap,
			               "a consent date and a purpose go only with authorization "
			               "type consent");
		if (has_date && f->consent_date > now + FUTURE_TOLERANCE_MS)
			return invalid(why, cap, "the consent date is in the future");
		if (type == LEDGER_AUTH_OTHER && !has_other)
			return invalid(why, cap,
			               "authorization type other needs a description (other)");
		if (type != LEDGER_AUTH_OTHER && has_other)
			return invalid(why, cap,
			               "an authorization description (other) goes only with "
			               "type other");
	}
	if (groups & LEDGER_F_SOURCE_TYPE) {
		int type = (f->mask & LEDGER_F_SOURCE_TYPE) ? f->source_type : 0;
		int has_other = (f->mask & LEDGER_F_SOURCE_OTHER) && f->source_other[0];
		if (type == LEDGER_SOURCE_OTHER && !has_other)
			return invalid(why, cap, "source type other needs a description");
		if (type != LEDGER_SOURCE_OTHER && has_other)
			return invalid(why, cap,
			               "a source description goes only with source type other");
	}
	return 1;
}
