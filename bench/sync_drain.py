#!/usr/bin/env python3
"""bench/sync-drain: one sync cycle that drains N queued pushes (default
1,000,000 local opt-outs) to the fake Salesforce.

The fake is given N Contacts (one email each, all opted in, last modified
30 days ago, so the cycle's pull reads nothing again), a first sync learns
them, `optsync optout --from` queues one push per Contact, and then one
`optsync sync --once` writes them all. Prints optsync's CPU time for that
cycle (user plus kernel, from wait4: the fake's time is not counted) per
100,000 pushes, and the collection calls it made against the minimum (one
per 200 records). Target (issue 24): at most 0.5 CPU s per 100,000 pushes
at 1,000,000 queued, with the minimum calls.

usage: sync_drain.py [OPTSYNC [N]]   (OPTSYNC defaults to build/optsync)"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNK = 20000


def main():
    optsync = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else \
        os.path.join(HERE, "..", "build", "optsync")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    fake = os.path.join(HERE, "..", "tests", "fake_salesforce", "fake_sf.py")
    with tempfile.TemporaryDirectory() as tmp:
        portfile = os.path.join(tmp, "port")
        log = open(os.path.join(tmp, "fake.log"), "w")
        proc = subprocess.Popen([sys.executable, fake, "--port-file", portfile],
                                stdout=log, stderr=log)
        try:
            while not os.path.exists(portfile):
                if proc.poll() is not None:
                    sys.exit("the fake Salesforce failed: see its log")
                time.sleep(0.1)
            port = int(open(portfile).read())

            def ctl(method, path, body=None):
                req = urllib.request.Request(
                    "http://127.0.0.1:%d/__control/%s" % (port, path), method=method,
                    data=json.dumps(body).encode() if body is not None else None)
                with urllib.request.urlopen(req, timeout=600) as r:
                    return json.loads(r.read() or b"null")

            t0 = time.monotonic()
            old = int(time.time()) - 30 * 86400
            for start in range(0, n, CHUNK):
                ctl("POST", "records", {"object": "Contact", "records": [
                    {"Email": "p%d@drain.example" % i, "LastName": "P%d" % i,
                     "_system_stamp": old + i}
                    for i in range(start, min(n, start + CHUNK))]})
            seeded = time.monotonic() - t0
            config = os.path.join(tmp, "optsync.toml")
            with open(config, "w") as f:
                f.write('[salesforce]\nlogin_url = "http://localhost:%d"\n'
                        'auth = "client_credentials"\nclient_id = "fake-client-id"\n'
                        'objects = ["Contact"]\ntimeout = "600s"\n[state]\npath = "%s/state"\n'
                        'map_size = "64MiB"\n[log]\nlevel = "warn"\n' % (port, tmp))
            env = dict(os.environ, OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret")

            def run(*args):
                child = subprocess.Popen([optsync, "-c", config, *args], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, err = child.communicate()
                if child.returncode:
                    sys.exit("optsync %s failed: %s" % (" ".join(args), err.decode()))
                return out

            t1 = time.monotonic()
            run("sync", "--once")  # learn the org
            learned = time.monotonic() - t1
            listing = os.path.join(tmp, "optouts.txt")
            with open(listing, "w") as f:
                for i in range(n):
                    f.write("p%d@drain.example\n" % i)
            t2 = time.monotonic()
            run("optout", "--from", listing)
            queued = json.loads(run("status", "--json"))["pushes"]["queued"]
            optouts = time.monotonic() - t2
            ctl("POST", "calls")
            t3 = time.monotonic()
            out_path, err_path = os.path.join(tmp, "cycle.json"), os.path.join(tmp, "cycle.err")
            with open(out_path, "w") as out, open(err_path, "w") as err:
                child = subprocess.Popen([optsync, "-c", config, "sync", "--once", "--json"],
                                         env=env, stdout=out, stderr=err)
                _, status, ru = os.wait4(child.pid, 0)
            wall = time.monotonic() - t3
            if os.waitstatus_to_exitcode(status):
                sys.exit("optsync sync failed: " + open(err_path).read())
            report = json.load(open(out_path))
            calls = ctl("GET", "calls")
            cpu = (ru.ru_utime, ru.ru_stime)
            pushed = report["pushes"]["succeeded"]
            left = json.loads(run("status", "--json"))["pushes"]
            minimum = -(-queued // 200)
            print("bench/sync-drain: one sync cycle draining %d queued pushes (seeded in %.0f s, "
                  "first sync %.0f s, opt-outs queued in %.0f s)" % (queued, seeded, learned,
                                                                     optouts))
            print("  wall:       %.1f s (the fake applies the writes in Python)" % wall)
            print("  optsync:    %.2f CPU s (%.2f user + %.2f kernel): %.3f per 100,000 pushes"
                  "   target <= 0.5" % (cpu[0] + cpu[1], cpu[0], cpu[1],
                                        (cpu[0] + cpu[1]) * 100000 / max(queued, 1)))
            print("  collection calls: %d (minimum %d)   records written: %d; left queued %d, "
                  "parked %d" % (calls.get("collections", 0), minimum, pushed, left["queued"],
                                 left["parked"]))
            print("  query calls in the cycle: %d (its pull reads nothing new)" %
                  (calls.get("query", 0) + calls.get("query_more", 0)))
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


if __name__ == "__main__":
    main()
