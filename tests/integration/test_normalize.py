#!/usr/bin/env python3
"""Issue #24 against a real `optsync run` (the test_api Sidecar) and the CLI:
email normalization on every entrance (the local API's bodies and paths,
CLI arguments, bulk files in Latin-1), invalid UTF-8 and control characters
refused naming the input, the JSON feeds still parseable; the change feed's
after= parsed strictly; the CSV export's columns; an unsubscribe link of a
purpose since removed from the config.

Usage: test_normalize.py OPTSYNC FAKE_SF_PY [TEST...]"""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import test_api
import test_links
from test_api import Sidecar, q

JANE = "Jane.Doe+News@BÜCHER.Example"
JANE_FORMS = ["jane.doe+news@bücher.example", "jane.doe+news@xn--bcher-kva.example",
              "JANE.DOE+NEWS@XN--BCHER-KVA.EXAMPLE", " Jane.Doe+News@Bu\u0308cher.example "]


def raw_request(s, method, path, data, token=test_api.TOKEN):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (s.port, path), data=data,
                                 method=method, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Entrances(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Sidecar(contacts=5)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def check(self, emails):
        st, body = self.s.request("POST", "/v1/suppression/check", {"emails": emails})
        self.assertEqual(st, 200, body)
        return body["results"]

    def feeds_parse(self):
        """/v1/changes and the suppression export are valid JSON (strictly:
        bytes that are not UTF-8 fail the decode)."""
        st, raw = raw_request(self.s, "GET", "/v1/changes?after=0&limit=1000", None)
        self.assertEqual(st, 200)
        feed = json.loads(raw.decode("utf-8"))
        p = self.s.cli("suppressions", "export", "--format", "json", check=0)
        json.loads(p.stdout)
        return feed

    def test_api_spellings_are_one_person(self):
        st, r = self.s.request("POST", "/v1/optouts", {"email": JANE})
        self.assertEqual(st, 202, r)
        self.assertEqual(r["email"], "jane.doe+news@xn--bcher-kva.example")
        self.assertEqual(self.check(JANE_FORMS), {e: True for e in JANE_FORMS})
        st, p = self.s.get("/v1/contacts/" + q("jane.doe+news@bücher.example"))
        self.assertEqual((st, p["email"]), (200, "jane.doe+news@xn--bcher-kva.example"))
        # the local part: NFC, lower-cased
        self.assertEqual(self.s.request("POST", "/v1/optouts", {"email": "ÅSA@x.example"})[0], 202)
        self.assertEqual(self.check(["åsa@x.example", "A\u030aSA@x.example"]),
                         {"åsa@x.example": True, "A\u030aSA@x.example": True})
        self.assertEqual(self.s.request("POST", "/v1/optouts",
                                        {"email": "rene\u0301@x.example"})[0], 202)
        self.assertEqual(self.check(["ren\u00e9@x.example"]), {"ren\u00e9@x.example": True})
        self.feeds_parse()

    def test_api_refuses_invalid_utf8_and_controls(self):
        # a Latin-1 body: bytes that are not UTF-8 in a JSON string
        st, raw = raw_request(self.s, "POST", "/v1/optouts",
                              b'{"email": "j\xfcrgen@b\xfccher.example"}')
        self.assertEqual(st, 422, raw)
        err = json.loads(raw.decode("utf-8"))["error"]
        self.assertIn("'j\\xfcrgen@b\\xfccher.example' is not an email address", err["message"])
        self.assertIn("not valid UTF-8", err["message"])
        st, body = self.s.request("POST", "/v1/optouts", {"email": "a\tb@x.example"})
        self.assertEqual(st, 422)
        self.assertIn("control character U+0009", body["error"]["message"])
        # in the path, percent-encoded
        st, raw = raw_request(self.s, "GET", "/v1/contacts/j%FCrgen%40x.example", None)
        self.assertIn(st, (400, 422), raw)
        self.assertIn("not valid UTF-8", json.loads(raw.decode("utf-8"))["error"]["message"])
        # in a check: listed as invalid, the others answered
        st, raw = raw_request(self.s, "POST", "/v1/suppression/check",
                              b'{"emails": ["ok@x.example", "b\xe4d@x.example"]}')
        self.assertEqual(st, 200, raw)
        body = json.loads(raw.decode("utf-8"))
        self.assertEqual(body["results"], {"ok@x.example": False})
        self.assertEqual(len(body["invalid"]), 1)
        # nothing of it was stored: the feeds still parse
        feed = self.feeds_parse()
        self.assertFalse([c for c in feed["changes"] if "\ufffd" in (c["email"] or "")])

    def test_cli_arguments(self):
        p = self.s.cli("optout", "ÅSA@Y.example", "--json", check=0)
        self.assertEqual(json.loads(p.stdout)["email"], "åsa@y.example")
        p = subprocess.run([test_api.OPTSYNC, "-c", self.s.config, "optout",
                            b"j\xfcrgen@y.example"], env=self.s.env, capture_output=True)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"'j\\xfcrgen@y.example' is not an email address (not valid UTF-8",
                      p.stderr)
        p = self.s.cli("contact", "show", "a\x01b@y.example")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("control character U+0001", p.stderr)
        p = self.s.cli("contact", "show", "åsa@Y.EXAMPLE", "--json", check=0)
        self.assertTrue(json.loads(p.stdout)["opted_out"])

    def test_bulk_files_in_latin1(self):
        d = self.s.tmp.name
        path = os.path.join(d, "latin1.csv")
        with open(path, "wb") as f:
            f.write("email\nok1@z.example\n".encode())
            f.write(b"m\xfcller@z.example\n")             # Latin-1: refused, named
            f.write("Müller@Z.example\n".encode())        # UTF-8: taken
            f.write(b"tab\there@z.example\n")
        p = self.s.cli("optout", "--from", path, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        rep = json.loads(p.stdout)
        self.assertEqual((rep["rows"], rep["opted_out"], rep["invalid"]), (4, 2, 2))
        bad = {r["row"]: r for r in rep["invalid_rows"]}
        self.assertEqual(sorted(bad), [3, 5])
        self.assertEqual(bad[3]["email"], "m\\xfcller@z.example")  # echoed quoted
        self.assertIn("'m\\xfcller@z.example' is not an email address (not valid UTF-8",
                      bad[3]["error"])
        self.assertIn("control character U+0009", bad[5]["error"])
        self.assertEqual(self.check(["müller@z.example"]), {"müller@z.example": True})
        # contact set --from: the same rules
        path = os.path.join(d, "set.csv")
        with open(path, "wb") as f:
            f.write(b"email,authorization\n")
            f.write(b"s\xf6ren@z.example,contract\n")
            f.write("Sören@Z.example,contract\n".encode())
        p = self.s.cli("contact", "set", "--from", path, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        rep = json.loads(p.stdout)
        self.assertEqual((rep["changed"], rep["invalid"]), (1, 1))
        p = self.s.cli("contact", "show", "sören@z.example", "--json", check=0)
        self.assertEqual(json.loads(p.stdout)["authorization"]["type"], "contract")
        self.feeds_parse()


class ChangesAfter(unittest.TestCase):
    """GET /v1/changes?after= is a whole number, digits only, at most 2^64-1."""

    @classmethod
    def setUpClass(cls):
        cls.s = Sidecar(contacts=3)
        cls.s.request("POST", "/v1/optouts", {"email": "feed1@example.com"})

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_after_strict(self):
        st, all_ = self.s.get("/v1/changes?after=0&limit=1000")
        self.assertEqual(st, 200)
        self.assertTrue(all_["changes"])
        for bad in ["18446744073709551616", "99999999999999999999999", "%2B1", "%201", "1%20",
                    "-1", "0x10", "1e3", ""]:
            st, body = self.s.get("/v1/changes?after=" + bad)
            self.assertEqual(st, 400, (bad, body))
            self.assertIn("after", body["error"]["message"], bad)
        # the greatest seq: nothing after it (it used to wrap to the start)
        st, body = self.s.get("/v1/changes?after=18446744073709551615")
        self.assertEqual((st, body["changes"]), (200, []))
        st, body = self.s.get("/v1/changes?after=1")
        self.assertEqual(st, 200)
        self.assertEqual([c["seq"] for c in body["changes"]],
                         [c["seq"] for c in all_["changes"] if c["seq"] > 1])


class Exports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Sidecar(contacts=3)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_csv_has_the_free_texts(self):
        email = "other@example.com"
        st, _ = self.s.request("PUT", "/v1/contacts/%s/authorization" % q(email),
                               {"type": "other", "other": "a statutory register"})
        self.assertEqual(st, 200)
        st, _ = self.s.request("PUT", "/v1/contacts/%s/source" % q(email),
                               {"type": "other", "other": "a trade fair, booth 12"})
        self.assertEqual(st, 200)
        for text in [self.s.get("/v1/contacts/%s/export?format=csv" % q(email))[1],
                     self.s.cli("contact", "export", email, "--format", "csv", check=0).stdout]:
            rows = list(csv.DictReader(io.StringIO(text)))
            self.assertTrue(rows)
            self.assertIn("authorization_other", rows[0])
            self.assertIn("source_other", rows[0])
            state = [r for r in rows if r["authorization_other"]]
            self.assertTrue(state, text)
            self.assertEqual(state[0]["authorization_other"], "a statutory register")
            self.assertEqual([r for r in rows if r["source_other"]][0]["source_other"],
                             "a trade fair, booth 12")


class RemovedPurposeLink(unittest.TestCase):
    """A link minted for a purpose the configuration has since dropped opts
    out of all email, and says so: its change is not a purpose's."""

    def restart(self, s, config_text):
        s.proc.terminate()
        s.proc.wait(timeout=30)
        with open(s.config, "w") as f:
            f.write(config_text)
        s.start_run()
        self.assertTrue(s.wait(lambda: s.api("GET", "/healthz")[0] == 200))

    def test_link_of_a_removed_purpose(self):
        s = test_links.Sidecar(contacts=0)
        try:
            with open(s.config) as f:
                plain = f.read()
            self.restart(s, plain + '[[purposes]]\nname = "newsletter"\nbasis = "soft_opt_in"\n'
                         'salesforce = { field = "Newsletter_Opt_Out__c" }\n')
            email = "gone-purpose@example.com"
            link = s.mint(email, purpose="newsletter")
            self.restart(s, plain)
            st, h, body = s.public("POST", s.path_of(link), body=test_links.ONE_CLICK,
                                   headers=test_links.FORM)
            self.assertEqual(st, 200, body)
            st, doc = s.api("POST", "/v1/suppression/check", {"emails": [email]})
            self.assertEqual(doc["results"], {email: True})
            mine = [c for c in s.changes()["changes"] if c["email"] == email]
            self.assertEqual(len(mine), 1, mine)
            self.assertEqual((mine[0]["kind"], mine[0]["origin"], mine[0]["opted_out"]),
                             ("optout", "link", True))
            # an opt-out of all email: no purpose object saying it was one purpose's
            self.assertNotIn("purpose", mine[0])
            ev = s.history(email)
            self.assertEqual([(e["kind"], e.get("purpose")) for e in ev], [("optout", None)])
            self.assertIn("'newsletter'", ev[0]["reason"])
        finally:
            s.close()


class OldLedger(unittest.TestCase):
    """A ledger of the old normalization (tests/state/fixtures/
    ledger-v3-oldnorm.backup, made by optsync before schema 6), restored
    and so migrated by this one."""

    def test_restore_migrates(self):
        src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        fixture = os.path.join(src, "state", "fixtures", "ledger-v3-oldnorm.backup")
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "optsync.toml")
            with open(cfg, "w") as f:
                f.write('[salesforce]\nclient_id = "x"\nauth = "client_credentials"\n'
                        'client_secret_file = "/nonexistent"\n[state]\npath = "%s/ledger"\n'
                        '[log]\nlevel = "warn"\n' % d)

            def j(*a, check=0):
                p = subprocess.run([test_api.OPTSYNC, "-c", cfg, *a, "--json"],
                                   capture_output=True, text=True)
                self.assertEqual(p.returncode, check, p.stderr)
                return json.loads(p.stdout) if p.stdout.strip() else None
            j("restore", fixture)
            st = j("status")["ledger"]
            self.assertEqual((st["schema_version"], st["persons"]), (7, 5))
            self.assertTrue(j("audit", "verify")["ok"])
            for form in JANE_FORMS[:3]:
                show = j("contact", "show", form)
                self.assertEqual(show["email"], "jane.doe+news@xn--bcher-kva.example")
                self.assertTrue(show["opted_out"])
            # ÅSA@ (opted out) and åsa@ (a contract): one person with both
            show = j("contact", "show", "ÅSA@X.example")
            self.assertEqual(show["email"], "åsa@x.example")
            self.assertTrue(show["opted_out"])
            self.assertEqual(show["authorization"]["type"], "contract")
            kinds = [h["kind"] for h in j("contact", "history", "åsa@x.example")]
            self.assertEqual([k for k in kinds if k != "access"],
                             ["optout", "authorization", "merge"])
            # a combining and a precomposed é: one person
            show = j("contact", "show", "rene\u0301@x.example")
            self.assertEqual(show["email"], "ren\u00e9@x.example")
            self.assertTrue(show["opted_out"])
            self.assertEqual(show["authorization"]["type"], "legitimate_interest")
            # the Latin-1 row: read as Windows-1252, now müller@
            self.assertTrue(j("contact", "show", "Müller@x.example")["opted_out"])
            self.assertTrue(j("contact", "show", "bob@example.com")["opted_out"])
            sup = j("suppressions", "export", "--format", "json")["suppressions"]
            self.assertEqual(sorted(x["email"] for x in sup),
                             ["bob@example.com", "jane.doe+news@xn--bcher-kva.example",
                              "müller@x.example", "ren\u00e9@x.example", "åsa@x.example"])


def main():
    test_api.OPTSYNC, test_api.FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    test_links.OPTSYNC, test_links.FAKE = test_api.OPTSYNC, test_api.FAKE
    p = subprocess.run([test_api.OPTSYNC, "admin", "hash-token"],
                       input=test_api.ADMIN_TOKEN + "\n", capture_output=True, text=True,
                       check=True)
    test_api.ADMIN_HASH = p.stdout.split('"')[1]
    prog = unittest.main(argv=sys.argv[:1] + sys.argv[3:], verbosity=2, exit=False)
    r = prog.result
    print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                    len(r.failures) + len(r.errors)))
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
