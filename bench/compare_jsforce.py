#!/usr/bin/env python3
"""bench/compare_jsforce.py: optsync's Salesforce client against npm's jsforce
(the client a Node user would reach for), each reading the same fake org of N
Contacts (default 100,000) into a file of JSON lines. Prints each one's CPU
seconds and peak RSS (from wait4: the fake is not counted) and the ratios.

usage: compare_jsforce.py [N]   (build first; installs jsforce with npm ci)"""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOQL = ("SELECT Id, Email, FirstName, LastName, HasOptedOutOfEmail, Authorization_Type__c, "
        "Consent_Date__c, Processing_Purpose__c, Source_Type__c, Source_Other__c, "
        "Authorization_Other__c, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id")


def measure(argv, env=None):
    t = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    if status:
        sys.exit("%s failed: %s" % (argv[0], p.stderr.read().decode()[-500:]))
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, time.monotonic() - t


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    if not os.path.isdir(os.path.join(HERE, "jsforce", "node_modules", "jsforce")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=os.path.join(HERE, "jsforce"), check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        portfile = os.path.join(tmp, "port")
        fake = subprocess.Popen([sys.executable, os.path.join(HERE, "..", "tests", "fake_salesforce",
                                                              "fake_sf.py"),
                                 "--port-file", portfile, "--contacts", str(n)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not os.path.exists(portfile):
                time.sleep(0.2)
            url = "http://localhost:%d" % int(open(portfile).read())
            env = dict(os.environ, OPTSYNC_BENCH_SF_URL=url)
            ours = measure([os.path.join(HERE, "..", "build", "bench", "salesforce-pull"), str(n),
                            os.path.join(tmp, "optsync.jsonl")], env)
            theirs = measure(["node", os.path.join(HERE, "jsforce", "pull.mjs"), url,
                              os.path.join(tmp, "jsforce.jsonl"), SOQL])
            lines = [sum(1 for _ in open(os.path.join(tmp, f)))
                     for f in ("optsync.jsonl", "jsforce.jsonl")]
        finally:
            fake.terminate()
            fake.wait(30)
    print("bench/compare_jsforce: %d Contacts from the fake Salesforce into a file "
          "(records written: optsync %d, jsforce %d)" % (n, lines[0], lines[1]))
    print("  optsync client: %.2f CPU s, peak RSS %.1f MiB, %.1f s wall" % ours)
    print("  jsforce:        %.2f CPU s, peak RSS %.1f MiB, %.1f s wall" % theirs)
    print("  ratios (jsforce / optsync): CPU %.1fx, peak RSS %.1fx" %
          (theirs[0] / ours[0], theirs[1] / ours[1]))


if __name__ == "__main__":
    main()
