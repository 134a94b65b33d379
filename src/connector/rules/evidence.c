/* The consent evidence a re-subscribe or a re-opt-in needs (rules 2, P2). */
#include <ctype.h>
#include <string.h>

#include "connector/connector.h"
#include "connector/rules/rules.h"
#include "util/timefmt.h"

int evidence_check(const struct conn_evidence *ev, int64_t now, struct err *e)
{
	if (ev->consent_date == 0 || ev->purpose == NULL || !*ev->purpose ||
	    ev->evidence_ref == NULL || !*ev->evidence_ref)
		return err_set(e, ERR_EVIDENCE,
		               "a re-subscribe needs new consent evidence: a consent date, a "
		               "purpose and an evidence reference");
	if (ev->consent_date > now + FUTURE_TOLERANCE_MS)
		return err_set(e, ERR_EVIDENCE, "the consent date is in the future");
	if (strlen(ev->purpose) > LEDGER_TEXT_MAX || strlen(ev->evidence_ref) > LEDGER_TEXT_MAX)
		return err_set(e, ERR_INVALID, "purpose or evidence reference longer than %d bytes",
		               LEDGER_TEXT_MAX);
	return evidence_check_sha256(ev->evidence_sha256, e);
}

int evidence_check_sha256(const char *sha, struct err *e)
{
	if (sha == NULL)
		return 0;
	size_t n = strlen(sha);
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)sha[i]))
			n = 0;
	if (n != 64)
		return err_set(e, ERR_INVALID, "evidence SHA-256 must be 64 hex digits");
	return 0;
}

int evidence_after(int64_t consent_date, int64_t out_at, const char *what, struct err *e)
{
	if (consent_date > out_at)
		return 0;
	char given[TIME_STR_MAX], at[TIME_STR_MAX];
	time_format(consent_date, given);
	time_format(out_at, at);
	return err_set(e, ERR_EVIDENCE,
	               "the consent date %s is not later than the opt-out of %s; evidence of "
	               "consent given before the opt-out cannot %s",
	               given, at, what);
}
