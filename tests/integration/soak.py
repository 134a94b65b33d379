#!/usr/bin/env python3
"""Soak: `optsync run` for SECONDS (default 60; longer by argument) while the
application sends opt-outs and suppression checks at a steady rate and the
fake Salesforce changes records (opt-outs and re-subscribe attempts) and
injects faults at random. At the end: every opt-out made on either side is on
both sides, the resident memory did not grow, and no file descriptor leaked.

Usage: soak.py OPTSYNC FAKE_SF_PY [SECONDS]"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

TOKEN = "soak-token-0123456789"


def main():
    optsync, fake = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60
    rng = random.Random(7)
    tmp = tempfile.mkdtemp(prefix="optsync-soak-")
    portfile = os.path.join(tmp, "port")
    flog = open(os.path.join(tmp, "fake.log"), "w")
    fproc = subprocess.Popen([sys.executable, fake, "--port-file", portfile, "--contacts", "500",
                              "--leads", "100"], stdout=flog, stderr=flog)
    while not os.path.exists(portfile):
        time.sleep(0.05)
    sf = int(open(portfile).read())
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    config = os.path.join(tmp, "optsync.toml")
    with open(config, "w") as f:
        f.write('[salesforce]\nlogin_url = "http://localhost:%d"\nauth = "client_credentials"\n'
                'client_id = "fake-client-id"\n[sync]\ninterval = "2s"\n[state]\npath = "%s/state"\n'
                'map_size = "16MiB"\n[api]\nlisten = "127.0.0.1:%d"\n[log]\nlevel = "warn"\n'
                % (sf, tmp, port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
    env.update(OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret", OPTSYNC_API_TOKEN=TOKEN)
    olog = open(os.path.join(tmp, "optsync.log"), "w")
    proc = subprocess.Popen([optsync, "-c", config, "run"], env=env, stdout=olog, stderr=olog)

    def api(method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def ctl(method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/__control/%s" % (sf, path),
                                     method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def proc_stat():
        with open("/proc/%d/status" % proc.pid) as f:
            rss = [int(l.split()[1]) for l in f if l.startswith("VmRSS:")][0]
        return rss, len(os.listdir("/proc/%d/fd" % proc.pid))

    ok = True
    try:
        for _ in range(100):
            try:
                api("GET", "/v1/changes")
                break
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        records = ctl("GET", "records?object=Contact")["records"]
        emails = [r["Email"] for r in records]
        local_out, sf_out = set(), set()
        stop = threading.Event()
        errors = []

        def application():
            i = 0
            while not stop.is_set():
                try:
                    e = rng.choice(emails) if i % 3 else "new%d@soak.example" % i
                    api("POST", "/v1/optouts", {"email": e, "idempotency_key": "soak-%d" % i})
                    local_out.add(e.lower())
                    for _ in range(5):
                        api("POST", "/v1/suppression/check", {"emails": rng.sample(emails, 20)})
                except Exception as ex:  # noqa: BLE001
                    errors.append(repr(ex))
                i += 1
                time.sleep(0.1)

        def salesforce_user():
            while not stop.is_set():
                r = rng.choice(records)
                if rng.random() < 0.7:
                    ctl("POST", "records", {"object": "Contact",
                                            "records": [{"Id": r["Id"], "HasOptedOutOfEmail": True}]})
                    sf_out.add(r["Email"].lower())
                elif api("POST", "/v1/suppression/check",
                         {"emails": [r["Email"]]})["results"][r["Email"]]:
                    # a re-subscribe attempt without evidence, on a person
                    # optsync knows opted out (an opt-out undone in
                    # Salesforce before any poll saw it leaves no trace that
                    # the REST API can show, so nothing could restore it)
                    ctl("POST", "records", {"object": "Contact",
                                            "records": [{"Id": r["Id"], "HasOptedOutOfEmail": False}]})
                if rng.random() < 0.2:
                    ctl("POST", "faults", {"faults": [rng.choice([
                        {"route": "query", "kind": "status", "status": 503},
                        {"route": "collections", "kind": "status", "status": 500,
                         "errorCode": "UNKNOWN_EXCEPTION"},
                        {"route": "collections", "kind": "cut"},
                        {"route": "any", "kind": "limit"}])]})
                if rng.random() < 0.1:
                    ctl("POST", "faults", {"lock_row": {rng.choice(records)["Id"]: 2}})
                time.sleep(0.3)

        threads = [threading.Thread(target=application), threading.Thread(target=salesforce_user)]
        for t in threads:
            t.start()
        samples = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(max(1.0, seconds / 30))
            samples.append(proc_stat())
        stop.set()
        for t in threads:
            t.join()
        ctl("DELETE", "faults")
        # let it settle: the queue empty and everything read back
        settled = False
        for _ in range(60):
            time.sleep(1)
            out = subprocess.run([optsync, "-c", config, "status", "--json"], env=env,
                                 capture_output=True, text=True)
            st = json.loads(out.stdout)
            if st["pushes"]["queued"] == 0 and st["last_cycle"] and \
                    st["last_cycle"]["result"] == "ok":
                settled = True
                break
        time.sleep(5)  # one more cycle reads the last writes back
        recs = {r["Email"].lower(): r for r in ctl("GET", "records?object=Contact")["records"]}
        missing_in_sf = sorted(e for e in local_out if e in recs and not recs[e]["HasOptedOutOfEmail"])
        emails_out = sorted(local_out | sf_out)
        missing_in_ledger = []
        for i in range(0, len(emails_out), 1000):
            res = api("POST", "/v1/suppression/check", {"emails": emails_out[i:i + 1000]})["results"]
            missing_in_ledger += [e for e, v in res.items() if not v]
        resub = [e for e in sf_out if e in recs and not recs[e]["HasOptedOutOfEmail"]]
        warm = samples[len(samples) // 4:] or samples
        rss0, rss1 = warm[0][0], max(s[0] for s in warm[len(warm) // 2:])
        fd0, fd1 = warm[0][1], samples[-1][1]
        print("soak: %.0f s, %d local opt-outs, %d in Salesforce; settled: %s; "
              "not in Salesforce: %d, not in the ledger: %d, re-subscribed in Salesforce: %d; "
              "RSS %d -> %d KiB; fds %d -> %d; application errors: %d"
              % (seconds, len(local_out), len(sf_out), settled, len(missing_in_sf),
                 len(missing_in_ledger), len(resub), rss0, rss1, fd0, fd1, len(errors)))
        # under AddressSanitizer RSS says nothing (freed memory waits in
        # its quarantine, up to 256 MB); LeakSanitizer checks leaks at exit
        sanitized = os.environ.get("OPTSYNC_SANITIZED") == "1"
        if sanitized:
            print("soak: RSS not judged under ASan; LeakSanitizer checks at exit")
        rss_ok = sanitized or rss1 <= rss0 * 1.25 + 2048
        ok = (settled and not missing_in_sf and not missing_in_ledger and not resub and
              rss_ok and fd1 <= fd0 + 2 and not errors)
        if errors:
            print("first application error:", errors[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        if code != 0:
            print("optsync run exited %d" % code)
            ok = False
        fproc.terminate()
        fproc.wait(10)
        olog.close()
        flog.close()
        subprocess.run(["rm", "-rf", tmp])
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
