#!/usr/bin/env python3
"""bench/bulk: rows per second into the ledger for a 100,000-row bulk file
(1% bad rows), excluding Salesforce: `optsync contact set --from FILE` on a
new ledger, the same file again (every row unchanged), and `optsync optout
--from FILE` for a 100,000-email suppression list. Each figure is the whole
command: start, CSV parsing, validation, ledger transactions of 2,000 and
their durable commits. Target (issue 9): >= 50,000 rows/s.

usage: bulk.py OPTSYNC [ROWS] [DIR]   (DIR: where the ledger goes; a new
                                       folder in /tmp by default)"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def timed(cmd, env, ok=(0,)):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in ok:
        sys.exit("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, p.stderr))
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return json.loads(p.stdout), wall, cpu, r1.ru_maxrss


def main():
    optsync = os.path.abspath(sys.argv[1])
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    base = sys.argv[3] if len(sys.argv) > 3 else None
    tmp = tempfile.mkdtemp(prefix="optsync-bench-bulk-", dir=base)
    try:
        config = os.path.join(tmp, "optsync.toml")
        with open(config, "w") as f:
            f.write('[salesforce]\nlogin_url = "http://localhost:9"\nauth = "client_credentials"\n'
                    'client_id = "bench"\n[state]\npath = "%s/state"\n[log]\nlevel = "warn"\n'
                    % tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTSYNC_")}
        env["OPTSYNC_SALESFORCE_CLIENT_SECRET"] = "bench"
        path = os.path.join(tmp, "bulk.csv")
        with open(path, "w") as f:
            f.write("email,authorization,consent_date,purpose,source\n")
            for i in range(rows):
                if i % 100 == 7:
                    f.write("not-an-email-%d,contract,,,import\n" % i)
                elif i % 3 == 0:
                    f.write("person%d@company%d.example,consent,2025-06-01,"
                            "\"Newsletter, monthly\",import\n" % (i, i % 5000))
                else:
                    f.write("person%d@company%d.example,legitimate_interest,,,import\n"
                            % (i, i % 5000))
        listing = os.path.join(tmp, "list.txt")
        with open(listing, "w") as f:
            for i in range(rows):
                f.write("optout%d@company%d.example\n" % (i, i % 5000))
        cmd = [optsync, "-c", config]
        print("bench/bulk: %d rows (1%% invalid), ledger in %s" % (rows, tmp))
        # exit 1: the invalid rows were rejected, as they should be
        r, wall, cpu, _ = timed(cmd + ["contact", "set", "--from", path, "--json"], env, (1,))
        print("  contact set --from, new persons: %.0f rows/s (%.2f s wall, %.2f CPU s; "
              "%d changed, %d invalid)   target >= 50000"
              % (rows / wall, wall, cpu, r["changed"], r["invalid"]))
        r, wall, cpu, _ = timed(cmd + ["contact", "set", "--from", path, "--json"], env, (1,))
        print("  contact set --from, same file again: %.0f rows/s (%.2f s wall, %d unchanged)"
              % (rows / wall, wall, r["unchanged"]))
        r, wall, cpu, rss = timed(cmd + ["optout", "--from", listing, "--json"], env)
        print("  optout --from, new persons: %.0f rows/s (%.2f s wall, %.2f CPU s; %d opted out)"
              % (rows / wall, wall, cpu, r["opted_out"]))
        print("  peak RSS of the largest command: %.1f MiB" % (rss / 1024))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
