#!/usr/bin/env python3
"""bench/sync-pull: optsync's first full pull of N records (default 1,000,000)
from the fake Salesforce, into an empty ledger.

The config maps two purposes to Contact checkboxes, so each page carries
them too. Prints records per second, optsync's CPU time (user plus kernel),
its peak resident memory (from wait4, so the fake's memory is not counted),
and, sampled from /proc every 20 ms, the peak of its private memory
(RssAnon) apart from the ledger's file-backed map pages (RssFile). Targets
(issue 16): at most 1.2 CPU s per 100,000 records; RssAnon under 64 MiB, flat
in N.

usage: sync_pull.py [OPTSYNC [N]]   (OPTSYNC defaults to build/optsync)"""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    optsync = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else \
        os.path.join(HERE, "..", "build", "optsync")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    fake = os.path.join(HERE, "..", "tests", "fake_salesforce", "fake_sf.py")
    with tempfile.TemporaryDirectory() as tmp:
        portfile = os.path.join(tmp, "port")
        log = open(os.path.join(tmp, "fake.log"), "w")
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, fake, "--port-file", portfile, "--contacts",
                                 str(n)], stdout=log, stderr=log)
        try:
            while not os.path.exists(portfile):
                if proc.poll() is not None:
                    sys.exit("the fake Salesforce failed: see its log")
                time.sleep(0.2)
            seeded = time.monotonic() - t0
            port = int(open(portfile).read())
            config = os.path.join(tmp, "optsync.toml")
            with open(config, "w") as f:
                f.write('[salesforce]\nlogin_url = "http://localhost:%d"\n'
                        'auth = "client_credentials"\nclient_id = "fake-client-id"\n'
                        'objects = ["Contact"]\ntimeout = "600s"\n[state]\npath = "%s/state"\n'
                        'map_size = "64MiB"\n[log]\nlevel = "warn"\n'
                        '[[purposes]]\nname = "newsletter"\nbasis = "consent"\n'
                        'salesforce = { field = "Newsletter_Opt_Out__c" }\n'
                        '[[purposes]]\nname = "events"\nbasis = "soft_opt_in"\n'
                        'salesforce = { field = "Events_Opt_Out__c" }\n' % (port, tmp))
            env = dict(os.environ, OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret")
            t1 = time.monotonic()
            child = subprocess.Popen([optsync, "-c", config, "sync", "--once"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            peak = {"RssAnon": 0, "RssFile": 0}
            while True:
                pid, status, ru = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                try:
                    with open("/proc/%d/status" % child.pid) as f:
                        for line in f:
                            k = line.split(":")[0]
                            if k in peak:
                                peak[k] = max(peak[k], int(line.split()[1]))
                except OSError:
                    pass
                time.sleep(0.02)
            wall = time.monotonic() - t1
            if status != 0:
                sys.exit("optsync failed: " + child.stderr.read().decode())
            print("bench/sync-pull: first full pull of %d Contacts (fake seeded in %.0f s)" %
                  (n, seeded))
            print("  wall:     %.1f s, %.0f records/s (the fake builds the pages in Python)" %
                  (wall, n / wall))
            print("  optsync:  %.1f CPU s (%.1f user + %.1f kernel): %.2f per 100,000 records"
                  "   target <= 1.2" %
                  (ru.ru_utime + ru.ru_stime, ru.ru_utime, ru.ru_stime,
                   (ru.ru_utime + ru.ru_stime) * 100000 / n))
            print("  peak RSS: %.1f MiB (all of it)" % (ru.ru_maxrss / 1024.0))
            print("  peak RssAnon: %.1f MiB (private memory)   target < 64" %
                  (peak["RssAnon"] / 1024.0))
            print("  peak RssFile: %.1f MiB (the ledger's map pages and the binary, file-backed)"
                  % (peak["RssFile"] / 1024.0))
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


if __name__ == "__main__":
    main()
