#!/usr/bin/env python3
"""Crash test of the sync engine.

The fake Salesforce holds N Contacts (default 20,000); optsync learns them,
then N local opt-outs are recorded. `optsync sync --once` is then started and
killed with SIGKILL at a random moment, KILLS times (default 50), then run to
the end. Afterwards Salesforce and the ledger must agree, no opt-out may be
lost, the history chain must verify, and the test prints how many writes
were repeated because a kill came between Salesforce accepting a write and
the ledger recording it.

Usage: crash_sync.py OPTSYNC FAKE_SF_PY [N] [KILLS]"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request


def main():
    optsync, fake = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    kills = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    rng = random.Random(int(time.time()))
    with tempfile.TemporaryDirectory() as tmp:
        portfile = os.path.join(tmp, "port")
        log = open(os.path.join(tmp, "fake.log"), "w")
        proc = subprocess.Popen([sys.executable, fake, "--port-file", portfile,
                                 "--contacts", str(n)], stdout=log, stderr=log)
        try:
            for _ in range(600):
                if os.path.exists(portfile):
                    break
                time.sleep(0.05)
            port = int(open(portfile).read())

            def ctl(method, path, body=None):
                req = urllib.request.Request("http://127.0.0.1:%d/__control/%s" % (port, path),
                                             method=method,
                                             data=json.dumps(body).encode() if body else None)
                with urllib.request.urlopen(req, timeout=60) as r:
                    return json.loads(r.read() or b"null")

            config = os.path.join(tmp, "optsync.toml")
            with open(config, "w") as f:
                f.write('[salesforce]\nlogin_url = "http://localhost:%d"\n'
                        'auth = "client_credentials"\nclient_id = "fake-client-id"\n'
                        'objects = ["Contact"]\n[state]\npath = "%s/state"\nmap_size = "4MiB"\n'
                        '[log]\nlevel = "error"\n' % (port, tmp))
            env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
            env["OPTSYNC_SALESFORCE_CLIENT_SECRET"] = "fake-client-secret"

            def run(*args):
                return subprocess.run([optsync, "-c", config, *args], capture_output=True,
                                      text=True, env=env, timeout=600)

            t0 = time.monotonic()
            p = run("sync", "--once")
            assert p.returncode == 0, p.stderr
            # a cycle that also pushes takes longer than this pull-only one: kill
            # within this span, so that most kills land in the middle of a cycle
            span = max(0.3, time.monotonic() - t0)
            records = ctl("GET", "records?object=Contact")["records"]
            seeded_out = sum(1 for r in records if r["HasOptedOutOfEmail"])
            emails = sorted({r["Email"].lower() for r in records})
            listing = os.path.join(tmp, "optouts.txt")
            with open(listing, "w") as f:
                f.write("\n".join(emails) + "\n")
            p = run("optout", "--from", listing, "--json")
            assert p.returncode == 0, p.stderr
            ctl("POST", "requests")

            finished = 0
            for i in range(kills):
                child = subprocess.Popen([optsync, "-c", config, "sync", "--once"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.02, span))
                if child.poll() is None:
                    child.send_signal(signal.SIGKILL)
                else:
                    finished += 1
                child.wait()
            for _ in range(10):
                p = run("sync", "--once", "--json")
                assert p.returncode == 0, p.stdout + p.stderr
                st = json.loads(run("status", "--json").stdout)
                if st["pushes"]["queued"] == 0:
                    break
            st = json.loads(run("status", "--json").stdout)
            writes = sum(len(r["body"]["records"]) for r in ctl("GET", "requests")["requests"]
                         if r["route"] == "collections")
            records = ctl("GET", "records?object=Contact")["records"]
            not_out = [r["Id"] for r in records if not r["HasOptedOutOfEmail"]]
            lost = 0
            for email in rng.sample(emails, min(500, len(emails))):
                shown = json.loads(run("contact", "show", email, "--json").stdout)
                lost += not shown["opted_out"]
            audit = run("audit", "verify")
            needed = len(records) - seeded_out
            print("sync crash test: %d kills (%d cycles finished before their kill), %d Contacts, "
                  "%d opt-outs to push; %d writes sent, %d repeated; %d Salesforce records "
                  "still opted in, %d of 500 sampled persons not opted out in the ledger, "
                  "%d queued, %d parked, audit %s"
                  % (kills, finished, len(records), needed, writes, writes - needed,
                     len(not_out), lost, st["pushes"]["queued"], st["pushes"]["parked"],
                     "ok" if audit.returncode == 0 else "FAILED"))
            ok = (not not_out and lost == 0 and st["pushes"]["queued"] == 0 and
                  st["pushes"]["parked"] == 0 and audit.returncode == 0 and writes >= needed)
            print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
            return 0 if ok else 1
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


if __name__ == "__main__":
    sys.exit(main())
