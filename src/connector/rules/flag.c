/* One decision for every boolean flag optsync reads on a Salesforce row and
 * remembers as last seen: HasOptedOutOfEmail, a purpose's opt-out or
 * opt-in checkbox, a consent row (docs/sync-rules.md, rules 1-3, P1, P2). */
#include "connector/rules/rules.h"

bool flag_is_news(enum flag_map map, const struct flag_seen *s)
{
	bool unchanged = s->before == (s->in ? 1 : 0);
	/* a dated opt-in read again may still be news: the person's status
	 * may have changed since (an opt-in box, a consent row) */
	return !unchanged || (map != FLAG_OPT_OUT_BOX && s->in && s->dated);
}

unsigned flag_decide(enum flag_map map, const struct flag_seen *s)
{
	unsigned a = s->before != (s->in ? 1 : 0) ? FLAG_CHANGED : 0;
	if (s->in) {
		if (s->status == LEDGER_PURPOSE_OUT) {
			/* rule 2, P2: back in after the opt-out; rule 3: new to
			 * optsync, set out; unchanged: our revert waits. A row
			 * optsync may not write takes neither. */
			if (!s->writable || s->before > 0)
				return a;
			if (s->before < 0)
				return a | FLAG_SET_OUT;
			return a | FLAG_CONFLICT | (s->revert ? FLAG_REVERT : 0);
		}
		/* an opt-out box unticked says no more than "not out"; the global
		 * opt-out overrides a purpose's opt-in (P2) */
		if (map == FLAG_OPT_OUT_BOX || s->status == LEDGER_PURPOSE_IN || s->global_out)
			return a;
		/* consent given in Salesforce counts, whenever it is read with its
		 * date; without it, it is named when first seen */
		if (s->dated)
			return a | FLAG_OPT_IN;
		return s->before == 1 ? a : a | FLAG_UNDATED;
	}
	if (map == FLAG_OPT_IN_BOX) {
		/* unticked is an opt-out only where it was ticked, after an opt-in;
		 * a record new to optsync unticked gets the person's opt-in */
		if (s->status != LEDGER_PURPOSE_IN)
			return a;
		if (s->before == 1)
			return a | FLAG_OPT_OUT;
		return s->before < 0 && s->writable ? a | FLAG_SET_IN : a;
	}
	/* out: an opt-out, unless the person is out already or it is what
	 * optsync last saw (or wrote) there */
	return s->before != 0 && s->status != LEDGER_PURPOSE_OUT ? a | FLAG_OPT_OUT : a;
}
