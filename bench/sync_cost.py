#!/usr/bin/env python3
"""bench/sync-cost: Salesforce API calls for 10,000 opt-outs made locally and
10,000 made in Salesforce, in one `optsync sync --once`.

The minimum is the pages of 2,000 needed to read the 10,000 changed records
plus the collections of 200 needed to write the 10,000 local opt-outs:
5 + 50 = 55. Target (issue 5): at most 1.1 x the minimum plus the token calls.
Also printed: the next cycle, which reads our own writes back (and writes
nothing).

With --purposes: 10,000 local purpose opt-outs over 2 purposes (5,000 people,
each out of both), once with the purposes on Contact checkboxes and once on
Salesforce's consent objects. The minimum: one query per object read (and,
for consent objects, the DataUsePurpose lookup) plus the collections of 200
the writes need: 5,000 records carrying both boxes (25), or 10,000 consent
rows (50). Target (issue 16): at most 1.1 x the minimum.

usage: sync_cost.py [OPTSYNC] [--purposes]"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
N = 10000


class Org:
    """A fake Salesforce seeded with contacts, and an optsync config and
    ledger beside it in tmp; ctl() drives the fake, run() optsync."""

    def __init__(self, optsync, tmp, fake_args, extra_config=""):
        fake = os.path.join(HERE, "..", "tests", "fake_salesforce", "fake_sf.py")
        portfile = os.path.join(tmp, "port")
        self.log = open(os.path.join(tmp, "fake.log"), "w")
        self.proc = subprocess.Popen([sys.executable, fake, "--port-file", portfile] + fake_args,
                                     stdout=self.log, stderr=self.log)
        while not os.path.exists(portfile):
            time.sleep(0.1)
        with open(portfile) as f:
            self.port = int(f.read())
        self.optsync = optsync
        self.config = os.path.join(tmp, "optsync.toml")
        with open(self.config, "w") as f:
            f.write('[salesforce]\nlogin_url = "http://localhost:%d"\n'
                    'auth = "client_credentials"\nclient_id = "fake-client-id"\n'
                    'objects = ["Contact"]\n[state]\npath = "%s/state"\n'
                    '[log]\nlevel = "warn"\n%s' % (self.port, tmp, extra_config))
        self.env = dict(os.environ, OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret")

    def ctl(self, method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/__control/%s" % (self.port, path),
                                     method=method,
                                     data=json.dumps(body).encode() if body else None)
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read() or b"null")

    def run(self, *args):
        p = subprocess.run([self.optsync, "-c", self.config, *args], env=self.env,
                           capture_output=True, text=True, timeout=900)
        if p.returncode:
            sys.exit("optsync %s failed: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


PURPOSES = {
    "field": '''
[[purposes]]
name = "newsletter"
basis = "consent"
salesforce = { field = "Newsletter_Opt_Out__c" }
[[purposes]]
name = "events"
basis = "soft_opt_in"
salesforce = { field = "Events_Opt_Out__c" }
''',
    "consent": '''
[[purposes]]
name = "newsletter"
basis = "consent"
salesforce = { data_use_purpose = "Newsletter" }
[[purposes]]
name = "events"
basis = "soft_opt_in"
salesforce = { data_use_purpose = "Events" }
'''}


def purposes_cost(optsync, mapping, people=5000):
    with tempfile.TemporaryDirectory() as tmp:
        org = Org(optsync, tmp, ["--contacts", str(people + 1000), "--seed", "11"] +
                  (["--dpp"] if mapping == "consent" else []), PURPOSES[mapping])
        ctl, run = org.ctl, org.run
        try:
            recs = ctl("GET", "records?object=Contact")["records"]
            by_email = {}
            for r in recs:
                by_email.setdefault(r["Email"].lower(), []).append(r)
            pool = [v[0] for v in by_email.values() if len(v) == 1][:people]
            if len(pool) < people:
                sys.exit("not enough distinct emails in the seed")
            if mapping == "consent":
                for name in ("Newsletter", "Events"):
                    ctl("POST", "records", {"object": "DataUsePurpose",
                                            "records": [{"Name": name}]})
                ids = ctl("POST", "records", {"object": "Individual", "records": [
                    {"LastName": r["LastName"]} for r in pool]})["ids"]
                ctl("POST", "records", {"object": "Contact", "records": [
                    {"Id": r["Id"], "IndividualId": i} for r, i in zip(pool, ids)]})
            run("sync", "--once")  # learn the org (and the Individuals)
            listing = os.path.join(tmp, "people.txt")
            with open(listing, "w") as f:
                f.write("\n".join(r["Email"] for r in pool) + "\n")
            run("optout", "--from", listing, "--purpose", "newsletter")
            run("optout", "--from", listing, "--purpose", "events")
            ctl("POST", "calls")
            run("sync", "--once")
            calls = ctl("GET", "calls")
            reads = calls.get("query", 0) + calls.get("query_more", 0)
            writes = calls.get("collections", 0)
            rows = people if mapping == "field" else 2 * people
            minimum = (1 if mapping == "field" else 3) + -(-rows // 200)
            print("bench/sync-cost --purposes, %s mapping: %d purpose opt-outs over 2 "
                  "purposes (%d people), one sync cycle" % (mapping, 2 * people, people))
            print("  calls: %d queries + %d collections = %d, plus %d token call(s)" %
                  (reads, writes, reads + writes, calls.get("token", 0)))
            print("  minimum: %d   ratio: %.3f x the minimum   target <= 1.1" %
                  (minimum, (reads + writes) / minimum))
            if mapping == "field":
                done = sum(1 for r in ctl("GET", "records?object=Contact")["records"]
                           if r["Newsletter_Opt_Out__c"] and r["Events_Opt_Out__c"])
                print("  Contacts with both boxes ticked: %d" % done)
            else:
                done = sum(1 for r in ctl("GET", "records?object=ContactPointTypeConsent")[
                    "records"] if r["PrivacyConsentStatus"] == "OptOut")
                print("  ContactPointTypeConsent rows OptOut: %d" % done)
            ctl("POST", "calls")
            run("sync", "--once")
            calls = ctl("GET", "calls")
            print("  next cycle (reads our writes back): %d queries, %d collections" %
                  (calls.get("query", 0) + calls.get("query_more", 0),
                   calls.get("collections", 0)))
        finally:
            org.close()


def main():
    argv = [a for a in sys.argv[1:] if a != "--purposes"]
    optsync = os.path.abspath(argv[0]) if argv else \
        os.path.join(HERE, "..", "build", "optsync")
    if "--purposes" in sys.argv:
        purposes_cost(optsync, "field")
        purposes_cost(optsync, "consent")
        return
    with tempfile.TemporaryDirectory() as tmp:
        org = Org(optsync, tmp, ["--contacts", str(2 * N + 2000), "--seed", "7"])
        ctl, run = org.ctl, org.run
        try:
            run("sync", "--once")  # learn the org
            recs = ctl("GET", "records?object=Contact")["records"]
            opted_in = [r for r in recs if not r["HasOptedOutOfEmail"]]
            emails_seen = {}
            for r in opted_in:  # one record per email, so nothing spreads
                emails_seen.setdefault(r["Email"].lower(), r)
            pool = list(emails_seen.values())
            in_sf, local = pool[:N], pool[N:2 * N]
            if len(local) < N:
                sys.exit("not enough distinct emails in the seed")
            time.sleep(1)
            ctl("POST", "records", {"object": "Contact", "records": [
                {"Id": r["Id"], "HasOptedOutOfEmail": True} for r in in_sf]})
            listing = os.path.join(tmp, "local.txt")
            with open(listing, "w") as f:
                f.write("\n".join(r["Email"] for r in local) + "\n")
            run("optout", "--from", listing)
            ctl("POST", "calls")
            report = json.loads(run("sync", "--once", "--json"))
            calls = ctl("GET", "calls")
            reads = calls.get("query", 0) + calls.get("query_more", 0)
            writes = calls.get("collections", 0)
            minimum = -(-N // 2000) + -(-N // 200)
            ratio = (reads + writes) / minimum
            print("bench/sync-cost: %d opt-outs in Salesforce + %d local, one sync cycle" % (N, N))
            print("  calls: %d query pages + %d collections = %d, plus %d token call(s)" %
                  (reads, writes, reads + writes, calls.get("token", 0)))
            print("  minimum: %d (pages of 2,000 to read, collections of 200 to write)" % minimum)
            print("  ratio: %.3f x the minimum   target <= 1.1" % ratio)
            print("  records read: %d (the overlap window re-reads what changed in the last %s)" %
                  (report["pulled"]["Contact"]["records"], "5 minutes"))
            ctl("POST", "calls")
            run("sync", "--once")
            calls = ctl("GET", "calls")
            print("  next cycle (reads our %d writes back): %d query pages, %d collections" %
                  (N, calls.get("query", 0) + calls.get("query_more", 0),
                   calls.get("collections", 0)))
            sf_out = sum(1 for r in ctl("GET", "records?object=Contact")["records"]
                         if r["HasOptedOutOfEmail"])
            print("  Salesforce now has %d opted-out Contacts" % sf_out)
        finally:
            org.close()


if __name__ == "__main__":
    main()
