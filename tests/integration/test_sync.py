#!/usr/bin/env python3
"""Scenario tests of the sync rules: the real optsync binary against the fake
Salesforce, each rule its own test.

Usage: test_sync.py OPTSYNC FAKE_SF_PY"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

OPTSYNC = FAKE = None
ADMIN_TOKEN = "correct-horse-battery-staple-42"
ADMIN_HASH = None


def http(port, method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def sf_time(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(t))


class Env:
    """A fake Salesforce, a config and a ledger in a temporary folder."""

    def __init__(self, contacts=0, leads=0, extra=""):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        portfile = os.path.join(self.dir, "port")
        self.log = open(os.path.join(self.dir, "fake.log"), "w")
        self.proc = subprocess.Popen([sys.executable, FAKE, "--port-file", portfile,
                                      "--contacts", str(contacts), "--leads", str(leads)],
                                     stdout=self.log, stderr=self.log)
        for _ in range(200):
            if os.path.exists(portfile):
                break
            time.sleep(0.05)
        with open(portfile) as f:
            self.port = int(f.read())
        self.config = os.path.join(self.dir, "optsync.toml")
        with open(self.config, "w") as f:
            f.write('[salesforce]\nlogin_url = "http://localhost:%d"\nauth = "client_credentials"\n'
                    'client_id = "fake-client-id"\n[state]\npath = "%s/state"\nmap_size = "16MiB"\n'
                    '[log]\nformat = "text"\nlevel = "warn"\n[[admins]]\nname = "alice"\n'
                    'token_hash = "%s"\n%s' % (self.port, self.dir, ADMIN_HASH, extra))

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        self.tmp.cleanup()

    def run(self, *args, admin=False, token=ADMIN_TOKEN, check=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
        env["OPTSYNC_SALESFORCE_CLIENT_SECRET"] = "fake-client-secret"
        if admin:
            env["OPTSYNC_ADMIN"] = "alice"
            env["OPTSYNC_ADMIN_TOKEN"] = token
        p = subprocess.run([OPTSYNC, "-c", self.config, *args], capture_output=True, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=120)
        if check is not None and p.returncode != check:
            raise AssertionError("optsync %s: exit %d, wanted %d\n%s%s" % (
                " ".join(args), p.returncode, check, p.stdout, p.stderr))
        return p

    def json(self, *args, admin=False, check=0):
        p = self.run(*args, "--json", admin=admin, check=check)
        doc = json.loads(p.stdout)
        if args[:2] == ("contact", "history") and isinstance(doc, list):
            # each history read is an access event itself (the access trail,
            # tested in test_access.py): the rule tests look at the others
            doc = [e for e in doc if e["kind"] != "access"]
        return doc

    def sync(self, *extra):
        return self.json("sync", "--once", *extra)

    def ctl(self, method, path, body=None):
        return http(self.port, method, "/__control/" + path, body)

    def sf_put(self, obj, **fields):
        return self.ctl("POST", "records", {"object": obj, "records": [fields]})["ids"][0]

    def sf_get(self, obj, rid):
        return self.ctl("GET", "records?object=%s&id=%s" % (obj, rid))["records"][0]

    def calls(self):
        return self.ctl("GET", "calls")

    def reset_calls(self):
        self.ctl("POST", "calls")


class Rules(unittest.TestCase):
    def setUp(self):
        self.env = Env()

    def tearDown(self):
        self.env.close()

    # Rule 1: opt-out wins and spreads
    def test_optout_from_salesforce_reaches_the_ledger_and_feed(self):
        e = self.env
        rid = e.sf_put("Contact", Email="Ada@Example.com", LastName="Lovelace")
        e.sync()
        self.assertFalse(e.json("contact", "show", "ada@example.com")["opted_out"])
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=True)
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["optouts_from_salesforce"], 1)
        person = e.json("contact", "show", "  ADA@example.com ")
        self.assertTrue(person["opted_out"])
        hist = e.json("contact", "history", "ada@example.com")
        self.assertEqual(hist[-1]["kind"], "optout")
        self.assertEqual(hist[-1]["origin"], "salesforce")

    def test_local_optout_reaches_salesforce(self):
        e = self.env
        rid = e.sf_put("Contact", Email="bob@example.com", LastName="B")
        e.sync()
        p = e.json("optout", "bob@example.com", "--reason", "unsubscribe link")
        self.assertFalse(p["already"])
        self.assertTrue(e.json("optout", "bob@example.com")["already"])  # idempotent
        e.reset_calls()
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertEqual(e.calls()["collections"], 1)
        self.assertTrue(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])

    def test_contact_and_lead_share_an_email(self):
        e = self.env
        c = e.sf_put("Contact", Email="shared@example.com", LastName="C")
        l = e.sf_put("Lead", Email="shared@example.com", LastName="L", Company="X")
        e.sync()
        self.assertEqual(len(e.json("contact", "show", "shared@example.com")["salesforce_records"]), 2)
        time.sleep(1.1)
        e.sf_put("Lead", Id=l, HasOptedOutOfEmail=True)
        e.sync()
        self.assertTrue(e.sf_get("Contact", c)["HasOptedOutOfEmail"])  # spread to the Contact

    # Rule 2: no silent re-subscribe
    def test_resubscribe_in_salesforce_is_reverted_and_listed(self):
        e = self.env
        rid = e.sf_put("Contact", Email="carol@example.com", LastName="C", HasOptedOutOfEmail=True)
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=False)
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["resubscribe_conflicts"], 1)
        self.assertTrue(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])  # reverted
        self.assertTrue(e.json("contact", "show", "carol@example.com")["opted_out"])
        # the revert landed: settled by optsync, so nothing waits for a human
        self.assertEqual(r["pushes"]["conflicts_reverted"], 1)
        self.assertEqual(e.json("conflicts", "list")["conflicts"], [])
        conflicts = e.json("conflicts", "list", "--status", "all")["conflicts"]
        self.assertEqual(len(conflicts), 1)
        c = conflicts[0]
        self.assertEqual((c["kind"], c["status"], c["resolution"], c["resolved_by"]),
                         ("resubscribe", "reverted", "reverted", "optsync"))
        self.assertEqual(c["record"]["id"], rid)
        self.assertEqual(c["email"], "carol@example.com")
        self.assertEqual(e.json("status")["open_conflicts"], 0)
        # the text form: who and what, not a hash
        text = e.run("conflicts", "list", "--status", "all", check=0).stdout
        self.assertRegex(text, r"%d +reverted +resubscribe +carol@example.com +Contact +%s +\d+s"
                         % (c["id"], rid))
        self.assertNotIn(c["person"], text)

    def test_resubscribe_held_under_hold_policy(self):
        self.env.close()
        self.env = e = Env(extra='[sync]\nresubscribe_policy = "hold"\n')
        rid = e.sf_put("Contact", Email="dan@example.com", LastName="D", HasOptedOutOfEmail=True)
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=False)
        e.sync()
        self.assertFalse(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])  # left alone
        self.assertTrue(e.json("contact", "show", "dan@example.com")["opted_out"])
        cid = str(e.json("conflicts", "list")["conflicts"][0]["id"])
        # an admin keeps the opt-out: then Salesforce is set back
        e.run("conflicts", "resolve", cid, "--keep-optout", check=4)
        e.run("conflicts", "resolve", cid, "--keep-optout", admin=True, check=0)
        e.sync()
        self.assertTrue(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])
        self.assertEqual(e.json("conflicts", "list", "--status", "resolved")["conflicts"][0]["resolved_by"], "alice")

    def test_resubscribe_while_the_optout_is_queued(self):
        """An admin's re-subscribe before the opt-out's write was sent: the
        write queued for the record says opted in now, so Salesforce and
        the ledger agree (rules 2 and 6)."""
        e = self.env
        rid = e.sf_put("Contact", Email="quick@example.com", LastName="Q")
        e.sync()
        e.json("optout", "quick@example.com")  # queued, not sent
        time.sleep(1.1)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        e.run("resubscribe", "quick@example.com", "--consent-date", now, "--purpose",
              "Newsletter", "--evidence-ref", "form-7", admin=True, check=0)
        e.sync()
        self.assertFalse(e.json("contact", "show", "quick@example.com")["opted_out"])
        self.assertFalse(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])
        e.reset_calls()
        e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)

    def test_resubscribe_needs_admin_and_evidence(self):
        e = self.env
        rid = e.sf_put("Contact", Email="erin@example.com", LastName="E")
        e.sync()
        e.json("optout", "erin@example.com")
        e.sync()
        args = ["resubscribe", "erin@example.com", "--consent-date", "2026-11-20T14:05:00Z",
                "--purpose", "Newsletter", "--evidence-ref", "form-123"]
        future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
        p = e.run(*args, check=4)  # no admin credentials
        self.assertIn("admin", p.stderr)
        e.run(*args, admin=True, token="wrong-token-wrong-token", check=4)
        p = e.run(*args, admin=True, check=4)  # consent predates the opt-out
        self.assertIn("is not later than the opt-out of 20", p.stderr)
        self.assertRegex(p.stderr, r"consent date 2026-11-20T14:05:00Z is not later than the "
                         r"opt-out of \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")
        args[3] = future
        e.run(*args, admin=True, check=4)  # in the future
        args[3] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
        time.sleep(3)
        p = e.run(*args, admin=True, check=0)
        self.assertFalse(e.json("contact", "show", "erin@example.com")["opted_out"])
        e.sync()
        sf = e.sf_get("Contact", rid)
        self.assertFalse(sf["HasOptedOutOfEmail"])
        self.assertEqual(sf["Authorization_Type__c"], "Consent")
        self.assertEqual(sf["Processing_Purpose__c"], "Newsletter")
        hist = e.json("contact", "history", "erin@example.com")
        kinds = [h["kind"] for h in hist]
        self.assertIn("refused", kinds)  # the refused attempts are recorded
        optin = [h for h in hist if h["kind"] == "optin"][0]
        self.assertEqual(optin["actor"], "alice")
        self.assertEqual(optin["evidence"]["ref"], "form-123")

    # Records deleted in Salesforce are unlinked; the history keeps them
    def test_deleted_record_is_unlinked(self):
        e = self.env
        cid = e.sf_put("Contact", Email="gone@example.com", LastName="G")
        lid = e.sf_put("Lead", Email="gone@example.com", LastName="G", Company="Y")
        e.sync()
        e.json("optout", "gone@example.com")
        time.sleep(1.1)
        e.ctl("POST", "delete", {"object": "Contact", "ids": [cid]})
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["records_unlinked"], 1)
        show = e.json("contact", "show", "gone@example.com")
        self.assertEqual([x["id"] for x in show["salesforce_records"]], [lid])
        self.assertTrue(show["opted_out"])  # the opt-out stays, on the person
        # the push queued for the deleted record was dropped, not parked
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertEqual(e.json("status")["pushes"]["parked"], 0)
        hist = e.json("contact", "history", "gone@example.com")
        un = [h for h in hist if h["kind"] == "unlinked"]
        self.assertEqual(len(un), 1)
        self.assertEqual((un[0]["record"]["id"], un[0]["reason"]), (cid, "deleted in Salesforce"))
        self.assertEqual(e.json("status")["ledger"]["salesforce_records"], 1)
        r = e.sync()  # read again inside the overlap: nothing new
        self.assertEqual(r["pulled"]["Contact"]["records_unlinked"], 0)
        self.assertEqual(len(e.json("contact", "history", "gone@example.com")), len(hist))
        self.assertTrue(e.json("audit", "verify")["ok"])

    # After a merge the surviving record carries the person's opt-out
    def test_merge_carries_the_optout_to_the_survivor(self):
        e = self.env
        loser = e.sf_put("Contact", Email="dup@example.com", LastName="D", HasOptedOutOfEmail=True)
        master = e.sf_put("Contact", Email="dup-work@example.com", LastName="D")
        e.sync()
        time.sleep(1.1)
        e.ctl("POST", "merge", {"object": "Contact", "master": master, "losers": [loser]})
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["records_unlinked"], 1)
        self.assertTrue(e.sf_get("Contact", master)["HasOptedOutOfEmail"])
        hist = e.json("contact", "history", "dup@example.com")
        self.assertEqual(hist[-1]["kind"], "unlinked")
        self.assertEqual(hist[-1]["reason"], "merged into Contact %s in Salesforce" % master)
        self.assertEqual(e.json("contact", "show", "dup@example.com")["salesforce_records"], [])
        # the survivor's person is the same human: it takes the opt-out
        self.assertTrue(e.json("contact", "show", "dup-work@example.com")["opted_out"])
        h = e.json("contact", "history", "dup-work@example.com")[-1]
        self.assertEqual((h["kind"], h["reason"]), ("optout", "carried over from Contact %s, "
                                                    "merged into Contact %s" % (loser, master)))
        r = e.sync()  # and nothing more to do
        self.assertEqual(r["pushes"]["collection_calls"], 0)

    # Rule 3: suppression holds for new records
    def test_new_lead_of_suppressed_email_is_opted_out(self):
        e = self.env
        e.json("optout", "frank@example.com")  # no Salesforce record yet
        e.sync()
        lid = e.sf_put("Lead", Email="FRANK@example.com", LastName="F", Company="Y")
        r = e.sync()
        self.assertEqual(r["pulled"]["Lead"]["new_records_suppressed"], 1)
        self.assertTrue(e.sf_get("Lead", lid)["HasOptedOutOfEmail"])

    # Rule 4: own writes are not changes
    def test_no_write_after_reading_back_our_own_write(self):
        e = self.env
        rid = e.sf_put("Contact", Email="gina@example.com", LastName="G")
        e.sync()
        e.json("contact", "set", "gina@example.com", "--authorization", "consent",
               "--consent-date", "2026-11-01", "--purpose", "Newsletter", "--source", "import")
        e.sync()
        self.assertEqual(e.sf_get("Contact", rid)["Source_Type__c"], "Import")
        e.reset_calls()
        r = e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)
        self.assertEqual(r["pulled"]["Contact"]["facts_applied"], 0)
        self.assertEqual(len(e.json("conflicts", "list", "--status", "all")["conflicts"]), 0)

    # Rule 5: validation and concurrent edits
    def test_invalid_values_from_salesforce_become_conflicts(self):
        e = self.env
        rid = e.sf_put("Contact", Email="hal@example.com", LastName="H")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, Authorization_Type__c="Because We Can")
        e.sync()
        self.assertIsNone(e.json("contact", "show", "hal@example.com")["authorization"]["type"])
        c = e.json("conflicts", "list")["conflicts"]
        self.assertEqual(c[0]["kind"], "invalid_value")
        self.assertIn("Because We Can", c[0]["salesforce_value"])
        e.sync()  # raised once, not every cycle
        self.assertEqual(len(e.json("conflicts", "list")["conflicts"]), 1)
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, Authorization_Type__c="Consent")  # consent without date
        e.sync()
        self.assertIsNone(e.json("contact", "show", "hal@example.com")["authorization"]["type"])

    def test_local_validation(self):
        e = self.env
        e.run("contact", "set", "ivy@example.com", "--authorization", "consent", check=2)
        e.run("contact", "set", "ivy@example.com", "--authorization", "contract",
              "--purpose", "x", check=2)
        e.run("contact", "set", "ivy@example.com", "--authorization", "other", check=2)
        e.run("contact", "set", "not-an-email", "--authorization", "contract", check=2)
        e.run("contact", "set", "ivy@example.com", "--authorization", "friendship", check=2)
        e.run("contact", "set", "ivy@example.com", "--authorization", "other",
              "--other", "club membership", check=0)

    def test_concurrent_edits_newer_wins(self):
        e = self.env
        rid = e.sf_put("Contact", Email="jo@example.com", LastName="J")
        e.sync()
        # local change first, then a newer one in Salesforce: Salesforce wins
        e.json("contact", "set", "jo@example.com", "--source", "import")
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, Source_Type__c="Manual Upload")
        e.sync()
        self.assertEqual(e.json("contact", "show", "jo@example.com")["source"]["type"], "manual_upload")
        self.assertEqual(e.sf_get("Contact", rid)["Source_Type__c"], "Manual Upload")
        c = e.json("conflicts", "list", "--status", "resolved")["conflicts"]
        self.assertEqual(c[0]["kind"], "concurrent_edit")
        self.assertEqual(c[0]["resolution"], "salesforce_newer")
        self.assertTrue(c[0]["auto_resolved"])
        # a Salesforce change first, then a newer local one: local wins
        e.sf_put("Contact", Id=rid, Source_Type__c="CRM Sync")
        time.sleep(1.1)
        e.json("contact", "set", "jo@example.com", "--source", "browser_extension")
        e.sync()
        self.assertEqual(e.sf_get("Contact", rid)["Source_Type__c"], "Browser Extension")
        self.assertEqual(e.json("contact", "show", "jo@example.com")["source"]["type"],
                         "browser_extension")

    # the overlap window
    def test_late_record_inside_overlap_is_read(self):
        e = self.env
        e.sf_put("Contact", Email="kim@example.com", LastName="K")
        e.sync()
        # a record committed late: its SystemModstamp is 2 minutes before the cursor
        late = e.sf_put("Contact", Email="late@example.com", LastName="L", HasOptedOutOfEmail=True,
                        SystemModstamp=sf_time(time.time() - 120))
        r = e.sync()
        self.assertTrue(e.json("contact", "show", "late@example.com")["opted_out"])
        self.assertGreaterEqual(r["pulled"]["Contact"]["records"], 2)
        self.assertTrue(late)

    # Rule 7: permanent per-record failures are parked
    def test_permanent_errors_parked_and_shown(self):
        e = self.env
        ok = e.sf_put("Contact", Email="lee@example.com", LastName="L")
        bad = e.sf_put("Contact", Email="mo@example.com", LastName="M")
        e.sync()
        # the push is refused a second or more after the record last changed
        # (a record read again in the second of the refusal is tried once more)
        time.sleep(1.1)
        e.ctl("POST", "faults", {"errors": {bad: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}})
        e.json("optout", "lee@example.com")
        e.json("optout", "mo@example.com")
        r = e.sync()
        self.assertEqual(r["pushes"]["parked_now"], 1)
        st = e.json("status")
        self.assertEqual(st["pushes"]["parked"], 1)
        parked = st["pushes"]["parked_records"][0]
        self.assertEqual(parked["id"], bad)
        self.assertIn("FIELD_CUSTOM_VALIDATION_EXCEPTION", parked["error"])
        self.assertEqual(parked["email"], "mo@example.com")
        self.assertEqual(parked["attempts"], 1)
        # tried again by itself, an hour later at first
        nxt = time.mktime(time.strptime(parked["next_try"][:19], "%Y-%m-%dT%H:%M:%S")) - \
            time.timezone
        self.assertAlmostEqual(nxt - time.time(), 3600, delta=120)
        self.assertTrue(e.sf_get("Contact", ok)["HasOptedOutOfEmail"])
        e.reset_calls()
        e.sync()  # a parked push is not retried every cycle
        self.assertEqual(e.calls().get("collections", 0), 0)

        # the cause fixed and the record edited in Salesforce: the next cycle
        # reads the change and writes the parked opt-out
        e.ctl("DELETE", "faults")
        e.sync()
        self.assertEqual(e.json("status")["pushes"]["parked"], 1)  # nothing changed yet
        time.sleep(1)
        e.ctl("POST", "records", {"object": "Contact",
                                  "records": [{"Id": bad, "Title": "fixed by an admin"}]})
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertTrue(e.sf_get("Contact", bad)["HasOptedOutOfEmail"])
        st = e.json("status")
        self.assertEqual(st["pushes"]["parked"], 0)
        self.assertEqual(st["pushes"]["queued"], 0)

    def test_an_edit_in_the_second_of_the_last_read_releases_a_parked_push(self):
        """SystemModstamp keeps whole seconds: an edit in the second optsync
        last read the record does not move it. Read again, the record still
        releases its parked push when it reads otherwise."""
        e = self.env
        rid = e.sf_put("Contact", Email="same@example.com", LastName="S")
        e.sync()
        time.sleep(1.1)
        e.ctl("POST", "faults", {"errors": {rid: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}})
        e.json("optout", "same@example.com")
        self.assertEqual(e.sync()["pushes"]["parked_now"], 1)
        stamp = e.sf_get("Contact", rid)["SystemModstamp"]
        e.ctl("DELETE", "faults")
        e.sync()
        self.assertEqual(e.json("status")["pushes"]["parked"], 1)  # read again, unchanged
        # fixed by an admin in the same second: SystemModstamp does not move
        e.sf_put("Contact", Id=rid, Title="fixed", SystemModstamp=stamp)
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertTrue(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])

    def test_an_edit_in_the_second_of_the_refusal_releases_a_parked_push(self):
        """A field optsync does not read, edited in the second Salesforce
        refused the push: the record reads the same, at the same
        SystemModstamp, and is tried once more."""
        e = self.env
        other = e.sf_put("Contact", Email="other@example.com", LastName="O")
        e.sync()
        e.ctl("POST", "faults", {"errors": {other: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}})
        e.json("optout", "other@example.com")
        # the record's last change, as Salesforce's clock has it, is the
        # second of the refusal (a few seconds ahead of optsync's clock)
        later = sf_time(time.time() + 5)
        e.sf_put("Contact", Id=other, SystemModstamp=later)
        self.assertEqual(e.sync()["pushes"]["parked_now"], 1)
        e.ctl("DELETE", "faults")
        e.sf_put("Contact", Id=other, Events_Opt_Out__c=True, SystemModstamp=later)
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertTrue(e.sf_get("Contact", other)["HasOptedOutOfEmail"])

    def test_drain_makes_the_minimum_calls(self):
        # issue 24: a drain reads the due pushes only, each round going on
        # where the last stopped: every record once, 200 to a call, and the
        # parked pushes waiting for their hour are not read at all
        e = self.env
        contacts = e.ctl("POST", "records", {"object": "Contact", "records": [
            {"Email": "c%d@drain.example" % i, "LastName": "C%d" % i}
            for i in range(1050)]})["ids"]
        leads = e.ctl("POST", "records", {"object": "Lead", "records": [
            {"Email": "l%d@drain.example" % i, "LastName": "L%d" % i, "Company": "X"}
            for i in range(230)]})["ids"]
        e.sync()
        # the refusals come a second after the records' last edit: a parked
        # push is released by a read that may hold an edit made after its
        # refusal (one in the same second, or later)
        time.sleep(1.1)
        bad = contacts[::26][:40]  # spread over the outbox
        e.ctl("POST", "faults", {"errors": {rid: "FIELD_CUSTOM_VALIDATION_EXCEPTION"
                                            for rid in bad}})
        listing = os.path.join(e.dir, "parked.txt")
        with open(listing, "w") as f:
            f.write("".join("c%d@drain.example\n" % contacts.index(rid) for rid in bad))
        e.run("optout", "--from", listing, check=0)
        self.assertEqual(e.sync()["pushes"]["parked_now"], 40)
        e.ctl("DELETE", "faults")
        listing = os.path.join(e.dir, "rest.txt")
        with open(listing, "w") as f:
            f.write("".join("c%d@drain.example\n" % i for i in range(1050)
                            if contacts[i] not in bad))
            f.write("".join("l%d@drain.example\n" % i for i in range(230)))
        e.run("optout", "--from", listing, check=0)
        st = e.json("status")["pushes"]
        self.assertEqual((st["queued"], st["parked"]), (1240, 40))
        e.reset_calls()
        e.ctl("POST", "requests")
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1240)
        self.assertEqual(r["pushes"]["collection_calls"], 7)  # ceil(1240 / 200)
        self.assertEqual(e.calls()["collections"], 7)
        sent = [rec["id"] for q in e.ctl("GET", "requests")["requests"]
                if q["route"] == "collections" for rec in q["body"]["records"]]
        self.assertEqual(len(sent), 1240)
        self.assertEqual(set(sent), (set(contacts) - set(bad)) | set(leads))
        st = e.json("status")["pushes"]
        self.assertEqual((st["queued"], st["parked"]), (0, 40))
        e.reset_calls()
        e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)

    def test_pushes_retry_on_demand(self):
        e = self.env
        a = e.sf_put("Contact", Email="ana@example.com", LastName="A")
        b = e.sf_put("Lead", Email="ben@example.com", LastName="B", Company="X")
        c = e.sf_put("Contact", Email="cy@example.com", LastName="C")
        e.sync()
        time.sleep(1.1)  # refused in a later second than the records' last change
        e.ctl("POST", "faults", {"errors": {a: "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                            b: "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                                            c: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}})
        for m in ("ana@example.com", "ben@example.com", "cy@example.com"):
            e.json("optout", m)
        self.assertEqual(e.sync()["pushes"]["parked_now"], 3)
        e.ctl("DELETE", "faults")
        # nothing changed in Salesforce, and no hour has passed: still parked
        e.sync("--full")
        self.assertEqual(e.json("status")["pushes"]["parked"], 3)
        # one record by id, then the rest
        self.assertEqual(e.json("pushes", "retry", a)["released"], 1)
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertTrue(e.sf_get("Contact", a)["HasOptedOutOfEmail"])
        self.assertFalse(e.sf_get("Contact", c)["HasOptedOutOfEmail"])
        self.assertEqual(e.json("pushes", "retry", "--all")["released"], 2)
        self.assertEqual(e.sync()["pushes"]["succeeded"], 2)
        self.assertTrue(e.sf_get("Lead", b)["HasOptedOutOfEmail"])
        self.assertTrue(e.sf_get("Contact", c)["HasOptedOutOfEmail"])
        self.assertEqual(e.json("status")["pushes"]["parked"], 0)
        # what it refuses
        p = e.run("pushes", "retry", a, check=1)  # nothing parked for it any more
        self.assertIn("no parked push", p.stderr)
        e.run("pushes", "retry", "not-an-id", check=2)
        e.run("pushes", "retry", check=2)
        e.run("pushes", "retry", a, "--all", check=2)

    def test_dry_run_touches_nothing(self):
        e = self.env
        rid = e.sf_put("Contact", Email="ned@example.com", LastName="N", HasOptedOutOfEmail=True)
        scratch = os.path.join(e.dir, "tmpdir")
        os.mkdir(scratch)
        os.environ["TMPDIR"] = scratch
        try:
            r = e.sync("--dry-run")
        finally:
            del os.environ["TMPDIR"]
        self.assertEqual(r["pulled"]["Contact"]["optouts_from_salesforce"], 1)
        e.run("contact", "show", "ned@example.com", check=5)  # no ledger was even created
        self.assertEqual(os.listdir(scratch), [])  # and its throwaway one was removed
        e.sync()
        e.json("optout", "other@example.com")
        e.sf_put("Contact", Email="other@example.com", LastName="O")
        before = e.sf_get("Contact", rid)
        e.reset_calls()
        r = e.sync("--dry-run")
        self.assertEqual(e.calls().get("collections", 0), 0)
        self.assertEqual(e.sf_get("Contact", rid), before)
        e.run("contact", "show", "other@example.com", check=0)
        st = e.json("status")
        self.assertEqual(st["pushes"]["queued"], 0)  # the dry run queued nothing

    def test_dry_run_reports_what_the_real_run_does(self):
        def compare(e, label):
            before = e.run("audit", "verify", "--json").stdout
            dry = e.sync("--dry-run")
            self.assertEqual(e.run("audit", "verify", "--json").stdout, before, label)
            self.assertFalse([f for f in os.listdir(e.dir) if ".dry-run-" in f], label)
            e.reset_calls()
            real = e.sync()
            for obj in ("Contact", "Lead"):
                self.assertEqual(dry["pushes"]["by_object"][obj],
                                 real["pushes"]["by_object"][obj], "%s: %s" % (label, obj))
                for k in ("optouts_from_salesforce", "resubscribe_conflicts",
                          "new_records_suppressed", "pushes_queued", "facts_applied"):
                    self.assertEqual(dry["pulled"][obj][k], real["pulled"][obj][k],
                                     "%s: %s %s" % (label, obj, k))
            self.assertEqual(dry["pushes"]["would_push"], real["pushes"]["succeeded"], label)
            self.assertEqual(dry["pushes"]["collection_calls"],
                             real["pushes"]["collection_calls"], label)
            self.assertEqual(len(dry["would_push"]), dry["pushes"]["would_push"], label)
            return dry
        # a fresh ledger over a seeded org: shared emails, opt-outs on one of
        # several records, GDPR fields on some; the pull itself queues writes
        e = Env(contacts=300, leads=120)
        try:
            dry = compare(e, "first sync")
            self.assertGreater(dry["pushes"]["would_push"], 0)
            # an existing ledger: local opt-outs queued, a re-subscribe to
            # revert, a new Lead of a suppressed person, a new opt-out in
            # Salesforce on a record whose email another record shares
            recs = e.ctl("GET", "records?object=Contact")["records"]
            ins = [r for r in recs if not r["HasOptedOutOfEmail"]]
            outs = [r for r in recs if r["HasOptedOutOfEmail"]]
            for r in ins[:5]:
                e.json("optout", r["Email"])
            time.sleep(1)
            e.ctl("POST", "records", {"object": "Contact", "records": [
                {"Id": outs[0]["Id"], "HasOptedOutOfEmail": False},
                {"Id": ins[10]["Id"], "HasOptedOutOfEmail": True}]})
            e.sf_put("Lead", Email=outs[1]["Email"], LastName="L", Company="C")
            e.sf_put("Contact", Email=ins[10]["Email"], LastName="Twin")
            dry = compare(e, "existing ledger")
            self.assertGreaterEqual(dry["pushes"]["would_push"], 8)
            # nothing to do
            dry = compare(e, "quiet")
            self.assertEqual(dry["pushes"]["would_push"], 0)
        finally:
            e.close()

    def test_health_and_lag_that_tell_the_truth(self):
        e = self.env
        e.sf_put("Contact", Email="h1@example.com", LastName="H")
        e.sf_put("Lead", Email="h2@example.com", LastName="H", Company="C")
        e.sync()
        st = e.json("status")
        self.assertEqual(st["health"]["failures_in_a_row"], 0)
        self.assertIsNotNone(st["health"]["last_success_at"])
        self.assertIsNone(st["health"]["last_error"])
        # Salesforce quiet for a while: the lag stays within a cycle, it does
        # not count the time since the newest change
        time.sleep(4)
        e.sync()
        st = e.json("status")
        for obj in ("Contact", "Lead"):
            self.assertLess(st["cursors"][obj]["lag_seconds"], 2.5, st["cursors"][obj])
        ok_at = st["health"]["last_success_at"]
        # two failed cycles: counted, the error kept, the last success unchanged
        e.ctl("POST", "faults", {"faults": [{"route": "token", "kind": "status",
                                             "status": 503, "count": 1000}]})
        for n in (1, 2):
            e.run("sync", "--once", check=1)
            h = e.json("status")["health"]
            self.assertEqual(h["failures_in_a_row"], n)
            self.assertEqual(h["last_success_at"], ok_at)
            self.assertIn("503", h["last_error"])
        time.sleep(3)
        lag = e.json("status")["cursors"]["Contact"]["lag_seconds"]
        self.assertGreater(lag, 3)  # failing cycles do make it grow
        e.ctl("DELETE", "faults")
        e.sync()
        h = e.json("status")["health"]
        self.assertEqual(h["failures_in_a_row"], 0)
        self.assertGreater(h["last_success_at"], ok_at)
        self.assertIn("503", h["last_error"])  # the last error stays, with its time
        self.assertIsNotNone(h["last_error_at"])

    # operator commands
    def test_export_erase_and_audit(self):
        e = self.env
        e.sf_put("Contact", Email="ola@example.com", FirstName="Ola", LastName="Nordmann",
                 Phone="+47 22 00 00 00")
        e.sync()
        e.json("optout", "ola@example.com", "--reason", "told us at the fair")
        x = e.json("contact", "export", "ola@example.com")
        self.assertEqual(x["salesforce_records"][0]["first_name"], "Ola")
        self.assertTrue(any(h.get("reason") == "told us at the fair" for h in x["history"]))
        text = e.run("contact", "export", "ola@example.com", "--format", "csv", check=0).stdout
        self.assertTrue(text.startswith("section,person_id,first_name,last_name,company,title,"
                                        "email,phone"))
        self.assertIn("Ola,Nordmann", text)
        # one table: a row per record and a row per event, each with the person id
        import csv as csvmod
        import io
        rows = list(csvmod.DictReader(io.StringIO(text)))
        records = [r for r in rows if r["section"] == "record"]
        events = [r for r in rows if r["section"] == "event"]
        self.assertEqual(len(records), len(x["salesforce_records"]))
        # the CSV, made after the JSON export, also holds its own access event
        self.assertEqual(len(events), len(x["history"]) + 1)
        self.assertEqual(events[-1]["event_kind"], "access")
        self.assertEqual({r["person_id"] for r in rows}, {x["state"]["key"]})
        self.assertEqual([r["event_seq"] for r in events][:-1],
                         [str(h["seq"]) for h in x["history"]])
        self.assertIn("told us at the fair", [r["event_reason"] for r in events])
        self.assertEqual(records[0]["phone"], "'+47 22 00 00 00")  # no formula in a spreadsheet
        # the CSV says what the JSON says, cell by cell
        rec, st = x["salesforce_records"][0], x["state"]
        self.assertEqual((records[0]["salesforce_object"], records[0]["salesforce_id"],
                          records[0]["created"], records[0]["updated"]),
                         (rec["object"], rec["id"], rec["created"] or "", rec["modified"] or ""))
        self.assertEqual((records[0]["opted_out"], records[0]["opted_out_at"],
                          records[0]["authorization_type"], records[0]["source_type"]),
                         ("true", st["opted_out_at"], st["authorization"]["type"] or "",
                          st["source"]["type"] or ""))
        for r, h in zip(events, x["history"]):
            self.assertEqual((r["event_at"], r["event_kind"], r["event_origin"], r["event_actor"],
                              r["event_reason"], r["opted_out"]),
                             (h["at"], h["kind"], h["origin"], h["actor"], h.get("reason", ""),
                              {True: "true", False: "false", None: ""}[h.get("opted_out")]))
            self.assertEqual((r["salesforce_object"], r["salesforce_id"]),
                             (h["record"]["object"], h["record"]["id"]) if "record" in h
                             else ("", ""))
        e.run("contact", "erase", "ola@example.com", check=4)
        e.run("contact", "erase", "ola@example.com", admin=True, check=0)
        shown = e.json("contact", "show", "ola@example.com")
        self.assertIsNone(shown["email"])
        self.assertTrue(shown["opted_out"])  # the suppression stays
        x = e.run("contact", "export", "ola@example.com", check=0).stdout
        self.assertNotIn("Nordmann", x)
        self.assertNotIn("told us at the fair", x)
        self.assertTrue(e.json("audit", "verify")["ok"])

    def test_suppressions_export(self):
        e = self.env
        e.sf_put("Contact", Email="Sf.Out@Example.com", LastName="S", HasOptedOutOfEmail=True)
        e.sf_put("Contact", Email="sf.in@example.com", LastName="I")
        e.sync()
        for m in ("local@example.com", "gone@example.com"):
            e.json("optout", m)
        e.json("contact", "set", "kept@example.com", "--source", "import")  # not opted out
        e.run("contact", "erase", "gone@example.com", admin=True, check=0)
        p = e.run("suppressions", "export", check=0)
        import csv as csvmod
        import io
        rows = list(csvmod.reader(io.StringIO(p.stdout)))
        self.assertEqual(rows[0], ["email", "opted_out_at"])
        self.assertEqual(sorted(r[0] for r in rows[1:]), ["local@example.com",
                                                          "sf.out@example.com"])
        self.assertTrue(all(re.match(r"\d{4}-\d\d-\d\dT", r[1]) for r in rows[1:]))
        self.assertIn("2 suppressed emails listed; 1 erased", p.stderr)
        self.assertNotIn("gone@example.com", p.stdout + p.stderr)
        j = e.json("suppressions", "export")
        self.assertEqual((j["listed"], j["erased"]), (2, 1))
        self.assertEqual(sorted(x["email"] for x in j["suppressions"]),
                         ["local@example.com", "sf.out@example.com"])
        self.assertEqual(e.json("suppressions", "export", "--format", "json"), j)
        e.run("suppressions", "export", "--format", "xml", check=2)

    def test_audit_head_and_expect(self):
        e = self.env
        e.json("optout", "a@example.com")
        e.json("optout", "b@example.com")
        v = e.json("audit", "verify")
        head = v["head"]
        self.assertEqual(head["seq"], v["events_checked"])
        self.assertRegex(head["hash"], r"^[0-9a-f]{64}$")
        self.assertEqual(head["expect"], "%d:%s" % (head["seq"], head["hash"]))
        text = e.run("audit", "verify", check=0).stdout
        self.assertIn(head["hash"], text)
        # later events: the recorded head is still in the chain
        e.json("optout", "c@example.com")
        r = e.json("audit", "verify", "--expect", head["expect"])
        self.assertTrue(r["expected"]["found"])
        self.assertGreater(r["head"]["seq"], head["seq"])
        # a head that is not there: exit 5, saying why
        wrong = "%d:%s" % (head["seq"], "0" * 64)
        p = e.run("audit", "verify", "--expect", wrong, "--json", check=5)
        self.assertIn("hash differs from the recorded head", p.stderr)
        self.assertFalse(json.loads(p.stdout)["ok"])
        p = e.run("audit", "verify", "--expect", "999:" + head["hash"], check=5)
        self.assertIn("not in the chain, which ends at", p.stderr)
        for bad in ("7", "x:" + head["hash"], "0:" + head["hash"], "3:abc",
                    "3:" + "g" * 64):
            e.run("audit", "verify", "--expect", bad, check=2)

    def test_status_and_exit_codes(self):
        e = self.env
        p = e.run("status", check=5)  # no ledger yet: says what to do
        self.assertIn("no ledger at %s/state (state.path)" % e.dir, p.stderr)
        self.assertIn("run optsync sync --once", p.stderr)
        e.run("contact", "show", "x@example.com", check=5)
        p = e.run("sync", "--once")
        self.assertEqual(p.returncode, 0, p.stderr)
        # a command by hand logs warnings and errors only (the file sets no level)
        self.assertNotIn(" info ", p.stderr)
        self.assertNotIn("sync.pull", p.stderr)
        st = e.json("status")
        self.assertEqual(st["last_cycle"]["result"], "ok")
        self.assertIn("Contact", st["cursors"])
        e.run("contact", "show", "nobody@example.com", check=1)
        e.run("sync", check=2)  # --once is required
        e.run("conflicts", "show", "abc", check=2)
        # one parser for the CLI and the API: what the path refuses, the CLI
        # refuses too (" -1" used to become 18446744073709551615)
        for bad in ("+7", " -1", "007", "0", "7 ", "18446744073709551616"):
            p = e.run("conflicts", "show", bad, check=2)
            self.assertIn("is not a conflict ID", p.stderr)
        e.run("conflicts", "show", "-1", check=2)  # an unknown option
        e.run("conflicts", "show", "18446744073709551615", check=1)  # valid, not there
        e.run("conflicts", "list", "--status", "closed", check=2)
        e.run("conflicts", "resolve", "1", "--take", "remote", check=2)


def metrics_of_run(e, wait_for):
    """optsync run on e's ledger until /metrics holds wait_for: its text."""
    port = free_port()
    with open(e.config) as f:
        cfg = f.read()
    with open(e.config, "a") as f:
        f.write('[api]\nlisten = "127.0.0.1:%d"\n' % port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
    env.update(OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret",
               OPTSYNC_API_TOKEN="t" * 40)
    proc = subprocess.Popen([OPTSYNC, "-c", e.config, "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = ""
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                            timeout=5) as r:
                    text = r.read().decode()
                if wait_for in text:
                    break
            except OSError:
                pass
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(20)
        with open(e.config, "w") as f:
            f.write(cfg)
    return text


def free_port():
    import socket
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class BadRecords(unittest.TestCase):
    """Rule 8: one record optsync cannot apply never stops the sync. It is
    parked and named (object, id, reason) in status and /metrics, every
    other record is applied, and it is tried again when it changes."""

    def setUp(self):
        self.env = Env()

    def tearDown(self):
        self.env.close()

    def parked(self):
        return self.env.json("status")["records_parked"]

    def test_a_nul_parks_its_record_and_the_rest_is_applied(self):
        e = self.env
        good = e.sf_put("Contact", Email="good@example.com", LastName="G", HasOptedOutOfEmail=True)
        bad = e.sf_put("Contact", Email="nul@example.com", LastName="B\u0000d",
                       HasOptedOutOfEmail=True)
        e.sf_put("Lead", Email="lead@example.com", LastName="L", Company="X")
        r = e.sync()  # exit 0: the pull went on, the cycle did all it could
        self.assertEqual(r["result"], "ok")
        self.assertEqual(r["pulled"]["Contact"]["records"], 2)
        self.assertEqual(r["pulled"]["Contact"]["records_parked"], 1)
        self.assertTrue(e.json("contact", "show", "good@example.com")["opted_out"])
        e.run("contact", "show", "nul@example.com", check=1)  # nothing of it applied
        p = self.parked()
        self.assertEqual(p["total"], 1)
        self.assertEqual(p["by_reason"], {"nul": 1})
        rec = p["records"][0]
        self.assertEqual((rec["object"], rec["id"], rec["reason"]), ("Contact", bad, "nul"))
        self.assertIn("field LastName holds a NUL character", rec["error"])
        # later cycles go on: the pushes drain, the Lead is read
        e.json("optout", "lead@example.com")
        r = e.sync()
        self.assertEqual(r["result"], "ok")
        self.assertEqual(r["pushes"]["succeeded"], 1)
        self.assertEqual(self.parked()["total"], 1)  # unchanged: still parked
        text = metrics_of_run(e, "optsync_records_parked{")
        self.assertIn('optsync_records_parked{object="Contact",reason="nul"} 1', text)
        # fixed in Salesforce: its SystemModstamp moves, it is tried again and applied
        time.sleep(1.1)
        e.sf_put("Contact", Id=bad, LastName="Bud")
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["records_parked"], 0)
        self.assertTrue(e.json("contact", "show", "nul@example.com")["opted_out"])
        self.assertEqual(self.parked(), {"total": 0, "by_reason": {}, "records": []})
        self.assertTrue(good)

    def test_a_parked_record_deleted_in_salesforce_is_parked_no_more(self):
        e = self.env
        bad = e.sf_put("Contact", Email="gone@example.com", LastName="G\u0000ne")
        e.sync()
        self.assertEqual(self.parked()["total"], 1)
        time.sleep(1.1)
        e.ctl("POST", "delete", {"object": "Contact", "ids": [bad]})  # the NUL stays in it
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["records_parked"], 0)
        self.assertEqual(self.parked()["total"], 0)

    def test_text_optsync_cannot_store(self):
        """An unpaired surrogate, bytes that are not UTF-8, an Email that is no
        address, an Id longer than Salesforce's: each parks its record only."""
        e = self.env
        e.ctl("POST", "config", {"raw_bytes": {"@@NOT-UTF8@@": "ff"}})
        ids = {
            "invalid_utf8": e.sf_put("Contact", Email="s@example.com", LastName="x\ud83d"),
            "bytes": e.sf_put("Lead", Email="b@example.com", LastName="@@NOT-UTF8@@",
                              Company="C"),
            "invalid_email": e.sf_put("Contact", Email="ctl\u0001@example.com", LastName="C"),
            "too_long": e.sf_put("Contact", Id="003" + "x" * 30, Email="long@example.com",
                                 LastName="L", HasOptedOutOfEmail=True),
        }
        e.sf_put("Contact", Email="fine@example.com", LastName="F", HasOptedOutOfEmail=True)
        e.sf_put("Lead", Email="fine2@example.com", LastName="F", Company="C",
                 HasOptedOutOfEmail=True)
        r = e.sync()
        self.assertEqual(r["result"], "ok")
        self.assertEqual(r["pulled"]["Contact"]["records_parked"], 3)
        self.assertEqual(r["pulled"]["Lead"]["records_parked"], 1)
        self.assertTrue(e.json("contact", "show", "fine@example.com")["opted_out"])
        self.assertTrue(e.json("contact", "show", "fine2@example.com")["opted_out"])
        p = self.parked()
        self.assertEqual(p["by_reason"], {"invalid_utf8": 2, "invalid_email": 1, "too_long": 1})
        got = {(x["object"], x["reason"]): x for x in p["records"]}
        self.assertEqual(got[("Contact", "invalid_utf8")]["id"], ids["invalid_utf8"])
        self.assertIn("field LastName holds an unpaired surrogate",
                      got[("Contact", "invalid_utf8")]["error"])
        self.assertEqual(got[("Lead", "invalid_utf8")]["id"], ids["bytes"])
        self.assertIn("field LastName holds bytes that are not UTF-8",
                      got[("Lead", "invalid_utf8")]["error"])
        self.assertEqual(got[("Contact", "invalid_email")]["id"], ids["invalid_email"])
        self.assertIn("field Email holds no email address optsync can take (control character U+0001 at offset 3)",
                      got[("Contact", "invalid_email")]["error"])
        self.assertNotIn("ctl", got[("Contact", "invalid_email")]["error"])  # not the value
        self.assertEqual(got[("Contact", "too_long")]["id"], ("003" + "x" * 30)[:18])
        self.assertIn("longer than the 18 characters", got[("Contact", "too_long")]["error"])
        e.run("contact", "show", "long@example.com", check=1)
        # the status text shows them too
        self.assertIn("invalid_email", e.run("status", check=0).stdout)

    def test_a_limit_parks_one_record_not_the_pull(self):
        """More records on one address than a person holds: the one over the
        limit is parked (the batch is applied again without it), the others
        are applied."""
        e = self.env
        e.ctl("POST", "records", {"object": "Lead", "records": [
            {"Email": "info@example.com", "LastName": "L%d" % i, "Company": "C"}
            for i in range(40)]})
        e.sf_put("Contact", Email="ok@example.com", LastName="O", HasOptedOutOfEmail=True)
        r = e.sync()
        self.assertEqual(r["result"], "ok")
        self.assertTrue(e.json("contact", "show", "ok@example.com")["opted_out"])
        linked = len(e.json("contact", "show", "info@example.com")["salesforce_records"])
        p = self.parked()
        self.assertEqual(linked + p["total"], 40)
        if p["total"]:  # a person holds fewer than 40 records
            self.assertEqual(set(p["by_reason"]), {"limit"})
            self.assertIn("Salesforce records", p["records"][0]["error"])
        self.assertEqual(r["pulled"]["Lead"]["records_parked"], p["total"])
        self.assertTrue(e.json("audit", "verify")["ok"])


class CycleParts(unittest.TestCase):
    """Rule 7: pushes drain whenever Salesforce answers, whatever the pull
    did; a cycle that could not do part of its work does the rest, says what
    it skipped, and sync --once exits 1."""

    def setUp(self):
        self.env = Env()

    def tearDown(self):
        self.env.close()

    def test_a_failed_pull_still_pulls_the_rest_and_drains(self):
        e = self.env
        c = e.sf_put("Contact", Email="c@example.com", LastName="C")
        l = e.sf_put("Lead", Email="l@example.com", LastName="L", Company="X")
        e.sync()
        e.json("optout", "c@example.com")
        time.sleep(1.1)
        e.sf_put("Lead", Id=l, HasOptedOutOfEmail=True)
        # every query of Contacts fails (after its retries); the Leads answer
        e.ctl("POST", "faults", {"faults": [{"route": "query", "soql": "FROM Contact",
                                             "kind": "status", "status": 500,
                                             "errorCode": "UNKNOWN_EXCEPTION", "count": 100}]})
        p = e.run("sync", "--once", "--json", check=1)
        r = json.loads(p.stdout)
        self.assertEqual(r["result"], "partial")
        self.assertIn("UNKNOWN_EXCEPTION", r["pulled"]["Contact"]["error"])
        self.assertIn("UNKNOWN_EXCEPTION", r["error"])
        self.assertEqual(r["pulled"]["Lead"]["optouts_from_salesforce"], 1)
        self.assertEqual(r["pushes"]["succeeded"], 1)  # the local opt-out went out
        self.assertTrue(e.sf_get("Contact", c)["HasOptedOutOfEmail"])
        self.assertIn("UNKNOWN_EXCEPTION", p.stderr)
        self.assertEqual(e.json("status")["last_cycle"]["result"], "partial")
        e.ctl("DELETE", "faults")
        self.assertEqual(e.sync()["result"], "ok")

    def test_no_drain_when_salesforce_does_not_answer(self):
        e = self.env
        e.sf_put("Contact", Email="d@example.com", LastName="D")
        e.sync()
        e.json("optout", "d@example.com")
        # the session is refused (the token endpoint too): nothing can be done
        e.ctl("POST", "config", {"revoke": True})
        e.ctl("POST", "faults", {"faults": [{"route": "token", "kind": "status", "status": 400,
                                             "errorCode": "invalid_grant", "count": 100}]})
        e.reset_calls()
        p = e.run("sync", "--once", "--json", check=1)
        r = json.loads(p.stdout)
        self.assertEqual(r["result"], "failed")
        self.assertIn("refuses optsync's session", r["pulled"]["Lead"]["skipped"])
        self.assertIn("refuses optsync's session", r["pushes"]["skipped"])
        self.assertEqual(e.calls().get("collections", 0), 0)  # not tried: it would fail too
        self.assertEqual(e.calls().get("query", 0), 0)
        self.assertEqual(e.json("status")["pushes"]["queued"], 1)  # kept
        # Salesforce down (nothing listens): the same, after the retries
        e.ctl("DELETE", "faults")
        with open(e.config) as f:
            cfg = f.read()
        with open(e.config, "w") as f:
            f.write(cfg.replace("localhost:%d" % e.port, "localhost:1"))
        r = json.loads(e.run("sync", "--once", "--json", check=1).stdout)
        self.assertEqual(r["result"], "failed")
        self.assertIn("does not answer", r["pushes"]["skipped"])
        with open(e.config, "w") as f:
            f.write(cfg)
        e.sync()
        self.assertEqual(e.json("status")["pushes"]["queued"], 0)

    def test_out_of_api_calls_skips_the_drain(self):
        e = self.env
        e.sf_put("Contact", Email="q@example.com", LastName="Q")
        e.sync()
        e.json("optout", "q@example.com")
        e.ctl("POST", "config", {"api_max": 5, "api_used": 5})
        e.reset_calls()
        r = json.loads(e.run("sync", "--once", "--json", check=1).stdout)
        self.assertEqual(r["result"], "failed")
        self.assertIn("API requests for the day are used up", r["pushes"]["skipped"])
        self.assertEqual(e.calls().get("collections", 0), 0)


QW_OPT_IN = """
[[purposes]]
name = "newsletter"
label = { en = "Newsletter" }
basis = "consent"
salesforce = { opt_in_field = "Newsletter_Opt_In__c", consent_date_field = "Newsletter_Consent_Date__c" }
"""

QW_FIELD = """
[[purposes]]
name = "newsletter"
label = { en = "Newsletter" }
basis = "consent"
salesforce = { field = "Newsletter_Opt_Out__c" }
"""


def qw_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class QueuedWrites(unittest.TestCase):
    """A write queued before a later change of the same value never undoes
    it (found by a review of issue #24's fixes): a Salesforce opt-out read
    while an opt-in is queued for that record, a purpose opt-in while its
    opt-out is queued, and a merge's carried purpose opt-out on the
    survivor of a person new to the ledger."""

    def tearDown(self):
        self.e.close()

    def queued_optin_then_sf_optout(self, extra):
        self.e = e = Env(extra=extra)
        rid = e.sf_put("Contact", Email="q@example.com", LastName="Q")
        e.sync()
        e.json("optout", "q@example.com")  # queued: opted out
        time.sleep(1.1)
        e.run("resubscribe", "q@example.com", "--consent-date", qw_now(), "--purpose",
              "Newsletter", "--evidence-ref", "form-7", admin=True, check=0)  # queued: in
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=True)  # opted out in Salesforce
        for _ in range(3):
            e.sync()
        self.assertTrue(e.json("contact", "show", "q@example.com")["opted_out"])
        self.assertTrue(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])
        self.assertEqual(e.json("status")["pushes"]["queued"], 0)

    def test_sf_optout_over_a_queued_optin_revert(self):
        self.queued_optin_then_sf_optout("")

    def test_sf_optout_over_a_queued_optin_hold(self):
        self.queued_optin_then_sf_optout('[sync]\nresubscribe_policy = "hold"\n')

    def test_merge_into_a_new_persons_record_keeps_the_carried_purpose_optout(self):
        self.e = e = Env(extra=QW_OPT_IN)
        loser = e.sf_put("Lead", Email="b@example.com", LastName="B", Company="C",
                         Newsletter_Opt_In__c=True,
                         Newsletter_Consent_Date__c="2026-10-01T00:00:00Z")
        e.sync()
        time.sleep(1.1)
        e.sf_put("Lead", Id=loser, Newsletter_Opt_In__c=False)  # P1: out
        e.sync()
        master = e.sf_put("Lead", Email="fresh@example.com", LastName="N", Company="C",
                          Newsletter_Opt_In__c=True,
                          Newsletter_Consent_Date__c="2026-10-05T00:00:00Z")
        e.ctl("POST", "merge", {"object": "Lead", "master": master, "losers": [loser]})
        e.sync()
        n = e.json("contact", "show", "fresh@example.com")["purposes"]["newsletter"]
        self.assertEqual(n["status"], "opted_out")
        self.assertFalse(e.sf_get("Lead", master)["Newsletter_Opt_In__c"])

    def test_purpose_optin_while_its_optout_is_queued(self):
        self.e = e = Env(extra=QW_FIELD)
        cid = e.sf_put("Contact", Email="pq@example.com", LastName="Q")
        e.sync()
        e.json("optout", "pq@example.com", "--purpose", "newsletter")  # queued: ticked
        time.sleep(1.1)
        e.run("consent", "pq@example.com", "--purpose", "newsletter", "--consent-date",
              qw_now(), "--evidence-ref", "form-9", admin=True, check=0)
        e.sync()
        e.sync()
        n = e.json("contact", "show", "pq@example.com")["purposes"]["newsletter"]
        self.assertEqual(n["status"], "opted_in")
        self.assertFalse(e.sf_get("Contact", cid)["Newsletter_Opt_Out__c"])
        self.assertEqual(e.json("status")["pushes"]["queued"], 0)


class Records(unittest.TestCase):
    """A person's Salesforce records (issue #24): any number of them, each
    the record of the person of its current email (rule 9), and one open
    conflict per record and purpose."""

    def setUp(self):
        self.env = Env()

    def tearDown(self):
        self.env.close()

    def records_of(self, email):
        return sorted(r["id"] for r in self.env.json("contact", "show", email)["salesforce_records"])

    def test_a_parked_record_whose_email_moves_leaves_its_old_person(self):
        """A record parked (rule 8) whose email changed meanwhile is another
        person's record (rule 9): the old person's queued opt-out is not
        written to it, and the old person lists it no more."""
        e = self.env
        x = e.sf_put("Contact", Email="old@example.com", LastName="X")
        y = e.sf_put("Contact", Email="old@example.com", LastName="Y")
        e.sync()
        e.json("optout", "old@example.com")  # queued for x and y
        time.sleep(1.1)
        e.sf_put("Contact", Id=x, Email="new@example.com", LastName="X\u0000")
        r = e.sync()
        self.assertEqual(r["pulled"]["Contact"]["records_parked"], 1)
        self.assertEqual(self.records_of("old@example.com"), [y])
        self.assertTrue(e.sf_get("Contact", y)["HasOptedOutOfEmail"])
        self.assertFalse(e.sf_get("Contact", x)["HasOptedOutOfEmail"])
        # fixed in Salesforce: applied as new@'s record, not opted out
        time.sleep(1.1)
        e.sf_put("Contact", Id=x, LastName="X")
        e.sync()
        self.assertEqual(self.records_of("new@example.com"), [x])
        self.assertFalse(e.json("contact", "show", "new@example.com")["opted_out"])
        self.assertFalse(e.sf_get("Contact", x)["HasOptedOutOfEmail"])

    def test_merge_of_a_record_never_read_carries_the_local_optout(self):
        """A Lead merged away before any sync read it: its email's person,
        opted out here, has the opt-out carried to the survivor's person."""
        e = self.env
        master = e.sf_put("Lead", Email="keep@example.com", LastName="K", Company="C")
        loser = e.sf_put("Lead", Email="gone@example.com", LastName="G", Company="C")
        e.json("optout", "gone@example.com")
        e.ctl("POST", "merge", {"object": "Lead", "master": master, "losers": [loser]})
        e.sync()
        self.assertTrue(e.json("contact", "show", "keep@example.com")["opted_out"])
        self.assertTrue(e.sf_get("Lead", master)["HasOptedOutOfEmail"])
        e.reset_calls()
        e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)  # quiet

    def test_merge_into_a_record_not_read_yet_carries_to_its_person(self):
        """A read record merged into one created since (not read yet): the
        opt-out goes to the survivor's person when the survivor is first
        read, in the same cycle, and is not written under the loser's."""
        e = self.env
        loser = e.sf_put("Lead", Email="was@example.com", LastName="W", Company="C")
        e.sync()
        e.json("optout", "was@example.com")
        e.sync()
        self.assertTrue(e.sf_get("Lead", loser)["HasOptedOutOfEmail"])
        master = e.sf_put("Lead", Email="now@example.com", LastName="N", Company="C")
        e.ctl("POST", "merge", {"object": "Lead", "master": master, "losers": [loser]})
        e.sync()
        show = e.json("contact", "show", "now@example.com")
        self.assertTrue(show["opted_out"])
        self.assertEqual(self.records_of("now@example.com"), [master])
        self.assertTrue(e.sf_get("Lead", master)["HasOptedOutOfEmail"])
        self.assertEqual(self.records_of("was@example.com"), [])
        self.assertEqual(e.json("status")["pushes"]["queued"], 0)
        e.reset_calls()
        e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)

    def test_a_lead_converted_with_a_push_queued_gets_quiet(self):
        """A Lead converted while an opt-out is queued for it: Salesforce
        refuses any write to it, so the push is dropped when the pull reads
        it converted; the Contact made by the conversion gets the opt-out,
        and the next cycles write nothing."""
        e = self.env
        lead = e.sf_put("Lead", Email="conv@example.com", LastName="C", Company="X")
        e.sync()
        e.json("optout", "conv@example.com")
        contact = e.ctl("POST", "convert", {"id": lead})["contact"]
        r = e.sync()
        self.assertEqual((r["pushes"]["succeeded"], r["pushes"]["parked_now"]), (1, 0))
        self.assertTrue(e.sf_get("Contact", contact)["HasOptedOutOfEmail"])
        self.assertEqual(e.json("status")["pushes"], {"queued": 0, "parked": 0,
                                                      "parked_records": []})
        for _ in range(2):
            e.reset_calls()
            e.sync()
            self.assertEqual(e.calls().get("collections", 0), 0)

    def test_two_persons_merged_into_a_record_not_read_yet(self):
        """Two read Leads of two persons merged into one created since: the
        opt-out of either reaches the survivor's person when it is first
        read, and none is written under the loser's person."""
        e = self.env
        a = e.sf_put("Lead", Email="a@example.com", LastName="A", Company="C")
        b = e.sf_put("Lead", Email="b@example.com", LastName="B", Company="C")
        e.sync()
        e.json("optout", "b@example.com")
        e.sync()
        master = e.sf_put("Lead", Email="now@example.com", LastName="N", Company="C")
        e.ctl("POST", "merge", {"object": "Lead", "master": master, "losers": [a, b]})
        e.sync()
        self.assertTrue(e.json("contact", "show", "now@example.com")["opted_out"])
        self.assertTrue(e.sf_get("Lead", master)["HasOptedOutOfEmail"])
        self.assertFalse(e.json("contact", "show", "a@example.com")["opted_out"])

    def test_a_merge_chain_before_a_read(self):
        """was@ (opted out, read) merged into m1, then m1 into m2, before a
        sync read either: the opt-out reaches m2's person."""
        e = self.env
        loser = e.sf_put("Lead", Email="was@example.com", LastName="W", Company="C")
        e.sync()
        e.json("optout", "was@example.com")
        e.sync()
        m1 = e.sf_put("Lead", Email="mid@example.com", LastName="M", Company="C")
        m2 = e.sf_put("Lead", Email="now@example.com", LastName="N", Company="C")
        e.ctl("POST", "merge", {"object": "Lead", "master": m1, "losers": [loser]})
        time.sleep(0.01)
        e.ctl("POST", "merge", {"object": "Lead", "master": m2, "losers": [m1]})
        e.sync()
        self.assertTrue(e.json("contact", "show", "now@example.com")["opted_out"])
        self.assertTrue(e.sf_get("Lead", m2)["HasOptedOutOfEmail"])
        e.reset_calls()
        e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)

    def test_forty_leads_on_one_address(self):
        e = self.env
        ids = [e.sf_put("Lead", Email="info@bigco.example", LastName="L%02d" % i,
                        Company="BigCo") for i in range(40)]
        ada = e.sf_put("Contact", Email="ada@example.com", LastName="A")
        e.sync()  # exit 0: no limit on the records of one person
        show = e.json("contact", "show", "info@bigco.example")
        self.assertEqual(sorted(r["id"] for r in show["salesforce_records"]), sorted(ids))
        self.assertEqual([r["id"] for r in e.json("contact", "show", "ada@example.com")[
            "salesforce_records"]], [ada])
        # later records of that object are pulled, and an opt-out reaches
        # every record in one collection call (up to 200 a call)
        time.sleep(1.1)
        ids.append(e.sf_put("Lead", Email="INFO@bigco.example", LastName="L40", Company="BigCo"))
        e.json("optout", "info@bigco.example")
        e.reset_calls()
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 41)
        self.assertEqual(e.calls()["collections"], 1)
        for rid in ids:
            self.assertTrue(e.sf_get("Lead", rid)["HasOptedOutOfEmail"], rid)
        self.assertFalse(e.sf_get("Contact", ada)["HasOptedOutOfEmail"])
        # the right of access lists every record, in full
        exp = e.json("contact", "export", "info@bigco.example")
        self.assertEqual(sorted(x["id"] for x in exp["salesforce_records"]), sorted(ids))
        csv = e.run("contact", "export", "info@bigco.example", "--format", "csv", check=0).stdout
        self.assertEqual(sum(1 for line in csv.splitlines() if line.startswith("record,")), 41)
        # the next cycle reads our writes back and writes nothing
        e.reset_calls()
        e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)

    # Rule 9: a record belongs to the person of its current email
    def test_record_moves_to_the_person_of_its_new_email(self):
        e = self.env
        rid = e.sf_put("Contact", Email="a@example.com", LastName="A")
        e.sync()
        e.json("optout", "a@example.com")  # queued for rid on behalf of a@
        e.json("contact", "set", "a@example.com", "--authorization", "contract")
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, Email="b@example.com")  # before the push went out
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 0)
        # a@'s opt-out and basis were not written to the record that is b@'s now
        rec = e.sf_get("Contact", rid)
        self.assertFalse(rec["HasOptedOutOfEmail"])
        self.assertIsNone(rec["Authorization_Type__c"])
        self.assertEqual(e.json("status")["pushes"]["queued"], 0)
        a = e.json("contact", "show", "a@example.com")
        self.assertTrue(a["opted_out"])
        self.assertEqual(a["salesforce_records"], [])
        b = e.json("contact", "show", "b@example.com")
        self.assertFalse(b["opted_out"])
        self.assertEqual([x["id"] for x in b["salesforce_records"]], [rid])
        # and the two sides agree from then on
        e.sync()
        self.assertFalse(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])
        self.assertFalse(e.json("contact", "show", "b@example.com")["opted_out"])
        # the new person's state decides what is written: c@ is opted out
        # (rule 3), and only c@'s state is written
        e.json("optout", "c@example.com")
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, Email="c@example.com")
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)
        rec = e.sf_get("Contact", rid)
        self.assertTrue(rec["HasOptedOutOfEmail"])
        self.assertIsNone(rec["Authorization_Type__c"])
        self.assertEqual(e.json("contact", "show", "b@example.com")["salesforce_records"], [])
        e.reset_calls()
        e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0)
        self.assertFalse(e.json("contact", "show", "b@example.com")["opted_out"])

    def test_a_moved_record_takes_no_open_conflict_along(self):
        self.env.close()
        self.env = e = Env(extra='[sync]\nresubscribe_policy = "hold"\n')
        rid = e.sf_put("Contact", Email="a@example.com", LastName="A", HasOptedOutOfEmail=True)
        e.sync()
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=False)
        e.sync()
        self.assertEqual(len(e.json("conflicts", "list")["conflicts"]), 1)
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, Email="b@example.com")
        e.sync()
        # a@'s question about a record that is b@'s now is moot
        self.assertEqual(e.json("conflicts", "list")["conflicts"], [])
        closed = e.json("conflicts", "list", "--status", "resolved")["conflicts"]
        self.assertEqual([c["resolution"] for c in closed], ["record_moved"])
        self.assertFalse(e.json("contact", "show", "b@example.com")["opted_out"])
        self.assertTrue(e.json("contact", "show", "a@example.com")["opted_out"])

    def test_one_open_conflict_per_record_under_hold(self):
        self.env.close()
        self.env = e = Env(extra='[sync]\nresubscribe_policy = "hold"\n')
        rid = e.sf_put("Contact", Email="dan@example.com", LastName="D", HasOptedOutOfEmail=True)
        e.sync()
        for opted_out in (False, True, False):  # in -> out -> in
            time.sleep(1.1)
            e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=opted_out)
            e.sync()
        open_ = e.json("conflicts", "list")["conflicts"]
        self.assertEqual(len(open_), 1)
        self.assertEqual(open_[0]["record"]["id"], rid)
        # each re-subscribe is in the history, both naming the one conflict
        hist = [h for h in e.json("contact", "history", "dan@example.com")
                if h["kind"] == "conflict"]
        self.assertEqual(len(hist), 2)
        self.assertEqual({h["conflict_id"] for h in hist}, {open_[0]["id"]})
        self.assertIn("seen again", hist[1]["reason"])
        # one decision settles it
        e.run("conflicts", "resolve", str(open_[0]["id"]), "--keep-optout", admin=True, check=0)
        self.assertEqual(e.json("conflicts", "list")["conflicts"], [])
        e.sync()
        self.assertTrue(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])
        # a re-subscribe after that decision is a new question
        time.sleep(1.1)
        e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=False)
        e.sync()
        again = e.json("conflicts", "list")["conflicts"]
        self.assertEqual(len(again), 1)
        self.assertNotEqual(again[0]["id"], open_[0]["id"])


class Erasure(unittest.TestCase):
    """What `contact erase` leaves: the suppression, and no compliance facts
    (a basis of consent or other cannot stand without the texts erasure
    removes), so that nothing optsync writes later is invalid in Salesforce
    and nothing it reads back is a conflict (rules 3, 4, 5)."""

    def setUp(self):
        self.env = Env()

    def tearDown(self):
        self.env.close()

    def assert_no_basis(self, rec):
        for f in ("Authorization_Type__c", "Consent_Date__c", "Processing_Purpose__c",
                  "Authorization_Other__c", "Source_Type__c", "Source_Other__c"):
            self.assertIsNone(rec.get(f), "%s on %s" % (f, rec["Id"]))

    def assert_quiet(self):
        e = self.env
        e.reset_calls()
        r = e.sync()
        self.assertEqual(e.calls().get("collections", 0), 0, r)
        self.assertEqual(e.json("conflicts", "list", "--status", "all")["conflicts"], [])

    def test_new_record_of_an_erased_person_gets_the_suppression_only(self):
        e = self.env
        for auth in (["consent", "--consent-date", "2026-01-05", "--purpose", "Newsletter"],
                     ["other", "--other", "club membership"]):
            email = "erased-%s@example.com" % auth[0]
            c = e.sf_put("Contact", Email=email, LastName="E")
            e.sync()
            e.json("contact", "set", email, "--authorization", *auth,
                   "--source", "other", "--source-other", "met at the fair")
            e.json("optout", email)
            e.sync()
            self.assertEqual(e.sf_get("Contact", c)["Source_Other__c"], "met at the fair")
            e.run("contact", "erase", email, admin=True, check=0)
            shown = e.json("contact", "show", email)
            self.assertTrue(shown["opted_out"])  # the suppression stays
            self.assertIsNone(shown["authorization"]["type"])
            self.assertIsNone(shown["source"]["type"])
            lid = e.sf_put("Lead", Email=email, LastName="E", Company="C")
            r = e.sync()
            self.assertEqual(r["pulled"]["Lead"]["new_records_suppressed"], 1)
            lead = e.sf_get("Lead", lid)
            self.assertTrue(lead["HasOptedOutOfEmail"])
            self.assert_no_basis(lead)
            self.assert_quiet()

    def test_erasure_with_a_push_queued_writes_no_basis_without_its_texts(self):
        e = self.env
        c = e.sf_put("Contact", Email="queued@example.com", LastName="Q")
        e.sync()
        e.json("contact", "set", "queued@example.com", "--authorization", "consent",
               "--consent-date", "2026-01-05", "--purpose", "Newsletter",
               "--source", "other", "--source-other", "met at the fair")
        e.json("optout", "queued@example.com")
        e.run("contact", "erase", "queued@example.com", admin=True, check=0)
        r = e.sync()
        self.assertEqual(r["pushes"]["succeeded"], 1)  # the opt-out still goes
        rec = e.sf_get("Contact", c)
        self.assertTrue(rec["HasOptedOutOfEmail"])
        self.assert_no_basis(rec)
        self.assert_quiet()

    def test_an_erased_person_takes_no_texts_back_from_salesforce(self):
        e = self.env
        c = e.sf_put("Contact", Email="back@example.com", LastName="B")
        e.sync()
        e.json("contact", "set", "back@example.com", "--authorization", "consent",
               "--consent-date", "2026-01-05", "--purpose", "Newsletter")
        e.json("optout", "back@example.com")
        e.sync()
        e.run("contact", "erase", "back@example.com", admin=True, check=0)
        time.sleep(1.1)
        # the Contact still holds the basis in Salesforce; it changes there
        e.sf_put("Contact", Id=c, LastName="Changed", Title="Chief")
        lid = e.sf_put("Lead", Email="back@example.com", LastName="B", Company="C")
        e.sync()
        self.assert_no_basis(e.sf_get("Lead", lid))
        x = e.run("contact", "export", "back@example.com", check=0).stdout
        self.assertNotIn("Newsletter", x)
        self.assertIsNone(e.json("contact", "show", "back@example.com")["authorization"]["type"])
        self.assert_quiet()


class Messages(unittest.TestCase):
    """Errors that say what to do, whole."""

    def test_unknown_field_names_the_key_and_the_metadata(self):
        e = Env(contacts=3, extra='[salesforce.fields]\nconsent_date = "Consent_Dat__c"\n')
        try:
            p = e.run("sync", "--once", check=1)
            msg = p.stderr
            self.assertIn("Salesforce has no field Consent_Dat__c on Contact", msg)
            self.assertIn("salesforce.fields.consent_date names it", msg)
            self.assertIn("sf project deploy start", msg)
            # Salesforce's own words, from what went wrong on, not the echoed query
            self.assertIn("No such column 'Consent_Dat__c' on entity 'Contact'", msg)
            self.assertNotIn("SELECT Id", msg)
            # the cycle failed at warn, and health has the whole message too
            self.assertIn("warn  sync.cycle: cycle failed", msg)
            self.assertIn("salesforce.fields.consent_date",
                          e.json("status")["health"]["last_error"])
        finally:
            e.close()

    def test_config_check_connect(self):
        e = Env(contacts=1)
        try:
            p = e.run("config", "check", "--connect", check=0)
            self.assertIn("# login: ok", p.stdout)
            self.assertRegex(p.stdout, r"# Contact: \d+ fields checked, 0 problems")
            j = e.json("config", "check", "--connect")
            self.assertTrue(j["salesforce"]["ok"])
            # what a real org gets wrong: field-level security, a read-only
            # field, a picklist value named differently
            e.ctl("POST", "config", {"hidden_fields": {"Contact": ["Consent_Date__c", "Phone"]},
                                     "readonly_fields": {"Lead": ["HasOptedOutOfEmail"]}})
            with open(e.config, "a") as f:
                f.write('[salesforce.values]\nconsent = "Consented"\n')
            p = e.run("config", "check", "--connect", check=1)
            err = p.stderr
            self.assertIn("cannot see Contact.Phone, which optsync reads", err)
            self.assertIn("Contact has no field Consent_Date__c that the integration user can "
                          "see (salesforce.fields.consent_date names it)", err)
            self.assertIn("can read Lead.HasOptedOutOfEmail (salesforce.fields.opted_out) but "
                          "not write it", err)
            self.assertIn("Contact.Authorization_Type__c has no active picklist value "
                          "'Consented' (salesforce.values.consent)", err)
            self.assertIn("problem(s) with what Salesforce offers", err)
            j = json.loads(e.run("config", "check", "--connect", "--json", check=1).stdout)
            self.assertEqual(len(j["salesforce"]["problems"]), 5)  # Lead has the value too
            # a refused login: exit 1, with the hint
            env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
            env["OPTSYNC_SALESFORCE_CLIENT_SECRET"] = "wrong"
            p = subprocess.run([OPTSYNC, "-c", e.config, "config", "check", "--connect"],
                               env=env, capture_output=True, text=True)
            self.assertEqual(p.returncode, 1)
            self.assertIn("# login: FAILED", p.stdout)
            self.assertIn("My Domain", p.stderr)
        finally:
            e.close()

    def test_login_refusal_hints_my_domain(self):
        e = Env(contacts=1)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
            env["OPTSYNC_SALESFORCE_CLIENT_SECRET"] = "wrong-secret"
            p = subprocess.run([OPTSYNC, "-c", e.config, "sync", "--once"], env=env,
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 1)
            self.assertIn("login (client_credentials) refused", p.stderr)
            self.assertIn("My Domain", p.stderr)
            self.assertIn("salesforce.login_url", p.stderr)
        finally:
            e.close()


class Bulk(unittest.TestCase):
    """contact set --from FILE and optout --from FILE."""

    def test_100000_rows_with_1_percent_bad(self):
        e = Env(contacts=20000)
        try:
            e.sync()
            known = [r["Email"] for r in e.ctl("GET", "records?object=Contact")["records"]]
            self.assertEqual(len(known), 20000)
            path = os.path.join(e.dir, "bulk.csv")
            bad_lines = []
            with open(path, "w") as f:
                f.write("email,authorization,consent_date,purpose,source\r\n")
                for i in range(100000):
                    email = known[i] if i < len(known) else "new%d@bulk.example" % i
                    line = i + 2
                    if i % 100 == 7:  # 1%: each a different kind of bad row
                        bad_lines.append(line)
                        row = [("not-an-email-%d" % i, "contract", "", "", "import"),
                               (email, "friendship", "", "", "import"),
                               (email, "consent", "2026-01-01", "", "import"),
                               (email, "contract", "", "", "nowhere")][(i // 100) % 4]
                    elif i % 3 == 0:
                        row = (email, "consent", "2025-06-01", "Newsletter, monthly", "import")
                    else:
                        row = (email, "legitimate_interest", "", "", "import")
                    f.write(",".join('"%s"' % c if "," in c else c for c in row) + "\r\n")
            # exit 1: rows were rejected; the summary lists them
            r = e.json("contact", "set", "--from", path, check=1)
            self.assertEqual(r["rows"], 100000)
            self.assertEqual(r["changed"] + r["unchanged"], 99000)
            self.assertEqual(r["invalid"], 1000)
            self.assertEqual([b["row"] for b in r["invalid_rows"]], bad_lines)
            errors = {b["error"].split(" ")[0] for b in r["invalid_rows"]}
            self.assertTrue(len(errors) >= 3, errors)
            p = e.json("contact", "show", "new20050@bulk.example")
            self.assertEqual(p["authorization"]["type"], "legitimate_interest")
            p = e.json("contact", "show", "new20001@bulk.example")
            self.assertEqual(p["authorization"]["purpose"], "Newsletter, monthly")
            # the same file again changes nothing
            again = e.json("contact", "set", "--from", path, check=1)
            self.assertEqual((again["changed"], again["unchanged"]), (0, 99000))
            e.reset_calls()
            s = e.sync()
            changed = s["pushes"]["succeeded"]
            self.assertTrue(changed >= 19000, s["pushes"])  # the known records, less bad rows
            calls = e.calls().get("collections", 0)
            limit = 1.1 * -(-changed // 200)
            print("bulk: %d rows, %d invalid; %d Salesforce records changed in %d collection "
                  "calls (limit %.1f)" % (r["rows"], r["invalid"], changed, calls, limit))
            self.assertLessEqual(calls, limit)
            rec = e.ctl("GET", "records?object=Contact")["records"][0]
            self.assertEqual(rec["Source_Type__c"], "Import")
            self.assertTrue(e.json("audit", "verify")["ok"])
        finally:
            e.close()

    def test_all_or_none_and_file_errors(self):
        e = Env()
        try:
            path = os.path.join(e.dir, "few.csv")
            with open(path, "w") as f:
                f.write('Email,Authorization,Other\n'
                        'one@example.com,other,"met at a fair, 2026"\n'
                        'two@example.com,contract,\n'
                        'three@example.com,other,\n')
            p = e.run("contact", "set", "--from", path, "--all-or-none", "--json", check=2)
            self.assertIn("nothing applied", p.stderr)
            self.assertEqual(json.loads(p.stdout)["invalid_rows"][0]["row"], 4)
            e.run("contact", "show", "one@example.com", check=1)  # not applied
            p = e.run("contact", "set", "--from", path, "--json", check=1)
            self.assertIn("1 of 3 rows were rejected", p.stderr)
            r = json.loads(p.stdout)
            self.assertEqual((r["changed"], r["invalid"]), (2, 1))
            self.assertEqual(e.json("contact", "show", "one@example.com")
                             ["authorization"]["other"], "met at a fair, 2026")
            with open(path, "w") as f:
                f.write("email,lawful_basis\nx@example.com,contract\n")
            p = e.run("contact", "set", "--from", path, check=2)
            self.assertIn("unknown column 'lawful_basis'", p.stderr)
            with open(path, "w") as f:
                f.write('email,authorization\n"x@example.com,contract\n')
            p = e.run("contact", "set", "--from", path, check=2)
            self.assertIn(":2: a quoted field is not closed", p.stderr)
            e.run("contact", "set", "--from", path, "x@example.com", check=2)
        finally:
            e.close()

    def test_optout_list_from_another_tool(self):
        e = Env()
        try:
            path = os.path.join(e.dir, "list.csv")
            with open(path, "w") as f:  # a CSV export with more columns than we need
                f.write('name,email,unsubscribed\n"Doe, Jane",jane@example.com,2026-01-01\n'
                        'Bob,not an email,2026-01-02\nAl,AL@example.com,x\n')
            r = e.json("optout", "--from", path, check=1)  # a row was rejected
            self.assertEqual((r["rows"], r["opted_out"], r["invalid"]), (3, 2, 1))
            self.assertEqual(r["invalid_rows"][0]["row"], 3)
            self.assertTrue(e.json("contact", "show", "al@example.com")["opted_out"])
            self.assertEqual(e.json("optout", "--from", path, check=1)["already_opted_out"], 2)
            # a source column sets each person's source, checked like --source
            with open(path, "w") as f:
                f.write('email,source\nsue@example.com,import\nsam@example.com,\n'
                        'sid@example.com,nowhere\nsal@example.com,other\n')
            r = e.json("optout", "--from", path, check=1)
            self.assertEqual((r["opted_out"], r["invalid"]), (2, 2))
            self.assertEqual([b["row"] for b in r["invalid_rows"]], [4, 5])
            self.assertIn("source 'nowhere'", r["invalid_rows"][0]["error"])
            self.assertEqual(e.json("contact", "show", "sue@example.com")["source"]["type"],
                             "import")
            self.assertIsNone(e.json("contact", "show", "sam@example.com")["source"]["type"])
            e.run("contact", "show", "sid@example.com", check=1)  # not applied
            # --source is the default of rows without one
            with open(path, "w") as f:
                f.write('email,source\nsy@example.com,\nsoo@example.com,import\n')
            e.json("optout", "--from", path, "--source", "manual_upload")
            self.assertEqual(e.json("contact", "show", "sy@example.com")["source"]["type"],
                             "manual_upload")
            self.assertEqual(e.json("contact", "show", "soo@example.com")["source"]["type"],
                             "import")
            # all rows good: exit 0
            with open(path, "w") as f:
                f.write("email\nok1@example.com\nok2@example.com\n")
            self.assertEqual(e.json("optout", "--from", path)["opted_out"], 2)
        finally:
            e.close()


class Retention(unittest.TestCase):
    """[retention]: each rule purges what it should, never an opt-out."""

    def test_rules_dry_run_chain_and_status(self):
        e = Env(extra='[retention]\nresolved_conflicts = "3s"\nhistory = "3s"\n'
                      'stale_persons = "3s"\nevery = "1m"\n')
        try:
            kept = e.sf_put("Contact", Email="kept@example.com", LastName="K")
            rid = e.sf_put("Contact", Email="carol@example.com", LastName="C",
                           HasOptedOutOfEmail=True)
            first = e.sync()
            self.assertEqual(first["retention"]["purged"],  # the first cycle runs it
                             {"events": 0, "persons": 0, "resolved_conflicts": 0})
            time.sleep(1.1)
            e.sf_put("Contact", Id=rid, HasOptedOutOfEmail=False)  # a re-subscribe attempt
            e.sync()
            # closed as reverted once the revert landed: a resolved conflict
            c = e.json("conflicts", "list", "--status", "resolved")["conflicts"][0]
            self.assertEqual(c["status"], "reverted")
            e.json("contact", "set", "kept@example.com", "--authorization", "contract")
            e.json("contact", "set", "stale@example.com", "--source", "import")
            e.json("optout", "local-out@example.com", "--reason", "asked by phone")
            self.assertIsNone(e.sync().get("retention"))  # retention.every has not passed
            time.sleep(3.5)
            e.json("contact", "set", "fresh@example.com", "--source", "import")
            # kept's old events (its reads just now are new: they stay), and
            # every event of stale, the access event of this read included
            stale = json.loads(e.run("contact", "history", "stale@example.com", "--json",
                                     check=0).stdout)
            old = len(e.json("contact", "history", "kept@example.com")) + len(stale)
            self.assertGreaterEqual(old, 2)
            before = e.json("audit", "verify")
            dry = e.json("retention", "run", "--dry-run")
            would = dry["would_purge"]
            # every event of kept (not opted out) and of stale (which goes)
            self.assertEqual((would["events"], would["persons"], would["resolved_conflicts"]),
                             (old, 1, 1), dry)
            after_dry = e.json("audit", "verify")
            self.assertEqual(after_dry, before)  # a dry run writes nothing
            self.assertEqual(len(e.json("conflicts", "list", "--status", "all")["conflicts"]), 1)
            r = e.json("retention", "run")
            self.assertEqual(r["purged"], {"events": old, "persons": 1, "resolved_conflicts": 1})
            v = e.json("audit", "verify")
            self.assertTrue(v["ok"])
            self.assertEqual(v["purged_events"], old)
            self.assertEqual(v["events_checked"], before["events_checked"] + 1)
            e.run("contact", "show", "stale@example.com", check=1)  # gone
            self.assertEqual(e.json("contact", "history", "kept@example.com"), [])
            self.assertEqual(e.json("contact", "show", "kept@example.com")
                             ["authorization"]["type"], "contract")  # the state stays
            self.assertEqual(len(e.json("contact", "history", "fresh@example.com")), 1)
            # opt-outs outlive every rule: persons, events, suppression
            for email in ("carol@example.com", "local-out@example.com"):
                self.assertTrue(e.json("contact", "show", email)["opted_out"])
                self.assertTrue(e.json("contact", "history", email))
            self.assertEqual(e.json("conflicts", "list", "--status", "all")["conflicts"], [])
            st = e.json("status")["retention"]
            self.assertEqual(st["purged_total"],
                             {"events": old, "persons": 1, "resolved_conflicts": 1})
            self.assertIsNotNone(st["last_run_at"])
            # the run is in the history (the chain counts it), once (the
            # history reads above are access events of their own)
            checked = e.json("audit", "verify")["events_checked"]
            again = e.json("retention", "run")
            self.assertNotIn("event_seq", again)
            self.assertEqual(e.json("audit", "verify")["events_checked"], checked)
            # a sync after the purge: the Salesforce side is unaffected
            self.assertEqual(e.sync()["result"], "ok")
            self.assertTrue(e.sf_get("Contact", rid)["HasOptedOutOfEmail"])
            self.assertFalse(e.sf_get("Contact", kept)["HasOptedOutOfEmail"])
        finally:
            e.close()

    def test_nothing_configured(self):
        e = Env()
        try:
            e.json("optout", "x@example.com")
            r = e.json("retention", "run")
            self.assertFalse(r["configured"])
            self.assertEqual(r["purged"]["events"], 0)
            self.assertIsNone(e.sync().get("retention"))
        finally:
            e.close()


def leaves(doc, key=None):
    """(key, value) for every scalar in a JSON document, nested ones too."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, k)
    elif isinstance(doc, list):
        for v in doc:
            yield from leaves(v, key)
    else:
        yield key, doc


def as_text(v):
    """How the text form writes a JSON scalar."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and not v.is_integer():
        return ("%.6f" % v).rstrip("0").rstrip(".")
    if isinstance(v, (int, float)):
        return "%d" % v
    return v


class TextOutput(unittest.TestCase):
    """The text form of a command shows every value its --json form has."""

    def check_complete(self, *args):
        e = self.env
        doc = e.json(*args)
        text = e.run(*args, check=0).stdout
        lines = [l.strip() for l in text.splitlines()]
        for key, value in leaves(doc):
            want = as_text(value)
            if key is None:  # an item of a list of scalars
                ok = any(l == "- " + want for l in lines)
            elif key.endswith("_seconds") and isinstance(value, (int, float)):
                # measured against the clock when asked: the two calls differ a little
                ok = any(l.startswith(key + ":") and
                         abs(float(l.split(":", 1)[1].split()[0]) - value) < 5 for l in lines)
            else:
                ok = any(l.lstrip("- ").startswith(key + ":") and
                         l.split(":", 1)[1].strip().startswith(want) for l in lines)
            self.assertTrue(ok, "%s: %s = %r is not in the text form:\n%s" % (
                " ".join(args), key, value, text))
        self.assertNotRegex(text, r"\d[eE][+-]\d", "a number in exponent form")
        return doc, text

    def test_status_contact_show_and_conflicts_show(self):
        self.env = e = Env()
        try:
            ok = e.sf_put("Contact", Email="ann@example.com", LastName="A",
                          Authorization_Type__c="Consent", Consent_Date__c="2026-01-02",
                          Processing_Purpose__c="newsletter", Source_Type__c="Import")
            bad = e.sf_put("Contact", Email="bo@example.com", LastName="B")
            e.sf_put("Lead", Email="ann@example.com", LastName="A", Company="X")
            e.sync()
            e.ctl("POST", "faults", {"errors": {bad: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}})
            e.json("optout", "ann@example.com")
            e.json("optout", "bo@example.com")
            e.sync()
            time.sleep(1)
            e.ctl("POST", "records", {"object": "Contact",
                                      "records": [{"Id": ok, "HasOptedOutOfEmail": False}]})
            e.sync()
            st, text = self.check_complete("status")
            self.assertEqual(st["pushes"]["parked"], 1)
            self.assertIn("parked_records:", text)
            for obj in ("Contact", "Lead"):
                self.assertIn(obj + ":", text)
            show, _ = self.check_complete("contact", "show", "ann@example.com")
            self.assertEqual(len(show["salesforce_records"]), 2)
            conflicts = e.json("conflicts", "list", "--status", "all")["conflicts"]
            self.assertTrue(conflicts)
            self.check_complete("conflicts", "show", str(conflicts[0]["id"]))
        finally:
            e.close()


def main():
    global OPTSYNC, FAKE, ADMIN_HASH
    OPTSYNC, FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    p = subprocess.run([OPTSYNC, "admin", "hash-token"], input=ADMIN_TOKEN + "\n",
                       capture_output=True, text=True, check=True)
    ADMIN_HASH = p.stdout.split('"')[1]
    prog = unittest.main(argv=sys.argv[:1] + sys.argv[3:], verbosity=2, exit=False)
    r = prog.result
    print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                    len(r.failures) + len(r.errors)))
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
