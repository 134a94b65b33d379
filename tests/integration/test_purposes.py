#!/usr/bin/env python3
"""Purposes (rules P2 and P3 on the ledger's side) and the migrations to
schemas 2 and 3, against a real optsync: the CLI, the local API, an unsubscribe
link of a purpose, erasure, and a schema-1 ledger made by an older optsync
(tests/state/fixtures) migrated with a backup taken first.

Usage: test_purposes.py OPTSYNC FAKE_SF_PY SOURCE_DIR"""
import glob
import json
import re
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_links  # noqa: E402  (the Sidecar harness)
import test_sync  # noqa: E402  (the Env harness: a fake Salesforce and sync --once)

OPTSYNC = SRC = None
PURPOSES = '''
[[purposes]]
name = "newsletter"
label = { en = "Newsletter", nl = "Nieuwsbrief", sv = "Nyhetsbrev" }
basis = "consent"
salesforce = { field = "Newsletter_Opt_Out__c" }

[[purposes]]
name = "offers"
label = { en = "Offers" }
basis = "soft_opt_in"
salesforce = { data_use_purpose = "Offers" }
'''
ADMIN = "admin-token-for-purposes-0123456789"


class Purposes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = test_links.Sidecar(contacts=0)
        h = subprocess.run([OPTSYNC, "admin", "hash-token"], input=ADMIN + "\n",
                           capture_output=True, text=True, check=True).stdout.split('"')[1]
        # the purposes and an admin join the running sidecar's config: the CLI
        # reads them; the sidecar is restarted with them below
        cls.s.proc.terminate()
        cls.s.proc.wait(timeout=30)
        with open(cls.s.config, "a") as f:
            f.write(PURPOSES + '\n[[admins]]\nname = "alice"\ntoken_hash = "%s"\n' % h)
        cls.s.log.close()
        cls.s.log = open(cls.s.logpath, "a")
        cls.s.proc = subprocess.Popen([OPTSYNC, "-c", cls.s.config, "run"], env=cls.s.env,
                                      stdout=cls.s.log, stderr=cls.s.log)
        assert cls.s.wait(lambda: cls.s.api("GET", "/healthz")[0] == 200)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def check(self, emails, purpose=None):
        body = {"emails": emails}
        if purpose:
            body["purpose"] = purpose
        st, doc = self.s.api("POST", "/v1/suppression/check", body)
        self.assertEqual(st, 200, doc)
        return doc["results"]

    def test_p3_suppression_by_purpose(self):
        a, b, c = "p3-a@example.com", "p3-b@example.com", "p3-c@example.com"
        # nobody opted in: a consent purpose suppresses, soft opt-in does not
        self.assertEqual(self.check([a], "newsletter"), {a: True})
        self.assertEqual(self.check([a], "offers"), {a: False})
        self.assertEqual(self.check([a]), {a: False})
        st, doc = self.s.api("POST", "/v1/contacts/%s/consents" % a,
                             {"purpose": "newsletter", "consent_date": "2026-10-01T00:00:00Z",
                              "evidence_ref": "signup-form-77"})
        self.assertEqual((st, doc["status"]), (200, "opted_in"))
        self.assertEqual(self.check([a, b], "newsletter"), {a: False, b: True})
        # a purpose's opt-out: out of that one only
        st, doc = self.s.api("POST", "/v1/optouts", {"email": b, "purpose": "offers"})
        self.assertEqual(st, 202, doc)
        self.assertEqual(self.check([b], "offers"), {b: True})
        self.assertEqual(self.check([b]), {b: False})
        # the global opt-out overrides every purpose
        self.s.api("POST", "/v1/contacts/%s/consents" % c,
                   {"purpose": "newsletter", "consent_date": "2026-10-01T00:00:00Z",
                    "evidence_ref": "e"})
        self.s.api("POST", "/v1/optouts", {"email": c})
        self.assertEqual(self.check([c], "newsletter"), {c: True})
        self.assertEqual(self.check([c], "offers"), {c: True})
        st, doc = self.s.api("POST", "/v1/suppression/check", {"emails": [a], "purpose": "x"})
        self.assertEqual(st, 422)
        self.assertIn("unknown purpose 'x'", doc["error"]["message"])

    def test_p2_evidence_after_both_opt_outs(self):
        """Out of all email and of a purpose, the later opt-out is the one
        new consent evidence must postdate, whichever came first."""
        import time
        e = "both@example.com"
        self.s.cli("optout", e)
        time.sleep(1.1)
        between = time_now()
        time.sleep(1.1)
        self.s.cli("optout", e, "--purpose", "newsletter")
        time.sleep(1.1)
        env = dict(self.s.env, OPTSYNC_ADMIN="alice", OPTSYNC_ADMIN_TOKEN=ADMIN)
        run = lambda *a: subprocess.run([OPTSYNC, "-c", self.s.config, *a], env=env,
                                        capture_output=True, text=True)
        p = run("consent", e, "--purpose", "newsletter", "--consent-date", between,
                "--evidence-ref", "r")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("not later than the opt-out", p.stderr)
        p = run("consent", e, "--purpose", "newsletter", "--consent-date", time_now(),
                "--evidence-ref", "r", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["status"], "opted_in")

    def test_p2_opt_in_rules(self):
        e = "p2@example.com"
        # evidence is needed
        st, doc = self.s.api("POST", "/v1/contacts/%s/consents" % e,
                             {"purpose": "newsletter", "consent_date": "2026-10-01T00:00:00Z"})
        self.assertEqual(st, 422)
        self.assertIn("evidence", doc["error"]["message"])
        st, doc = self.s.api("POST", "/v1/contacts/%s/consents" % e,
                             {"purpose": "newsletter", "consent_date": "2099-01-01T00:00:00Z",
                              "evidence_ref": "r"})
        self.assertEqual(st, 422)
        self.assertIn("future", doc["error"]["message"])
        st, doc = self.s.api("POST", "/v1/contacts/%s/consents" % e,
                             {"purpose": "newsletter", "consent_date": "2026-10-01T00:00:00Z",
                              "evidence_ref": "r", "evidence_sha256": "not-a-hash"})
        self.assertEqual(st, 422)
        self.assertIn("evidence SHA-256 must be 64 hex digits", doc["error"]["message"])
        self.assertEqual(self.s.api("GET", "/v1/contacts/%s" % e)[0], 404)  # nothing changed
        p = self.s.cli("consent", e, "--purpose", "events", "--consent-date", "2026-10-01",
                       "--evidence-ref", "r", check=2)
        self.assertIn("unknown purpose 'events' (configured: newsletter, offers)", p.stderr)
        # an opt-out of the purpose, then an opt-in: an admin, with newer evidence
        self.s.cli("optout", e, "--purpose", "newsletter")
        p = self.s.cli("consent", e, "--purpose", "newsletter", "--consent-date", "2026-10-01",
                       "--evidence-ref", "r", check=4)
        self.assertIn("needs admin credentials", p.stderr)
        env = dict(self.s.env, OPTSYNC_ADMIN="alice", OPTSYNC_ADMIN_TOKEN=ADMIN)
        run = lambda *a: subprocess.run([OPTSYNC, "-c", self.s.config, *a], env=env,
                                        capture_output=True, text=True)
        p = run("consent", e, "--purpose", "newsletter", "--consent-date", "2026-10-01",
                "--evidence-ref", "r")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("not later than the opt-out", p.stderr)
        import time
        time.sleep(1.1)  # a consent date (to the second) after the opt-out
        p = run("consent", e, "--purpose", "newsletter", "--consent-date",
                time_now(), "--evidence-ref", "ticket-9", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["status"], "opted_in")
        st, person = self.s.api("GET", "/v1/contacts/%s" % e)
        n = person["purposes"]["newsletter"]
        self.assertEqual((n["status"], n["suppressed"], n["origin"], n["evidence_ref"]),
                         ("opted_in", False, "admin", "ticket-9"))
        self.assertEqual(person["purposes"]["offers"]["status"], "none")
        hist = self.s.history(e)
        self.assertEqual([(h["kind"], h["origin"], h["purpose"]) for h in hist],
                         [("optout", "local", "newsletter"), ("optin", "admin", "newsletter")])
        # the change feed says which purpose changed
        feed = [c for c in self.s.changes()["changes"] if c.get("email") == e]
        self.assertEqual([(c["kind"], c["purpose"]["name"], c["purpose"]["status"], c["opted_out"])
                          for c in feed],
                         [("optout", "newsletter", "opted_out", False),
                          ("optin", "newsletter", "opted_in", False)])

    def test_link_of_a_purpose(self):
        e = "linkpurpose@example.com"
        link = self.s.mint(e, purpose="offers")
        st, h, body = self.s.public("POST", self.s.path_of(link), body=test_links.ONE_CLICK,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200)
        self.assertEqual(self.check([e], "offers"), {e: True})
        self.assertEqual(self.check([e]), {e: False})  # still in for all email
        ev = self.s.history(e)
        self.assertEqual([(x["kind"], x["origin"], x["purpose"]) for x in ev],
                         [("optout", "link", "offers")])
        st, doc = self.s.api("POST", "/v1/unsubscribe-links",
                             {"emails": [e], "purpose": "events"})
        self.assertEqual(st, 422)

    def test_page_offers_purposes(self):
        e = "pagepurposes@example.com"
        path = self.s.path_of(self.s.mint(e))
        st, h, body = self.s.public("GET", path, headers={"Accept-Language": "nl"})
        self.assertEqual(st, 200)
        self.assertIn('name="purpose" value="newsletter"', body)
        self.assertIn('<label for="p-newsletter">Nieuwsbrief</label>', body)
        self.assertIn('<label for="p-offers">Offers</label>', body)  # no nl label: en
        self.assertIn("Afmelden voor de gekozen e-mails", body)
        # a link of one purpose: its main button leaves that one; the others
        # are offered
        st, h, body = self.s.public("GET", self.s.path_of(self.s.mint(e, purpose="offers")))
        self.assertNotIn('value="offers"', body)
        self.assertIn('value="newsletter"', body)
        # leaving chosen purposes: each a purpose's opt-out, not all email
        form = "action=purposes&purpose=newsletter&purpose=unknown"
        st, h, body = self.s.public("POST", path, body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200, body)
        self.assertIn("will no longer get the chosen emails", body)
        self.assertEqual(self.check([e], "newsletter"), {e: True})
        self.assertEqual(self.check([e]), {e: False})
        self.assertEqual([(x["kind"], x["origin"], x.get("purpose")) for x in self.s.history(e)],
                         [("optout", "link", "newsletter")])
        # nothing chosen: the page again, nothing recorded
        st, h, body = self.s.public("POST", path, body="action=purposes", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200)
        self.assertIn("<form", body)
        self.assertEqual(len(self.s.history(e)), 1)

    def test_config_check_connect(self):
        """The connection check names a purpose's missing checkbox, and says in
        plain words that the consent objects are missing (Data Protection and
        Privacy is off in the fake org, as in many real ones). --strict asks
        about the consent objects alone (the hidden checkbox is --connect's
        business), and fails saying so too."""
        hide = ["Newsletter_Opt_Out__c"]
        self.s.ctl("POST", "config", {"hidden_fields": {"Contact": hide, "Lead": hide}})
        self.addCleanup(self.s.ctl, "POST", "config", {"hidden_fields": {}})

        def check(*args, config=self.s.config):
            return subprocess.run([OPTSYNC, "-c", config, "config", "check", *args],
                                  env=self.s.env, capture_output=True, text=True)
        for flag, checkbox in (("--connect", True), ("--strict", False)):
            p = check(flag)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertEqual("Contact has no field Newsletter_Opt_Out__c" in p.stderr, checkbox)
            self.assertEqual("Lead has no field Newsletter_Opt_Out__c" in p.stderr, checkbox)
            self.assertEqual("purpose 'newsletter' maps to it" in p.stderr, checkbox)
            self.assertIn("consent object ContactPointTypeConsent is not available", p.stderr)
            self.assertIn("turn on Data Protection and Privacy", p.stderr)
            self.assertIn("purpose 'offers'", p.stderr)
            self.assertIn("# ContactPointTypeConsent: not available", p.stdout)
        doc = json.loads(check("--connect", "--json").stdout)
        self.assertEqual(doc["salesforce"]["consent_objects"],
                         {"Individual": "not available", "ContactPointTypeConsent": "not available",
                          "DataUsePurpose": "not available"})
        # a Salesforce it cannot reach is a warning: --strict stays usable offline
        with open(self.s.config) as f:
            text = f.read()
        offline = os.path.join(os.path.dirname(self.s.config), "offline.toml")
        with open(offline, "w") as f:
            f.write(re.sub(r'login_url = "[^"]*"', 'login_url = "http://127.0.0.1:9"', text))
        p = check("--strict", config=offline)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("could not be reached to check that they exist", p.stderr)

    def test_export_and_erasure(self):
        e = "exported@example.com"
        self.s.api("POST", "/v1/contacts/%s/consents" % e,
                   {"purpose": "newsletter", "consent_date": "2026-10-01T00:00:00Z",
                    "evidence_ref": "personal-ref-123"})
        st, doc = self.s.api("GET", "/v1/contacts/%s/export" % e)
        self.assertEqual(doc["state"]["purposes"]["newsletter"]["evidence_ref"],
                         "personal-ref-123")
        # the CSV export has a row per purpose, and names the purpose of events
        import csv as csvmod
        import io
        text = self.s.cli("contact", "export", e, "--format", "csv").stdout
        rows = list(csvmod.DictReader(io.StringIO(text)))
        prow = [r for r in rows if r["section"] == "purpose"]
        self.assertEqual([(r["purpose_name"], r["purpose_status"], r["evidence_ref"])
                          for r in prow], [("newsletter", "opted_in", "personal-ref-123")])
        self.assertEqual([r["purpose_name"] for r in rows
                          if r["section"] == "event" and r["event_kind"] != "access"],
                         ["newsletter"])
        # the exports are on the access trail: the API's, then this one
        self.assertEqual([r["event_actor"] for r in rows if r["event_kind"] == "access"],
                         ["default", pwd.getpwuid(os.geteuid()).pw_name])
        self.assertEqual(list(rows[0].keys())[-1], "exported_at")
        env = dict(self.s.env, OPTSYNC_ADMIN="alice", OPTSYNC_ADMIN_TOKEN=ADMIN)
        p = subprocess.run([OPTSYNC, "-c", self.s.config, "contact", "erase", e], env=env,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.s.cli("contact", "show", e, "--json")
        n = json.loads(p.stdout)["purposes"]["newsletter"]
        self.assertEqual(n["status"], "opted_in")   # the status stays
        self.assertNotIn("evidence_ref", n)          # the evidence goes


FIELD_PURPOSES = '''
[[purposes]]
name = "newsletter"
label = { en = "Newsletter" }
basis = "consent"
salesforce = { field = "Newsletter_Opt_Out__c" }

[[purposes]]
name = "events"
label = { en = "Events" }
basis = "soft_opt_in"
salesforce = { field = "Events_Opt_Out__c" }
'''


class FieldMapping(unittest.TestCase):
    """P1 and P2 with purposes on Contact and Lead checkboxes: read in the
    same queries, written in the same collection calls as the opt-out."""

    def setUp(self):
        self.e = test_sync.Env(extra=FIELD_PURPOSES)

    def tearDown(self):
        self.e.close()

    def person(self, email):
        """A Contact and a Lead of one person."""
        cid = self.e.sf_put("Contact", Email=email, LastName="C")
        lid = self.e.sf_put("Lead", Email=email, LastName="L", Company="Co")
        return cid, lid

    def purpose(self, email, name):
        return self.e.json("contact", "show", email)["purposes"][name]

    def test_a_merge_into_a_record_not_read_yet_carries_the_purpose(self):
        """A Lead out of the newsletter merged into a Lead created since:
        the survivor's person is out of the newsletter once the survivor is
        read, and its box is ticked in Salesforce."""
        e = self.e
        loser = e.sf_put("Lead", Email="b@example.com", LastName="B", Company="C",
                         Newsletter_Opt_Out__c=True)
        e.sync()
        master = e.sf_put("Lead", Email="now@example.com", LastName="N", Company="C")
        e.ctl("POST", "merge", {"object": "Lead", "master": master, "losers": [loser]})
        e.sync()
        self.assertEqual(self.purpose("now@example.com", "newsletter")["status"], "opted_out")
        self.assertTrue(e.sf_get("Lead", master)["Newsletter_Opt_Out__c"])
        self.assertFalse(e.sf_get("Lead", master)["Events_Opt_Out__c"])

    def test_p1_box_ticked_in_salesforce_spreads(self):
        e = self.e
        cid, lid = self.person("tick@example.com")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid, Newsletter_Opt_Out__c=True)
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["purpose_optouts_from_salesforce"], 1)
        self.assertEqual(r["pulled"]["Contact"]["optouts_from_salesforce"], 0)
        n = self.purpose("tick@example.com", "newsletter")
        self.assertEqual((n["status"], n["origin"]), ("opted_out", "salesforce"))
        self.assertEqual(self.purpose("tick@example.com", "events")["status"], "none")
        self.assertFalse(e.json("contact", "show", "tick@example.com")["opted_out"])
        lead = e.sf_get("Lead", lid)  # spread to the person's other record
        self.assertTrue(lead["Newsletter_Opt_Out__c"])
        self.assertFalse(lead["Events_Opt_Out__c"])
        self.assertFalse(lead["HasOptedOutOfEmail"])
        hist = e.json("contact", "history", "tick@example.com")
        self.assertEqual([(h["kind"], h["origin"], h.get("purpose")) for h in hist],
                         [("optout", "salesforce", "newsletter")])
        self.assertTrue(self.purpose("tick@example.com", "newsletter")["suppressed"])
        # reading back our own write is not a change: no more calls
        e.reset_calls()
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        self.assertEqual(r["pulled"]["Lead"]["purpose_optouts_from_salesforce"], 0)
        self.assertEqual(len(e.json("contact", "history", "tick@example.com")), 1)

    def test_a_missing_checkbox_skips_its_purpose_only(self):
        """A purpose's field missing on Lead: the Leads are read without it
        (their opt-outs of all email come), the cycle names what it skipped,
        and sync --once exits 1."""
        e = self.e
        cid, lid = self.person("nobox@example.com")
        e.sync()
        e.ctl("POST", "config", {"hidden_fields": {"Lead": ["Events_Opt_Out__c"]}})
        time.sleep(1.1)
        e.sf_put("Lead", Id=lid, HasOptedOutOfEmail=True)
        e.sf_put("Contact", Id=cid, Newsletter_Opt_Out__c=True)
        p = e.run("sync", "--once", "--json", check=1)
        r = json.loads(p.stdout)
        self.assertEqual(r["result"], "partial")
        err = r["pulled"]["Lead"]["error"]
        self.assertIn("purpose 'events' is not synced with Lead (the rest is)", err)
        self.assertIn("Salesforce has no field Events_Opt_Out__c on Lead", err)
        self.assertEqual(r["error"], err)
        self.assertEqual(r["pulled"]["Lead"]["optouts_from_salesforce"], 1)
        self.assertEqual(r["pulled"]["Contact"]["purpose_optouts_from_salesforce"], 1)
        self.assertTrue(e.json("contact", "show", "nobox@example.com")["opted_out"])
        self.assertTrue(e.sf_get("Contact", cid)["HasOptedOutOfEmail"])  # spread
        self.assertIn("purpose 'events' is not synced with Lead", p.stderr)
        e.ctl("POST", "config", {"hidden_fields": {}})
        self.assertEqual(e.sync()["result"], "ok")

    def test_p1_local_optout_reaches_every_record_in_one_call(self):
        e = self.e
        cid, lid = self.person("local@example.com")
        e.sync()
        e.json("optout", "local@example.com", "--purpose", "events")
        e.json("optout", "local@example.com", "--purpose", "newsletter")
        e.ctl("POST", "requests")
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 2)
        self.assertEqual(r["pushes"]["collection_calls"], 1)
        for obj, rid in (("Contact", cid), ("Lead", lid)):
            rec = e.sf_get(obj, rid)
            self.assertEqual((rec["Newsletter_Opt_Out__c"], rec["Events_Opt_Out__c"],
                              rec["HasOptedOutOfEmail"]), (True, True, False), obj)
        # what the write sent: the two checkboxes, not the global opt-out
        reqs = [q for q in e.ctl("GET", "requests")["requests"] if q["route"] == "collections"]
        self.assertEqual(len(reqs), 1)
        for rec in reqs[0]["body"]["records"]:
            self.assertEqual(set(rec) - {"attributes", "id"},
                             {"Newsletter_Opt_Out__c", "Events_Opt_Out__c"})
        r = e.sync()  # our own writes read back: nothing new
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        # a new record of the person gets the ticks too (rule 3 for purposes)
        time.sleep(1.1)
        lid2 = e.sf_put("Lead", Email="LOCAL@example.com", LastName="L2", Company="Co")
        e.sync()
        rec = e.sf_get("Lead", lid2)
        self.assertEqual((rec["Newsletter_Opt_Out__c"], rec["Events_Opt_Out__c"]), (True, True))
        # a soft opt-in purpose, once objected to, suppresses
        self.assertTrue(self.purpose("local@example.com", "events")["suppressed"])

    def test_p2_unticked_in_salesforce_is_reverted(self):
        e = self.e
        cid, lid = self.person("revert@example.com")
        e.sync()
        e.json("optout", "revert@example.com", "--purpose", "newsletter")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid, Newsletter_Opt_Out__c=False)
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["resubscribe_conflicts"], 1)
        self.assertTrue(e.sf_get("Contact", cid)["Newsletter_Opt_Out__c"])  # reverted
        self.assertEqual(r["pushes"]["conflicts_reverted"], 1)
        c = e.json("conflicts", "list", "--status", "all")["conflicts"]
        self.assertEqual([(x["kind"], x["purpose"], x["status"]) for x in c],
                         [("resubscribe", "newsletter", "reverted")])
        self.assertEqual(self.purpose("revert@example.com", "newsletter")["status"], "opted_out")
        self.assertFalse(e.json("contact", "show", "revert@example.com")["opted_out"])

    def test_p2_held_then_resolved_by_an_admin(self):
        self.e.close()
        self.e = e = test_sync.Env(extra='[sync]\nresubscribe_policy = "hold"\n' + FIELD_PURPOSES)
        cid, lid = self.person("held@example.com")
        e.sync()
        e.json("optout", "held@example.com", "--purpose", "newsletter")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Lead", Id=lid, Newsletter_Opt_Out__c=False)
        e.sync()
        self.assertFalse(e.sf_get("Lead", lid)["Newsletter_Opt_Out__c"])  # left alone
        c = e.json("conflicts", "list")["conflicts"]
        self.assertEqual([(x["kind"], x["purpose"], x["record"]["id"]) for x in c],
                         [("resubscribe", "newsletter", lid)])
        hist = e.json("contact", "history", "held@example.com")
        self.assertIn("conflict on opt-out of newsletter", hist[-1]["reason"])
        cid_ = str(c[0]["id"])
        # take Salesforce's opt-in: refused, it has no evidence
        e.run("conflicts", "resolve", cid_, "--take", "salesforce", admin=True, check=4)
        # an admin with evidence older than the opt-out: refused
        args = ["conflicts", "resolve", cid_, "--resubscribe", "--consent-date",
                "2026-01-01T00:00:00Z", "--purpose", "Newsletter", "--evidence-ref", "form-1"]
        p = e.run(*args, admin=True, check=4)
        self.assertIn("not later than the opt-out", p.stderr)
        args[5] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        e.run(*args, admin=True, check=0)
        n = self.purpose("held@example.com", "newsletter")
        self.assertEqual((n["status"], n["origin"], n["evidence_ref"]),
                         ("opted_in", "admin", "form-1"))
        self.assertEqual(e.json("conflicts", "list")["conflicts"], [])
        e.sync()  # the opt-in unticks the box where it was ticked
        self.assertFalse(e.sf_get("Contact", cid)["Newsletter_Opt_Out__c"])
        self.assertFalse(e.sf_get("Lead", lid)["Newsletter_Opt_Out__c"])
        self.assertFalse(self.purpose("held@example.com", "newsletter")["suppressed"])

    def test_p2_keep_optout_ticks_the_box_again(self):
        self.e.close()
        self.e = e = test_sync.Env(extra='[sync]\nresubscribe_policy = "hold"\n' + FIELD_PURPOSES)
        cid, lid = self.person("keep@example.com")
        e.sf_put("Contact", Id=cid, Events_Opt_Out__c=True)
        e.sync()
        self.assertTrue(e.sf_get("Lead", lid)["Events_Opt_Out__c"])
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid, Events_Opt_Out__c=False)
        e.sync()
        c = e.json("conflicts", "list")["conflicts"]
        self.assertEqual([x["purpose"] for x in c], ["events"])
        e.run("conflicts", "resolve", str(c[0]["id"]), "--keep-optout", admin=True, check=0)
        e.sync()
        self.assertTrue(e.sf_get("Contact", cid)["Events_Opt_Out__c"])
        self.assertEqual(self.purpose("keep@example.com", "events")["status"], "opted_out")

    def test_merge_carries_purpose_optouts(self):
        e = self.e
        loser = e.sf_put("Lead", Email="m1@example.com", LastName="M", Company="Co",
                         Newsletter_Opt_Out__c=True)
        master = e.sf_put("Lead", Email="m1@example.com", LastName="M", Company="Co")
        e.sync()
        self.assertTrue(e.sf_get("Lead", master)["Newsletter_Opt_Out__c"])  # P1 already
        e.sf_put("Lead", Id=master, Newsletter_Opt_Out__c=False, _system_stamp=None)
        time.sleep(1.1)
        # a Salesforce admin merges; the survivor had lost its tick meanwhile
        e.ctl("POST", "merge", {"object": "Lead", "master": master, "losers": [loser]})
        e.sync()
        self.assertTrue(e.sf_get("Lead", master)["Newsletter_Opt_Out__c"])
        show = e.json("contact", "show", "m1@example.com")
        self.assertEqual([x["id"] for x in show["salesforce_records"]], [master])
        self.assertEqual(show["purposes"]["newsletter"]["status"], "opted_out")

    def test_first_opt_in_needs_no_write(self):
        e = self.e
        cid, lid = self.person("first@example.com")
        e.sync()
        e.json("consent", "first@example.com", "--purpose", "newsletter", "--consent-date",
               "2026-10-01", "--evidence-ref", "signup-1")
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        self.assertFalse(self.purpose("first@example.com", "newsletter")["suppressed"])

    # ---- an opt-in checkbox (salesforce = { opt_in_field, consent_date_field }) ----

    def opt_in_env(self, extra=""):
        self.e.close()
        self.e = test_sync.Env(extra=extra + OPT_IN_PURPOSES)
        return self.e

    def test_opt_in_box_ticked_with_a_date_is_an_opt_in(self):
        """Consent given in Salesforce counts: ticked with a date, for a person
        with no status, is an opt-in with that evidence, spread to the
        person's other records; read back, it is not a change."""
        e = self.opt_in_env()
        cid, lid = self.person("boxin@example.com")
        e.sync()
        self.assertTrue(self.purpose("boxin@example.com", "newsletter")["suppressed"])
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid, Newsletter_Opt_In__c=True,
                 Newsletter_Consent_Date__c="2026-10-05T09:00:00Z")
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["purpose_optins_from_salesforce"], 1)
        n = self.purpose("boxin@example.com", "newsletter")
        self.assertEqual((n["status"], n["origin"], n["suppressed"], n["consent_date"],
                          n["evidence_ref"]),
                         ("opted_in", "salesforce", False, "2026-10-05T09:00:00Z",
                          "salesforce:Contact/%s.Newsletter_Opt_In__c" % cid))
        h = e.json("contact", "history", "boxin@example.com")
        self.assertEqual([(x["kind"], x["origin"], x.get("purpose")) for x in h],
                         [("optin", "salesforce", "newsletter")])
        self.assertEqual((h[0]["record"]["object"], h[0]["record"]["id"]), ("Contact", cid))
        lead = e.sf_get("Lead", lid)  # the person's other record says so too
        self.assertTrue(lead["Newsletter_Opt_In__c"])
        self.assertEqual(lead["Newsletter_Consent_Date__c"], "2026-10-05T09:00:00.000+0000")
        e.reset_calls()
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        self.assertEqual(r["pulled"]["Lead"]["purpose_optins_from_salesforce"], 0)
        self.assertEqual(len(e.json("contact", "history", "boxin@example.com")), 1)
        # a person opted out of all email: a ticked box is not taken
        cid2 = e.sf_put("Contact", Email="allout@example.com", LastName="A")
        e.sync()
        e.json("optout", "allout@example.com")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid2, Newsletter_Opt_In__c=True,
                 Newsletter_Consent_Date__c="2026-10-05T09:00:00Z")
        e.sync()
        self.assertEqual(self.purpose("allout@example.com", "newsletter")["status"], "none")

    def test_opt_in_box_without_a_date_is_not_evidence(self):
        e = self.opt_in_env()
        cid, lid = self.person("boxnodate@example.com")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid, Newsletter_Opt_In__c=True)
        p = e.run("sync", "--once", "--json", check=0)
        r = json.loads(p.stdout)
        self.assertEqual(r["pulled"]["Contact"]["purpose_optins_without_date"], 1)
        self.assertEqual(r["pulled"]["Contact"]["purpose_optins_from_salesforce"], 0)
        self.assertEqual(r["optins_without_date"],
                         [{"purpose": "newsletter", "object": "Contact", "id": cid,
                           "missing": "Newsletter_Consent_Date__c"}])
        self.assertIn(cid, p.stderr)
        self.assertIn("not evidence", p.stderr)
        n = self.purpose("boxnodate@example.com", "newsletter")
        self.assertEqual((n["status"], n["suppressed"]), ("none", True))
        self.assertFalse(e.sf_get("Lead", lid)["Newsletter_Opt_In__c"])
        # the date added later: the opt-in counts then
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid, Newsletter_Consent_Date__c="2026-10-06T00:00:00Z")
        r = e.sync()
        self.assertNotIn("optins_without_date", r)
        n = self.purpose("boxnodate@example.com", "newsletter")
        self.assertEqual((n["status"], n["consent_date"]), ("opted_in", "2026-10-06T00:00:00Z"))

    def test_opt_in_box_unticked_is_an_opt_out_and_ticked_again_a_conflict(self):
        e = self.opt_in_env()
        cid, lid = self.person("boxout@example.com")
        e.sf_put("Contact", Id=cid, Newsletter_Opt_In__c=True,
                 Newsletter_Consent_Date__c="2026-10-05T09:00:00Z")
        e.sync()
        self.assertTrue(e.sf_get("Lead", lid)["Newsletter_Opt_In__c"])
        # P1: unticked after the opt-in, an opt-out, spread to every record
        time.sleep(1.1)
        e.sf_put("Lead", Id=lid, Newsletter_Opt_In__c=False)
        r = e.sync()
        self.assertEqual(r["pulled"]["Lead"]["purpose_optouts_from_salesforce"], 1)
        n = self.purpose("boxout@example.com", "newsletter")
        self.assertEqual((n["status"], n["origin"], n["suppressed"]),
                         ("opted_out", "salesforce", True))
        self.assertFalse(e.sf_get("Contact", cid)["Newsletter_Opt_In__c"])
        self.assertFalse(e.json("contact", "show", "boxout@example.com")["opted_out"])
        # P2: ticked again (with a date, even) without an admin: a conflict,
        # reverted under the default policy
        time.sleep(1.1)
        e.sf_put("Contact", Id=cid, Newsletter_Opt_In__c=True,
                 Newsletter_Consent_Date__c="2026-12-01T00:00:00Z")
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["resubscribe_conflicts"], 1)
        self.assertEqual(r["pulled"]["Contact"]["purpose_optins_from_salesforce"], 0)
        self.assertFalse(e.sf_get("Contact", cid)["Newsletter_Opt_In__c"])  # reverted
        c = e.json("conflicts", "list", "--status", "all")["conflicts"]
        self.assertEqual([(x["kind"], x["purpose"], x["status"], x["record"]["id"]) for x in c],
                         [("resubscribe", "newsletter", "reverted", cid)])
        self.assertEqual(self.purpose("boxout@example.com", "newsletter")["status"], "opted_out")

    def test_opt_in_box_ticked_again_under_hold(self):
        e = self.opt_in_env('[sync]\nresubscribe_policy = "hold"\n')
        cid, lid = self.person("boxhold@example.com")
        e.sync()
        e.json("optout", "boxhold@example.com", "--purpose", "newsletter")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Lead", Id=lid, Newsletter_Opt_In__c=True,
                 Newsletter_Consent_Date__c="2026-12-01T00:00:00Z")
        e.sync()
        self.assertTrue(e.sf_get("Lead", lid)["Newsletter_Opt_In__c"])  # left alone
        c = e.json("conflicts", "list")["conflicts"]
        self.assertEqual([(x["kind"], x["purpose"], x["record"]["id"]) for x in c],
                         [("resubscribe", "newsletter", lid)])
        self.assertEqual(self.purpose("boxhold@example.com", "newsletter")["status"], "opted_out")

    def test_opt_in_box_written_by_local_changes(self):
        """A local opt-in with evidence ticks the box and sets the date on
        every record; a local opt-out unticks it."""
        e = self.opt_in_env()
        cid, lid = self.person("boxlocal@example.com")
        e.sync()
        e.json("consent", "boxlocal@example.com", "--purpose", "newsletter", "--consent-date",
               "2026-10-01T08:30:00Z", "--evidence-ref", "signup-2")
        e.ctl("POST", "requests")
        r = e.sync()
        self.assertEqual((r["pushes"]["succeeded"], r["pushes"]["collection_calls"]), (2, 1))
        for obj, rid in (("Contact", cid), ("Lead", lid)):
            rec = e.sf_get(obj, rid)
            self.assertEqual((rec["Newsletter_Opt_In__c"], rec["Newsletter_Consent_Date__c"]),
                             (True, "2026-10-01T08:30:00.000+0000"), obj)
        reqs = [q for q in e.ctl("GET", "requests")["requests"] if q["route"] == "collections"]
        for rec in reqs[0]["body"]["records"]:
            self.assertEqual(set(rec) - {"attributes", "id"},
                             {"Newsletter_Opt_In__c", "Newsletter_Consent_Date__c"})
        r = e.sync()  # read back: not a change
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        self.assertEqual(len(e.json("contact", "history", "boxlocal@example.com")), 1)
        e.json("optout", "boxlocal@example.com", "--purpose", "newsletter")
        e.ctl("POST", "requests")
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 2)
        for obj, rid in (("Contact", cid), ("Lead", lid)):
            self.assertFalse(e.sf_get(obj, rid)["Newsletter_Opt_In__c"], obj)
        reqs = [q for q in e.ctl("GET", "requests")["requests"] if q["route"] == "collections"]
        for rec in reqs[0]["body"]["records"]:
            self.assertEqual((set(rec) - {"attributes", "id"}, rec["Newsletter_Opt_In__c"]),
                             ({"Newsletter_Opt_In__c"}, False))
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        n = self.purpose("boxlocal@example.com", "newsletter")
        self.assertEqual((n["status"], n["origin"]), ("opted_out", "local"))

    def test_opt_in_fields_checked_by_config_check(self):
        e = self.opt_in_env()
        e.ctl("POST", "config", {"hidden_fields": {"Contact": ["Newsletter_Consent_Date__c"]}})
        p = e.run("config", "check", "--connect", check=1)
        self.assertIn("Contact has no field Newsletter_Consent_Date__c", p.stderr)
        self.assertIn("purpose 'newsletter'", p.stderr)
        self.assertNotIn("Lead has no field", p.stderr)
        p = e.run("sync", "--once", "--json")
        self.assertIn("Newsletter_Consent_Date__c", p.stdout + p.stderr)
        self.assertIn("consent_date_field", p.stdout + p.stderr)


OPT_IN_PURPOSES = '''
[[purposes]]
name = "newsletter"
label = { en = "Newsletter" }
basis = "consent"
salesforce = { opt_in_field = "Newsletter_Opt_In__c", consent_date_field = "Newsletter_Consent_Date__c" }
'''


CONSENT_PURPOSES = '''
[[purposes]]
name = "offers"
label = { en = "Offers" }
basis = "soft_opt_in"
salesforce = { data_use_purpose = "Offers" }

[[purposes]]
name = "events"
label = { en = "Events" }
basis = "consent"
salesforce = { data_use_purpose = "Event Invitations" }
'''


class ConsentObjects(unittest.TestCase):
    """P1 and P2 with purposes on Salesforce's consent objects: the
    ContactPointTypeConsent row of the person's Individual per
    DataUsePurpose, polled with a cursor and written in collections."""

    def setUp(self):
        self.setUp_with("")

    def setUp_with(self, extra):
        self.e = test_sync.Env(extra=extra + CONSENT_PURPOSES)
        self.e.ctl("POST", "config", {"dpp": True})
        self.dup = {n: self.e.sf_put("DataUsePurpose", Name=n, CanDataSubjectOptOut=True)
                    for n in ("Offers", "Event Invitations")}

    def tearDown(self):
        self.e.close()

    def person(self, email, individual=True):
        ind = self.e.sf_put("Individual", LastName="I") if individual else None
        cid = self.e.sf_put("Contact", Email=email, LastName="C", IndividualId=ind)
        return ind, cid

    def rows(self, ind=None):
        recs = self.e.ctl("GET", "records?object=ContactPointTypeConsent")["records"]
        return [r for r in recs if ind is None or r["PartyId"] == ind]

    def purpose(self, email, name):
        return self.e.json("contact", "show", email)["purposes"][name]

    def test_a_row_set_to_optout_before_a_queued_optin_is_written(self):
        """A local opt-in to a consent-object purpose is queued; a Salesforce
        user gives the person's Individual an OptOut row before it is
        written: the ledger takes the opt-out (P1), and the queued write
        says OptOut too, so that Salesforce and the ledger agree."""
        e = self.e
        ind, cid = self.person("late@example.com")
        e.sync()
        e.json("consent", "late@example.com", "--purpose", "events", "--consent-date",
               "2026-11-01T10:00:00Z", "--evidence-ref", "t-1")  # queued: OptIn
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Name="x", PartyId=ind, ContactPointType="Email",
                 DataUsePurposeId=self.dup["Event Invitations"], PrivacyConsentStatus="OptOut",
                 CaptureDate="2026-12-01T10:00:00Z")
        e.sync()
        e.sync()
        self.assertEqual(self.purpose("late@example.com", "events")["status"], "opted_out")
        self.assertEqual([x["PrivacyConsentStatus"] for x in self.rows(ind)], ["OptOut"])
        self.assertEqual(e.json("status")["pushes"]["queued"], 0)

    def test_without_data_protection_and_privacy(self):
        e = self.e
        e.ctl("POST", "config", {"dpp": False})
        cid = e.sf_put("Contact", Email="nodpp@example.com", LastName="N")
        e.json("optout", "nodpp@example.com")
        # part of the configured work cannot be done: exit 1, so that a
        # scheduled job shows it
        p = e.run("sync", "--once", "--json", check=1)
        r = json.loads(p.stdout)
        # the rest of the cycle goes on: the opt-out of all email is written
        self.assertEqual(r["result"], "partial")
        self.assertEqual(r["error"], r["consent_objects_error"])
        self.assertTrue(e.sf_get("Contact", cid)["HasOptedOutOfEmail"])
        msg = r["consent_objects_error"]
        self.assertIn("consent objects (Individual, ContactPointTypeConsent, DataUsePurpose) "
                      "are not available", msg)
        self.assertIn("turn on Data Protection and Privacy", msg)
        self.assertIn("purpose 'offers', 'events'", msg)
        self.assertIn("INVALID_TYPE", msg)
        self.assertIn("turn on Data Protection and Privacy", p.stderr)

    def test_a_missing_data_use_purpose_is_named(self):
        e = self.e
        e.ctl("POST", "delete", {"object": "DataUsePurpose", "ids": [self.dup["Event Invitations"]]})
        ind, cid = self.person("dupgone@example.com")
        e.run("sync", "--once", check=1)
        e.json("optout", "dupgone@example.com", "--purpose", "offers")
        e.json("optout", "dupgone@example.com", "--purpose", "events")
        p = e.run("sync", "--once", "--json", check=1)  # a purpose cannot be synced
        r = json.loads(p.stdout)
        self.assertEqual(r["result"], "partial")
        self.assertIn("no DataUsePurpose named 'Event Invitations' (purpose 'events')",
                      r["consent_objects_error"])
        self.assertIn("no DataUsePurpose named 'Event Invitations'", p.stderr)
        # the purpose that resolves is written; the other waits in the queue
        self.assertEqual([(x["DataUsePurposeId"], x["PrivacyConsentStatus"])
                          for x in self.rows(ind)], [(self.dup["Offers"], "OptOut")])
        self.assertEqual(e.json("status")["pushes"]["queued"], 1)

    def test_other_failures_are_errors_of_their_own(self):
        """Only "the objects are not there" is the plain-words note; a
        Salesforce failure of the consent queries is an error with its own
        message, the rest of the cycle done, sync --once exit 1."""
        e = self.e
        ind, cid = self.person("fails@example.com")
        e.sync()
        e.json("optout", "fails@example.com")
        for soql, where in (("FROM DataUsePurpose", "lookup"),
                            ("FROM ContactPointTypeConsent", "pull")):
            e.ctl("POST", "faults", {"faults": [{"route": "query", "soql": soql,
                                                 "kind": "status", "status": 500,
                                                 "errorCode": "UNKNOWN_EXCEPTION",
                                                 "count": 100}]})
            p = e.run("sync", "--once", "--json", check=1)
            r = json.loads(p.stdout)
            self.assertNotIn("consent_objects_error", r, where)
            self.assertEqual(r["result"], "partial", where)
            self.assertIn("HTTP 500 UNKNOWN_EXCEPTION", r["error"], where)
            self.assertIn("HTTP 500 UNKNOWN_EXCEPTION",
                          r["pulled"]["ContactPointTypeConsent"]["error"], where)
            self.assertNotIn("not available", p.stderr, where)
            self.assertIn("Contact", r["pulled"], where)
            self.assertTrue(e.sf_get("Contact", cid)["HasOptedOutOfEmail"])
            e.ctl("DELETE", "faults")
        self.assertEqual(e.sync()["result"], "ok")

    def test_a_row_with_an_unknown_status_is_parked(self):
        e = self.e
        ind1, _ = self.person("odd@example.com")
        ind2, _ = self.person("even@example.com")
        e.sync()
        time.sleep(1.1)
        row = dict(Name="x", ContactPointType="Email", DataUsePurposeId=self.dup["Offers"],
                   CaptureDate="2026-11-01T00:00:00Z", CaptureSource="Web form",
                   CaptureContactPointType="Email")
        odd = e.sf_put("ContactPointTypeConsent", PartyId=ind1, PrivacyConsentStatus="Maybe",
                       **row)
        e.sf_put("ContactPointTypeConsent", PartyId=ind2, PrivacyConsentStatus="OptOut", **row)
        r = e.sync()
        self.assertEqual(r["result"], "ok")
        pulled = r["pulled"]["ContactPointTypeConsent"]
        self.assertEqual((pulled["records_parked"], pulled["purpose_optouts_from_salesforce"]),
                         (1, 1))
        self.assertEqual(self.purpose("even@example.com", "offers")["status"], "opted_out")
        p = e.json("status")["records_parked"]
        self.assertEqual([(x["object"], x["id"], x["reason"]) for x in p["records"]],
                         [("ContactPointTypeConsent", odd, "unknown_picklist")])
        self.assertIn("PrivacyConsentStatus holds 'Maybe'", p["records"][0]["error"])
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Id=odd, PrivacyConsentStatus="OptOut")
        e.sync()
        self.assertEqual(self.purpose("odd@example.com", "offers")["status"], "opted_out")
        self.assertEqual(e.json("status")["records_parked"]["total"], 0)

    def test_p1_local_optout_creates_then_updates_the_row(self):
        e = self.e
        ind, cid = self.person("rows@example.com")
        e.sync()
        e.json("optout", "rows@example.com", "--purpose", "offers")
        # a dry run lists the row it would write, and writes nothing
        p = e.run("sync", "--once", "--dry-run", "--json")
        d = json.loads(p.stdout)
        self.assertEqual(d["pushes"]["would_push"], 1)
        self.assertEqual([(x["object"], x["id"], x["set"]) for x in d["would_push"]],
                         [("Individual", ind,
                           {"ContactPointTypeConsent[Offers].PrivacyConsentStatus": "OptOut"})])
        self.assertEqual(self.rows(ind), [])
        e.ctl("POST", "requests")
        r = e.sync()
        rows = self.rows(ind)
        self.assertEqual(len(rows), 1)
        row = rows[0]
        self.assertEqual((row["PartyId"], row["DataUsePurposeId"], row["PrivacyConsentStatus"],
                          row["ContactPointType"], row["CaptureContactPointType"],
                          row["CaptureSource"]),
                         (ind, self.dup["Offers"], "OptOut", "Email", "Email", "optsync"))
        self.assertTrue(row["CaptureDate"] and row["EffectiveFrom"])
        creates = [q for q in e.ctl("GET", "requests")["requests"]
                   if q["route"] == "collections"]
        self.assertEqual([q["method"] for q in creates], ["POST"])
        self.assertEqual(r["pushes"]["collection_calls"], 1)
        # the Contact itself is not written
        self.assertFalse(e.sf_get("Contact", cid)["HasOptedOutOfEmail"])
        # reading our own row back is not a change
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        self.assertEqual(r["pulled"]["ContactPointTypeConsent"]["purpose_optouts_from_salesforce"], 0)
        self.assertEqual(len(e.json("contact", "history", "rows@example.com")), 1)
        # an admin's re-opt-in with newer evidence updates the same row
        time.sleep(1.1)
        p = e.run("consent", "rows@example.com", "--purpose", "offers", "--consent-date",
                  time_now(), "--evidence-ref", "call-2", admin=True, check=0)
        e.ctl("POST", "requests")
        e.sync()
        rows = self.rows(ind)
        self.assertEqual([(x["Id"], x["PrivacyConsentStatus"]) for x in rows],
                         [(row["Id"], "OptIn")])
        self.assertEqual([q["method"] for q in e.ctl("GET", "requests")["requests"]
                          if q["route"] == "collections"], ["PATCH"])

    def test_p1_row_from_salesforce_and_p2_revert(self):
        e = self.e
        ind, cid = self.person("sfrow@example.com")
        e.sync()
        time.sleep(1.1)
        row = e.sf_put("ContactPointTypeConsent", Name="x", PartyId=ind, ContactPointType="Email",
                       DataUsePurposeId=self.dup["Event Invitations"],
                       PrivacyConsentStatus="OptOut", CaptureDate="2026-11-01T00:00:00Z",
                       CaptureSource="Web form", CaptureContactPointType="Email")
        r = e.sync()
        self.assertEqual(r["pulled"]["ContactPointTypeConsent"]["purpose_optouts_from_salesforce"], 1)
        n = self.purpose("sfrow@example.com", "events")
        self.assertEqual((n["status"], n["origin"], n["suppressed"]),
                         ("opted_out", "salesforce", True))
        h = e.json("contact", "history", "sfrow@example.com")[-1]
        self.assertEqual((h["kind"], h["purpose"], h["record"]["object"], h["record"]["id"]),
                         ("optout", "events", "ContactPointTypeConsent", row))
        # P2: flipped back to OptIn in Salesforce without evidence: reverted
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Id=row, PrivacyConsentStatus="OptIn")
        r = e.sync()
        self.assertEqual(r["pulled"]["ContactPointTypeConsent"]["resubscribe_conflicts"], 1)
        self.assertEqual(e.sf_get("ContactPointTypeConsent", row)["PrivacyConsentStatus"], "OptOut")
        c = e.json("conflicts", "list", "--status", "all")["conflicts"]
        self.assertEqual([(x["purpose"], x["status"], x["record"]["id"]) for x in c],
                         [("events", "reverted", row)])
        self.assertEqual(len(self.rows(ind)), 1)  # updated, not duplicated

    def test_p2_held_then_kept_by_an_admin(self):
        self.e.close()
        self.setUp_with('[sync]\nresubscribe_policy = "hold"\n')
        e = self.e
        ind, cid = self.person("heldrow@example.com")
        e.sync()
        e.json("optout", "heldrow@example.com", "--purpose", "offers")
        e.sync()
        row = self.rows(ind)[0]["Id"]
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Id=row, PrivacyConsentStatus="OptIn")
        e.sync()
        self.assertEqual(e.sf_get("ContactPointTypeConsent", row)["PrivacyConsentStatus"], "OptIn")
        c = e.json("conflicts", "list")["conflicts"]
        self.assertEqual([(x["purpose"], x["record"]["object"]) for x in c],
                         [("offers", "ContactPointTypeConsent")])
        e.run("conflicts", "resolve", str(c[0]["id"]), "--keep-optout", admin=True, check=0)
        e.sync()
        self.assertEqual(e.sf_get("ContactPointTypeConsent", row)["PrivacyConsentStatus"], "OptOut")
        self.assertEqual(len(self.rows(ind)), 1)

    def test_a_new_optin_row_of_an_opted_out_person_is_set_out(self):
        """A row optsync has not seen before that says OptIn, for a person
        opted out of the purpose: set to OptOut, as rule 3 does for new
        records; nobody re-subscribed, so no conflict."""
        e = self.e
        ind, cid = self.person("newrow@example.com")
        e.sync()
        e.json("optout", "newrow@example.com", "--purpose", "offers")
        e.sync()
        time.sleep(1.1)
        row = e.sf_put("ContactPointTypeConsent", Name="imported", PartyId=ind,
                       ContactPointType="Email", DataUsePurposeId=self.dup["Offers"],
                       PrivacyConsentStatus="OptIn", CaptureDate="2025-01-01T00:00:00Z",
                       CaptureSource="an old import", CaptureContactPointType="Email")
        e.sync()
        self.assertEqual(e.sf_get("ContactPointTypeConsent", row)["PrivacyConsentStatus"], "OptOut")
        self.assertEqual(e.json("conflicts", "list", "--status", "all")["conflicts"], [])

    def test_two_rows_of_one_purpose_are_both_written(self):
        """Two ContactPointTypeConsent rows for one Individual and purpose
        (a Salesforce user added one beside optsync's): an OptOut on either
        is honoured (P1), every row is written OptOut, and then the cycles
        are quiet (rule 4). Before, optsync remembered one row: it wrote the
        same OptOut to it on every cycle and left the OptIn row."""
        e = self.e
        ind, cid = self.person("tworows@example.com")
        e.sync()
        e.json("optout", "tworows@example.com", "--purpose", "offers")
        e.sync()
        first = self.rows(ind)[0]["Id"]
        time.sleep(1.1)
        second = e.sf_put("ContactPointTypeConsent", Name="by hand", PartyId=ind,
                          ContactPointType="Email", DataUsePurposeId=self.dup["Offers"],
                          PrivacyConsentStatus="OptIn", CaptureContactPointType="Email")
        e.sync()
        e.sync()
        self.assertEqual({r["Id"]: r["PrivacyConsentStatus"] for r in self.rows(ind)},
                         {first: "OptOut", second: "OptOut"})
        e.ctl("POST", "requests")
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0, r["pushes"])
        # an admin's opt-in with new evidence goes to both rows
        time.sleep(1.1)
        e.run("consent", "tworows@example.com", "--purpose", "offers", "--consent-date",
              time_now(), "--evidence-ref", "call-3", admin=True, check=0)
        e.sync()
        self.assertEqual({r["Id"]: r["PrivacyConsentStatus"] for r in self.rows(ind)},
                         {first: "OptIn", second: "OptIn"})
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0, r["pushes"])
        # an OptOut a user gives on the second row is taken (P1), and the
        # first row follows
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Id=second, PrivacyConsentStatus="OptOut")
        e.sync()
        e.sync()
        self.assertEqual(self.purpose("tworows@example.com", "offers")["status"], "opted_out")
        self.assertEqual({r["Id"]: r["PrivacyConsentStatus"] for r in self.rows(ind)},
                         {first: "OptOut", second: "OptOut"})
        self.assertEqual(len(self.rows(ind)), 2)  # no third row

    def test_a_second_individual_of_a_person_counts(self):
        """A person's Contact names one Individual and their Lead another: an
        OptOut row on the second is the person's opt-out (P1), and the
        person's writes go to the rows of both. Before, the second
        Individual's rows were never read."""
        e = self.e
        ind, cid = self.person("twoinds@example.com")
        e.sync()
        e.json("optout", "twoinds@example.com", "--purpose", "events")
        e.sync()
        time.sleep(1.1)
        ind2 = e.sf_put("Individual", LastName="I2")
        e.sf_put("Lead", Email="twoinds@example.com", LastName="L", Company="c",
                 IndividualId=ind2)
        e.sync()
        time.sleep(1.1)
        row2 = e.sf_put("ContactPointTypeConsent", Name="by hand", PartyId=ind2,
                        ContactPointType="Email", DataUsePurposeId=self.dup["Offers"],
                        PrivacyConsentStatus="OptOut", CaptureDate="2026-11-01T00:00:00Z",
                        CaptureContactPointType="Email")
        e.sync()
        self.assertEqual(self.purpose("twoinds@example.com", "offers")["status"], "opted_out")
        # the person's events opt-out reaches a row of the second Individual
        time.sleep(1.1)
        row3 = e.sf_put("ContactPointTypeConsent", Name="by hand", PartyId=ind2,
                        ContactPointType="Email",
                        DataUsePurposeId=self.dup["Event Invitations"],
                        PrivacyConsentStatus="OptIn", CaptureContactPointType="Email")
        e.sync()
        e.sync()
        self.assertEqual(e.sf_get("ContactPointTypeConsent", row3)["PrivacyConsentStatus"],
                         "OptOut")
        self.assertEqual(e.sf_get("ContactPointTypeConsent", row2)["PrivacyConsentStatus"],
                         "OptOut")
        self.assertEqual(e.json("conflicts", "list", "--status", "all")["conflicts"], [])
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0, r["pushes"])

    def test_an_optin_row_with_a_capture_date_is_an_opt_in(self):
        """Consent given in Salesforce counts: a row at OptIn with a
        CaptureDate, for a person with no status, is an opt-in with evidence
        (the row), its CaptureSource in the history."""
        e = self.e
        ind, cid = self.person("sfin@example.com")
        e.sync()
        self.assertTrue(self.purpose("sfin@example.com", "events")["suppressed"])
        time.sleep(1.1)
        row = e.sf_put("ContactPointTypeConsent", Name="x", PartyId=ind,
                       ContactPointType="Email", DataUsePurposeId=self.dup["Event Invitations"],
                       PrivacyConsentStatus="OptIn", CaptureDate="2026-11-01T10:00:00Z",
                       CaptureSource="Web form", CaptureContactPointType="Email")
        r = e.sync()
        n = self.purpose("sfin@example.com", "events")
        self.assertEqual((n["status"], n["origin"], n["suppressed"], n.get("consent_date"),
                          n.get("evidence_ref")),
                         ("opted_in", "salesforce", False, "2026-11-01T10:00:00Z",
                          "salesforce:ContactPointTypeConsent/" + row))
        self.assertEqual(r["pulled"]["ContactPointTypeConsent"]["purpose_optins_from_salesforce"], 1)
        h = e.json("contact", "history", "sfin@example.com")
        self.assertEqual([(x["kind"], x["origin"], x.get("purpose")) for x in h],
                         [("optin", "salesforce", "events")])
        self.assertEqual((h[0]["record"]["object"], h[0]["record"]["id"]),
                         ("ContactPointTypeConsent", row))
        self.assertEqual(h[0]["evidence"]["ref"], "salesforce:ContactPointTypeConsent/" + row)
        self.assertIn("Web form", h[0]["reason"])
        # read again: no second opt-in, nothing written back
        r = e.sync("--full")
        self.assertEqual(r["pulled"]["ContactPointTypeConsent"]["purpose_optins_from_salesforce"], 0)
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        self.assertEqual(len(e.json("contact", "history", "sfin@example.com")), 1)
        # an opt-out afterwards (P1), then the row back at OptIn: a conflict (P2)
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Id=row, PrivacyConsentStatus="OptOut")
        e.sync()
        self.assertEqual(self.purpose("sfin@example.com", "events")["status"], "opted_out")
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Id=row, PrivacyConsentStatus="OptIn",
                 CaptureDate="2026-12-01T00:00:00Z")
        r = e.sync()
        self.assertEqual(r["pulled"]["ContactPointTypeConsent"]["resubscribe_conflicts"], 1)
        self.assertEqual(e.sf_get("ContactPointTypeConsent", row)["PrivacyConsentStatus"], "OptOut")
        self.assertEqual(self.purpose("sfin@example.com", "events")["status"], "opted_out")

    def test_an_optin_row_of_a_person_opted_out_of_all_email_is_not_taken(self):
        e = self.e
        ind, cid = self.person("sfallout@example.com")
        e.sync()
        e.json("optout", "sfallout@example.com")
        e.sync()
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Name="x", PartyId=ind, ContactPointType="Email",
                 DataUsePurposeId=self.dup["Event Invitations"], PrivacyConsentStatus="OptIn",
                 CaptureDate="2026-11-01T10:00:00Z", CaptureSource="Web form",
                 CaptureContactPointType="Email")
        r = e.sync()
        n = self.purpose("sfallout@example.com", "events")
        self.assertEqual((n["status"], n["suppressed"]), ("none", True))
        self.assertEqual(e.json("conflicts", "list")["conflicts"], [])
        self.assertEqual(r["pulled"]["ContactPointTypeConsent"]["purpose_optins_from_salesforce"], 0)

    def test_an_optin_row_without_a_capture_date_is_not_evidence(self):
        e = self.e
        ind, cid = self.person("sfnodate@example.com")
        e.sync()
        time.sleep(1.1)
        row = e.sf_put("ContactPointTypeConsent", Name="x", PartyId=ind,
                       ContactPointType="Email", DataUsePurposeId=self.dup["Event Invitations"],
                       PrivacyConsentStatus="OptIn", CaptureSource="an import",
                       CaptureContactPointType="Email")
        p = e.run("sync", "--once", "--json", check=0)
        r = json.loads(p.stdout)
        pulled = r["pulled"]["ContactPointTypeConsent"]
        self.assertEqual((pulled["purpose_optins_without_date"],
                          pulled["purpose_optins_from_salesforce"]), (1, 0))
        self.assertEqual(r["optins_without_date"],
                         [{"purpose": "events", "object": "ContactPointTypeConsent", "id": row,
                           "missing": "CaptureDate"}])
        self.assertIn(row, p.stderr)
        self.assertIn("not evidence", p.stderr)
        n = self.purpose("sfnodate@example.com", "events")
        self.assertEqual((n["status"], n["suppressed"]), ("none", True))
        self.assertEqual(e.json("contact", "history", "sfnodate@example.com"), [])
        # the CaptureDate filled in later: the opt-in counts then
        time.sleep(1.1)
        e.sf_put("ContactPointTypeConsent", Id=row, CaptureDate="2026-11-02T00:00:00Z")
        r = e.sync()
        self.assertNotIn("optins_without_date", r)
        n = self.purpose("sfnodate@example.com", "events")
        self.assertEqual((n["status"], n["consent_date"]), ("opted_in", "2026-11-02T00:00:00Z"))

    def test_individual_named_later_gets_the_row(self):
        e = self.e
        _, cid = self.person("later@example.com", individual=False)
        e.sync()
        e.json("optout", "later@example.com", "--purpose", "offers")
        r = e.sync()
        self.assertEqual(r["pushes"]["collection_calls"], 0)  # no Individual: nothing to write
        self.assertEqual(self.rows(), [])
        time.sleep(1.1)
        ind = e.sf_put("Individual", LastName="L")
        e.sf_put("Contact", Id=cid, IndividualId=ind)
        e.sync()
        self.assertEqual([(x["PartyId"], x["PrivacyConsentStatus"]) for x in self.rows()],
                         [(ind, "OptOut")])

    def test_create_individuals(self):
        self.e.close()
        self.e = e = test_sync.Env(extra=CONSENT_PURPOSES)
        with open(e.config) as f:
            text = f.read()
        with open(e.config, "w") as f:
            f.write(text.replace("[salesforce]\n", "[salesforce]\ncreate_individuals = true\n", 1))
        e.ctl("POST", "config", {"dpp": True})
        dup = e.sf_put("DataUsePurpose", Name="Offers", CanDataSubjectOptOut=True)
        e.sf_put("DataUsePurpose", Name="Event Invitations", CanDataSubjectOptOut=True)
        cid = e.sf_put("Contact", Email="newind@example.com", LastName="Lovelace", FirstName="Ada")
        e.sync()
        e.json("optout", "newind@example.com", "--purpose", "offers")
        e.sync()
        inds = e.ctl("GET", "records?object=Individual")["records"]
        self.assertEqual([(i["LastName"], i["FirstName"]) for i in inds], [("Lovelace", "Ada")])
        self.assertEqual(e.sf_get("Contact", cid)["IndividualId"], inds[0]["Id"])
        rows = e.ctl("GET", "records?object=ContactPointTypeConsent")["records"]
        self.assertEqual([(r["PartyId"], r["DataUsePurposeId"], r["PrivacyConsentStatus"])
                          for r in rows], [(inds[0]["Id"], dup, "OptOut")])
        r = e.sync()  # the link read back: nothing more to do
        self.assertEqual(r["pushes"]["collection_calls"], 0)
        self.assertEqual(len(e.ctl("GET", "records?object=Individual")["records"]), 1)

    def test_a_deleted_individual_fails_its_row_only(self):
        e = self.e
        ind1, _ = self.person("alive@example.com")
        ind2, _ = self.person("dead@example.com")
        e.sync()
        e.json("optout", "alive@example.com", "--purpose", "offers")
        e.json("optout", "dead@example.com", "--purpose", "offers")
        e.ctl("POST", "delete", {"object": "Individual", "ids": [ind2]})
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertEqual(r["pushes"]["parked_now"], 1)
        self.assertEqual([x["PartyId"] for x in self.rows()], [ind1])
        st = e.json("status")
        self.assertIn("INVALID_CROSS_REFERENCE_KEY", st["pushes"]["parked_records"][0]["error"])

    def test_the_fake_behaves_as_salesforce(self):
        """Creates as Salesforce checks them: required fields, restricted
        picklists, live references; each failing for its own record."""
        import urllib.parse
        import urllib.request
        base = "http://localhost:%d" % self.e.port
        form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "client_id": "fake-client-id",
                                       "client_secret": "fake-client-secret"}).encode()
        with urllib.request.urlopen(base + "/services/oauth2/token", form) as r:
            tok = json.loads(r.read())["access_token"]
        ind = self.e.sf_put("Individual", LastName="F")
        good = {"attributes": {"type": "ContactPointTypeConsent"}, "Name": "n", "PartyId": ind,
                "ContactPointType": "Email", "CaptureDate": "2026-11-01T00:00:00Z",
                "CaptureSource": "s", "CaptureContactPointType": "Email",
                "PrivacyConsentStatus": "OptOut", "DataUsePurposeId": self.dup["Offers"]}
        recs = [good, dict(good, CaptureSource=None), dict(good, ContactPointType="Fax"),
                dict(good, PartyId="0PK5e0000009999AAA"),
                {"attributes": {"type": "Individual"}, "FirstName": "x"}]
        req = urllib.request.Request(base + "/services/data/v62.0/composite/sobjects",
                                     json.dumps({"allOrNone": False, "records": recs}).encode(),
                                     {"Authorization": "Bearer " + tok,
                                      "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req) as r:
            res = json.loads(r.read())
        self.assertTrue(res[0]["success"])
        self.assertEqual([x["errors"][0]["statusCode"] for x in res[1:]],
                         ["REQUIRED_FIELD_MISSING", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                          "INVALID_CROSS_REFERENCE_KEY", "REQUIRED_FIELD_MISSING"])
        self.e.ctl("POST", "config", {"dpp": False})
        with urllib.request.urlopen(req) as r:
            res = json.loads(r.read())
        self.assertEqual({x["errors"][0]["statusCode"] for x in res}, {"INVALID_TYPE"})


def time_now():
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Migration(unittest.TestCase):
    def test_schema_1_fixture(self):
        fx = os.path.join(SRC, "tests", "state", "fixtures")
        with open(os.path.join(fx, "ledger-v1.expected.json")) as f:
            want = json.load(f)
        tmp = tempfile.mkdtemp()
        try:
            cfg = os.path.join(tmp, "optsync.toml")
            with open(cfg, "w") as f:
                f.write('[salesforce]\nclient_id = "x"\nauth = "client_credentials"\n'
                        'client_secret_file = "/nonexistent"\n[state]\npath = "%s/ledger"\n'
                        '[log]\nlevel = "warn"\n' % tmp)

            def j(*a, check=0):
                p = subprocess.run([OPTSYNC, "-c", cfg, *a, "--json"], capture_output=True,
                                   text=True)
                self.assertEqual(p.returncode, check, p.stderr)
                return json.loads(p.stdout) if p.stdout.strip() else None
            # restore: the file is checked, opened (migrated) and verified
            j("restore", os.path.join(fx, "ledger-v1.backup"))
            st = j("status")
            self.assertEqual(st["ledger"]["schema_version"], 7)
            for k in ["persons", "salesforce_records", "history_events", "changes"]:
                self.assertEqual(st["ledger"][k], want["ledger"][k], k)
            a = j("audit", "verify", "--expect", want["audit_head"])
            self.assertTrue(a["ok"])
            self.assertEqual(j("conflicts", "list", "--status", "all")["conflicts"],
                             want["conflicts"])
            self.assertEqual(j("suppressions", "export", "--format", "json"),
                             want["suppressions"])
            for email, p in want["persons"].items():
                show = j("contact", "show", email)
                show.pop("purposes")  # new in schema 2: empty for them
                self.assertEqual(show, p["show"])
                hist = [h for h in j("contact", "history", email) if h["kind"] != "access"]
                self.assertEqual(hist, p["history"])
            # the fixture's events keep their version-1 hashes; the access
            # events just appended are of version 2, and the chain holds
            self.assertTrue(j("audit", "verify")["ok"])
            # a schema-1 ledger opened in place is backed up first
            shutil.rmtree(os.path.join(tmp, "ledger"))
            os.makedirs(os.path.join(tmp, "ledger2"))
            with open(os.path.join(fx, "ledger-v1.backup"), "rb") as f:
                data = f.read()
            # the backup file is LMDB's data followed by a 64-byte trailer
            # (docs/ledger-format.md)
            with open(os.path.join(tmp, "ledger2", "data.mdb"), "wb") as f:
                f.write(data[:-64])
            with open(cfg, "w") as f:
                f.write('[salesforce]\nclient_id = "x"\nauth = "client_credentials"\n'
                        'client_secret_file = "/nonexistent"\n[state]\npath = "%s/ledger2"\n'
                        '[log]\nlevel = "info"\nformat = "text"\n' % tmp)
            p = subprocess.run([OPTSYNC, "-c", cfg, "status", "--json"], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout)["ledger"]["schema_version"], 7)
            backups = glob.glob(os.path.join(tmp, "ledger2.schema1-*.backup"))
            self.assertEqual(len(backups), 1, p.stderr)
            self.assertIn("before migrating to schema 7", p.stderr)
            # that backup is a schema-1 ledger that restores
            v = subprocess.run([OPTSYNC, "-c", cfg, "audit", "verify", "--json"],
                               capture_output=True, text=True)
            self.assertTrue(json.loads(v.stdout)["ok"])
        finally:
            shutil.rmtree(tmp)

    def test_schema_3_fixture(self):
        """Schema 3 kept a person's records inside the person (at most 32)
        and let one record hold two open conflicts; the migration to schema
        4 moves the records into the person_records index and keeps the
        first open conflict of a record and purpose."""
        fx = os.path.join(SRC, "tests", "state", "fixtures")
        with open(os.path.join(fx, "ledger-v3.expected.json")) as f:
            want = json.load(f)
        tmp = tempfile.mkdtemp()
        try:
            cfg = os.path.join(tmp, "optsync.toml")

            def config(path, level="warn"):
                with open(cfg, "w") as f:
                    f.write('[salesforce]\nclient_id = "x"\nauth = "client_credentials"\n'
                            'client_secret_file = "/nonexistent"\n[state]\npath = "%s/%s"\n'
                            '[log]\nlevel = "%s"\nformat = "text"\n' % (tmp, path, level))

            def j(*a, check=0):
                p = subprocess.run([OPTSYNC, "-c", cfg, *a, "--json"], capture_output=True,
                                   text=True)
                self.assertEqual(p.returncode, check, p.stderr)
                return json.loads(p.stdout) if p.stdout.strip() else None
            config("ledger")
            j("restore", os.path.join(fx, "ledger-v3.backup"))
            st = j("status")
            self.assertEqual(st["ledger"]["schema_version"], 7)
            for k in ["persons", "salesforce_records", "history_events", "changes"]:
                self.assertEqual(st["ledger"][k], want["ledger"][k], k)
            self.assertEqual(st["pushes"]["queued"], want["pushes_queued"])
            self.assertTrue(j("audit", "verify", "--expect", want["audit_head"])["ok"])
            for email, p in want["persons"].items():
                show = j("contact", "show", email)
                self.assertEqual(show["opted_out"], p["opted_out"], email)
                self.assertEqual(sorted([r["object"], r["id"]] for r in show["salesforce_records"]),
                                 p["salesforce_records"], email)
            self.assertEqual(len(want["persons"]["info@bigco.example"]["salesforce_records"]), 32)
            # two open conflicts of one record: the first stays open, the
            # later one is closed as its duplicate
            got = {c["id"]: c for c in j("conflicts", "list", "--status", "all")["conflicts"]}
            self.assertEqual(sorted(got), [c["id"] for c in want["conflicts"]])
            dup = [c for c in want["conflicts"] if c["status"] == "open"]
            self.assertEqual(dup[0]["record"], dup[2]["record"])
            self.assertEqual([got[c["id"]]["status"] for c in dup], ["open", "open", "resolved"])
            self.assertEqual(got[dup[2]["id"]]["resolution"], "duplicate")
            self.assertEqual(got[dup[2]["id"]]["resolved_by"], "optsync")
            self.assertEqual(len(j("conflicts", "list")["conflicts"]), 2)
            self.assertTrue(j("audit", "verify")["ok"])
            # opened in place, a schema-3 ledger is backed up first
            os.makedirs(os.path.join(tmp, "ledger2"))
            with open(os.path.join(fx, "ledger-v3.backup"), "rb") as f:
                data = f.read()
            with open(os.path.join(tmp, "ledger2", "data.mdb"), "wb") as f:
                f.write(data[:-64])
            config("ledger2", "info")
            p = subprocess.run([OPTSYNC, "-c", cfg, "status", "--json"], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(json.loads(p.stdout)["ledger"]["schema_version"], 7)
            self.assertEqual(len(glob.glob(os.path.join(tmp, "ledger2.schema3-*.backup"))), 1)
            self.assertIn("before migrating to schema 7", p.stderr)
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    OPTSYNC, fake, SRC = (os.path.abspath(x) for x in sys.argv[1:4])
    test_links.OPTSYNC, test_links.FAKE = OPTSYNC, fake
    test_sync.OPTSYNC, test_sync.FAKE = OPTSYNC, fake
    test_sync.ADMIN_HASH = subprocess.run(
        [OPTSYNC, "admin", "hash-token"], input=test_sync.ADMIN_TOKEN + "\n", capture_output=True,
        text=True, check=True).stdout.split('"')[1]
    unittest.main(argv=sys.argv[:1], verbosity=2)
