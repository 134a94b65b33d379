#!/usr/bin/env python3
"""bench/sync-pull: optsync's first full pull of N records (default 1,000,000)
from the fake Salesforce, into an empty ledger.

Prints records per second, optsync's peak resident memory (from wait4, so the
fake's memory is not counted) and its CPU time. Target (issue 5): peak RSS
under 64 MiB.

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
                        'map_size = "64MiB"\n[log]\nlevel = "warn"\n' % (port, tmp))
            env = dict(os.environ, OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret")
            t1 = time.monotonic()
            child = subprocess.Popen([optsync, "-c", config, "sync", "--once"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, ru = os.wait4(child.pid, 0)
            wall = time.monotonic() - t1
            if status != 0:
                sys.exit("optsync failed: " + child.stderr.read().decode())
            print("bench/sync-pull: first full pull of %d Contacts (fake seeded in %.0f s)" %
                  (n, seeded))
            print("  wall:     %.1f s, %.0f records/s (the fake builds the pages in Python)" %
                  (wall, n / wall))
            print("  optsync:  %.1f CPU s (%.2f per 100,000 records)" %
                  (ru.ru_utime + ru.ru_stime, (ru.ru_utime + ru.ru_stime) * 100000 / n))
            print("  peak RSS: %.1f MiB   target < 64" % (ru.ru_maxrss / 1024.0))
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


if __name__ == "__main__":
    main()
