"""The reference model of the sync rules, for the simulation (tests/sim/sim.py).

Written from the contract (docs/sync-rules.md and docs/optsync.1) and
docs/sync-rules.md, not from src/connector: it says what optsync must have
done after a history, never how. Its vocabulary:

- a *person* is a normalized email (docs/sync-rules.md); a record belongs to the person
  of its CURRENT email (rule 9);
- a *channel* is the opt-out of all email ("global") or one purpose;
- an opt-out is *certain* when the contract says optsync must have applied
  it (acknowledged locally, or left in Salesforce by a Salesforce user until
  a sync cycle that read everything), *possible* when optsync may have seen
  it (a value that stood in Salesforce only between two cycles, or one that
  a faulty or killed cycle may have read);
- after a history the model holds, per person and channel, whether the
  person must be out, may be out, must be opted in, may be opted in; the
  sim compares the ledger and the fake Salesforce with that.

Only the standard library."""
import unicodedata

GLOBAL = "global"
# the purposes the simulation configures ([[purposes]] in sim.py): two on
# Contact/Lead checkboxes (true = out), one on the consent objects
PURPOSES = {
    "news": {"basis": "consent", "field": "Newsletter_Opt_Out__c"},
    "events": {"basis": "soft_opt_in", "field": "Events_Opt_Out__c"},
    "offers": {"basis": "consent", "data_use_purpose": "Offers"},
}
BOX_CHANNELS = [GLOBAL] + [p for p, m in PURPOSES.items() if "field" in m]
ROW_CHANNELS = [p for p, m in PURPOSES.items() if "data_use_purpose" in m]
CHANNELS = [GLOBAL] + list(PURPOSES)
FIELD_OF = {GLOBAL: "HasOptedOutOfEmail"}
FIELD_OF.update({p: m["field"] for p, m in PURPOSES.items() if "field" in m})
# what Salesforce answers for a push that will never succeed as it is (rule 7:
# parked with the error); the retryable ones are retried, never parked
RETRYABLE = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION",
             "REQUEST_LIMIT_EXCEEDED", "INVALID_SESSION_ID"}


def normalize(email):
    """docs/sync-rules.md: trim; refuse invalid UTF-8 (a lone surrogate here: what a JSON
    escape of a bad byte decodes to) and control characters; the domain
    lower-cased (the pool has ASCII domains only, so no IDNA), the local part
    NFC and lower-cased. None when refused, or not an address at all."""
    if not isinstance(email, str):
        return None
    e = email.strip()
    if any(0xD800 <= ord(c) <= 0xDFFF for c in e):
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in e):
        return None
    if e.count("@") != 1:
        return None
    local, domain = e.split("@")
    if not local or not domain or "." not in domain or not domain.isascii():
        return None
    if len(local.encode()) > 64 or len(e.encode()) > 254:
        return None  # past RFC 5321's limits: optsync may refuse it; no person here
    return unicodedata.normalize("NFC", local).lower() + "@" + domain.lower()


class Channel:
    """One person's status in one channel, as the contract allows it to be."""
    __slots__ = ("must_out", "may_out", "must_in", "may_in", "last_in")

    def __init__(self):
        self.must_out = self.may_out = False
        self.must_in = self.may_in = False
        self.last_in = -1  # step of the last accepted opt-in (rule 2, P2)

    def out(self, certain):
        self.may_out = True
        self.must_in = False
        if certain:
            self.must_out = True
            self.may_in = False

    def status(self):
        """'out', 'in', 'none', or None when the model cannot tell."""
        if self.must_out:
            return "out"
        if self.must_in and not self.may_out:
            return "in"
        if not self.may_out and not self.may_in:
            return "none"
        return None


class Person:
    def __init__(self, key):
        self.key = key
        self.ch = {c: Channel() for c in CHANNELS}
        self.erased = False
        self.compliance_set = False  # a local `contact set` was acknowledged


class Record:
    """A Contact or Lead as the model follows it."""

    def __init__(self, rid, obj, email, step):
        self.id, self.obj = rid, obj
        self.email = email
        self.alive = True
        self.converted = False
        self.odd = None        # why optsync may leave it unapplied (rule 8), if so
        self.bad_picklist = 0  # unknown picklist values written to it
        self.individual = None
        self.moved = False     # its email changed in the history (rule 9)
        self.val = {c: False for c in BOX_CHANNELS}
        self.writer = {c: "user" for c in BOX_CHANNELS}
        # the step a Salesforce user set the box, and the person it was set for
        self.user_true = {c: None for c in BOX_CHANNELS}
        # True while a complete cycle has seen the box ticked for this person
        self.known_true = {c: False for c in BOX_CHANNELS}
        self.created = step

    @property
    def person(self):
        return normalize(self.email)


class Row:
    """A ContactPointTypeConsent row (consent-object purposes)."""

    def __init__(self, rid, party, purpose, status, capture, writer):
        self.id, self.party, self.purpose = rid, party, purpose
        self.status, self.capture = status, capture
        self.writer = writer
        self.user_set = None      # (step, person) of the Salesforce user's last write
        self.known_out = False    # a complete cycle saw it OptOut for its person
        self.seen = False         # a complete cycle has read it


class Model:
    def __init__(self, policy):
        self.policy = policy      # sync.resubscribe_policy
        self.persons = {}
        self.records = {}
        self.rows = {}
        self.step = 0
        # re-subscribe attempts in Salesforce per (record or row id, purpose or
        # None): [certain, possible] (rule 2, P2: each one seen is one conflict)
        self.attempts = {}
        self.pending_attempts = []  # (key, record id, channel, person, certain so far)
        self.merges = []            # (loser person, master id, loser id), until a clean cycle
        self.dup_ids = {}           # purpose -> DataUsePurpose id
        self.ind_history = {}       # Individual id -> persons of records ever linked
        self.person_inds = {}       # person -> Individuals their records were ever linked to

    # ---- persons ----
    def person(self, key):
        if key not in self.persons:
            self.persons[key] = Person(key)
        return self.persons[key]

    def persons_of_individual(self, ind):
        return {r.person for r in self.records.values()
                if r.alive and r.individual == ind and r.person}

    def link_individual(self, rid, ind):
        r = self.records[rid]
        r.individual = ind
        if r.person:
            self.ind_history.setdefault(ind, set()).add(r.person)
            self.person_inds.setdefault(r.person, set()).add(ind)

    def persons_ever_of_individual(self, ind):
        """Every person a record linked to the Individual belonged to (optsync
        may keep an Individual for a person after the record moved or went)."""
        return self.ind_history.get(ind, set()) | self.persons_of_individual(ind)

    def records_of(self, key):
        return [r for r in self.records.values() if r.alive and r.person == key]

    # ---- local operations (acknowledged) ----
    def local_optout(self, key, channel):
        """Rule 1, P1, rule 6: acknowledged, so durable and applied."""
        self.person(key).ch[channel].out(True)

    def local_optin(self, key, channel):
        """An opt-in accepted with evidence (rule 2, P2). Opt-outs a
        Salesforce user made that no complete cycle has read yet may still be
        read after it: they may count as new ones."""
        p = self.person(key)
        ch = p.ch[channel]
        ch.must_out = False
        ch.must_in = True
        ch.may_in = True
        ch.last_in = self.step
        ch.may_out = self.unseen_user_optout(key, channel)

    def unseen_user_optout(self, key, channel):
        if channel in BOX_CHANNELS:
            return any(r.val[channel] and r.writer[channel] == "user"
                       and not r.known_true[channel] for r in self.records_of(key))
        return any(w.status == "OptOut" and w.writer == "user" and not w.known_out
                   for w in self.rows.values() if w.purpose == channel
                   and key in self.persons_ever_of_individual(w.party))

    # ---- Salesforce user operations ----
    def sf_record(self, rid, obj, email, vals):
        r = Record(rid, obj, email, self.step)
        self.records[rid] = r
        for c, v in vals.items():
            self.sf_set(rid, c, v)
        return r

    def sf_set(self, rid, channel, value):
        r = self.records[rid]
        prev = r.val[channel]
        r.val[channel] = value
        key = r.person
        if value and not prev:
            r.user_true[channel] = (self.step, key)
            r.known_true[channel] = False
        elif not value and prev:
            r.user_true[channel] = None
            if key:
                ch = self.person(key).ch[channel]
                certain = r.known_true[channel] and ch.must_out and not r.odd
                if certain or ch.may_out:
                    k = (rid, None if channel == GLOBAL else channel)
                    self.pending_attempts.append((k, rid, channel, key, certain))
            r.known_true[channel] = False
        r.writer[channel] = "user"

    def sf_email(self, rid, email):
        """Rule 9: the record moves to the person of its new email. A box
        ticked for the old person is no fact about the new one: the new
        person may take it as an opt-out, or optsync may set the record to
        the new person's state; the model allows both."""
        r = self.records[rid]
        old = r.person
        r.email = email
        r.moved = True
        new = r.person
        if r.individual and new:
            self.ind_history.setdefault(r.individual, set()).add(new)
            self.person_inds.setdefault(new, set()).add(r.individual)
        for c in BOX_CHANNELS:
            r.known_true[c] = False
            if r.val[c] and new and new != old:
                self.person(new).ch[c].out(False)
                if r.user_true[c] is not None:
                    r.user_true[c] = (r.user_true[c][0], "moved")

    def sf_delete(self, rid):
        self.records[rid].alive = False

    def sf_merge(self, master, losers):
        """A merge: the survivor carries the losers' opt-outs; when it is
        another email's record, that person takes them over."""
        m = self.records[master]
        for lid in losers:
            loser = self.records[lid]
            loser.alive = False
            pl, pm = loser.person, m.person
            if pl and pm:
                for c in CHANNELS:
                    # the loser's person's opt-outs, and those its records
                    # hold in Salesforce that a sync has not read yet (the
                    # cycle that reads the merge may read them first)
                    if self.person(pl).ch[c].may_out or (c in BOX_CHANNELS and any(
                            r.val[c] for r in self.records.values()
                            if r.person == pl and (r.alive or r is loser))):
                        self.person(pm).ch[c].out(False)
                self.merges.append((pl, master, lid))

    def sf_convert(self, lead, contact_id):
        r = self.records[lead]
        r.converted = True
        if contact_id:
            c = Record(contact_id, "Contact", r.email, self.step)
            c.individual = r.individual
            c.odd = r.odd
            c.bad_picklist = r.bad_picklist
            self.records[contact_id] = c
            for ch in BOX_CHANNELS:
                if r.val[ch]:
                    c.val[ch] = True
                    c.writer[ch] = "user"  # Salesforce made it, by the conversion
                    c.user_true[ch] = (self.step, c.person if r.writer[ch] == "user"
                                       else "copied")

    def sf_row(self, rid, party, purpose, status, capture, new):
        """A ContactPointTypeConsent row made or changed by a Salesforce user."""
        w = self.rows.get(rid)
        persons = self.persons_of_individual(party)
        key = next(iter(persons)) if len(persons) == 1 and \
            self.persons_ever_of_individual(party) == persons else None
        if new or w is None:
            w = Row(rid, party, purpose, status, capture, "user")
            self.rows[rid] = w
        else:
            prev = w.status
            if prev == "OptOut" and status == "OptIn" and key:
                ch = self.person(key).ch[purpose]
                certain = w.known_out and ch.must_out
                self.pending_attempts.append(((rid, purpose), rid, purpose, key, certain))
            elif prev == "OptOut" and status == "OptIn" and \
                    any(self.person(k).ch[purpose].may_out for k in persons):
                # whose row it is depends on what optsync read of the
                # Individual's records (one moved before a sync read it):
                # an attempt it may count
                self.attempts.setdefault((rid, purpose), [0, 0])[1] += 1
            w.status = status
            w.capture = w.capture or capture
            w.writer = "user"
            w.known_out = False
        w.user_set = (self.step, key)
        if status == "OptIn" and key:
            # a new OptIn row of an opted-out person: set to OptOut (as rule 3),
            # a conflict or not: allowed either way
            if self.person(key).ch[purpose].may_out or self.person(key).ch[GLOBAL].may_out:
                self.attempts.setdefault((rid, purpose), [0, 0])[1] += 1

    # ---- what a sync cycle saw ----
    def observe(self, before, after, clean):
        """before/after: the fake's dump around one sync cycle. clean: the
        cycle read everything (no fault armed, not killed, exit 0)."""
        self.absorb(before)
        if clean:
            # a merge carries the opt-outs the loser's person had before this
            # cycle; one the same cycle reveals may or may not be carried
            # (to the person of the survivor's email as the cycle reads it:
            # an email changed since the merge moves the survivor, rule 9)
            for pl, mid, lid in self.merges:
                pm = self.records[mid].person
                if not pm:
                    continue
                for c in CHANNELS:
                    if self.person(pl).ch[c].must_out:
                        self.person(pm).ch[c].out(True)
            self.merges = []
        # what a Salesforce user left there: read for sure by a complete
        # cycle, maybe by a faulty or killed one
        self.read_boxes(before, clean)
        self.read_rows(before, clean)
        self.settle_attempts(before, clean)
        self.absorb(after)
        if clean:
            for r in self.records.values():
                for c in BOX_CHANNELS:
                    if r.val[c] and r.alive and r.person:
                        r.known_true[c] = True
            for w in self.rows.values():
                w.seen = True
                if w.status == "OptOut":
                    w.known_out = True

    def absorb(self, dump):
        """Values that changed without a Salesforce user: optsync wrote them."""
        for obj in ("Contact", "Lead"):
            for rec in dump.get(obj, []):
                r = self.records.get(rec["Id"])
                if r is None:
                    continue
                for c in BOX_CHANNELS:
                    v = bool(rec.get(FIELD_OF[c]))
                    if v != r.val[c]:
                        r.val[c] = v
                        r.writer[c] = "optsync"
                        r.known_true[c] = False
                        if not v:
                            r.user_true[c] = None
        for rec in dump.get("ContactPointTypeConsent", []):
            w = self.rows.get(rec["Id"])
            if w is None:
                purpose = self.purpose_of_dup(rec.get("DataUsePurposeId"))
                if purpose is None:
                    continue
                w = Row(rec["Id"], rec.get("PartyId"), purpose, rec.get("PrivacyConsentStatus"),
                        bool(rec.get("CaptureDate")), "optsync")
                self.rows[rec["Id"]] = w
            elif rec.get("PrivacyConsentStatus") != w.status:
                w.status = rec.get("PrivacyConsentStatus")
                w.writer = "optsync"
                w.known_out = False

    def purpose_of_dup(self, dup):
        for p, d in self.dup_ids.items():
            if d == dup:
                return p
        return None

    def read_boxes(self, dump, clean=True):
        """A complete cycle read every record: a box a Salesforce user ticked
        for the record's current person is that person's opt-out (rule 1, P1);
        one optsync may not take as new (ticked before a later accepted opt-in,
        or for another person) may be."""
        for r in self.records.values():
            if not r.person:
                continue
            if not r.alive:
                # deleted or merged before a cycle read its tick: may count
                for c in BOX_CHANNELS:
                    if r.val[c] and r.writer[c] == "user" and not r.known_true[c]:
                        self.person(r.person).ch[c].out(False)
                continue
            for c in BOX_CHANNELS:
                if not r.val[c] or r.writer[c] != "user" or r.user_true[c] is None:
                    continue
                if r.known_true[c]:
                    continue  # read by an earlier complete cycle: applied then
                step, key = r.user_true[c]
                ch = self.person(r.person).ch[c]
                certain = key == r.person and step > ch.last_in and not r.odd and clean
                ch.out(certain)

    def read_rows(self, dump, clean=True):
        """Consent rows (P1, P2 and docs/sync-rules.md, Purposes 'Consent given in Salesforce
        counts')."""
        for w in self.rows.values():
            if w.writer != "user" or w.user_set is None:
                continue
            persons = self.persons_of_individual(w.party)
            ever = self.persons_ever_of_individual(w.party)
            odd = any(r.odd for r in self.records.values()
                      if r.alive and r.individual == w.party)
            for key in ever:
                ch = self.person(key).ch[w.purpose]
                g = self.person(key).ch[GLOBAL]
                sure = persons == ever == {key} and not odd and clean
                step, who = w.user_set
                if w.status == "OptOut":
                    ch.out(sure and step > ch.last_in and who == key)
                elif w.status == "OptIn" and w.capture:
                    # an opt-in with evidence, for a person with no status for
                    # the purpose and not opted out (globally or of it)
                    if ch.status() == "none" and not g.may_out and sure:
                        ch.must_in = ch.may_in = True
                    elif not ch.must_out and not g.must_out:
                        ch.may_in = True
            if clean:
                w.user_set = None

    def settle_attempts(self, before, clean):
        """Each pending re-subscribe attempt: certain when the value optsync
        knew ticked was unticked for a person who must be out, and stood so
        until a complete cycle read it; possible otherwise."""
        keep = []
        for key, rid, c, person, certain in self.pending_attempts:
            if rid in self.records:
                r = self.records[rid]
                # a Lead converted since: optsync cannot write it back, and
                # may leave it be
                stood = r.alive and not r.val[c] and r.person == person and \
                    r.writer[c] == "user" and not r.converted
            else:
                w = self.rows.get(rid)
                stood = w is not None and w.status == "OptIn" and w.writer == "user"
            if stood and not clean:
                keep.append((key, rid, c, person, certain))
                continue
            a = self.attempts.setdefault(key, [0, 0])
            a[1] += 1
            if stood and certain and self.person(person).ch[c].must_out:
                a[0] += 1
        self.pending_attempts = keep
