/* The Contact and Lead mapping: a record pulled from Salesforce becomes
 * the person's facts, flags and records (docs/sync-rules.md, rules 1-9),
 * inside the page's ledger transaction; the decisions are
 * connector/rules' (flag_decide, facts_decide). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "connector/mappings/mappings.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timefmt.h"

/* ---- reading a Salesforce record ---- */

static int text_field(const struct sf_record *r, const char *name, char *dst, size_t cap,
                      uint32_t bit, struct ledger_facts *f, uint32_t *invalid, uint32_t group)
{
	const struct sf_value *v = sf_record_get(r, name);
	dst[0] = '\0';
	if (v == NULL || v->type == SF_NULL)
		return 0;
	if (v->type != SF_STRING || strlen(v->str) >= cap) {
		*invalid |= group;
		return 0;
	}
	memcpy(dst, v->str, strlen(v->str) + 1);
	if (dst[0])
		f->mask |= bit;
	return 1;
}

void read_sf_record(const struct config *cfg, const struct sf_record *r, int64_t now,
                    struct ledger_facts *f, uint32_t *invalid, char *raw, size_t rawcap)
{
	const struct config_fields *fl = &cfg->salesforce.fields;
	ledger_facts_init(f);
	*invalid = 0;
	raw[0] = '\0';
	const struct sf_value *v = sf_record_get(r, fl->opted_out);
	if (v && v->type == SF_BOOL) {
		f->mask |= LEDGER_F_OPTED_OUT;
		f->opted_out = v->b;
	}
	v = sf_record_get(r, fl->authorization_type);
	if (v && v->type == SF_STRING && v->str[0]) {
		int t = map_auth_from_sf(cfg, v->str);
		if (t < 0) {
			*invalid |= AUTH_GROUP;
			snprintf(raw, rawcap, "%s", v->str);
		} else {
			f->mask |= LEDGER_F_AUTH_TYPE;
			f->auth_type = (uint8_t)t;
		}
	}
	v = sf_record_get(r, fl->consent_date);
	if (v && v->type == SF_STRING && v->str[0]) {
		int64_t ms;
		if (time_parse(v->str, &ms)) {
			*invalid |= AUTH_GROUP;
			snprintf(raw, rawcap, "consent date %s", v->str);
		} else {
			f->mask |= LEDGER_F_CONSENT_DATE;
			f->consent_date = ms;
		}
	}
	text_field(r, fl->purpose, f->purpose, sizeof(f->purpose), LEDGER_F_PURPOSE, f, invalid,
	           AUTH_GROUP);
	text_field(r, fl->authorization_other, f->auth_other, sizeof(f->auth_other),
	           LEDGER_F_AUTH_OTHER, f, invalid, AUTH_GROUP);
	v = sf_record_get(r, fl->source_type);
	if (v && v->type == SF_STRING && v->str[0]) {
		int t = map_source_from_sf(cfg, v->str);
		if (t < 0) {
			*invalid |= SOURCE_GROUP;
			snprintf(raw, rawcap, "%s", v->str);
		} else {
			f->mask |= LEDGER_F_SOURCE_TYPE;
			f->source_type = (uint8_t)t;
		}
	}
	text_field(r, fl->source_other, f->source_other, sizeof(f->source_other),
	           LEDGER_F_SOURCE_OTHER, f, invalid, SOURCE_GROUP);
	char why[200];
	if (!(*invalid & AUTH_GROUP) &&
	    !facts_valid(f, LEDGER_F_AUTH_TYPE, now, why, sizeof(why))) {
		*invalid |= AUTH_GROUP;
		facts_group_text(f, AUTH_GROUP, raw, rawcap);
		size_t n = strlen(raw);
		snprintf(raw + n, rawcap - n, " (%s)", why);
	}
	if (!(*invalid & SOURCE_GROUP) &&
	    !facts_valid(f, LEDGER_F_SOURCE_TYPE, now, why, sizeof(why))) {
		*invalid |= SOURCE_GROUP;
		facts_group_text(f, SOURCE_GROUP, raw, rawcap);
		size_t n = strlen(raw);
		snprintf(raw + n, rawcap - n, " (%s)", why);
	}
}

int purpose_spread(struct ledger_txn *t, const struct config *cfg, const struct ledger_person *p,
                   const struct ledger_recref *except, const char *purpose, bool out,
                   struct apply_stats *st, struct err *e)
{
	const struct config_purpose *cp = config_purpose_find(cfg, purpose);
	if (cp && (cp->sf_field || cp->sf_opt_in_field))
		return purpose_push_spread(t, p, except, purpose, out, cp->sf_opt_in_field != NULL,
		                           st, e);
	if (cp && cp->sf_data_use_purpose)
		return consent_spread(t, cfg, p, purpose, out, st, e);
	return 0;
}

/* ---- applying one Salesforce record ---- */

static void copy_str(char *dst, size_t cap, const struct sf_record *r, const char *name)
{
	const struct sf_value *v = sf_record_get(r, name);
	str_copy(dst, cap, v && v->type == SF_STRING ? v->str : "");
}

/* Whether copy_str would put into have something else than it holds. */
static bool str_differs(const char *have, size_t cap, const struct sf_record *r, const char *name)
{
	const struct sf_value *v = sf_record_get(r, name);
	const char *s = v && v->type == SF_STRING ? v->str : "";
	size_t n = strnlen(s, cap - 1);
	return n != strlen(have) || memcmp(have, s, n) != 0;
}

/* Whether r's names, company, title or phone differ from those rec keeps. */
static bool names_differ(const struct ledger_record *rec, const struct sf_record *r)
{
	return str_differs(rec->first_name, sizeof(rec->first_name), r, "FirstName") ||
	       str_differs(rec->last_name, sizeof(rec->last_name), r, "LastName") ||
	       str_differs(rec->company, sizeof(rec->company), r, "Company") ||
	       str_differs(rec->title, sizeof(rec->title), r, "Title") ||
	       str_differs(rec->phone, sizeof(rec->phone), r, "Phone");
}

/* A record's SystemModstamp, LastModifiedDate and CreatedDate are often the
 * same text, as are those of records saved in the same second: the last
 * text parsed (per thread) is not parsed again. */
int64_t record_time(const struct sf_record *r, const char *name)
{
	static _Thread_local char last[40];
	static _Thread_local int64_t last_ms;
	const struct sf_value *v = sf_record_get(r, name);
	if (v == NULL || v->type != SF_STRING)
		return 0;
	if (last[0] && strcmp(v->str, last) == 0)
		return last_ms;
	int64_t ms;
	if (time_parse(v->str, &ms))
		return 0;
	size_t n = strlen(v->str);
	if (n < sizeof(last)) {
		memcpy(last, v->str, n + 1);
		last_ms = ms;
	}
	return ms;
}

/* A purpose's consent date on a record (the opt-in box's date field): 0
 * when it has none, or none that is valid (not a date, in the future). */
static int64_t box_date(const struct sf_record *r, const char *field, int64_t now)
{
	const struct sf_value *v = sf_record_get(r, field);
	int64_t ms;
	if (v == NULL || v->type != SF_STRING || time_parse(v->str, &ms) || ms <= 0 ||
	    ms > now + FUTURE_TOLERANCE_MS)
		return 0;
	return ms;
}

/* P1 and P2 for purposes on checkboxes (flag_decide): an opt-out box
 * (salesforce = { field = ... }) ticked in Salesforce is an opt-out of the
 * purpose, spread to the person's other records, and unticked after that a
 * re-opt-in without evidence, a conflict under sync.resubscribe_policy; an
 * opt-in box (opt_in_field) ticked with its date is consent given in
 * Salesforce, and unticked after that an opt-out; a new record of a person
 * out of (or in) the purpose gets its box set so. */
static int apply_purpose_boxes(struct ledger_txn *t, const struct config *cfg, struct work *w,
                               const struct sf_record *r, const struct ledger_recref *ref,
                               int is_new, int new_person, int writable, int64_t sf_changed,
                               int64_t now, int *any_change, struct apply_stats *st, struct err *e)
{
	struct ledger_person *p = &w->p;
	struct ledger_record *rec = &w->rec;
	for (size_t i = 0; i < cfg->npurposes; i++) {
		const struct config_purpose *cp = &cfg->purposes[i];
		bool in_box = cp->sf_opt_in_field != NULL;
		const char *field = in_box ? cp->sf_opt_in_field : cp->sf_field;
		const struct sf_value *v = field ? sf_record_get(r, field) : NULL;
		if (v == NULL || v->type != SF_BOOL)
			continue;
		struct flag_seen s = {.in = in_box == v->b,
		                      .global_out = p->facts.opted_out,
		                      .writable = writable,
		                      .revert =
		                          cfg->sync.resubscribe_policy == CONFIG_RESUB_REVERT};
		enum flag_map map = in_box ? FLAG_OPT_IN_BOX : FLAG_OPT_OUT_BOX;
		/* the record's flag says out (ledger_pflags): 1 out, 0 in */
		int seen = ledger_pflags_get(&rec->seen_purposes, cp->name);
		if (ledger_pflags_set(&rec->seen_purposes, cp->name, !s.in))
			return err_set(e, ERR_LIMIT, "%s %s: more than %d purpose checkboxes",
			               ledger_object_name(ref->object), ref->id, LEDGER_PFLAGS_MAX);
		s.before = is_new || seen < 0 ? -1 : seen == 0 ? 1 : 0;
		int64_t date = in_box && s.in ? box_date(r, cp->sf_consent_date_field, now) : 0;
		s.dated = date != 0;
		/* unchanged since last read (or our own write), and no dated
		 * opt-in: nothing the person's status could make news */
		if (!flag_is_news(map, &s))
			continue;
		struct ledger_purpose cur;
		int rc =
		    new_person ? ERR_NOTFOUND : ledger_purpose_get(t, p->key, cp->name, &cur, e);
		if (rc == ERR_NOTFOUND) {
			memset(&cur, 0, sizeof(cur));
			rc = 0;
		}
		if (rc)
			return rc;
		s.status = cur.status;
		unsigned a = flag_decide(map, &s);
		if (a & (FLAG_CHANGED | FLAG_OPT_IN))
			*any_change = 1;
		if (a & FLAG_OPT_IN) {
			char ref_text[LEDGER_TEXT_MAX + 1];
			snprintf(ref_text, sizeof(ref_text), "salesforce:%s/%s.%s",
			         ledger_object_name(ref->object), ref->id, cp->sf_opt_in_field);
			if ((rc = purpose_optin_from_sf(t, p, &w->ev, ref, cp->name, date, ref_text,
			                                NULL, sf_changed, true, st, e)) ||
			    (rc = purpose_push_spread(t, p, ref, cp->name, false, true, st, e)))
				return rc;
		}
		if (a & FLAG_UNDATED)
			undated_note(st, ref->object, ref->id, cp->name, cp->sf_consent_date_field);
		if ((a & FLAG_OPT_OUT) &&
		    ((rc = purpose_optout_from_sf(t, p, &w->ev, ref, cp->name, NULL, sf_changed,
		                                  true, st, e)) ||
		     (rc = purpose_push_spread(t, p, ref, cp->name, true, in_box, st, e)) ||
		     (rc = push_queued_correct(t, p, ref, cp->name, true, st, e))))
			return rc;
		/* a record that appears for a person out of (in) the purpose */
		if ((a & (FLAG_SET_OUT | FLAG_SET_IN)) &&
		    (rc =
		         push_enqueue_purpose(t, p, ref, cp->name, (a & FLAG_SET_OUT) != 0, st, e)))
			return rc;
		if (a & FLAG_CONFLICT) {
			/* P2: back in in Salesforce without admin and evidence */
			rc =
			    conflict_add(t, p, ref, LEDGER_CONFLICT_RESUBSCRIBE, LEDGER_F_OPTED_OUT,
			                 "opted_out", "opted_in", false, "", now, cp->name, e);
			if (rc)
				return rc;
			st->resubscribe_conflicts++;
			if ((a & FLAG_REVERT) &&
			    (rc = push_enqueue_purpose(t, p, ref, cp->name, true, st, e)))
				return rc;
		}
	}
	return 0;
}

/* Rule 8: a record whose Email is no address optsync can take is refused
 * (parked by the caller), nothing written. The reason says what is wrong
 * without the value: a parked record belongs to no person whose erasure
 * would remove it. */
static int refuse_email(const struct err *ie, struct apply_stats *st, struct err *e)
{
	const char *why = strrchr(ie->msg, '(');
	size_t n = why ? strlen(why) : 0;
	st->refused = CONN_PARK_INVALID_EMAIL;
	return err_set(e, ERR_INVALID, "field Email holds no email address optsync can take%s%.*s",
	               n > 2 && why[n - 1] == ')' ? " " : "",
	               n > 2 && why[n - 1] == ')' ? (int)n : 0, why ? why : "");
}

int apply_sf_record(struct ledger_txn *t, struct ledger *l, const struct config *cfg, int object,
                    const struct sf_record *r, struct apply_stats *st, struct err *e)
{
	st->records++;
	const struct sf_value *deleted = sf_record_get(r, "IsDeleted");
	if (deleted && deleted->type == SF_BOOL && deleted->b) {
		struct work *w = malloc(sizeof(*w));
		if (w == NULL)
			return err_set(e, ERR_NOMEM, "out of memory");
		struct ledger_recref ref = {(uint8_t)object, ""};
		str_copy(ref.id, sizeof(ref.id), r->id);
		int rc = apply_sf_deleted(t, l, cfg, w, r, &ref, st, e);
		free(w);
		return rc;
	}
	char email[LEDGER_EMAIL_MAX + 1], raw[LEDGER_TEXT_MAX + 1];
	const struct sf_value *ev_email = sf_record_get(r, "Email");
	if (ev_email == NULL || ev_email->type != SF_STRING ||
	    ev_email->str[strspn(ev_email->str, " \t\r\n\v\f")] == '\0') {
		st->skipped_no_email++;
		return 0;
	}
	struct err ie;
	if (conn_email_normalize(ev_email->str, email, &ie))
		return refuse_email(&ie, st, e);
	struct work *w = malloc(sizeof(*w));
	if (w == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = 0;
	int64_t now = time_now_ms();
	int64_t modstamp = record_time(r, "SystemModstamp");
	int64_t sf_changed = record_time(r, "LastModifiedDate");
	if (sf_changed == 0)
		sf_changed = modstamp;
	struct ledger_recref ref = {(uint8_t)object, ""};
	str_copy(ref.id, sizeof(ref.id), r->id);

	/* the person */
	struct ledger_person *p = &w->p;
	ledger_person_key(l, email, strlen(email), p->key);
	rc = ledger_person_get(t, p->key, p, e);
	int new_person = rc == ERR_NOTFOUND;
	if (rc == ERR_NOTFOUND) {
		uint8_t key[LEDGER_KEY_LEN];
		memcpy(key, p->key, sizeof(key));
		memset(p, 0, sizeof(*p));
		memcpy(p->key, key, sizeof(key));
		ledger_facts_init(&p->facts);
		p->created_at = now;
		rc = 0;
	}
	if (rc)
		goto out;
	if (!(p->flags & LEDGER_PERSON_ERASED))
		str_copy(p->email, sizeof(p->email), email);

	/* the record as last seen */
	struct ledger_record *rec = &w->rec;
	rc = ledger_record_get(t, object, ref.id, rec, e);
	int is_new = rc == ERR_NOTFOUND;
	if (is_new) {
		memset(rec, 0, sizeof(*rec));
		rec->object = (uint8_t)object;
		memcpy(rec->id, ref.id, sizeof(rec->id));
		ledger_facts_init(&rec->seen);
		ledger_facts_init(&rec->written);
		rc = 0;
	}
	if (rc)
		goto out;
	/* the survivor of a merge, read for the first time (carry_to_master) */
	bool merge_pending = !is_new && (rec->flags & LEDGER_RECORD_MERGE_PENDING);
	struct carried merged = {false, {0}};
	if (merge_pending) {
		merged.out = rec->seen.opted_out;
		merged.purposes = rec->seen_purposes;
		memset(rec, 0, sizeof(*rec));
		rec->object = (uint8_t)object;
		memcpy(rec->id, ref.id, sizeof(rec->id));
		ledger_facts_init(&rec->seen);
		ledger_facts_init(&rec->written);
		is_new = 1;
	}
	if (!is_new && memcmp(rec->person, p->key, LEDGER_KEY_LEN) != 0) {
		/* Rule 9: the email changed in Salesforce, the record moves to
		 * this person */
		if ((rc = move_record(t, w, &ref, now, e)))
			goto out;
		is_new = 1; /* new to this person */
	}
	/* a record new to the person is linked to it (an index entry of its
	 * own: no limit on a person's records, the same cost for each) */
	if (is_new && (rc = ledger_person_record_add(t, p, &ref, e)))
		goto out;
	if (merge_pending) {
		/* the opt-outs of the persons merged into it go to its person, and
		 * to it: the pending entry (whose seen facts held them) goes first,
		 * so that the spread sees a record never read */
		if ((rc = ledger_record_delete(t, object, ref.id, e)))
			goto out;
		w->ev.record.id[0] = '\0';
		if ((rc = carry_optouts(t, cfg, w, &merged, p, &ref, st, e)))
			goto out;
		new_person = 0; /* it holds what was carried: read its statuses */
	}
	bool was_converted = (rec->flags & LEDGER_RECORD_CONVERTED) != 0;
	const struct sf_value *conv = sf_record_get(r, "IsConverted");
	if (conv && conv->type == SF_BOOL && conv->b)
		rec->flags |= LEDGER_RECORD_CONVERTED;
	else
		rec->flags &= ~LEDGER_RECORD_CONVERTED;
	int writable = !(rec->flags & LEDGER_RECORD_CONVERTED);

	uint32_t invalid;
	struct ledger_facts *sf = &w->sf;
	read_sf_record(cfg, r, now, sf, &invalid, raw, sizeof(raw));
	struct ledger_facts *seen = &rec->seen;
	int any_change = is_new;

	/* Rule 1, 2 and 3: the opt-out (flag_decide) */
	bool sf_out = (sf->mask & LEDGER_F_OPTED_OUT) && sf->opted_out;
	bool seen_known = (seen->mask & LEDGER_F_OPTED_OUT) != 0;
	struct flag_seen fs = {.in = !sf_out,
	                       .before = is_new || !seen_known ? -1
	                                 : seen->opted_out     ? 0
	                                                       : 1,
	                       .status =
	                           p->facts.opted_out ? LEDGER_PURPOSE_OUT : LEDGER_PURPOSE_NONE,
	                       .writable = writable,
	                       .revert = cfg->sync.resubscribe_policy == CONFIG_RESUB_REVERT};
	unsigned act = flag_decide(FLAG_OPT_OUT_BOX, &fs);
	if (act & FLAG_CHANGED)
		any_change = 1;
	if (act & FLAG_OPT_OUT) {
		p->facts.mask |= LEDGER_F_OPTED_OUT;
		p->facts.opted_out = true;
		p->opted_out_at = sf_changed ? sf_changed : now;
		p->optout_changed_at = p->opted_out_at;
		p->updated_at = now;
		event_about(&w->ev, LEDGER_EV_OPTOUT, LEDGER_ORIGIN_SALESFORCE, "salesforce", &ref,
		            now);
		w->ev.facts.mask = LEDGER_F_OPTED_OUT;
		w->ev.facts.opted_out = true;
		if ((rc = event_record_held(t, p, &w->ev, e)))
			goto out;
		st->optouts_in++;
		/* to the person's other records; and a write queued for this one
		 * that says opted in (queued before this opt-out) would undo it */
		if ((rc = push_spread(t, p, &ref, LEDGER_F_OPTED_OUT, st, e)) ||
		    (rc = push_queued_correct(t, p, &ref, NULL, true, st, e)))
			goto out;
	}
	if (act & FLAG_SET_OUT) {
		/* Rule 3: a record that appears for a suppressed person */
		st->suppressed_new++;
		if ((rc = push_enqueue(t, p, &ref, LEDGER_F_OPTED_OUT, true, st, e)))
			goto out;
	}
	if (act & FLAG_CONFLICT) {
		/* Rule 2: opted in in Salesforce without evidence */
		rc = conflict_add(t, p, &ref, LEDGER_CONFLICT_RESUBSCRIBE, LEDGER_F_OPTED_OUT,
		                  "opted_out", "opted_in", false, "", now, NULL, e);
		if (rc)
			goto out;
		st->resubscribe_conflicts++;
		if ((act & FLAG_REVERT) &&
		    (rc = push_enqueue(t, p, &ref, LEDGER_F_OPTED_OUT, true, st, e)))
			goto out;
	}

	if ((rc = apply_purpose_boxes(t, cfg, w, r, &ref, is_new, new_person, writable, sf_changed,
	                              now, &any_change, st, e)))
		goto out;
	if (consent_configured(cfg) && (rc = consent_follow_individual(t, cfg, p, r, st, e)))
		goto out;

	/* Rule 5: the compliance fields, one group at a time */
	static const struct {
		uint32_t group, typebit;
		int kind;
	} groups[] = {{AUTH_GROUP, LEDGER_F_AUTH_TYPE, LEDGER_EV_AUTHORIZATION},
	              {SOURCE_GROUP, LEDGER_F_SOURCE_TYPE, LEDGER_EV_SOURCE}};
	/* an erased person takes no compliance facts from Salesforce: erasure
	 * left none (ledger_person_erase), and its free texts are not stored
	 * again, as its records' names are not */
	bool erased = (p->flags & LEDGER_PERSON_ERASED) != 0;
	for (size_t gi = 0; gi < 2 && !erased; gi++) {
		uint32_t g = groups[gi].group, tb = groups[gi].typebit;
		uint32_t invflag = tb == LEDGER_F_AUTH_TYPE ? LEDGER_RECORD_INVALID_AUTH
		                                            : LEDGER_RECORD_INVALID_SOURCE;
		char local[LEDGER_TEXT_MAX + 1]; /* written when a conflict needs it */
		int64_t local_at =
		    tb == LEDGER_F_AUTH_TYPE ? p->auth_changed_at : p->source_changed_at;
		struct facts_seen gs = {.invalid = (invalid & g) != 0,
		                        .raised = (rec->flags & invflag) != 0,
		                        .sf_has = (sf->mask & g) != 0,
		                        .seen_has = (seen->mask & g) != 0,
		                        .is_new = is_new,
		                        .unchanged = facts_group_equal(sf, seen, tb),
		                        .agrees = facts_group_equal(sf, &p->facts, tb),
		                        .person_has = (p->facts.mask & tb) != 0,
		                        .writable = writable,
		                        .queued = -1,
		                        .sf_newer = sf_changed > local_at};
		enum facts_action fa = facts_decide(&gs);
		if (fa == FACTS_NEED_QUEUED) {
			int rq = ledger_push_get(t, object, ref.id, &w->q, e);
			if (rq && rq != ERR_NOTFOUND) {
				rc = rq;
				goto out;
			}
			gs.queued = rq == 0 && (w->q.want.mask & tb);
			fa = facts_decide(&gs);
		}
		if (!gs.invalid)
			rec->flags &= ~invflag;
		if (fa != FACTS_KEEP && fa != FACTS_FILL)
			any_change = 1;
		if (fa == FACTS_KEEP || fa == FACTS_AGREES)
			continue;
		if (fa == FACTS_INVALID) {
			rec->flags |= invflag;
			facts_group_text(&p->facts, g, local, sizeof(local));
			rc = conflict_add(t, p, &ref, LEDGER_CONFLICT_INVALID_VALUE, tb, local, raw,
			                  false, "", now, NULL, e);
			if (rc)
				goto out;
			st->invalid_conflicts++;
			continue;
		}
		if (fa == FACTS_FILL) {
			if ((rc = push_enqueue(t, p, &ref, g, p->facts.opted_out, st, e)))
				goto out;
			continue;
		}
		if (fa == FACTS_CONCURRENT_SF || fa == FACTS_CONCURRENT_LOCAL) {
			bool sf_wins = fa == FACTS_CONCURRENT_SF;
			char sftext[LEDGER_TEXT_MAX + 1];
			facts_group_text(sf, g, sftext, sizeof(sftext));
			facts_group_text(&p->facts, g, local, sizeof(local));
			rc = conflict_add(t, p, &ref, LEDGER_CONFLICT_CONCURRENT, tb, local, sftext,
			                  true, sf_wins ? "salesforce_newer" : "local_newer", now,
			                  NULL, e);
			if (rc)
				goto out;
			st->concurrent_conflicts++;
			if (!sf_wins)
				continue; /* the queued local value will be written */
			w->q.want.mask &= ~g;
			rc = w->q.want.mask || w->q.want_purposes.n
			         ? ledger_push_put(t, &w->q, e)
			         : ledger_push_delete(t, object, ref.id, e);
			if (rc)
				goto out;
		}
		facts_copy_group(&p->facts, sf, g);
		if (tb == LEDGER_F_AUTH_TYPE)
			p->auth_changed_at = sf_changed;
		else
			p->source_changed_at = sf_changed;
		p->updated_at = now;
		event_about(&w->ev, groups[gi].kind, LEDGER_ORIGIN_SALESFORCE, "salesforce", &ref,
		            now);
		facts_copy_group(&w->ev.facts, sf, g);
		if ((rc = event_record_held(t, p, &w->ev, e)))
			goto out;
		st->facts_applied++;
		if ((rc = push_spread(t, p, &ref, tb, st, e)))
			goto out;
	}
	if (!any_change)
		st->echoes++; /* nothing new: often our own write read back */

	/* remember what Salesforce holds now (an invalid group keeps the last
	 * valid values seen) */
	if (invalid & AUTH_GROUP)
		facts_copy_group(sf, seen, AUTH_GROUP);
	if (invalid & SOURCE_GROUP)
		facts_copy_group(sf, seen, SOURCE_GROUP);
	if (erased) {
		sf->mask &= ~(AUTH_GROUP | SOURCE_GROUP);
		sf->auth_type = sf->source_type = 0;
		sf->consent_date = 0;
		sf->purpose[0] = sf->auth_other[0] = sf->source_other[0] = '\0';
	}
	/* the record changed in Salesforce since it was last read (an edit, a
	 * validation rule fixed): a push parked on it may go through now, so
	 * this cycle's drain tries it again. SystemModstamp keeps whole
	 * seconds: read again at the same one, the record changed when it
	 * reads otherwise, and may have when the push was refused in that
	 * second (push_release_on_read) */
	if (!writable) {
		/* a converted Lead takes no write (Salesforce refuses it:
		 * CANNOT_UPDATE_CONVERTED_LEAD): one queued before is dropped; the
		 * person's records that can be written got theirs */
		rc = ledger_push_delete(t, object, ref.id, e);
		if (rc && rc != ERR_NOTFOUND)
			goto out;
		rc = 0;
	} else if (!is_new && modstamp >= rec->modstamp) {
		bool reads_otherwise = any_change || sf_changed != rec->sf_modified ||
		                       was_converted != !writable ||
		                       (!(p->flags & LEDGER_PERSON_ERASED) && names_differ(rec, r));
		if ((rc = push_release_on_read(t, &ref, modstamp,
		                               modstamp > rec->modstamp || reads_otherwise, e)))
			goto out;
	}
	rec->seen = *sf;
	memcpy(rec->person, p->key, LEDGER_KEY_LEN);
	rec->modstamp = modstamp;
	rec->sf_created = record_time(r, "CreatedDate");
	rec->sf_modified = sf_changed;
	if (!(p->flags & LEDGER_PERSON_ERASED)) {
		copy_str(rec->first_name, sizeof(rec->first_name), r, "FirstName");
		copy_str(rec->last_name, sizeof(rec->last_name), r, "LastName");
		copy_str(rec->company, sizeof(rec->company), r, "Company");
		copy_str(rec->title, sizeof(rec->title), r, "Title");
		copy_str(rec->phone, sizeof(rec->phone), r, "Phone");
	}
	if ((rc = ledger_record_put(t, rec, e)))
		goto out;
	if (p->created_at == 0)
		p->created_at = now;
	rc = ledger_person_put(t, p, e);
out:
	free(w);
	return rc;
}
