#!/usr/bin/env python3
"""Access control and the access trail, against a real optsync run: named API
clients with scopes (every /v1 route against every scope, table-driven), the
client's or operator's name as the actor, the access events of history reads
and exports (API and CLI), GET /v1/access and `optsync access list`, and the
per-client counters of /metrics.

Usage: test_access.py OPTSYNC FAKE_SF_PY"""
import hashlib
import http.client
import json
import os
import subprocess
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_links  # noqa: E402  (the Sidecar harness)

OPTSYNC = None
SCOPES = ["check", "optout", "write", "read", "export"]
ADMIN = "admin-token-for-access-0123456789"
# a token per client: one per scope, one with every scope, one with none
TOKENS = {name: "token-of-%s-%s" % (name, "x" * 32)
          for name in SCOPES + ["everything", "nothing"]}
EMAIL = "person@example.com"
Q = urllib.parse.quote(EMAIL)

# every /v1 route: method, path, body, the scope it needs, whether an admin
# must act too
ROUTES = [
    ("POST", "/v1/suppression/check", {"emails": [EMAIL]}, "check", False),
    ("GET", "/v1/contacts/" + Q, None, "check", False),
    ("POST", "/v1/optouts", {"email": "other@example.com"}, "optout", False),
    ("POST", "/v1/unsubscribe-links", {"emails": [EMAIL]}, "optout", False),
    ("PUT", "/v1/contacts/%s/authorization" % Q, {"type": "contract"}, "write", False),
    ("PUT", "/v1/contacts/%s/source" % Q, {"type": "import"}, "write", False),
    ("POST", "/v1/contacts/fresh%40example.com/consents",
     {"purpose": "newsletter", "consent_date": "2026-10-01T00:00:00Z", "evidence_ref": "r"},
     "write", False),
    ("POST", "/v1/contacts:batch", {"contacts": []}, "write", False),
    ("POST", "/v1/contacts/%s/resubscribe" % Q,
     {"consent_date": "2026-10-01T00:00:00Z", "purpose": "p", "evidence_ref": "r"},
     "write", True),
    ("DELETE", "/v1/contacts/nobody%40example.com", None, "write", True),
    ("POST", "/v1/pushes:retry", {"all": True}, "write", False),
    ("POST", "/v1/conflicts/1/resolve", {"action": "keep_optout"}, "write", True),
    ("GET", "/v1/contacts/%s/history" % Q, None, "read", False),
    ("GET", "/v1/conflicts", None, "read", False),
    ("GET", "/v1/conflicts/1", None, "read", False),
    ("GET", "/v1/changes?after=0", None, "read", False),
    ("GET", "/v1/status", None, "read", False),
    ("GET", "/v1/access?after=0", None, "read", True),
    ("GET", "/v1/contacts/%s/export" % Q, None, "export", False),
]


def client_config():
    out = ""
    for name, tok in TOKENS.items():
        scopes = SCOPES if name == "everything" else [] if name == "nothing" else [name]
        out += ('[[api.clients]]\nname = "%s"\ntoken_hash = "sha256:%s"\nscopes = [%s]\n'
                % (name, hashlib.sha256(tok.encode()).hexdigest(),
                   ", ".join('"%s"' % s for s in scopes)))
    return out


class Access(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        h = subprocess.run([OPTSYNC, "admin", "hash-token"], input=ADMIN + "\n",
                           capture_output=True, text=True, check=True).stdout.split('"')[1]
        cls.s = test_links.Sidecar(contacts=0, unsub_extra=(
            client_config() + '[[admins]]\nname = "alice"\ntoken_hash = "%s"\n' % h +
            '[[purposes]]\nname = "newsletter"\nbasis = "consent"\n'
            'salesforce = { field = "Newsletter_Opt_Out__c" }\n'),
            token_env=False)
        # the person every read is about
        st, _ = cls.call("everything", "POST", "/v1/optouts", {"email": EMAIL})
        assert st == 202, st

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    @classmethod
    def call(cls, client, method, path, body=None, admin=False):
        headers = {"Authorization": "Bearer " + TOKENS[client]} if client else {}
        if admin:
            headers["X-Optsync-Admin"] = "alice:" + ADMIN
        status, doc = cls.s.api(method, path, body, headers=headers)
        return status, None if doc == "" else doc

    def history(self):
        st, doc = self.call("read", "GET", "/v1/contacts/%s/history" % Q)
        self.assertEqual(st, 200, doc)
        return doc

    def test_every_route_against_every_scope(self):
        for method, path, body, need, admin in ROUTES:
            for client in TOKENS:
                has = client == need or client == "everything"
                st, doc = self.call(client, method, path, body, admin=admin)
                what = "%s %s as %s" % (method, path, client)
                if has:
                    # the route's own answer (a rule may still refuse: not this way)
                    self.assertFalse(st == 401 or (st == 403 and "scope" in str(doc)),
                                     "%s: %s %s" % (what, st, doc))
                else:
                    self.assertEqual(st, 403, "%s: %s %s" % (what, st, doc))
                    self.assertIn("lacks the '%s' scope" % need, doc["error"]["message"], what)
            # no token, or a wrong one: 401 whatever the route
            self.assertEqual(self.call(None, method, path, body)[0], 401, path)
        # admin routes still need the admin on top of the scope
        for method, path, body, need, admin in ROUTES:
            if admin:
                st, doc = self.call("everything", method, path, body)
                self.assertIn(st, (401, 403), "%s %s without an admin: %s" % (method, path, st))

    def test_the_client_is_the_actor(self):
        st, doc = self.call("optout", "POST", "/v1/optouts", {"email": "actor@example.com"})
        self.assertEqual(st, 202, doc)
        st, hist = self.call("read", "GET", "/v1/contacts/actor%40example.com/history")
        self.assertEqual([(h["kind"], h["actor"]) for h in hist][0], ("optout", "optout"))
        # on the command line: the operator, OPTSYNC_OPERATOR else the OS user
        env = dict(self.s.env, OPTSYNC_OPERATOR="jane.doe")
        subprocess.run([OPTSYNC, "-c", self.s.config, "optout", "cli-actor@example.com"],
                       env=env, check=True, capture_output=True)
        st, hist = self.call("read", "GET", "/v1/contacts/cli-actor%40example.com/history")
        self.assertEqual(hist[0]["actor"], "jane.doe")

    def test_access_trail(self):
        before = [h for h in self.history() if h["kind"] == "access"]
        # not recorded: suppression checks and the check scope's state read
        self.call("check", "POST", "/v1/suppression/check", {"emails": [EMAIL]})
        self.call("check", "GET", "/v1/contacts/" + Q)
        # recorded: a history read, an export, and the CLI's
        self.call("export", "GET", "/v1/contacts/%s/export" % Q)
        self.call("export", "GET", "/v1/contacts/%s/export?format=csv" % Q)
        env = dict(self.s.env, OPTSYNC_OPERATOR="dpo-anna")
        subprocess.run([OPTSYNC, "-c", self.s.config, "contact", "history", EMAIL, "--json"],
                       env=env, check=True, capture_output=True)
        hist = self.history()  # this read is one too
        acc = [h for h in hist if h["kind"] == "access"][len(before):]
        self.assertEqual([(a["actor"], a["access"]["what"], a["access"]["via"]) for a in acc], [
            ("export", "export", "GET /v1/contacts/{email}/export"),
            ("export", "export", "GET /v1/contacts/{email}/export?format=csv"),
            ("dpo-anna", "history", "optsync contact history"),
            ("read", "history", "GET /v1/contacts/{email}/history")])
        # hash-chained like every event
        v = subprocess.run([OPTSYNC, "-c", self.s.config, "audit", "verify", "--json"],
                           env=self.s.env, capture_output=True, text=True)
        self.assertTrue(json.loads(v.stdout)["ok"])
        # listed for an admin, with the person's email; not for anyone else
        st, doc = self.call("read", "GET", "/v1/access?after=0")
        self.assertIn(st, (401, 403))
        st, doc = self.call("read", "GET", "/v1/access?after=0", admin=True)
        self.assertEqual(st, 200, doc)
        listed = [(a["actor"], a["email"], a["access"]["what"]) for a in doc["access"]]
        self.assertIn(("dpo-anna", EMAIL, "history"), listed)
        self.assertFalse(doc["more"])
        after = doc["access"][-1]["seq"]
        st, doc = self.call("read", "GET", "/v1/access?after=%d" % after, admin=True)
        self.assertEqual(doc["access"], [])
        st, doc = self.call("read", "GET", "/v1/access?after=x", admin=True)
        self.assertEqual(st, 422)
        env = dict(self.s.env, OPTSYNC_ADMIN="alice", OPTSYNC_ADMIN_TOKEN=ADMIN)
        p = subprocess.run([OPTSYNC, "-c", self.s.config, "access", "list", "--json"],
                           env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(("dpo-anna", EMAIL, "history"),
                      [(a["actor"], a["email"], a["access"]["what"])
                       for a in json.loads(p.stdout)["access"]])
        p = subprocess.run([OPTSYNC, "-c", self.s.config, "access", "list"],
                           env=self.s.env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 4, p.stderr)

    def test_metrics_per_client(self):
        self.call("check", "POST", "/v1/suppression/check", {"emails": [EMAIL]})
        c = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=60)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        self.assertRegex(text, r'optsync_http_client_requests_total\{client="check",'
                               r'route="suppression_check"\} [1-9]')

    def test_config_errors(self):
        tmp = self.s.tmp.name
        cfg = os.path.join(tmp, "bad.toml")

        def check(extra):
            with open(cfg, "w") as f:
                f.write('[salesforce]\nclient_id = "x"\nauth = "client_credentials"\n'
                        'client_secret_file = "/x"\n[state]\npath = "%s/s2"\n%s' % (tmp, extra))
            p = subprocess.run([OPTSYNC, "-c", cfg, "config", "check"], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 3, p.stdout)
            return p.stderr
        good = 'token_hash = "sha256:%s"\n' % ("ab" * 32)
        self.assertIn('"admin" is not one of "check", "optout", "write", "read", "export"',
                      check('[[api.clients]]\nname = "a"\n%sscopes = ["admin"]\n' % good))
        self.assertIn("api.clients.token_hash: expected \"sha256:\"",
                      check('[[api.clients]]\nname = "a"\ntoken_hash = "abc"\nscopes = []\n'))
        self.assertIn("token_file and [[api.clients]] both given",
                      check('[api]\ntoken_file = "/t"\n[[api.clients]]\nname = "a"\n%s'
                            'scopes = ["check"]\n' % good))
        self.assertIn("missing required key 'scopes'",
                      check('[[api.clients]]\nname = "a"\n%s' % good))
        # config check shows each client and its scopes, the hash redacted
        p = subprocess.run([OPTSYNC, "-c", self.s.config, "config", "check", "--json"],
                           env=self.s.env, capture_output=True, text=True)
        clients = json.loads(p.stdout)["settings"]["api"]["clients"]
        self.assertIn({"name": "check", "token_hash": "<redacted>", "scopes": ["check"]},
                      clients)
        self.assertIn({"name": "everything", "token_hash": "<redacted>", "scopes": SCOPES},
                      clients)
        p = subprocess.run([OPTSYNC, "admin", "hash-token", "--client"], input="short\n",
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("at least 32 random bytes", p.stderr)
        p = subprocess.run([OPTSYNC, "admin", "hash-token", "--client"],
                           input=TOKENS["check"] + "\n", capture_output=True, text=True)
        self.assertEqual(p.stdout.strip(), 'token_hash = "sha256:%s"' %
                         hashlib.sha256(TOKENS["check"].encode()).hexdigest())


if __name__ == "__main__":
    OPTSYNC = os.path.abspath(sys.argv[1])
    test_links.OPTSYNC, test_links.FAKE = OPTSYNC, os.path.abspath(sys.argv[2])
    unittest.main(argv=sys.argv[:1], verbosity=2)
