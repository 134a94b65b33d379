#!/usr/bin/env python3
"""The fault matrix: one test per fault, each run against real optsync
processes and the fake Salesforce, each ending with both sides equal (every
person the ledger says is opted out is opted out on every live Salesforce
record, and the other way round) and no opt-out lost.

Usage: test_faults.py OPTSYNC FAKE_SF_PY"""
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_sync  # noqa: E402  (the Env fixture)

OPTSYNC = FAKE = None


class Faults(unittest.TestCase):
    contacts = 200

    def setUp(self):
        self.t0 = time.monotonic()
        self.env = test_sync.Env(contacts=self.contacts)
        self.env.sync()
        recs = self.env.ctl("GET", "records?object=Contact")["records"]
        opted_in = [r for r in recs if not r["HasOptedOutOfEmail"]]
        # 20 local opt-outs and 20 made in Salesforce, the ground truth
        self.local = [r["Email"].lower() for r in opted_in[:20]]
        self.remote = opted_in[20:40]
        for email in self.local:
            self.env.json("optout", email)
        time.sleep(1.1)
        self.env.ctl("POST", "records", {"object": "Contact", "records": [
            {"Id": r["Id"], "HasOptedOutOfEmail": True} for r in self.remote]})

    def tearDown(self):
        self.env.close()
        sys.stderr.write(" [%.1f s] " % (time.monotonic() - self.t0))

    # ---- helpers ----
    def converge(self, tries=8):
        for _ in range(tries):
            p = self.env.run("sync", "--once", "--json")
            if p.returncode == 0:
                st = self.env.json("status")
                if st["pushes"]["queued"] == 0:
                    return st
            time.sleep(0.2)
        self.fail("did not converge: " + p.stdout[-500:] + p.stderr[-500:])

    def assert_sides_equal(self):
        recs = self.env.ctl("GET", "records?object=Contact")["records"]
        by_email = {}
        for r in recs:
            if not r["IsDeleted"]:
                by_email.setdefault(r["Email"].lower(), []).append(r["HasOptedOutOfEmail"])
        lost = [e for e in self.local + [r["Email"].lower() for r in self.remote]
                if not all(by_email.get(e, [True]))]
        self.assertEqual(lost, [], "opt-outs lost in Salesforce")
        # every opt-out made, and a sample of the rest (a process per email)
        truth = set(self.local + [r["Email"].lower() for r in self.remote])
        rest = sorted(set(by_email) - truth)
        sample = [(e, by_email[e]) for e in sorted(truth) if e in by_email]
        sample += [(e, by_email[e]) for e in rest[::max(1, len(rest) // 200)]]
        checked = 0
        for email, outs in sample:
            shown = self.env.run("contact", "show", email, "--json")
            if shown.returncode != 0:
                continue
            ledger_out = json.loads(shown.stdout)["opted_out"]
            self.assertEqual(ledger_out, all(outs), email)
            self.assertEqual(any(outs), all(outs), "records of %s disagree" % email)
            checked += 1
        self.assertGreater(checked, min(100, len(by_email) // 2))
        self.assertTrue(self.env.json("audit", "verify")["ok"])

    # ---- the faults ----
    def test_token_endpoint_down(self):
        self.env.ctl("POST", "faults", {"faults": [{"route": "token", "kind": "status",
                                                    "status": 503, "count": 100}]})
        self.assertEqual(self.env.run("sync", "--once").returncode, 1)
        self.env.ctl("DELETE", "faults")
        self.converge()
        self.assert_sides_equal()

    def test_expired_session_mid_pagination(self):
        self.env.ctl("POST", "seed", {"contacts": 4500, "seed": 9})
        self.env.ctl("POST", "faults", {"faults": [{"route": "query_more", "kind": "expire_session"}]})
        self.converge()
        self.assert_sides_equal()

    def test_5xx_bursts(self):
        self.env.ctl("POST", "faults", {"faults": [
            {"route": "query", "kind": "status", "status": 503, "count": 3},
            {"route": "collections", "kind": "status", "status": 500,
             "errorCode": "UNKNOWN_EXCEPTION", "count": 3}]})
        self.converge()
        self.assert_sides_equal()

    def test_request_limit_until_reset(self):
        self.env.ctl("POST", "config", {"api_max": 5, "api_used": 5})
        self.assertEqual(self.env.run("sync", "--once").returncode, 1)
        self.assertGreater(self.env.json("status")["pushes"]["queued"], 0)  # kept
        self.env.ctl("POST", "config", {"api_max": 100000, "api_used": 0})  # the day rolls over
        self.converge()
        self.assert_sides_equal()

    def test_unable_to_lock_row(self):
        ids = [r["Id"] for r in self.env.ctl("GET", "records?object=Contact")["records"][:10]]
        self.env.ctl("POST", "faults", {"lock_row": {i: 3 for i in ids}})
        self.converge()
        self.assert_sides_equal()

    def test_cut_off_and_malformed_responses(self):
        self.env.ctl("POST", "faults", {"faults": [
            {"route": "query", "kind": "cut", "count": 2},
            {"route": "collections", "kind": "malformed", "count": 2}]})
        self.converge()
        self.assert_sides_equal()

    def test_hanging_server(self):
        self.env.close()
        self.env = test_sync.Env(contacts=self.contacts)
        # a 2 s request timeout, and a server that takes 30 s
        cfg = open(self.env.config).read().replace(
            'client_id = "fake-client-id"\n',
            'client_id = "fake-client-id"\ntimeout = "2s"\nconnect_timeout = "1s"\n')
        open(self.env.config, "w").write(cfg)
        self.env.sync()
        self.local, self.remote = [], []
        recs = self.env.ctl("GET", "records?object=Contact")["records"]
        self.local = [r["Email"].lower() for r in recs if not r["HasOptedOutOfEmail"]][:10]
        for email in self.local:
            self.env.json("optout", email)
        self.env.ctl("POST", "faults", {"faults": [{"route": "collections", "kind": "slow",
                                                    "ms": 30000, "count": 1}]})
        t = time.monotonic()
        self.env.run("sync", "--once")
        self.assertLess(time.monotonic() - t, 25)  # timed out, retried, went on
        self.converge()
        self.assert_sides_equal()

    def test_record_deleted_with_a_push_queued(self):
        """The pull reads the deletion (queryAll) before the push step: the
        record is unlinked and its push dropped, not parked; the opt-out
        stays on the person. (A deletion between the pull and the push
        still parks the push with ENTITY_IS_DELETED; the next pull unlinks
        the record and drops it.)"""
        recs = self.env.ctl("GET", "records?object=Contact")["records"]
        victim = [r for r in recs if r["Email"].lower() in self.local][0]
        self.env.ctl("POST", "delete", {"object": "Contact", "ids": [victim["Id"]]})
        st = self.converge()
        self.assertEqual(st["pushes"]["parked"], 0)
        show = self.env.json("contact", "show", victim["Email"])
        self.assertTrue(show["opted_out"])
        self.assertNotIn(victim["Id"], [x["id"] for x in show["salesforce_records"]])
        hist = self.env.json("contact", "history", victim["Email"])
        self.assertIn(("unlinked", victim["Id"]),
                      [(h["kind"], h.get("record", {}).get("id")) for h in hist])
        self.assert_sides_equal()

    def test_validation_rule_rejects_one_record(self):
        recs = self.env.ctl("GET", "records?object=Contact")["records"]
        victim = [r for r in recs if r["Email"].lower() in self.local][0]
        self.env.ctl("POST", "faults", {"errors": {victim["Id"]: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}})
        st = self.converge()
        self.assertEqual(st["pushes"]["parked"], 1)
        self.assertTrue(self.env.json("contact", "show", victim["Email"])["opted_out"])
        # the operator fixes the rule; the push goes once it is queued again
        self.env.ctl("DELETE", "faults")
        self.env.json("optout", victim["Email"])
        self.local.remove(victim["Email"].lower())  # it is already opted out locally
        self.env.run("contact", "set", victim["Email"], "--source", "import", check=0)
        st = self.converge()
        self.assertEqual(st["pushes"]["parked"], 0)
        self.assert_sides_equal()

    def test_ledger_disk_full(self):
        # the map may not grow past the 16 MiB it has (a smaller map_size
        # never shrinks the file: the ledger keeps the size it has)
        cfg = open(self.env.config).read().replace('map_size = "16MiB"',
                                                    'map_size = "1MiB"\nmax_map_size = "16MiB"')
        open(self.env.config, "w").write(cfg)
        size = os.path.getsize(os.path.join(self.env.dir, "state", "data.mdb"))
        self.env.ctl("POST", "seed", {"contacts": 40000, "seed": 4})
        p = self.env.run("sync", "--once")
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn("full", p.stdout + p.stderr)
        self.assertEqual(os.path.getsize(os.path.join(self.env.dir, "state", "data.mdb")), size)
        # nothing written so far was lost; more room, and it goes on
        open(self.env.config, "w").write(cfg.replace('max_map_size = "16MiB"',
                                                     'max_map_size = "256MiB"'))
        self.converge()
        self.assert_sides_equal()

    def test_ledger_locked_by_another_process(self):
        lock = open(os.path.join(self.env.dir, "state", "sync.lock"), "a+")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        p = self.env.run("sync", "--once")
        self.assertEqual(p.returncode, 5)
        self.assertIn("locked by another sync", p.stdout + p.stderr)
        self.env.json("optout", "while-locked@example.com")  # the ledger still takes opt-outs
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        self.converge()
        self.assert_sides_equal()

    def kill_during(self, seconds):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
        env["OPTSYNC_SALESFORCE_CLIENT_SECRET"] = "fake-client-secret"
        child = subprocess.Popen([OPTSYNC, "-c", self.env.config, "sync", "--once"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        child.send_signal(signal.SIGKILL)
        child.wait()

    def test_sigkill_during_pull(self):
        self.env.ctl("POST", "seed", {"contacts": 20000, "seed": 5})
        self.kill_during(0.8)
        self.converge()
        self.assert_sides_equal()

    def test_sigkill_during_push(self):
        recs = self.env.ctl("GET", "records?object=Contact")["records"]
        more = [r["Email"] for r in recs if not r["HasOptedOutOfEmail"]][40:140]
        self.local += [m.lower() for m in more]
        listing = os.path.join(self.env.dir, "more.txt")
        open(listing, "w").write("\n".join(more) + "\n")
        self.env.run("optout", "--from", listing, check=0)
        self.env.ctl("POST", "faults", {"faults": [{"route": "collections", "kind": "slow",
                                                    "ms": 400, "count": 5}]})
        self.kill_during(0.6)
        self.env.ctl("DELETE", "faults")
        self.converge()
        self.assert_sides_equal()


class Receiver(BaseHTTPRequestHandler):
    got = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.got.append(json.loads(body)["seq"])
        time.sleep(0.05)  # a slow application: deliveries are in flight when killed
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


class WebhookKill(unittest.TestCase):
    def test_sigkill_during_webhook_delivery(self):
        hook = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        Receiver.got = []
        env = test_sync.Env(contacts=50)
        for name, value in (("webhook-secret", "w-secret-0123"), ("api-token", "t-0123456789abcdef")):
            path = os.path.join(env.dir, name)
            with open(path, "w") as f:
                f.write(value)
            os.chmod(path, 0o600)
        with open(env.config, "a") as f:
            f.write('[webhook]\nurl = "http://127.0.0.1:%d/h"\nsecret_file = "%s/webhook-secret"\n'
                    '[api]\nlisten = "127.0.0.1:%d"\ntoken_file = "%s/api-token"\n'
                    % (hook.server_address[1], env.dir, test_api_port(), env.dir))
        try:
            for i in range(60):
                env.json("optout", "hook%d@example.com" % i)
            e = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
            e.update(OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret")
            for kill in range(3):
                d = subprocess.Popen([OPTSYNC, "-c", env.config, "run"], env=e,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.5)
                d.send_signal(signal.SIGKILL)
                d.wait()
            d = subprocess.Popen([OPTSYNC, "-c", env.config, "run"], env=e,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            feed = json.loads(env.run("status", "--json").stdout)["ledger"]["changes"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(set(Receiver.got)) < feed:
                time.sleep(0.2)
            d.send_signal(signal.SIGTERM)
            d.wait(15)
            got = Receiver.got
            self.assertEqual(sorted(set(got)), list(range(1, feed + 1)))  # none lost
            firsts = [s for i, s in enumerate(got) if s not in got[:i]]
            self.assertEqual(firsts, sorted(firsts))  # never out of order
            print("webhook: %d changes, %d deliveries (%d repeated after kills)"
                  % (feed, len(got), len(got) - feed))
        finally:
            hook.shutdown()
            env.close()


def test_api_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    global OPTSYNC, FAKE
    OPTSYNC, FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    test_sync.OPTSYNC, test_sync.FAKE = OPTSYNC, FAKE
    h = subprocess.run([OPTSYNC, "admin", "hash-token"], input=test_sync.ADMIN_TOKEN + "\n",
                       capture_output=True, text=True, check=True)
    test_sync.ADMIN_HASH = h.stdout.split('"')[1]
    prog = unittest.main(argv=sys.argv[:1], verbosity=2, exit=False)
    r = prog.result
    print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                    len(r.failures) + len(r.errors)))
    sys.exit(0 if r.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
