#!/usr/bin/env python3
"""The real Salesforce client (through tests/salesforce/sfcli) against the fake
Salesforce: auth flows, paging, collections, retries, faults, exact requests,
SOQL quoting, IN-list splitting, and no secret in debug logs.

Usage: test_salesforce.py SFCLI FAKE_SF_PY"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SFCLI = FAKE = None
TMP = None
KEY = PUB = None


def http(port, method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


class Fake:
    def __init__(self, *args):
        self.portfile = os.path.join(TMP, "port-%d" % time.monotonic_ns())
        self.log = open(os.path.join(TMP, "fake.log"), "a")
        self.proc = subprocess.Popen([sys.executable, FAKE, "--port-file", self.portfile,
                                      "--jwt-public-key", PUB, *args],
                                     stdout=self.log, stderr=self.log)
        for _ in range(200):
            if os.path.exists(self.portfile):
                break
            time.sleep(0.05)
        self.port = int(open(self.portfile).read())
        self.url = "http://127.0.0.1:%d" % self.port

    def ctl(self, method, path, body=None):
        return http(self.port, method, "/__control/" + path, body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def sfcli(fake, *args, stdin=None, auth=("--key", None)):
    opts = ["--login-url", fake.url, "--attempts", "6", "--backoff", "20"]
    if auth[0] == "--key":
        opts += ["--auth", "jwt", "--key", KEY]
    else:
        opts += list(auth)
    p = subprocess.run([SFCLI, *opts, *args], input=stdin, capture_output=True, text=True,
                       timeout=300)
    stats = {}
    for line in p.stderr.splitlines():
        if line.startswith("stats "):
            stats = dict(kv.split("=") for kv in line.split()[1:])
    return p, stats


CONTACT_Q = "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id"


class SalesforceClient(unittest.TestCase):
    def setUp(self):
        self.fake = Fake("--contacts", "300", "--leads", "30")

    def tearDown(self):
        self.fake.stop()

    # ---- auth ----
    def test_jwt_flow(self):
        p, st = sfcli(self.fake, "login")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(st["token_calls"], "1")
        req = self.fake.ctl("GET", "requests")["requests"][0]
        self.assertEqual(req["path"], "/services/oauth2/token")
        self.assertEqual(req["body"]["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer")
        self.assertTrue(req["headers"]["Content-Type"].startswith("application/x-www-form-urlencoded"))

    def test_jwt_refused(self):
        other = os.path.join(TMP, "other.pem")
        subprocess.run(["openssl", "genrsa", "-out", other, "2048"], check=True,
                       capture_output=True)
        p, _ = sfcli(self.fake, "login", auth=("--auth", "jwt", "--key", other))
        self.assertEqual(p.returncode, 2)
        self.assertIn("invalid_grant: invalid assertion", p.stderr)
        p, _ = sfcli(self.fake, "login", auth=("--auth", "jwt", "--key", KEY, "--username", "x@y"))
        self.assertIn("user hasn't approved this consumer", p.stderr)

    def test_client_credentials_flow(self):
        # only on the My Domain host: the fake's is "localhost"
        p, st = sfcli(self.fake, "query", "SELECT Id FROM Lead",
                      auth=("--auth", "client_credentials", "--secret", "fake-client-secret"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("request not supported on this domain", p.stderr)
        fake_url = self.fake.url
        self.fake.url = "http://localhost:%d" % self.fake.port
        p, st = sfcli(self.fake, "query", "SELECT Id FROM Lead",
                      auth=("--auth", "client_credentials", "--secret", "fake-client-secret"))
        self.fake.url = fake_url
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 30)
        body = self.fake.ctl("GET", "requests")["requests"][-2]["body"]
        self.assertEqual(body["grant_type"], "client_credentials")
        self.assertEqual(body["client_id"], "fake-client-id")

    def test_refresh_token_flow_with_rotation(self):
        self.fake.ctl("POST", "config", {"rotate_refresh": True})
        p, st = sfcli(self.fake, "query", "SELECT Id FROM Lead",
                      auth=("--auth", "refresh_token", "--refresh", "5Aep861fake-refresh-token"))
        self.assertEqual(p.returncode, 0, p.stderr)
        # the old refresh token is now invalid; the client kept the new one in memory
        p, st = sfcli(self.fake, "login",
                      auth=("--auth", "refresh_token", "--refresh", "5Aep861fake-refresh-token"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("expired access/refresh token", p.stderr)

    # ---- paging and writes: exact call counts ----
    def test_10000_records_in_5_query_calls(self):
        self.fake.ctl("POST", "seed", {"contacts": 9700, "seed": 2})
        self.fake.ctl("POST", "calls")
        p, st = sfcli(self.fake, "query", CONTACT_Q)
        self.assertEqual(p.returncode, 0, p.stderr)
        ids = [json.loads(l)["id"] for l in p.stdout.splitlines()]
        self.assertEqual(len(ids), 10000)
        self.assertEqual(len(set(ids)), 10000)
        calls = self.fake.ctl("GET", "calls")
        self.assertEqual(calls.get("query", 0) + calls.get("query_more", 0), 5)
        self.assertIn("pages 5 records 10000", p.stderr)

    def test_short_pages_are_followed(self):
        self.fake.ctl("POST", "config", {"short_pages": True})
        p, _ = sfcli(self.fake, "query", CONTACT_Q)
        self.assertEqual(len(p.stdout.splitlines()), 300)

    def test_450_updates_in_3_collection_calls(self):
        self.fake.ctl("POST", "seed", {"contacts": 200, "seed": 3})
        ids = [r["Id"] for r in self.fake.ctl("GET", "records?object=Contact")["records"]][:450]
        self.assertEqual(len(ids), 450)
        lines = "".join(json.dumps({"type": "Contact", "id": i,
                                    "fields": {"HasOptedOutOfEmail": True}}) + "\n" for i in ids)
        self.fake.ctl("POST", "calls")
        p, st = sfcli(self.fake, "update", stdin=lines)
        self.assertEqual(p.returncode, 0, p.stderr)
        results = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(len(results), 450)
        self.assertTrue(all(r["success"] for r in results))
        self.assertEqual(self.fake.ctl("GET", "calls")["collections"], 3)
        recs = self.fake.ctl("GET", "records?object=Contact")["records"]
        self.assertTrue(all(r["HasOptedOutOfEmail"] for r in recs if r["Id"] in set(ids)))

    def test_exact_collections_request(self):
        rid = self.fake.ctl("GET", "records?object=Contact")["records"][0]["Id"]
        line = json.dumps({"type": "Contact", "id": rid,
                           "fields": {"HasOptedOutOfEmail": True,
                                      "Authorization_Type__c": "Consent",
                                      "Consent_Date__c": "2026-11-20T14:05:00.000+0000",
                                      "Processing_Purpose__c": "Newsletter"}})
        self.fake.ctl("POST", "requests")
        p, _ = sfcli(self.fake, "update", stdin=line + "\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        reqs = [r for r in self.fake.ctl("GET", "requests")["requests"] if r["route"] == "collections"]
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["method"], "PATCH")
        self.assertEqual(reqs[0]["path"], "/services/data/v62.0/composite/sobjects")
        self.assertEqual(reqs[0]["headers"]["Content-Type"], "application/json")
        self.assertEqual(reqs[0]["body"], {"allOrNone": False, "records": [{
            "attributes": {"type": "Contact"}, "id": rid, "HasOptedOutOfEmail": True,
            "Authorization_Type__c": "Consent", "Consent_Date__c": "2026-11-20T14:05:00.000+0000",
            "Processing_Purpose__c": "Newsletter"}]})

    def test_per_record_errors_by_position(self):
        recs = self.fake.ctl("GET", "records?object=Contact")["records"][:4]
        ids = [r["Id"] for r in recs]
        self.fake.ctl("POST", "delete", {"object": "Contact", "ids": [ids[1]]})
        self.fake.ctl("POST", "faults", {"errors": {ids[2]: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}})
        lines = [{"type": "Contact", "id": i, "fields": {"HasOptedOutOfEmail": True}} for i in ids]
        lines.append({"type": "Contact", "id": "0035e9999999999AAA", "fields": {"HasOptedOutOfEmail": True}})
        lines.append({"type": "Contact", "id": ids[3], "fields": {"No_Such__c": True}})
        p, _ = sfcli(self.fake, "update", stdin="".join(json.dumps(l) + "\n" for l in lines))
        res = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([r["statusCode"] for r in res],
                         ["", "ENTITY_IS_DELETED", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "",
                          "INVALID_CROSS_REFERENCE_KEY", "INVALID_FIELD"])
        self.assertEqual(res[5]["fields"], "No_Such__c")
        self.assertFalse(any(r["retryable"] for r in res))

    # ---- recovery ----
    def test_expired_session_is_renewed_once(self):
        p, st = sfcli(self.fake, "login")
        self.fake.ctl("POST", "faults", {"faults": [{"route": "query_more", "kind": "expire_session"}]})
        self.fake.ctl("POST", "seed", {"contacts": 2500})
        p, st = sfcli(self.fake, "query", CONTACT_Q)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 2800)
        self.assertEqual(st["token_calls"], "2")

    def test_revoked_session_mid_run(self):
        self.fake.ctl("POST", "config", {"session_idle_s": 0})
        p, st = sfcli(self.fake, "query", "SELECT Id FROM Lead")
        # every request finds its session expired: one re-login, then a clear failure
        self.assertEqual(p.returncode, 2)
        self.assertIn("INVALID_SESSION_ID", p.stderr)
        self.assertEqual(st["token_calls"], "2")

    def test_503_burst_recovers(self):
        self.fake.ctl("POST", "faults", {"faults": [
            {"route": "query", "kind": "status", "status": 503, "count": 2},
            {"route": "query_more", "kind": "status", "status": 503, "retry_after": 0, "count": 1},
            {"route": "query", "kind": "status", "status": 500, "errorCode": "UNKNOWN_EXCEPTION"}]})
        self.fake.ctl("POST", "seed", {"contacts": 2000})
        p, st = sfcli(self.fake, "query", CONTACT_Q)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 2300)
        self.assertEqual(st["retries"], "4")

    def test_request_limit_exceeded_recovers(self):
        self.fake.ctl("POST", "faults", {"faults": [{"route": "any", "kind": "limit", "count": 2}]})
        p, st = sfcli(self.fake, "query", "SELECT Id FROM Lead")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(st["retries"], "2")

    def test_limit_header_is_kept(self):
        self.fake.ctl("POST", "config", {"api_max": 15000, "api_used": 343})
        p, st = sfcli(self.fake, "query", "SELECT Id FROM Lead")
        self.assertEqual(st["api"], "344/15000")

    def test_daily_limit_exhausted_is_retryable_error(self):
        self.fake.ctl("POST", "config", {"api_max": 10, "api_used": 10})
        p, st = sfcli(self.fake, "query", "SELECT Id FROM Lead")
        self.assertEqual(p.returncode, 1)
        self.assertIn("REQUEST_LIMIT_EXCEEDED", p.stderr)
        self.assertIn("gave up after 6 attempts", p.stderr)

    def test_unable_to_lock_row_recovers(self):
        ids = [r["Id"] for r in self.fake.ctl("GET", "records?object=Contact")["records"][:5]]
        self.fake.ctl("POST", "faults", {"lock_row": {ids[1]: 2, ids[3]: 1}})
        lines = "".join(json.dumps({"type": "Contact", "id": i,
                                    "fields": {"HasOptedOutOfEmail": True}}) + "\n" for i in ids)
        self.fake.ctl("POST", "calls")
        p, st = sfcli(self.fake, "update", stdin=lines)
        res = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertTrue(all(r["success"] for r in res), res)
        self.assertEqual(self.fake.ctl("GET", "calls")["collections"], 3)
        reqs = [r for r in self.fake.ctl("GET", "requests")["requests"] if r["route"] == "collections"]
        self.assertEqual([len(r["body"]["records"]) for r in reqs], [5, 2, 1])

    def test_unknown_field_is_permanent(self):
        p, st = sfcli(self.fake, "query", "SELECT Id, Emial FROM Contact")
        self.assertEqual(p.returncode, 2)
        self.assertIn("HTTP 400 INVALID_FIELD", p.stderr)
        self.assertIn("No such column 'Emial'", p.stderr)
        self.assertEqual(st["retries"], "0")
        p, st = sfcli(self.fake, "query", "SELEC Id FROM Contact")
        self.assertIn("MALFORMED_QUERY", p.stderr)

    def test_cut_off_and_malformed_are_errors(self):
        for kind in ("cut", "malformed", "reset"):
            self.fake.ctl("POST", "faults", {"faults": [{"route": "query_more", "kind": kind, "count": 10}]})
            self.fake.ctl("POST", "seed", {"contacts": 2000})
            p, st = sfcli(self.fake, "query", CONTACT_Q)
            self.assertEqual(p.returncode, 1, kind + p.stderr)
            self.assertIn("gave up after 6 attempts", p.stderr)
            # the first page was handed over, the broken one never
            self.assertEqual(len(p.stdout.splitlines()) % 2000, 0, kind)
            self.fake.ctl("DELETE", "faults")
            # a single fault is recovered from
            self.fake.ctl("POST", "faults", {"faults": [{"route": "query_more", "kind": kind}]})
            p, st = sfcli(self.fake, "query", CONTACT_Q)
            self.assertEqual(p.returncode, 0, kind + p.stderr)
            self.assertEqual(len(p.stdout.splitlines()), 2300 if kind == "cut" else
                             4300 if kind == "malformed" else 6300, kind)
            # libcurl itself retries a reused connection that was reset
            self.assertEqual(st["retries"], "0" if kind == "reset" else "1", kind)

    def test_hanging_server_times_out(self):
        self.fake.ctl("POST", "faults", {"faults": [{"route": "query", "kind": "slow", "ms": 3000}]})
        t = time.monotonic()
        opts = ["--login-url", self.fake.url, "--auth", "jwt", "--key", KEY, "--attempts", "2",
                "--backoff", "20", "--timeout", "500"]
        p = subprocess.run([SFCLI, *opts, "query", "SELECT Id FROM Lead"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)  # the second attempt is not slow
        self.assertIn("retries=1", p.stderr)
        self.assertLess(time.monotonic() - t, 3.0)

    # ---- SOQL safety ----
    def test_soql_quoting_blocks_injection(self):
        evil = "x' OR Email != 'nobody"
        self.fake.ctl("POST", "records", {"object": "Contact", "records": [
            {"Email": evil, "LastName": "Evil"}, {"Email": "o'brien@example.com", "LastName": "O"}]})
        p, _ = sfcli(self.fake, "query-in", "SELECT Id, Email FROM Contact WHERE Email IN (", ")",
                     evil, "o'brien@example.com", "back\\slash@example.com")
        self.assertEqual(p.returncode, 0, p.stderr)
        emails = sorted(json.loads(l)["values"]["Email"] for l in p.stdout.splitlines())
        self.assertEqual(emails, sorted([evil, "o'brien@example.com"]))

    def test_in_list_split_under_url_limit(self):
        recs = self.fake.ctl("GET", "records?object=Contact")["records"]
        emails = [r["Email"] for r in recs] + ["missing%d@example.org" % i for i in range(1700)]
        self.fake.ctl("POST", "requests")
        p, _ = sfcli(self.fake, "query-in", "SELECT Id, Email FROM Contact WHERE Email IN (", ")",
                     *emails)
        self.assertEqual(p.returncode, 0, p.stderr)
        got = {json.loads(l)["id"] for l in p.stdout.splitlines()}
        self.assertEqual(got, {r["Id"] for r in recs})
        reqs = [r for r in self.fake.ctl("GET", "requests")["requests"] if r["route"] == "query"]
        self.assertGreater(len(reqs), 3)

    # ---- TLS ----
    def test_tls_verification_refuses_self_signed(self):
        cert, key = os.path.join(TMP, "self.pem"), os.path.join(TMP, "self.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        server = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", cert,
                                   "-key", key, "-www", "-quiet"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            url = "https://127.0.0.1:%d" % port
            p = subprocess.run([SFCLI, "--login-url", url, "--auth", "jwt", "--key", KEY,
                                "--attempts", "3", "--backoff", "20", "login"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 2, p.stderr)  # permanent: no retries
            self.assertIn("TLS with", p.stderr)
            self.assertIn("retries=0", p.stderr)
            # trusting that certificate explicitly (salesforce.ca_file) gets past TLS
            p = subprocess.run([SFCLI, "--login-url", url, "--auth", "jwt", "--key", KEY,
                                "--ca", cert, "--attempts", "1", "--timeout", "2000", "login"],
                               capture_output=True, text=True, timeout=60)
            self.assertNotEqual(p.returncode, 0)  # s_server is no Salesforce...
            self.assertNotIn("TLS with", p.stderr)  # ...but TLS itself succeeded
        finally:
            server.terminate()
            server.wait(10)

    # ---- secrets ----
    def test_no_secret_in_debug_log(self):
        p, st = sfcli(self.fake, "--debug", "query", "SELECT Id, Email FROM Lead")
        self.assertEqual(p.returncode, 0, p.stderr)
        log = p.stderr
        self.assertIn("Authorization: [REDACTED]", log)  # headers are traced, masked
        self.assertNotIn("00D5e000000FAKE!", log)  # the fake's access tokens
        key_body = "".join(open(KEY).read().splitlines()[1:-1])
        for chunk in (key_body[i:i + 16] for i in range(0, len(key_body), 16)):
            self.assertNotIn(chunk, log)
        p, st = sfcli(self.fake, "--debug", "login",
                      auth=("--auth", "refresh_token", "--refresh", "5Aep861fake-refresh-token",
                            "--secret", "fake-client-secret"))
        self.assertNotIn("5Aep861fake-refresh-token", p.stderr)
        self.assertNotIn("fake-client-secret", p.stderr)
        self.assertNotIn("@example", p.stderr)  # SOQL with emails is not logged either


def main():
    global SFCLI, FAKE, TMP, KEY, PUB
    SFCLI, FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        TMP = tmp
        KEY, PUB = os.path.join(tmp, "key.pem"), os.path.join(tmp, "key.pub")
        subprocess.run(["openssl", "genrsa", "-out", KEY, "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", KEY, "-pubout", "-out", PUB], check=True,
                       capture_output=True)
        prog = unittest.main(argv=sys.argv[:1], verbosity=2, exit=False)
        r = prog.result
        print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                        len(r.failures) + len(r.errors)))
        sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
