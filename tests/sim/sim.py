#!/usr/bin/env python3
"""A seeded, randomized simulation of both sides of optsync (issue #24).

Each history is a list of operations drawn with weights: a Salesforce user
creating Contacts and Leads on a small pool of emails (one record on some,
many Leads on info@), changing emails, ticking and unticking the opt-out and
the purposes' checkboxes, writing ContactPointTypeConsent rows, deleting,
merging, converting Leads and writing odd values; the application opting out
(CLI, local API, one-click links), giving consent, re-subscribing with and
without admin credentials and evidence, editing compliance fields, erasing;
sync cycles, killed sync cycles, and the fake's faults. The REAL optsync runs
it against tests/fake_salesforce/fake_sf.py (one fake process, reset between
histories, a new ledger each history), and model.py, written from the
contract, says what must hold after it.

Usage: sim.py [--optsync PATH] [--fake PATH] [--histories N] [--seed S]
              [--history H [--keep 0,3,7]] [--without LIST] [--no-shrink]

A failing history prints its replay command and, shrunk by delta debugging,
the shortest list of operations that still fails the same way. The last
line is 'N passed, M failed'.

Only the standard library."""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ADMIN_TOKEN = "sim-admin-token-correct-horse-42"
API_TOKEN = "sim-api-token-0123456789abcdef0123"
ONE_CLICK = "List-Unsubscribe=One-Click"

# the switches for operations of defects not yet fixed (--without, or
# OPTSYNC_SIM_WITHOUT): each names its defect
SWITCHES = {
    "many-records": "defect 1: one email on more than 32 Salesforce records stops every later "
                    "sync ('more than 32 Salesforce records'); without it no email gets more "
                    "than 32 records",
    "email-change": "defect 4: a record whose email changes keeps the previous person's queued "
                    "push (rule 9); without it no record's email changes",
    "bad-json": "found by this simulation: a \\u0000 or a lone surrogate (invalid UTF-8) in "
                "any string of a Salesforce query page (an email, a free text) makes the page "
                "'not valid JSON', retried 5 times, and every later sync exits 1 (rule 8; "
                "docs/sync-rules.md); without it no record gets such a value",
    "unicode-email": "found by this simulation: the local part of an email is neither put in "
                     "NFC nor lower-cased beyond ASCII, so ÅSA@, åsa@ and a+U+030A sa@ "
                     "(NFD) are three persons (docs/sync-rules.md); without it the pool writes each person "
                     "in ASCII case forms only",
    "merge-unseen": "found by this simulation: a merge into a record optsync has not read yet "
                    "does not carry the loser's person's opt-outs to the survivor's person (the "
                    "ledger keeps them opted in; the survivor is sometimes written opted out "
                    "all the same), as the docs' merges say it must (rules 1, 9); without it "
                    "merges only go into records a sync has read",
    "row-optin-push": "found by this simulation: a queued opt-in to a consent-object purpose is "
                      "written over a ContactPointTypeConsent row a Salesforce user has just set "
                      "to OptOut, while the ledger takes the opt-out (P1); without it no local "
                      "opt-in to a consent-object purpose",
    "duplicate-rows": "found by this simulation: with two ContactPointTypeConsent rows for one "
                      "Individual and purpose (OptIn and OptOut), every cycle writes the same "
                      "OptOut to the OptOut row again and leaves the OptIn row (never quiet, "
                      "rule 4; P1); without it a Salesforce user writes the existing row",
    "erase-compliance": "found by this simulation: after contact erase of a person whose basis "
                        "is consent (or other), a new record of theirs gets "
                        "Authorization_Type__c=Consent with no Processing_Purpose__c, and "
                        "optsync reads its own write back as an invalid_value conflict "
                        "(rules 4, 5); without it only persons never given a basis are erased",
    "resubscribe-queued": "found by this simulation: an admin's re-subscribe while the "
                          "person's opt-out push is still queued: the opt-out is written to "
                          "Salesforce after it, so the record stays opted out and the ledger "
                          "opted in (rules 2, 6); without it re-subscribes only follow a sync "
                          "of the person's opt-outs",
    "convert-optout": "found by this simulation after the fixes of issue #24 were merged: a "
                      "Lead opted out in Salesforce and then converted makes every later cycle "
                      "write one collection call (never quiet, rule 4); without it no Lead is "
                      "converted",
    "second-individual": "found by this simulation: a person's record linked to a second "
                         "Individual: its consent rows are not read (the person's rows stay "
                         "on their first Individual), so an OptOut given there is not "
                         "honoured (P1); and reading them makes two rows of one purpose "
                         "(duplicate-rows); without it a person's records keep one Individual",
    "sf-consent": "defect 6: a ContactPointTypeConsent row at OptIn with a CaptureDate for a "
                  "person with no status stays 'none' (docs/sync-rules.md, Purposes, consent given in Salesforce "
                  "counts); without it no row is set to OptIn with a CaptureDate",
}

# the email pool: a few people, written as Salesforce users and senders
# write them (case, spaces, NFC and NFD), the placeholder address that
# holds many Leads, and addresses optsync must refuse
PEOPLE = {
    "ada@example.com": ["ada@example.com", "Ada@Example.com", " ADA@example.com "],
    "bob@example.com": ["bob@example.com", "Bob@EXAMPLE.com"],
    "cy@example.org": ["cy@example.org", "CY@example.org"],
    "dee@example.org": ["dee@example.org"],
    "åsa@example.com": ["åsa@example.com", "ÅSA@example.com", "a\u030asa@example.com",
                        "A\u030aSA@Example.com"],
    "info@example.com": ["info@example.com", "INFO@example.com"],
}
MANY = "info@example.com"
BAD_SF_EMAILS = {"email_nul": "bad\u0000@example.com", "email_utf8": "bad\udcff@example.com",
                 "email_long": "x" * 300 + "@example.com"}
AUTH_SF = {"consent": "Consent", "legitimate_interest": "Legitimate Interest",
           "contract": "Performance of a Contract", "legal_obligation": "Legal Obligation",
           "vital_interests": "Vital Interests", "public_interest": "Public Interest",
           "other": "Other"}
SOURCE_SF = {"crm_sync": "CRM Sync", "import": "Import", "manual_upload": "Manual Upload",
             "browser_extension": "Browser Extension", "other": "Other"}
FAULTS = {  # kind -> the fake's fault; each hits the next sync cycle
    "503": {"route": "any", "kind": "status", "status": 503, "count": 1},
    "500": {"route": "any", "kind": "status", "status": 500, "errorCode": "UNKNOWN_EXCEPTION",
            "message": "An unexpected error occurred", "count": 1},
    "429": {"route": "any", "kind": "status", "status": 429, "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "message": "TotalRequests Limit exceeded.", "count": 1},
    "limit": {"route": "any", "kind": "limit", "count": 1},
    "timeout": {"route": "collections", "kind": "slow", "ms": 1600, "count": 1},
    "session": {"route": "any", "kind": "expire_session", "count": 1},
    "reset": {"route": "query", "kind": "reset", "count": 1},
    "query_503": {"route": "query", "kind": "status", "status": 503, "count": 1},
    "push_500": {"route": "collections", "kind": "status", "status": 500,
                 "errorCode": "UNKNOWN_EXCEPTION", "count": 1},
}
PERM_CODES = ["FIELD_CUSTOM_VALIDATION_EXCEPTION", "INSUFFICIENT_ACCESS_OR_READONLY"]


def now_iso(t=None, ms=True):
    t = time.time() if t is None else t
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return s + (".%03dZ" % int((t % 1) * 1000) if ms else "Z")


def parse_iso(s):
    if not s:
        return None
    s = s.replace("+0000", "Z")
    base, _, frac = s.rstrip("Z").partition(".")
    t = time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return t + (float("0." + frac) if frac else 0.0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- generation

class Gen:
    """Draws one history from its own random stream (seed/history)."""

    def __init__(self, seed, index, without):
        self.rng = random.Random("optsync-sim/%d/%d" % (seed, index))
        self.without = set(without)
        self.n = 0
        self.recs = []      # (handle, obj, person or None)
        self.leads = []
        self.inds = []
        self.rows = []
        self.count_of = {}  # person -> records made (for the 32 limit)
        self.synced = set()  # records made before the last sync
        self.carded = set()  # persons a contact set or re-subscribe gave a basis
        self.unpushed = set()  # persons opted out locally since the last sync

    def handle(self, prefix="h"):
        self.n += 1
        return "%s%d" % (prefix, self.n)

    def email(self, people=None):
        p = self.rng.choice(people or [k for k in PEOPLE if k != MANY])
        forms = PEOPLE[p]
        if "unicode-email" in self.without:
            forms = [f for f in forms if f == unicodedata.normalize("NFC", f).lower()
                     or f.isascii()] or [p]
        return p, self.rng.choice(forms)

    def rec(self, pred=None):
        c = [r for r in self.recs if pred is None or pred(r)]
        return self.rng.choice(c) if c else None

    def config(self):
        r = self.rng.random()
        return {"policy": "hold" if r < 0.2 else "revert",
                "sidecar": self.rng.random() < 0.15}

    def history(self):
        cfg = self.config()
        n = self.rng.randint(6, 18)
        ops = []
        # most histories start with a few records and a first cycle
        for _ in range(self.rng.randint(1, 3)):
            ops.append(self.sf_create())
        if self.rng.random() < 0.8:
            ops.append({"op": "sync"})
            self.synced = {r[0] for r in self.recs}
        table = [
            (14, self.sf_create), (2.5, self.sf_bulk), (5, self.sf_email), (9, self.sf_flip),
            (5, self.sf_box), (4, self.sf_link_ind), (6, self.sf_cptc), (2, self.sf_delete),
            (2, self.sf_merge), (2, self.sf_convert), (2, self.sf_odd),
            (13, self.optout), (4, self.consent), (3, self.resubscribe), (3, self.contact_set),
            (1, self.erase), (8, lambda: {"op": "sync"}), (1.5, self.sync_kill),
            (2.5, self.fault), (1.5, self.rec_fault),
        ]
        if cfg["sidecar"]:
            table.append((0.7, lambda: {"op": "run_kill"}))
        total = sum(w for w, _ in table)
        while len(ops) < n:
            x = self.rng.uniform(0, total)
            for w, f in table:
                x -= w
                if x <= 0:
                    op = f()
                    if op:
                        if op["op"] == "sync":
                            self.synced = {r[0] for r in self.recs}
                            self.unpushed = set()
                        if cfg["sidecar"] and op.get("via") == "cli" and \
                                op["op"] in ("optout", "consent", "resubscribe") and \
                                self.rng.random() < 0.6:
                            op["via"] = "link" if op["op"] == "optout" and \
                                self.rng.random() < 0.5 else "api"
                        ops.append(op)
                    break
        return cfg, ops

    # ---- Salesforce side ----
    def sf_create(self):
        obj = self.rng.choice(["Contact", "Lead"])
        bad = sorted(k for k in BAD_SF_EMAILS
                     if "bad-json" not in self.without or k == "email_long")
        if self.rng.random() < 0.06:
            kind = self.rng.choice(bad)
            p, email = None, BAD_SF_EMAILS[kind]
        else:
            p, email = self.email()
        h = self.handle()
        self.recs.append((h, obj, p))
        if obj == "Lead":
            self.leads.append(h)
        self.count_of[p] = self.count_of.get(p, 0) + 1
        boxes = {c: True for c in ("news", "events") if self.rng.random() < 0.1}
        return {"op": "sf_create", "h": h, "obj": obj, "email": email,
                "out": self.rng.random() < 0.2, "boxes": boxes}

    def sf_bulk(self):
        have = self.count_of.get(MANY, 0)
        if "many-records" in self.without:
            room = 32 - have
            if room < 2:
                return None
            n = self.rng.randint(2, min(room, 20))
        elif self.rng.random() < 0.12:
            n = self.rng.randint(max(2, 33 - have), 300)  # hundreds, past 32
        else:
            n = self.rng.randint(2, 20)
        h = self.handle("b")
        for i in range(n):
            self.recs.append(("%s.%d" % (h, i), "Lead", MANY))
            self.leads.append("%s.%d" % (h, i))
        self.count_of[MANY] = have + n
        return {"op": "sf_bulk", "h": h, "email": self.rng.choice(PEOPLE[MANY]), "n": n,
                "out": self.rng.random() < 0.1}

    def sf_email(self):
        if "email-change" in self.without:
            return None
        r = self.rec(lambda r: r[2] != MANY or self.rng.random() < 0.2)
        if not r:
            return None
        p, email = self.email()
        return {"op": "sf_email", "rec": r[0], "email": email}

    def sf_flip(self):
        r = self.rec()
        return r and {"op": "sf_flip", "rec": r[0], "ch": "global"}

    def sf_box(self):
        r = self.rec()
        return r and {"op": "sf_flip", "rec": r[0], "ch": self.rng.choice(["news", "events"])}

    def sf_link_ind(self):
        r = self.rec(lambda r: r[2] is not None)
        if not r:
            return None
        # one Individual per person mostly; sometimes a second one
        mine = [i for i, p in self.inds if p == r[2]]
        if mine and (self.rng.random() < 0.85 or "second-individual" in self.without):
            ind = mine[0]
        else:
            ind = self.handle("i")
            self.inds.append((ind, r[2]))
        return {"op": "sf_link_ind", "rec": r[0], "ind": ind}

    def sf_cptc(self):
        if not self.inds:
            return self.sf_link_ind()
        ind = self.rng.choice(self.inds)[0]
        mine = [w for w, i in self.rows if i == ind]
        status = self.rng.choice(["OptIn", "OptOut"])
        capture = self.rng.random() < 0.6
        if "sf-consent" in self.without:
            capture = False  # a row flipped to OptIn later would carry it
        if mine and (self.rng.random() < 0.7 or "duplicate-rows" in self.without):
            row = mine[0]
        else:
            row = self.handle("w")
            self.rows.append((row, ind))
        op = {"op": "sf_cptc", "ind": ind, "row": row, "status": status, "capture": capture,
              "age_h": self.rng.randint(1, 24 * 60)}
        if "duplicate-rows" in self.without:
            op["reuse"] = True  # a row optsync made for the Individual is written, not a new one
        return op

    def sf_delete(self):
        r = self.rec()
        return r and {"op": "sf_delete", "rec": r[0]}

    def sf_merge(self):
        obj = self.rng.choice(["Contact", "Lead"])
        c = [r for r in self.recs if r[1] == obj]
        if len(c) < 2:
            return None
        master, loser = self.rng.sample(c, 2)
        if "merge-unseen" in self.without and master[0] not in self.synced:
            return None
        return {"op": "sf_merge", "obj": obj, "master": master[0], "losers": [loser[0]]}

    def sf_convert(self):
        if not self.leads or "convert-optout" in self.without:
            return None
        lead = self.rng.choice(self.leads)
        p = [r[2] for r in self.recs if r[0] == lead][0]
        h = self.handle()
        self.recs.append((h, "Contact", p))
        return {"op": "sf_convert", "rec": lead, "h": h}

    def sf_odd(self):
        r = self.rec()
        if not r:
            return None
        kinds = ["picklist_auth", "picklist_source", "text_long", "name_long"]
        if "bad-json" not in self.without:
            kinds += ["text_nul", "text_utf8"]
        kind = self.rng.choice(kinds)
        return {"op": "sf_odd", "rec": r[0], "kind": kind}

    # ---- local side ----
    def optout(self):
        if self.rng.random() < 0.05:
            return {"op": "optout", "email": self.rng.choice(["bad\x01@example.com",
                                                              "not-an-email"]),
                    "purpose": None, "via": "cli"}
        p, email = self.email(list(PEOPLE))
        purpose = self.rng.choice(list(M.PURPOSES)) if self.rng.random() < 0.4 else None
        self.unpushed.add(p)
        return {"op": "optout", "email": email, "purpose": purpose, "via": "cli"}

    def admin(self):
        return self.rng.choices(["good", "none", "bad"], [6, 2, 1])[0]

    def consent(self):
        _, email = self.email(list(PEOPLE))
        purposes = [p for p in M.PURPOSES
                    if "row-optin-push" not in self.without or p not in M.ROW_CHANNELS]
        return {"op": "consent", "email": email, "purpose": self.rng.choice(purposes),
                "admin": self.rng.choices(["none", "good", "bad"], [5, 3, 1])[0],
                "date": self.rng.choices(["now", "old", "future"], [7, 2, 1])[0],
                "evidence": self.rng.random() < 0.92, "via": "cli"}

    def resubscribe(self):
        people = list(PEOPLE)
        if "resubscribe-queued" in self.without:
            people = [p for p in people if p not in self.unpushed] or None
            if not people:
                return None
        p, email = self.email(people)
        self.carded.add(p)
        return {"op": "resubscribe", "email": email, "admin": self.admin(),
                "date": self.rng.choices(["now", "old", "future"], [7, 2, 1])[0],
                "evidence": self.rng.random() < 0.9, "via": "cli"}

    def contact_set(self):
        p, email = self.email(list(PEOPLE))
        self.carded.add(p)
        r = self.rng.random()
        if r < 0.15:  # invalid: consent without its date, an unknown basis
            args = self.rng.choice([["--authorization", "consent"],
                                    ["--authorization", "friendship"],
                                    ["--authorization", "contract", "--purpose", "x"]])
            return {"op": "contact_set", "email": email, "args": args, "valid": False}
        auth = self.rng.choice(sorted(AUTH_SF))
        args = ["--authorization", auth]
        if auth == "consent":
            args += ["--consent-date", "2026-01-%02d" % self.rng.randint(1, 28),
                     "--purpose", "Newsletter"]
        if auth == "other":
            args += ["--other", "club membership"]
        if self.rng.random() < 0.5:
            args += ["--source", self.rng.choice(["crm_sync", "import", "manual_upload",
                                                  "browser_extension"])]
        return {"op": "contact_set", "email": email, "args": args, "valid": True}

    def erase(self):
        people = list(PEOPLE)
        if "erase-compliance" in self.without:
            people = [p for p in people if p not in self.carded] or None
            if not people:
                return None
        _, email = self.email(people)
        return {"op": "erase", "email": email, "admin": self.rng.random() < 0.85}

    def sync_kill(self):
        return {"op": "sync_kill", "ms": self.rng.randint(15, 140)}

    def fault(self):
        return {"op": "fault", "kind": self.rng.choice(sorted(FAULTS))}

    def rec_fault(self):
        r = self.rec()
        if not r:
            return None
        if self.rng.random() < 0.5:
            return {"op": "rec_fault", "rec": r[0], "kind": "lock", "n": self.rng.randint(1, 2)}
        return {"op": "rec_fault", "rec": r[0], "kind": "perm",
                "code": self.rng.choice(PERM_CODES)}


# ---------------------------------------------------------------- running

class Fake:
    """One fake Salesforce for the whole run, reset between histories."""

    def __init__(self, path, tmp):
        portfile = os.path.join(tmp, "fake.port")
        self.log = open(os.path.join(tmp, "fake.log"), "w")
        self.proc = subprocess.Popen([sys.executable, path, "--port-file", portfile, "--dpp"],
                                     stdout=self.log, stderr=self.log)
        for _ in range(400):
            if os.path.exists(portfile):
                break
            time.sleep(0.025)
        with open(portfile) as f:
            self.port = int(f.read())
        self.conn = None

    def ctl(self, method, path, body=None):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                data = json.dumps(body).encode() if body is not None else None
                self.conn.request(method, "/__control/" + path, body=data,
                                  headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                text = r.read()
                if r.status >= 400:
                    raise RuntimeError("fake %s %s: %d %s" % (method, path, r.status, text[:200]))
                return json.loads(text or b"null")
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise

    def put(self, obj, recs):
        return self.ctl("POST", "records", {"object": obj, "records": recs})["ids"]

    def get(self, obj, rid):
        recs = self.ctl("GET", "records?object=%s&id=%s" % (obj, rid))["records"]
        return recs[0] if recs else None

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class Result:
    def __init__(self):
        self.failures = []   # (invariant, message)
        self.ops = {}
        self.faults = {}
        self.skipped = 0
        self.optime = {}

    def fail(self, inv, msg):
        self.failures.append((inv, msg))

    def count(self, op):
        self.ops[op] = self.ops.get(op, 0) + 1


class History:
    """One history against the real optsync."""

    def __init__(self, world, cfg, ops, label):
        self.w = world
        self.cfg = cfg
        self.ops = ops
        self.label = label
        self.fake = world.fake
        self.res = Result()
        self.model = M.Model(cfg["policy"])
        self.ids = {}        # handle -> Salesforce id
        self.obj = {}        # handle -> object
        self.inds = {}       # handle -> Individual id
        self.rows = {}       # handle -> ContactPointTypeConsent id
        self.offset = 0
        self.armed = False
        self.run = None
        self.stop = False
        self.persons_seen = set()

    # ---- plumbing ----
    def setup(self):
        d = os.path.join(self.w.tmp, "h")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.dir = d
        self.fake.ctl("POST", "reset", {"dpp": True})
        dup = self.fake.put("DataUsePurpose", [{"Name": "Offers", "CanDataSubjectOptOut": True}])[0]
        self.model.dup_ids["offers"] = dup
        self.api_port, self.pub_port = free_port(), free_port()
        keyfile = os.path.join(d, "link.key")
        with open(keyfile, "wb") as f:
            f.write(hashlib.sha256(b"sim link key").digest())
        os.chmod(keyfile, 0o600)
        self.config = os.path.join(d, "optsync.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG % dict(port=self.fake.port, state=os.path.join(d, "state"),
                                  policy=self.cfg["policy"],
                                  interval="1s" if self.cfg["sidecar"] else "1h",
                                  admin_hash=self.w.admin_hash,
                                  api=self.api_port, pub=self.pub_port, key=keyfile))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
        env["OPTSYNC_SALESFORCE_CLIENT_SECRET"] = "fake-client-secret"
        env["OPTSYNC_API_TOKEN"] = API_TOKEN
        self.env = env
        if self.cfg["sidecar"]:
            self.start_run()

    def start_run(self):
        self.runlog = open(os.path.join(self.dir, "run.log"), "a")
        self.run = subprocess.Popen([self.w.optsync, "-c", self.config, "run"], env=self.env,
                                    stdout=self.runlog, stderr=self.runlog)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if self.api("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.res.fail("run", "optsync run did not answer /healthz within 10 s")

    def stop_run(self, kill=False):
        if not self.run:
            return
        if kill:
            self.run.kill()
            self.run.wait()
        else:
            self.run.terminate()
            try:
                rc = self.run.wait(15)
                if rc != 0:
                    self.res.fail("run", "optsync run exited %d on SIGTERM (docs/optsync.1: stops "
                                  "cleanly)" % rc)
            except subprocess.TimeoutExpired:
                self.run.kill()
                self.run.wait()
                self.res.fail("run", "optsync run did not stop within 15 s of SIGTERM")
        self.runlog.close()
        self.run = None

    def cli(self, *args, admin=None, timeout=120):
        env = self.env
        if admin:
            env = dict(env, OPTSYNC_ADMIN="alice",
                       OPTSYNC_ADMIN_TOKEN=ADMIN_TOKEN if admin == "good" else "wrong-" + ADMIN_TOKEN)
        p = subprocess.run([self.w.optsync, "-c", self.config, *args], env=env,
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)
        p.stdout = p.stdout.decode("utf-8", "replace")
        p.stderr = p.stderr.decode("utf-8", "replace")
        return p

    def cli_json(self, *args, **kw):
        p = self.cli(*args, "--json", **kw)
        try:
            return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p
        except ValueError:
            return p.returncode, None, p

    def api(self, method, path, body=None, headers=None, port=None):
        c = http.client.HTTPConnection("127.0.0.1", port or self.api_port, timeout=30)
        h = {"Authorization": "Bearer " + API_TOKEN}
        h.update(headers or {})
        data = None
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            data = body.encode()
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text.decode("utf-8", "replace")
        return r.status, doc

    def tick(self):
        """Each Salesforce write in a second of its own: the fake's clock goes
        one second on (SystemModstamp has whole seconds)."""
        self.offset += 1
        self.fake.ctl("POST", "config", {"now_offset": self.offset})

    def dump(self):
        return self.fake.ctl("GET", "dump")

    def rid(self, h):
        return self.ids.get(h)

    def rec_of(self, h, converted_ok=False):
        """A live record; a converted Lead only where Salesforce lets a user
        act on one (merging it is refused too)."""
        rid = self.ids.get(h)
        r = self.model.records.get(rid) if rid else None
        if r and r.converted and not converted_ok:
            return None
        return r if r and r.alive else None

    # ---- the history ----
    def execute(self, limit_s=None):
        t0 = time.time()
        try:
            self.setup()
            for i, op in enumerate(self.ops):
                if self.stop:
                    break  # a sync failed with no fault armed: the history has failed
                self.model.step = i + 1
                name = op["op"]
                fn = getattr(self, "op_" + name)
                if self.run:
                    # the sidecar runs cycles of its own at any time: what
                    # stands now may have been read
                    d = self.dump()
                    self.model.observe(d, d, False)
                t1 = time.time()
                done = fn(op)
                self.res.optime[name] = self.res.optime.get(name, 0) + time.time() - t1
                if done is False:
                    self.res.skipped += 1
                elif name not in ("optout", "consent", "resubscribe"):  # counted by channel
                    self.res.count(name if name != "sf_flip" or op["ch"] == "global" else "sf_box")
            self.model.step = len(self.ops) + 1
            t1 = time.time()
            if not self.stop:
                self.finish()
            self.res.optime["finish"] = time.time() - t1
        except Exception as e:  # a harness error is a failure too, with its cause
            import traceback
            self.res.fail("harness", "%s: %s\n%s" % (type(e).__name__, e,
                                                     traceback.format_exc(limit=6)))
        finally:
            try:
                self.stop_run(kill=True)
            except Exception:
                pass
        self.res.seconds = time.time() - t0
        return self.res

    # Salesforce user operations
    def op_sf_create(self, op):
        self.tick()
        rec = {"Email": op["email"], "LastName": "Sim", "FirstName": "P",
               "HasOptedOutOfEmail": op["out"]}
        if op["obj"] == "Lead":
            rec["Company"] = "Sim Ltd"
        for c in op["boxes"]:
            rec[M.FIELD_OF[c]] = True
        rid = self.fake.put(op["obj"], [rec])[0]
        self.ids[op["h"]], self.obj[op["h"]] = rid, op["obj"]
        vals = {"global": op["out"]}
        vals.update({c: True for c in op["boxes"]})
        r = self.model.sf_record(rid, op["obj"], op["email"], vals)
        if op["email"] in BAD_SF_EMAILS.values():
            r.odd = "invalid email" if not op["email"].startswith("x" * 300) else "long email"

    def op_sf_bulk(self, op):
        self.tick()
        recs = [{"Email": op["email"], "LastName": "Lead%d" % i, "Company": "Placeholder",
                 "HasOptedOutOfEmail": op["out"] and i == 0} for i in range(op["n"])]
        ids = self.fake.put("Lead", recs)
        for i, rid in enumerate(ids):
            h = "%s.%d" % (op["h"], i)
            self.ids[h], self.obj[h] = rid, "Lead"
            self.model.sf_record(rid, "Lead", op["email"], {"global": op["out"] and i == 0})

    def fresh(self, h):
        """The record as the fake has it now (optsync may have written it
        since the last look: a sidecar's pushes)."""
        r = self.rec_of(h)
        if not r:
            return None, None
        cur = self.fake.get(self.obj[h], r.id)
        self.model.absorb({self.obj[h]: [cur]})
        return r, cur

    def op_sf_email(self, op):
        r, cur = self.fresh(op["rec"])
        if not r:
            return False
        self.tick()
        self.fake.put(r.obj, [{"Id": r.id, "Email": op["email"]}])
        self.model.sf_email(r.id, op["email"])

    def op_sf_flip(self, op):
        r, cur = self.fresh(op["rec"])
        if not r:
            return False
        c = op["ch"]
        v = not bool(cur.get(M.FIELD_OF[c]))
        self.tick()
        self.fake.put(r.obj, [{"Id": r.id, M.FIELD_OF[c]: v}])
        self.model.sf_set(r.id, c, v)

    def op_sf_link_ind(self, op):
        r = self.rec_of(op["rec"])
        if not r:
            return False
        self.tick()
        if op["ind"] not in self.inds:
            self.inds[op["ind"]] = self.fake.put("Individual", [{"LastName": "Sim"}])[0]
        ind = self.inds[op["ind"]]
        self.fake.put(r.obj, [{"Id": r.id, "IndividualId": ind}])
        self.model.link_individual(r.id, ind)

    def op_sf_cptc(self, op):
        ind = self.inds.get(op["ind"])
        if not ind:
            return False
        self.tick()
        cap = now_iso(time.time() - 3600 * op["age_h"], ms=False) if op["capture"] else None
        new = op["row"] not in self.rows
        if new and op.get("reuse"):
            have = [w["Id"] for w in self.fake.ctl("GET", "records?object=ContactPointTypeConsent")
                    ["records"] if w.get("PartyId") == ind and
                    w.get("DataUsePurposeId") == self.model.dup_ids["offers"]]
            if have:
                self.rows[op["row"]] = have[0]
                new = False
        if new:
            rec = {"Name": "Sim consent", "PartyId": ind, "ContactPointType": "Email",
                   "DataUsePurposeId": self.model.dup_ids["offers"],
                   "PrivacyConsentStatus": op["status"], "CaptureDate": cap,
                   "CaptureSource": "Salesforce user", "CaptureContactPointType": "Email"}
            self.rows[op["row"]] = self.fake.put("ContactPointTypeConsent", [rec])[0]
        else:
            rec = {"Id": self.rows[op["row"]], "PrivacyConsentStatus": op["status"]}
            if cap:
                rec["CaptureDate"] = cap
            self.fake.put("ContactPointTypeConsent", [rec])
        self.model.sf_row(self.rows[op["row"]], ind, "offers", op["status"], bool(cap), new)

    def op_sf_delete(self, op):
        r = self.rec_of(op["rec"], converted_ok=True)
        if not r:
            return False
        self.tick()
        self.fake.ctl("POST", "delete", {"object": r.obj, "ids": [r.id]})
        self.model.sf_delete(r.id)

    def op_sf_merge(self, op):
        m = self.rec_of(op["master"])
        losers = [self.rec_of(h) for h in op["losers"]]
        if not m or not all(losers) or m.converted or any(l.converted for l in losers) or \
                any(l.id == m.id for l in losers):
            return False
        self.tick()
        self.fake.ctl("POST", "merge", {"object": m.obj, "master": m.id,
                                        "losers": [l.id for l in losers]})
        self.model.sf_merge(m.id, [l.id for l in losers])

    def op_sf_convert(self, op):
        r = self.rec_of(op["rec"])
        if not r or r.obj != "Lead" or r.converted:
            return False
        self.fresh(op["rec"])
        self.tick()
        cid = self.fake.ctl("POST", "convert", {"id": r.id})["contact"]
        self.ids[op["h"]], self.obj[op["h"]] = cid, "Contact"
        self.model.sf_convert(r.id, cid)

    def op_sf_odd(self, op):
        r = self.rec_of(op["rec"])
        if not r:
            return False
        self.tick()
        k = op["kind"]
        fields = {"picklist_auth": {"Authorization_Type__c": "Because We Can"},
                  "picklist_source": {"Source_Type__c": "Carrier Pigeon"},
                  "text_long": {"Authorization_Other__c": "long " * 20000},
                  "text_nul": {"Processing_Purpose__c": "News\u0000letter"},
                  "text_utf8": {"Source_Other__c": "caf\udce9"},
                  "name_long": {"LastName": "N" * 70000}}[k]
        self.fake.put(r.obj, [dict(fields, Id=r.id)])
        # an invalid value (rule 5: a conflict, raised once) or one optsync
        # cannot store (rule 8: the record parked and named)
        r.bad_picklist += 1
        if not k.startswith("picklist"):
            r.odd = k

    # local operations
    def expect(self, inv, ok, want_ok, what, p):
        if want_ok is None or ok == want_ok:
            return
        self.res.fail(inv, "%s: %s, wanted %s (exit/status %s: %s)" % (
            what, "accepted" if ok else "refused", "accepted" if want_ok else "refused",
            getattr(p, "returncode", p), (getattr(p, "stderr", "") or "").strip()[-300:]))

    def op_optout(self, op):
        email, purpose, via = op["email"], op["purpose"], op["via"]
        key = M.normalize(email)
        if via != "cli" and not self.run:
            via = "cli"
        if via == "cli":
            args = ["optout", email] + (["--purpose", purpose] if purpose else [])
            p = self.cli(*args, "--json")
            ok, info = p.returncode == 0, p
        elif via == "api":
            body = {"email": email}
            if purpose:
                body["purpose"] = purpose
            st, doc = self.api("POST", "/v1/optouts", body)
            ok, info = st == 202, "%d %s" % (st, doc)
        else:
            args = ["link", email] + (["--purpose", purpose] if purpose else [])
            rc, doc, p = self.cli_json(*args)
            if rc != 0:
                ok, info = False, p
            else:
                path = urllib.parse.urlparse(doc["url"]).path
                st, _ = self.api("POST", path, ONE_CLICK, port=self.pub_port,
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Authorization": ""})
                ok, info = st == 200, "one-click %d" % st
        self.res.count("optout_" + via)
        self.expect("local-optout", ok, key is not None,
                    "optout %r purpose %s via %s" % (email, purpose, via), info)
        if ok and key:
            self.model.local_optout(key, purpose or M.GLOBAL)
            self.persons_seen.add(key)

    def ledger_times(self, key):
        rc, doc, _ = self.cli_json("contact", "show", key)
        if rc != 0 or not doc:
            return None, {}
        t = {M.GLOBAL: parse_iso(doc.get("opted_out_at")) if doc.get("opted_out") else None}
        for c, pd in (doc.get("purposes") or {}).items():
            t[c] = parse_iso(pd.get("changed_at")) if pd.get("status") == "opted_out" else None
        return doc, t

    def dates(self, which):
        if which == "now":
            time.sleep(0.002)
            return now_iso(), time.time()
        if which == "old":
            return "2020-01-01T00:00:00Z", parse_iso("2020-01-01T00:00:00Z")
        t = time.time() + 86400
        return now_iso(t, ms=False), t

    def op_consent(self, op):
        """P2: a first opt-in needs the date and the evidence; after an
        opt-out of the purpose, or while opted out of all email, an admin and
        a consent date after that opt-out too."""
        email, purpose, key = op["email"], op["purpose"], M.normalize(op["email"])
        per = self.model.person(key)
        ch, g = per.ch[purpose], per.ch[M.GLOBAL]
        _, times = self.ledger_times(key) if op["admin"] == "good" else (None, {})
        date, dt_ = self.dates(op["date"])
        want = self.optin_outcome(op, ch, g, dt_, [times.get(purpose), times.get(M.GLOBAL)],
                                  first_ok=True)
        via = op["via"] if self.run else "cli"
        if via == "cli":
            args = ["consent", email, "--purpose", purpose, "--consent-date", date]
            if op["evidence"]:
                args += ["--evidence-ref", "sim-evidence-%d" % self.model.step]
            p = self.cli(*args, admin=op["admin"] if op["admin"] != "none" else None)
            ok, info = p.returncode == 0, p
        else:
            body = {"purpose": purpose, "consent_date": date}
            if op["evidence"]:
                body["evidence_ref"] = "sim-evidence-%d" % self.model.step
            hdr = {}
            if op["admin"] != "none":
                hdr["X-Optsync-Admin"] = "alice:" + (ADMIN_TOKEN if op["admin"] == "good"
                                                     else "wrong-" + ADMIN_TOKEN)
            st, doc = self.api("POST", "/v1/contacts/%s/consents" % urllib.parse.quote(email),
                               body, headers=hdr)
            ok, info = st in (200, 201), "%d %s" % (st, doc)
        self.res.count("consent_" + via)
        self.expect("rule-P2", ok, want, "consent %s to %s (admin %s, date %s, evidence %s)" % (
            email, purpose, op["admin"], op["date"], op["evidence"]), info)
        if ok:
            self.model.local_optin(key, purpose)
            self.persons_seen.add(key)

    def optin_outcome(self, op, ch, g, date_t, out_times, first_ok):
        """What rule 2 / P2 say about an opt-in: True, False, or None (the
        model cannot tell the person's status)."""
        if not op["evidence"] or op["date"] == "future":
            return False
        st, gs = ch.status(), g.status() if first_ok else "in"
        blocked = [s for s in (st, gs) if s == "out"]
        unknown = st is None or gs is None
        if first_ok and not blocked and not unknown:
            if op["admin"] == "bad":
                return None  # wrong credentials on a first opt-in: refused or ignored
            return True
        if op["admin"] != "good":
            return False if blocked else None
        if unknown and not blocked:
            return None
        # an admin with evidence: the consent date must be after the opt-out
        ts = [t for t in out_times if t is not None]
        if not ts:
            return None
        late = max(ts)
        if abs(date_t - late) < 0.002:
            return None
        return date_t > late

    def op_resubscribe(self, op):
        """Rule 2: only an admin with new evidence (a consent date later than
        the opt-out and not in the future, a purpose, an evidence ref)."""
        email, key = op["email"], M.normalize(op["email"])
        g = self.model.person(key).ch[M.GLOBAL]
        _, times = self.ledger_times(key) if op["admin"] == "good" else (None, {})
        date, dt_ = self.dates(op["date"])
        st = g.status()
        if st == "out":
            want = self.optin_outcome(op, g, g, dt_, [times.get(M.GLOBAL)], first_ok=False)
            if op["admin"] != "good":
                want = False
        elif op["admin"] != "good" and st is not None:
            want = False if st == "out" else None
        else:
            want = None if op["admin"] == "good" or st is None else False
        via = op["via"] if self.run else "cli"
        if via == "cli":
            args = ["resubscribe", email, "--consent-date", date, "--purpose", "Newsletter"]
            if op["evidence"]:
                args += ["--evidence-ref", "sim-ticket-%d" % self.model.step]
            p = self.cli(*args, admin=op["admin"] if op["admin"] != "none" else None)
            ok, info = p.returncode == 0, p
        else:
            body = {"consent_date": date, "purpose": "Newsletter"}
            if op["evidence"]:
                body["evidence_ref"] = "sim-ticket-%d" % self.model.step
            hdr = {}
            if op["admin"] != "none":
                hdr["X-Optsync-Admin"] = "alice:" + (ADMIN_TOKEN if op["admin"] == "good"
                                                     else "wrong-" + ADMIN_TOKEN)
            stt, doc = self.api("POST", "/v1/contacts/%s/resubscribe" % urllib.parse.quote(email),
                                body, headers=hdr)
            ok, info = stt in (200, 201), "%d %s" % (stt, doc)
        self.res.count("resubscribe_" + via)
        if op["admin"] != "good" and ok:
            self.res.fail("rule-2", "resubscribe %s accepted without admin credentials (%s)"
                          % (email, op["admin"]))
        else:
            self.expect("rule-2", ok, want, "resubscribe %s (admin %s, date %s, evidence %s)" % (
                email, op["admin"], op["date"], op["evidence"]), info)
        if ok and op["admin"] == "good":
            self.model.local_optin(key, M.GLOBAL)

    def op_contact_set(self, op):
        key = M.normalize(op["email"])
        p = self.cli("contact", "set", op["email"], *op["args"], "--json")
        self.expect("rule-5", p.returncode == 0, op["valid"],
                    "contact set %s %s" % (op["email"], " ".join(op["args"])), p)
        if p.returncode == 0:
            self.model.person(key).compliance_set = True
            self.persons_seen.add(key)

    def op_erase(self, op):
        key = M.normalize(op["email"])
        p = self.cli("contact", "erase", op["email"], "--json",
                     admin="good" if op["admin"] else None)
        if not op["admin"]:
            self.expect("admin", p.returncode == 0, False, "erase without admin", p)
        elif p.returncode == 0:
            self.model.person(key).erased = True
        elif p.returncode not in (1, 5) or key in self.persons_seen:
            # 1: a person the ledger does not know; 5: no ledger yet
            self.res.fail("erase", "contact erase %s by an admin: exit %d: %s" % (
                op["email"], p.returncode, p.stderr.strip()[-300:]))

    # sync cycles and faults
    def sync_once(self, final=False):
        before = self.dump()
        for attempt in range(20):
            p = self.cli("sync", "--once", "--json", timeout=180)
            if p.returncode == 5 and self.run and "lock" in p.stderr:
                time.sleep(0.05)  # the sidecar's own cycle holds the sync lock
                continue
            break
        after = self.dump()
        try:
            rep = json.loads(p.stdout) if p.stdout.strip() else {}
        except ValueError:
            rep = {}
        armed = self.armed
        clean = not armed and p.returncode == 0 and rep.get("result") == "ok"
        self.model.observe(before, after, clean)
        if self.armed:
            self.fake.ctl("DELETE", "faults?only=faults")
            self.armed = False
        if not armed and p.returncode != 0:
            # fail fast: such a cycle may take its retries' backoff each time
            self.stop = not final
            self.res.fail("rule-8",
                          "sync --once%s exit %d with no fault armed: %s" % (
                              " (final)" if final else "", p.returncode,
                              (p.stderr.strip() or p.stdout.strip())[-400:]))
        return p.returncode, rep

    def op_sync(self, op):
        if self.run:
            return self.sidecar_cycle()
        self.sync_once()

    def sidecar_cycle(self):
        """Beside optsync run no sync --once may run (the sync lock): wait
        for a cycle of the sidecar's own that starts after this point."""
        t = time.time()
        before = self.dump()
        deadline = t + 10
        last = None
        while time.time() < deadline:
            try:
                st, doc = self.api("GET", "/v1/status")
            except OSError:
                st, doc = 0, None
            last = (doc or {}).get("last_cycle") if st == 200 else None
            if last and (parse_iso(last.get("started_at")) or 0) > t and last.get("finished_at"):
                break
            time.sleep(0.03)
        else:
            self.res.fail("run", "optsync run ran no sync cycle within 10 s (sync.interval 1s)")
            return
        after = self.dump()
        armed = self.armed
        self.model.observe(before, after, not armed and last.get("result") == "ok")
        if self.armed:
            self.fake.ctl("DELETE", "faults?only=faults")
            self.armed = False
        if not armed and last.get("result") != "ok":
            self.res.fail("rule-8", "a cycle of optsync run with no fault armed: %s" %
                          json.dumps(last)[:400])

    def op_sync_kill(self, op):
        if self.run:
            return self.op_run_kill(op)
        before = self.dump()
        proc = subprocess.Popen([self.w.optsync, "-c", self.config, "sync", "--once", "--json"],
                                env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(op["ms"] / 1000.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = self.dump()
        self.model.observe(before, after, False)
        if self.armed:
            self.fake.ctl("DELETE", "faults?only=faults")
            self.armed = False

    def op_fault(self, op):
        self.fake.ctl("POST", "faults", {"faults": [dict(FAULTS[op["kind"]])]})
        self.armed = True
        self.res.faults[op["kind"]] = self.res.faults.get(op["kind"], 0) + 1

    def op_rec_fault(self, op):
        r = self.rec_of(op["rec"])
        if not r:
            return False
        if op["kind"] == "lock":
            self.fake.ctl("POST", "faults", {"lock_row": {r.id: op["n"]}})
            self.res.faults["lock_row"] = self.res.faults.get("lock_row", 0) + 1
        else:
            self.fake.ctl("POST", "faults", {"errors": {r.id: op["code"]}})
            self.res.faults["perm:" + op["code"]] = self.res.faults.get("perm:" + op["code"], 0) + 1
            self.perm = getattr(self, "perm", set()) | {r.id}

    def op_run_kill(self, op):
        if not self.run:
            return False
        self.stop_run(kill=True)
        self.res.faults["run_sigkill"] = self.res.faults.get("run_sigkill", 0) + 1
        self.start_run()

    # ---- after the history ----
    def finish(self):
        if self.run:
            d = self.dump()
            self.model.observe(d, d, False)
        self.stop_run()
        self.fake.ctl("DELETE", "faults")
        self.armed = False
        rc, st, _ = self.cli_json("status")
        parked = (st or {}).get("pushes", {}).get("parked_records", []) if rc == 0 else []
        for x in parked:
            code = (x.get("error") or "").split(":")[0]
            if not code.isupper() or code in M.RETRYABLE:
                self.res.fail("rule-7", "push parked without a permanent cause: %s" % x)
        if parked:
            self.cli("pushes", "retry", "--all")
        quiet = False
        waited = 0
        for i in range(6):
            rc, rep = self.sync_once(final=True)
            if rc != 0:
                if i >= 1:
                    break
                continue
            rc2, st, _ = self.cli_json("status")
            calls = rep.get("pushes", {}).get("collection_calls", 1)
            queued = (st or {}).get("pushes", {}).get("queued", 1)
            if calls == 0 and queued == 0:
                quiet = True
                break
            if calls == 0 and queued and waited < 16:
                # a push waiting for its retry backoff (a transient failure
                # the history left it: a lock, a run stopped mid-retry):
                # due within seconds (5 s, then 10 s)
                time.sleep(4)
                waited += 4
        if not quiet and rc == 0:
            self.res.fail("rule-4", "not quiet after 6 sync cycles with no fault (last: exit %d, "
                          "%s collection calls, %s queued)" % (
                              rc, rep.get("pushes", {}).get("collection_calls"),
                              (st or {}).get("pushes", {}).get("queued")))
        view = {"sf": self.dump(), "status": st}
        rc, cf, _ = self.cli_json("conflicts", "list", "--status", "all")
        view["conflicts"] = (cf or {}).get("conflicts", [])
        keys = set(self.model.persons) | {r.person for r in self.model.records.values()
                                          if r.person}
        ledger = {}
        for k in sorted(keys):
            rc, doc, p = self.cli_json("contact", "show", k)
            ledger[k] = doc if rc == 0 else None
        view["ledger"] = ledger
        p = self.cli("audit", "verify", "--json")
        if p.returncode != 0:
            self.res.fail("rule-6", "audit verify exit %d: %s" % (p.returncode,
                                                                  p.stderr.strip()[-300:]))
        for inv, msg in check(self.model, view):
            self.res.fail(inv, msg)


CONFIG = '''[salesforce]
login_url = "http://localhost:%(port)d"
auth = "client_credentials"
client_id = "fake-client-id"
timeout = "1s"
connect_timeout = "1s"
[sync]
interval = "%(interval)s"
resubscribe_policy = "%(policy)s"
[state]
path = "%(state)s"
map_size = "16MiB"
[api]
listen = "127.0.0.1:%(api)d"
[unsubscribe]
listen = "127.0.0.1:%(pub)d"
base_url = "http://localhost:%(pub)d"
key_file = "%(key)s"
organization = "Sim B.V."
privacy_url = "https://example.com/privacy"
[log]
level = "error"
format = "text"
[[admins]]
name = "alice"
token_hash = "%(admin_hash)s"
[[purposes]]
name = "news"
label = { en = "Newsletter" }
basis = "consent"
salesforce = { field = "Newsletter_Opt_Out__c" }
[[purposes]]
name = "events"
label = { en = "Events" }
basis = "soft_opt_in"
salesforce = { field = "Events_Opt_Out__c" }
[[purposes]]
name = "offers"
label = { en = "Offers" }
basis = "consent"
salesforce = { data_use_purpose = "Offers" }
'''


# ---------------------------------------------------------------- invariants

def check(m, v):
    """The invariants after a history, each with the rule it comes from.
    Yields (invariant, message)."""
    sf, ledger = v["sf"], v["ledger"]
    recs = {r["Id"]: (obj, r) for obj in ("Contact", "Lead") for r in sf.get(obj, [])}
    rows = sf.get("ContactPointTypeConsent", [])
    conflicts = v["conflicts"]
    parked = {x["id"] for x in (v["status"] or {}).get("pushes", {}).get("parked_records", [])}
    open_held = {(c["record"]["id"], c.get("purpose")) for c in conflicts
                 if c.get("kind") == "resubscribe" and c.get("status") == "open"}

    def lstatus(key, c):
        d = ledger.get(key)
        if d is None:
            return None
        if c == M.GLOBAL:
            return "out" if d.get("opted_out") else "in"
        s = (d.get("purposes") or {}).get(c, {}).get("status")
        return {"opted_out": "out", "opted_in": "in", "none": "none"}.get(s, s)

    def writable(r):
        return r.alive and not r.converted and r.person and not r.odd and r.id not in parked

    # I1 (rules 1, 6, P1): every acknowledged or certainly seen opt-out is in the ledger
    for key, p in m.persons.items():
        for c, ch in p.ch.items():
            ls = lstatus(key, c)
            if ch.must_out and ls != "out":
                yield ("rule-1" if c == M.GLOBAL else "rule-P1",
                       "%s must be opted out of %s (acknowledged or left in Salesforce), ledger "
                       "says %s" % (key, c, ls or "unknown person"))
            if ls == "out" and not ch.may_out:
                yield ("rule-1", "%s is opted out of %s in the ledger, but nobody opted them "
                       "out" % (key, c))
            # I3 (rule 2, P2): nobody opted in without evidence
            if ls == "in" and c != M.GLOBAL and not ch.may_in:
                yield ("rule-P2", "%s is opted in to %s without an opt-in with evidence" % (key, c))
            # I4 (docs/sync-rules.md, Purposes): consent given in Salesforce counts
            if c != M.GLOBAL and ch.must_in and not ch.may_out and ls != "in":
                yield ("spec-7", "%s must be opted in to %s (an opt-in with evidence: a local "
                       "consent or a ContactPointTypeConsent row at OptIn with a CaptureDate), "
                       "ledger says %s" % (key, c, ls or "unknown person"))
    # I2/I5 (rules 1, 3, 9, P1): each record says what its CURRENT person's state
    # is: opted out exactly when the person is (hold keeps a conflict's record)
    for rid, r in m.records.items():
        if not writable(r) or rid not in recs:
            continue
        obj, rec = recs[rid]
        for c in M.BOX_CHANNELS:
            ls = lstatus(r.person, c)
            val = bool(rec.get(M.FIELD_OF[c]))
            held = (rid, None if c == M.GLOBAL else c) in open_held
            if ls == "out" and not val and not held:
                yield ("rule-1" if c == M.GLOBAL else "rule-P1",
                       "%s %s (%s) is not opted out of %s in Salesforce, but its person is" % (
                           obj, rid, r.person, c))
            if val and ls != "out":
                yield ("rule-9" if r.moved else "rule-1" if c == M.GLOBAL else "rule-P1",
                       "%s %s is opted out of %s in Salesforce, but its current person %s is "
                       "%s in the ledger" % (obj, rid, c, r.person, ls or "unknown"))
    # consent rows (P1, P2): the row of a person's one Individual
    for key in m.persons:
        mine = [r for r in m.records.values() if r.alive and r.person == key]
        inds = {r.individual for r in mine if r.individual}
        if len(inds) != 1 or any(r.odd for r in mine):
            continue
        ind = inds.pop()
        # "a person's rows go to the first Individual optsync saw for them":
        # only a person who only ever had this one
        if m.persons_ever_of_individual(ind) != {key} or m.person_inds.get(key) != {ind}:
            continue
        for c in M.ROW_CHANNELS:
            ls = lstatus(key, c)
            its = [w for w in rows if w.get("PartyId") == ind and
                   w.get("DataUsePurposeId") == m.dup_ids.get(c)]
            held = any((w["Id"], c) in open_held for w in its)
            if ls == "out" and not held and not (its and all(
                    w.get("PrivacyConsentStatus") == "OptOut" for w in its)):
                yield ("rule-P1", "%s is opted out of %s, but the consent rows of Individual "
                       "%s say %s" % (key, c, ind,
                                      [w.get("PrivacyConsentStatus") for w in its] or "nothing"))
            if ls != "out" and any(w.get("PrivacyConsentStatus") == "OptOut" for w in its):
                yield ("rule-P1", "a consent row of %s's Individual %s is OptOut for %s, but "
                       "the ledger says %s" % (key, ind, c, ls))
    # I6 (rule 2, P2): each re-subscribe attempt seen in Salesforce is one conflict
    seen = {}
    for c in conflicts:
        if c.get("kind") != "resubscribe":
            continue
        k = (c["record"]["id"], c.get("purpose"))
        seen[k] = seen.get(k, 0) + 1
    for k in set(seen) | set(m.attempts):
        lo, hi = m.attempts.get(k, [0, 0])
        r = m.records.get(k[0])
        if r is not None and r.odd:
            lo = 0  # a record optsync cannot apply (rule 8) may be parked before it read it
        n = seen.get(k, 0)
        if n < lo or n > hi:
            yield ("rule-2", "%d re-subscribe conflict(s) for record %s (%s), the history made "
                   "%d certain and %d possible attempt(s)" % (n, k[0], k[1] or "all email",
                                                               lo, hi))
    if m.policy == "revert":
        for c in conflicts:
            if c.get("kind") == "resubscribe" and c.get("status") == "open" and \
                    c["record"]["id"] not in parked:
                yield ("rule-2", "conflict %s still open under resubscribe_policy = revert "
                       "(record %s)" % (c.get("id"), c["record"]["id"]))
    # invalid values from Salesforce become conflicts, raised once (rule 5)
    inv = {}
    for c in conflicts:
        # one per invalid value written, and person: a record that moved to
        # another email (rule 9) has the old person's closed as moot
        if c.get("kind") == "invalid_value" and c.get("resolution") != "record_moved":
            inv[c["record"]["id"]] = inv.get(c["record"]["id"], 0) + 1
    for rid, n in inv.items():
        r = m.records.get(rid)
        if r and n > r.bad_picklist:
            yield ("rule-5", "%d invalid_value conflicts for %s %s, %d invalid value(s) written"
                   % (n, r.obj, rid, r.bad_picklist))
    # I7 (rules 6, 7): nothing stays queued; parked only for a standing cause
    st = v["status"] or {}
    if st.get("pushes", {}).get("queued"):
        yield ("rule-6", "%d push(es) still queued after the final cycles" %
               st["pushes"]["queued"])
    for x in st.get("pushes", {}).get("parked_records", []):
        r = m.records.get(x["id"])
        if r and r.alive and not r.converted and not r.odd:
            yield ("rule-7", "push to %s %s parked (%s) though its cause is gone and it was "
                   "retried" % (x.get("object"), x["id"], x.get("error")))
    # I10 (rule 9, deletes, merges): a person's records are those of its email
    for key, d in ledger.items():
        if d is None or d.get("erased") or (key in m.persons and m.persons[key].erased):
            continue
        have = {x["id"] for x in d.get("salesforce_records", [])
                if x.get("object") in ("Contact", "Lead")}
        want = {r.id for r in m.records.values()
                if r.alive and r.person == key and not r.odd and not r.converted}
        maybe = {r.id for r in m.records.values()
                 if r.person == key and r.alive and (r.converted or r.odd)}
        if not want <= have or not have <= want | maybe:
            yield ("rule-9", "%s's records in the ledger %s, in Salesforce %s" % (
                key, sorted(have), sorted(want | maybe)))
    # compliance fields agree (rule 5), for persons edited locally
    for key, p in m.persons.items():
        d = ledger.get(key)
        if not p.compliance_set or not d or d.get("erased"):
            continue
        at = (d.get("authorization") or {}).get("type")
        so = (d.get("source") or {}).get("type")
        for r in m.records.values():
            if not writable(r) or r.bad_picklist or r.id not in recs:
                continue
            rec = recs[r.id][1]
            if r.person != key:
                continue
            if at and rec.get("Authorization_Type__c") != AUTH_SF[at]:
                yield ("rule-5", "%s: authorization %s in the ledger, %r on %s %s" % (
                    key, at, rec.get("Authorization_Type__c"), r.obj, r.id))
            if so and rec.get("Source_Type__c") != SOURCE_SF.get(so):
                yield ("rule-5", "%s: source %s in the ledger, %r on %s %s" % (
                    key, so, rec.get("Source_Type__c"), r.obj, r.id))


# ---------------------------------------------------------------- driver

class World:
    def __init__(self, optsync, fake_path):
        self.optsync = optsync
        self.tmp = tempfile.mkdtemp(prefix="optsync-sim-")
        self.fake = Fake(fake_path, self.tmp)
        p = subprocess.run([optsync, "admin", "hash-token"], input=ADMIN_TOKEN + "\n",
                           capture_output=True, text=True, check=True)
        self.admin_hash = p.stdout.split('"')[1]

    def close(self):
        self.fake.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_ops(world, cfg, ops, label):
    return History(world, cfg, ops, label).execute()


def shrink(world, cfg, ops, target, budget_s):
    """Delta debugging (ddmin): drop chunks of operations while the history
    still fails the same invariant."""
    t_end = time.time() + budget_s
    idx = list(range(len(ops)))
    runs = 0

    def fails(sub):
        nonlocal runs
        runs += 1
        res = run_ops(world, cfg, [ops[i] for i in sub], "shrink")
        return any(inv == target for inv, _ in res.failures)

    n = 2
    while len(idx) >= 2 and time.time() < t_end:
        chunk = max(1, len(idx) // n)
        parts = [idx[i:i + chunk] for i in range(0, len(idx), chunk)]
        reduced = False
        for part in parts:
            rest = [i for i in idx if i not in part]
            if rest and fails(rest):
                idx, n, reduced = rest, max(n - 1, 2), True
                break
            if time.time() >= t_end:
                break
        if not reduced:
            if n >= len(idx):
                break
            n = min(len(idx), n * 2)
    return idx, runs


def simplify(world, cfg, ops, idx, target, budget_s):
    """After ddmin: each kept operation with plainer parameters (no ticked
    boxes, not opted out, the plain form of its email) where the same
    invariant still fails. Returns the operations."""
    t_end = time.time() + budget_s
    ops = [dict(ops[i]) for i in idx]
    runs = 0
    for j, op in enumerate(ops):
        tries = []
        if op.get("boxes"):
            tries.append(("boxes", {}))
        if op.get("out"):
            tries.append(("out", False))
        e = op.get("email")
        if isinstance(e, str):
            key = M.normalize(e)
            if key and key != e and key in PEOPLE and key.isascii():
                tries.append(("email", key))
        for k, v in tries:
            if time.time() >= t_end:
                return ops, runs
            trial = [dict(o) for o in ops]
            trial[j][k] = v
            runs += 1
            res = run_ops(world, cfg, trial, "simplify")
            if any(inv == target for inv, _ in res.failures):
                ops = trial
    return ops, runs


def read_ops(path):
    with open(path) as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return json.loads(text)
    ops = []
    for line in text.splitlines():
        line = line.strip()
        if "{" in line:
            ops.append(json.loads(line[line.index("{"):line.rindex("}") + 1]))
    return ops


def describe(op):
    return json.dumps(op, ensure_ascii=True, sort_keys=True)


def main():
    ap = argparse.ArgumentParser(
        description="optsync's randomized simulation of both sides (issue #24)",
        epilog="switches for --without (also OPTSYNC_SIM_WITHOUT, comma-separated):\n" +
        "\n".join("  %-13s %s" % (k, v) for k, v in SWITCHES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--optsync", default=os.path.join(ROOT, "build", "optsync"))
    ap.add_argument("--fake", default=os.path.join(ROOT, "tests", "fake_salesforce", "fake_sf.py"))
    ap.add_argument("--histories", type=int, default=200)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("OPTSYNC_SIM_SEED", "1")),
                    help="the run's seed (default: $OPTSYNC_SIM_SEED, else 1)")
    ap.add_argument("--history", type=int, default=None, help="run this history only")
    ap.add_argument("--keep", default=None,
                    help="with --history: run only these operations (indices, as a shrunk "
                         "history prints them)")
    ap.add_argument("--without", default=os.environ.get("OPTSYNC_SIM_WITHOUT", ""),
                    help="comma-separated switches, see below")
    ap.add_argument("--ops", default=None,
                    help="replay the operations in this file: a shrunk history as it was "
                         "printed (one '  INDEX {json}' per line) or a JSON array")
    ap.add_argument("--policy", default="revert", choices=["revert", "hold"],
                    help="with --ops: sync.resubscribe_policy")
    ap.add_argument("--sidecar", action="store_true", help="with --ops: beside optsync run")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--shrink-seconds", type=float, default=240)
    ap.add_argument("--max-failures", type=int, default=3,
                    help="stop shrinking after this many failing histories (the rest still run)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    without = [w for w in a.without.replace(" ", "").split(",") if w]
    for w in without:
        if w not in SWITCHES:
            ap.error("unknown switch %r (known: %s)" % (w, ", ".join(SWITCHES)))
    seed = a.seed
    indices = [a.history] if a.history is not None else list(range(a.histories))
    world = World(os.path.abspath(a.optsync), os.path.abspath(a.fake))
    wflag = " --without %s" % ",".join(without) if without else ""
    passed = failed = 0
    ops_total, faults_total = {}, {}
    t0 = time.time()
    shrunk = 0
    hist_s = 0.0
    try:
        print("optsync simulation: seed %d, %d histories%s" % (seed, len(indices), wflag),
              flush=True)
        if a.ops:
            indices = [0]
        for h in indices:
            cfg, ops = Gen(seed, h, without).history()
            if a.ops:
                cfg, ops = {"policy": a.policy, "sidecar": a.sidecar}, read_ops(a.ops)
            keep = None
            if a.keep is not None:
                keep = [int(x) for x in a.keep.split(",") if x != ""]
                ops = [ops[i] for i in keep]
            res = run_ops(world, cfg, ops, "%d/%d" % (seed, h))
            for k, n in res.ops.items():
                ops_total[k] = ops_total.get(k, 0) + n
            for k, n in res.faults.items():
                faults_total[k] = faults_total.get(k, 0) + n
            hist_s += res.seconds
            if a.verbose:
                print("history %d: %d ops, %.2f s, %s  %s" % (
                    h, len(ops), res.seconds, "FAIL" if res.failures else "ok",
                    " ".join("%s=%.2f" % kv for kv in sorted(res.optime.items()))), flush=True)
            if not res.failures:
                passed += 1
                continue
            failed += 1
            print("\nFAIL history %d (policy %s%s): %d operations" % (
                h, cfg["policy"], ", sidecar" if cfg["sidecar"] else "", len(ops)))
            for inv, msg in res.failures[:8]:
                print("  [%s] %s" % (inv, msg))
            where = "--seed %d --history %d%s" % (seed, h, wflag)
            if a.ops:
                where = "--ops %s%s%s" % (a.ops, " --policy hold" if a.policy == "hold" else "",
                                          " --sidecar" if a.sidecar else "")
            print("  replay: bash scripts/sim.sh %s%s" % (where, " --keep " + a.keep if a.keep
                                                          else ""))
            target = res.failures[0][0]
            if a.no_shrink or shrunk >= a.max_failures or target == "harness":
                continue
            shrunk += 1
            idx, runs = shrink(world, cfg, ops, target, a.shrink_seconds)
            base = keep if keep is not None else list(range(len(ops)))
            plain, runs2 = simplify(world, cfg, ops, idx, target, a.shrink_seconds / 4)
            final = run_ops(world, cfg, plain, "shrunk")
            print("  shrunk to %d operation(s) in %d runs, still [%s]:" % (
                len(idx), runs + runs2, target))
            for i, op in zip(idx, plain):
                print("    %3d %s%s" % (base[i], describe(op),
                                      "" if op == ops[i] else "   (parameters simplified)"))
            for inv, msg in final.failures[:4]:
                print("    => [%s] %s" % (inv, msg))
            print("  replay shrunk: bash scripts/sim.sh %s --keep %s" % (
                where, ",".join(str(base[i]) for i in idx)), flush=True)
    finally:
        world.close()
    el = time.time() - t0
    print("\noperations: " + ", ".join("%s %d" % kv for kv in sorted(ops_total.items())))
    print("faults: " + ", ".join("%s %d" % kv for kv in sorted(faults_total.items())))
    print("throughput: %.1f histories per minute (%d histories in %.1f s, %.1f s with "
          "shrinking; seed %d%s)" % ((passed + failed) * 60.0 / hist_s if hist_s else 0,
                                     passed + failed, hist_s, el, seed, wflag))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
