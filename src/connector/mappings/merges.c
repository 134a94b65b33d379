/* Deletes, merges and moved emails of Contacts and Leads: a merge's
 * opt-outs go to its survivor, a moved record to its new person (rule 9). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector/internal.h"
#include "util/log.h"
#include "util/timefmt.h"
#include "connector/mappings/mappings.h"

static int carried_of_person(struct ledger_txn *t, const struct config *cfg,
                             const struct ledger_person *p, struct carried *c, struct err *e)
{
	c->out = p->facts.opted_out;
	c->purposes.n = 0;
	for (size_t i = 0; i < cfg->npurposes; i++) {
		struct ledger_purpose cur;
		int g = ledger_purpose_get(t, p->key, cfg->purposes[i].name, &cur, e);
		if (g && g != ERR_NOTFOUND)
			return g;
		if (g == 0 && cur.status == LEDGER_PURPOSE_OUT)
			ledger_pflags_set(&c->purposes, cfg->purposes[i].name, true);
	}
	return 0;
}

/* After a merge, the survivor's person (mp: another email, now known to be
 * the same human) takes over the opt-outs c, spread to all its records. */
int carry_optouts(struct ledger_txn *t, const struct config *cfg, struct work *w,
                  const struct carried *c, struct ledger_person *mp,
                  const struct ledger_recref *master, struct apply_stats *st, struct err *e)
{
	int64_t now = time_now_ms();
	char why[LEDGER_TEXT_MAX + 1];
	if (w->ev.record.id[0])
		snprintf(why, sizeof(why), "carried over from %s %s, merged into %s %s",
		         ledger_object_name(w->ev.record.object), w->ev.record.id,
		         ledger_object_name(master->object), master->id);
	else
		snprintf(why, sizeof(why),
		         "carried over from a record merged into %s %s before optsync read it",
		         ledger_object_name(master->object), master->id);
	int rc = 0;
	if (c->out && !mp->facts.opted_out) {
		mp->facts.mask |= LEDGER_F_OPTED_OUT;
		mp->facts.opted_out = true;
		mp->opted_out_at = mp->optout_changed_at = mp->updated_at = now;
		event_about(&w->ev, LEDGER_EV_OPTOUT, LEDGER_ORIGIN_SALESFORCE, "salesforce",
		            master, now);
		w->ev.facts.mask = LEDGER_F_OPTED_OUT;
		w->ev.facts.opted_out = true;
		snprintf(w->ev.reason, sizeof(w->ev.reason), "%s", why);
		if ((rc = event_record(t, mp, &w->ev, e)) ||
		    (rc = push_spread(t, mp, NULL, LEDGER_F_OPTED_OUT, st, e)))
			return rc;
		st->optouts_in++;
	}
	for (size_t i = 0; rc == 0 && i < cfg->npurposes; i++) {
		const char *name = cfg->purposes[i].name;
		struct ledger_purpose theirs;
		if (ledger_pflags_get(&c->purposes, name) != 1)
			continue;
		int g = ledger_purpose_get(t, mp->key, name, &theirs, e);
		if (g == 0 && theirs.status == LEDGER_PURPOSE_OUT)
			continue;
		if (g && g != ERR_NOTFOUND)
			return g;
		if ((rc = purpose_optout_from_sf(t, mp, &w->ev, master, name, why, now, false, st,
		                                 e)))
			return rc;
		rc = purpose_spread(t, cfg, mp, NULL, name, true, st, e);
	}
	return rc;
}

/* The opt-outs c carried to a survivor that is no person's record yet, or
 * another person's (w->rec and w->old are scratch). A survivor not read
 * yet (created and merged into between two cycles) is kept as pending: a
 * record linked to no person, flagged LEDGER_RECORD_MERGE_PENDING, whose
 * seen facts hold the opt-outs of every person merged into it; its first
 * read carries them to the person of its email (apply_sf_record). */
static int carry_pending(struct ledger_txn *t, const struct config *cfg, struct work *w,
                         const struct ledger_recref *master, const struct carried *c,
                         struct apply_stats *st, struct err *e)
{
	struct ledger_record *m = &w->rec;
	int rc = ledger_record_get(t, master->object, master->id, m, e);
	if (rc == ERR_NOTFOUND) {
		memset(m, 0, sizeof(*m));
		m->object = master->object;
		str_copy(m->id, sizeof(m->id), master->id);
		memcpy(m->person, w->p.key, LEDGER_KEY_LEN); /* the first merged in */
		ledger_facts_init(&m->seen);
		ledger_facts_init(&m->written);
		m->flags = LEDGER_RECORD_MERGE_PENDING;
		m->seen.mask = LEDGER_F_OPTED_OUT;
		rc = 0;
	}
	if (rc || (m->flags & (LEDGER_RECORD_CONVERTED | LEDGER_RECORD_DELETED)))
		return rc;
	if (m->flags & LEDGER_RECORD_MERGE_PENDING) {
		m->seen.opted_out |= c->out;
		for (uint8_t i = 0; i < c->purposes.n; i++)
			if (c->purposes.v[i].out &&
			    ledger_pflags_set(&m->seen_purposes, c->purposes.v[i].name, true) < 0)
				return err_set(e, ERR_LIMIT, "more than %d purposes",
				               LEDGER_PFLAGS_MAX);
		return ledger_record_put(t, m, e);
	}
	rc = ledger_person_get(t, m->person, &w->old, e);
	if (rc)
		return rc == ERR_NOTFOUND ? 0 : rc;
	return carry_optouts(t, cfg, w, c, &w->old, master, st, e);
}

/* The person's opt-outs on the record that survived a merge: the global
 * one and each field-mapped purpose's. A survivor known as another
 * person's record, or not read yet, carries them to that person
 * (carry_pending); otherwise they are written to it where it is not known
 * to hold them already. */
static int carry_to_master(struct ledger_txn *t, const struct config *cfg, struct work *w,
                           const struct ledger_recref *master, struct apply_stats *st,
                           struct err *e)
{
	struct ledger_person *p = &w->p;
	struct ledger_record *m = &w->rec; /* the deleted record is no longer needed */
	int rc = ledger_record_get(t, master->object, master->id, m, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	if (rc == 0 && (m->flags & (LEDGER_RECORD_CONVERTED | LEDGER_RECORD_DELETED)))
		return 0;
	if (rc == ERR_NOTFOUND || (m->flags & LEDGER_RECORD_MERGE_PENDING) ||
	    memcmp(m->person, p->key, LEDGER_KEY_LEN) != 0) {
		struct carried c;
		if ((rc = carried_of_person(t, cfg, p, &c, e)))
			return rc;
		return carry_pending(t, cfg, w, master, &c, st, e);
	}
	if (p->facts.opted_out && !((m->seen.mask & LEDGER_F_OPTED_OUT) && m->seen.opted_out) &&
	    (rc = push_enqueue(t, p, master, LEDGER_F_OPTED_OUT, true, st, e)))
		return rc;
	for (size_t i = 0; rc == 0 && i < cfg->npurposes; i++) {
		const struct config_purpose *cp = &cfg->purposes[i];
		struct ledger_purpose cur;
		if ((cp->sf_field == NULL && cp->sf_opt_in_field == NULL) ||
		    ledger_pflags_get(&m->seen_purposes, cp->name) == 1)
			continue;
		int g = ledger_purpose_get(t, p->key, cp->name, &cur, e);
		if (g && g != ERR_NOTFOUND)
			return g;
		if (g == 0 && cur.status == LEDGER_PURPOSE_OUT)
			rc = push_enqueue_purpose(t, p, master, cp->name, true, st, e);
	}
	return rc;
}

/* The open conflicts of a record that is no longer its person's (moved to
 * another email, deleted): the question they ask is moot, and they are
 * closed by optsync with resolution why; *closed counts them. */
struct moot {
	struct ledger_txn *t;
	const char *why;
	int64_t now;
	size_t closed;
	struct err *e;
};

static int close_moot(struct ledger_conflict *cf, void *ctx)
{
	struct moot *m = ctx;
	cf->status = LEDGER_CONFLICT_RESOLVED;
	cf->auto_resolved = true;
	cf->resolved_at = m->now;
	snprintf(cf->resolution, sizeof(cf->resolution), "%s", m->why);
	snprintf(cf->resolved_by, sizeof(cf->resolved_by), "optsync");
	m->closed++;
	return ledger_conflict_put(m->t, cf, m->e);
}

static int close_moot_conflicts(struct ledger_txn *t, const struct ledger_recref *ref,
                                const char *why, int64_t now, size_t *closed, struct err *e)
{
	struct moot m = {t, why, now, 0, e};
	int rc = ledger_conflict_open_each(t, ref, close_moot, &m, e);
	*closed = m.closed;
	return rc;
}

/* Rule 9: a record whose email changed in Salesforce leaves its old person
 * (w->rec names it): it is unlinked from that person, with an event in the
 * old person's history; a push still queued for it (the old person's
 * values) is dropped, and the old person's open conflicts about it are
 * closed as moot ("record_moved"). What the record gets instead is derived
 * from its new person, as for any record new to that person. */
int move_record(struct ledger_txn *t, struct work *w, const struct ledger_recref *ref, int64_t now,
                struct err *e)
{
	struct ledger_person *old = &w->old;
	int rc = ledger_push_delete(t, ref->object, ref->id, e);
	bool dropped = rc == 0;
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	size_t closed;
	if ((rc = close_moot_conflicts(t, ref, CONFLICT_RECORD_MOVED, now, &closed, e)))
		return rc;
	/* what was raised about its values was raised for the old person */
	w->rec.flags &= ~(LEDGER_RECORD_INVALID_AUTH | LEDGER_RECORD_INVALID_SOURCE);
	rc = ledger_person_get(t, w->rec.person, old, e);
	if (rc)
		return rc == ERR_NOTFOUND ? 0 : rc; /* gone, and its links with it */
	rc = ledger_person_record_remove(t, old, ref, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	event_about(&w->ev, LEDGER_EV_UNLINKED, LEDGER_ORIGIN_SALESFORCE, "salesforce", ref, now);
	snprintf(w->ev.reason, sizeof(w->ev.reason),
	         "its email changed in Salesforce: another person's record now%s%s",
	         dropped ? "; the write queued for it dropped" : "",
	         closed ? "; its open conflicts closed" : "");
	old->updated_at = now;
	return event_record(t, old, &w->ev, e);
}

/* The person key of r's Email into key: 1, or 0 when it has none (absent
 * or blank), -1 when it is no address optsync takes. */
static int email_person_key(struct ledger *l, const struct sf_record *r,
                            uint8_t key[LEDGER_KEY_LEN])
{
	const struct sf_value *v = sf_record_get(r, "Email");
	if (v == NULL || v->type != SF_STRING || v->str[strspn(v->str, " \t\r\n\v\f")] == '\0')
		return 0;
	char email[LEDGER_EMAIL_MAX + 1];
	struct err ie;
	if (conn_email_normalize(v->str, email, &ie))
		return -1;
	ledger_person_key(l, email, strlen(email), key);
	return 1;
}

/* The survivor a deleted record names (MasterRecordId), "" when none. */
static void master_of(const struct sf_record *r, int object, struct ledger_recref *master)
{
	const struct sf_value *mv = sf_record_get(r, "MasterRecordId");
	master->object = (uint8_t)object;
	master->id[0] = '\0';
	if (mv && mv->type == SF_STRING && mv->str[0] && strlen(mv->str) <= LEDGER_ID_MAX)
		snprintf(master->id, sizeof(master->id), "%s", mv->str);
}

/* A record merged into another before optsync read it: the person of its
 * email (as the deleted row shows it), if the ledger knows them, has their
 * opt-outs carried to the survivor all the same (rules 1 and 9). A record
 * deleted on its own, never read, is skipped. */
static int merged_unseen(struct ledger_txn *t, struct ledger *l, const struct config *cfg,
                         struct work *w, const struct sf_record *r, const struct ledger_recref *ref,
                         struct apply_stats *st, struct err *e)
{
	struct ledger_recref master;
	master_of(r, ref->object, &master);
	if (master.id[0] == '\0' || email_person_key(l, r, w->p.key) != 1)
		return 0;
	int rc = ledger_person_get(t, w->p.key, &w->p, e);
	if (rc)
		return rc == ERR_NOTFOUND ? 0 : rc;
	w->ev.record = *ref;
	return carry_to_master(t, cfg, w, &master, st, e);
}

int forget_moved_parked(struct ledger_txn *t, struct ledger *l, int object,
                        const struct sf_record *r, struct err *e)
{
	if ((object != LEDGER_OBJ_CONTACT && object != LEDGER_OBJ_LEAD) || r->id == NULL ||
	    strlen(r->id) > LEDGER_ID_MAX)
		return 0;
	struct ledger_recref ref = {(uint8_t)object, ""};
	str_copy(ref.id, sizeof(ref.id), r->id);
	struct work *w = malloc(sizeof(*w));
	if (w == NULL)
		return err_set(e, ERR_NOMEM, "out of memory");
	int rc = ledger_record_get(t, object, ref.id, &w->rec, e);
	if (rc || (w->rec.flags & LEDGER_RECORD_MERGE_PENDING))
		goto out;
	uint8_t key[LEDGER_KEY_LEN];
	int has = email_person_key(l, r, key);
	if (has == 0)
		goto out; /* no email: as for a record that is read, left where it is */
	if (has == 1 && memcmp(key, w->rec.person, LEDGER_KEY_LEN) == 0)
		goto out; /* still its person's */
	/* another person's record now, or no address: no longer the old one's */
	if ((rc = move_record(t, w, &ref, time_now_ms(), e)) == 0)
		rc = ledger_record_delete(t, object, ref.id, e);
out:
	free(w);
	return rc == ERR_NOTFOUND ? 0 : rc;
}

/* A record deleted in Salesforce (queryAll shows it with IsDeleted), on its
 * own or merged into another (MasterRecordId): it is unlinked from its
 * person and forgotten, the history keeps its id, a push still queued for
 * it is dropped, its open conflicts are closed ("record_deleted"), and
 * after a merge the surviving record gets the person's opt-outs. A record
 * never seen is skipped. */
int apply_sf_deleted(struct ledger_txn *t, struct ledger *l, const struct config *cfg,
                     struct work *w, const struct sf_record *r, const struct ledger_recref *ref,
                     struct apply_stats *st, struct err *e)
{
	struct ledger_record *rec = &w->rec;
	int rc = ledger_record_get(t, ref->object, ref->id, rec, e);
	if (rc == ERR_NOTFOUND)
		return merged_unseen(t, l, cfg, w, r, ref, st, e);
	if (rc)
		return rc;
	if (rec->flags & LEDGER_RECORD_MERGE_PENDING) {
		/* a merge's survivor never read, deleted since: no person's; merged
		 * into another in turn, the opt-outs it carries go on to that one */
		struct carried c = {rec->seen.opted_out, rec->seen_purposes};
		memcpy(w->p.key, rec->person, LEDGER_KEY_LEN);
		rc = ledger_push_delete(t, ref->object, ref->id, e);
		if (rc && rc != ERR_NOTFOUND)
			return rc;
		if ((rc = ledger_record_delete(t, ref->object, ref->id, e)))
			return rc;
		struct ledger_recref master;
		master_of(r, ref->object, &master);
		if (master.id[0] == '\0' || (!c.out && c.purposes.n == 0))
			return 0;
		w->ev.record = *ref;
		return carry_pending(t, cfg, w, &master, &c, st, e);
	}
	struct ledger_person *p = &w->p;
	rc = ledger_person_get(t, rec->person, p, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	bool have_person = rc == 0;
	if ((rc = ledger_record_delete(t, ref->object, ref->id, e)))
		return rc;
	rc = ledger_push_delete(t, ref->object, ref->id, e);
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	rc = have_person ? ledger_person_record_remove(t, p, ref, e) : 0;
	if (rc && rc != ERR_NOTFOUND)
		return rc;
	int64_t now = time_now_ms();
	size_t closed;
	if ((rc = close_moot_conflicts(t, ref, CONFLICT_RECORD_DELETED, now, &closed, e)))
		return rc;
	st->unlinked++;
	if (!have_person)
		return 0;
	struct ledger_recref master;
	master_of(r, ref->object, &master);
	event_about(&w->ev, LEDGER_EV_UNLINKED, LEDGER_ORIGIN_SALESFORCE, "salesforce", ref, now);
	if (master.id[0])
		snprintf(w->ev.reason, sizeof(w->ev.reason), "merged into %s %s in Salesforce",
		         ledger_object_name(master.object), master.id);
	else
		snprintf(w->ev.reason, sizeof(w->ev.reason), "deleted in Salesforce");
	p->updated_at = now;
	if ((rc = event_record(t, p, &w->ev, e)))
		return rc;
	return master.id[0] ? carry_to_master(t, cfg, w, &master, st, e) : 0;
}
