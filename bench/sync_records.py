#!/usr/bin/env python3
"""bench/sync-records: a person with 10,000 Salesforce records (issue #24).

A first full pull of N Contacts (default 100,000, each its own person) and
10,000 Leads that all carry one address (info@bigco.example, a role
address), into an empty ledger, against the same pull where the 10,000
Leads have 10,000 addresses: the CPU per 100,000 records must be the same
(a person's records are an index of their own, each linked once). Then one
of the 10,000 Leads is opted out in Salesforce, and the next cycle spreads
the opt-out to the 9,999 others (rule 1): the collection calls it takes
against the minimum, ceil(9,999 / 200) = 50. Last, what `contact show` and
`contact export` cost for that person (they list every record).

The config maps two purposes to checkboxes, as bench/sync_pull.py does.

The two first pulls are run RUNS times each, in turn (this machine's CPU
figures move by 20% from run to run); the ratio is of their medians.

usage: sync_records.py [OPTSYNC [N [RECORDS [RUNS]]]]   (OPTSYNC defaults to build/optsync)"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BIG = "info@bigco.example"


class Org:
    def __init__(self, optsync, tmp, contacts):
        fake = os.path.join(HERE, "..", "tests", "fake_salesforce", "fake_sf.py")
        portfile = os.path.join(tmp, "port")
        self.log = open(os.path.join(tmp, "fake.log"), "w")
        self.proc = subprocess.Popen([sys.executable, fake, "--port-file", portfile,
                                      "--contacts", str(contacts), "--seed", "3"],
                                     stdout=self.log, stderr=self.log)
        while not os.path.exists(portfile):
            if self.proc.poll() is not None:
                sys.exit("the fake Salesforce failed: see its log")
            time.sleep(0.2)
        with open(portfile) as f:
            self.port = int(f.read())
        self.optsync = optsync
        self.config = os.path.join(tmp, "optsync.toml")
        with open(self.config, "w") as f:
            f.write('[salesforce]\nlogin_url = "http://localhost:%d"\n'
                    'auth = "client_credentials"\nclient_id = "fake-client-id"\n'
                    'objects = ["Contact", "Lead"]\ntimeout = "600s"\n[state]\npath = "%s/state"\n'
                    'map_size = "64MiB"\n[log]\nlevel = "warn"\n'
                    '[[purposes]]\nname = "newsletter"\nbasis = "consent"\n'
                    'salesforce = { field = "Newsletter_Opt_Out__c" }\n'
                    '[[purposes]]\nname = "events"\nbasis = "soft_opt_in"\n'
                    'salesforce = { field = "Events_Opt_Out__c" }\n' % (self.port, tmp))
        self.env = dict(os.environ, OPTSYNC_SALESFORCE_CLIENT_SECRET="fake-client-secret")

    def ctl(self, method, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/__control/%s" % (self.port, path),
                                     method=method,
                                     data=json.dumps(body).encode() if body else None)
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read() or b"null")

    def close(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def run_cpu(org, *args):
    """optsync's output and CPU seconds (user + kernel, from wait4) for one
    command; its output goes to files, which never fill as a pipe does."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        child = subprocess.Popen([org.optsync, "-c", org.config, *args], env=org.env,
                                 stdout=out, stderr=err)
        _, status, ru = os.wait4(child.pid, 0)
        wall = time.monotonic() - t0
        child.returncode = status
        out.seek(0)
        err.seek(0)
        if status != 0:
            sys.exit("optsync %s failed: %s" % (" ".join(args), err.read().decode()))
        return out.read(), ru.ru_utime + ru.ru_stime, wall


def first_pull(optsync, n, records, one_address):
    with tempfile.TemporaryDirectory() as tmp:
        org = Org(optsync, tmp, n)
        try:
            for at in range(0, records, 2000):
                org.ctl("POST", "records", {"object": "Lead", "records": [
                    {"Email": BIG if one_address else "lead%06d@bigco.example" % i,
                     "LastName": "Lead %d" % i, "Company": "BigCo"}
                    for i in range(at, min(records, at + 2000))]})
            out, cpu, wall = run_cpu(org, "sync", "--once", "--json")
            report = json.loads(out)
            pulled = sum(o["records"] for o in report["pulled"].values())
            result = {"cpu": cpu, "wall": wall, "pulled": pulled,
                      "per100k": cpu * 100000 / pulled}
            if not one_address:
                return result
            show = json.loads(run_cpu(org, "contact", "show", BIG, "--json")[0])
            if len(show["salesforce_records"]) != records:
                sys.exit("contact show lists %d records, not %d" %
                         (len(show["salesforce_records"]), records))
            # the spread: one Lead of the address opted out in Salesforce
            leads = org.ctl("GET", "records?object=Lead&email=" + BIG)["records"]
            time.sleep(1.1)
            org.ctl("POST", "records", {"object": "Lead", "records": [
                {"Id": leads[0]["Id"], "HasOptedOutOfEmail": True}]})
            org.ctl("POST", "calls")
            out, cpu, wall = run_cpu(org, "sync", "--once", "--json")
            calls = org.ctl("GET", "calls")
            report = json.loads(out)
            out_now = sum(1 for r in org.ctl("GET", "records?object=Lead&email=" + BIG)["records"]
                          if r["HasOptedOutOfEmail"])
            result["spread"] = {"cpu": cpu, "wall": wall,
                                "collections": calls.get("collections", 0),
                                "queries": calls.get("query", 0) + calls.get("query_more", 0),
                                "succeeded": report["pushes"]["succeeded"],
                                "opted_out_in_salesforce": out_now}
            org.ctl("POST", "calls")
            run_cpu(org, "sync", "--once")
            result["spread"]["next_collections"] = org.ctl("GET", "calls").get("collections", 0)
            # what the outputs of that person cost
            outs = {}
            for name, args in (("show", ("contact", "show", BIG, "--json")),
                               ("export json", ("contact", "export", BIG, "--json")),
                               ("export csv", ("contact", "export", BIG, "--format", "csv"))):
                out, cpu, wall = run_cpu(org, *args)
                outs[name] = (len(out), cpu, wall)
            result["outputs"] = outs
            return result
        finally:
            org.close()


def main():
    optsync = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else \
        os.path.join(HERE, "..", "build", "optsync")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    records = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    bigs, bases = [], []
    for i in range(runs):
        bigs.append(first_pull(optsync, n, records, True))
        bases.append(first_pull(optsync, n, records, False))
    big = bigs[0]

    def spread(rs):
        v = sorted(r["per100k"] for r in rs)
        return v, v[len(v) // 2]
    bv, bm = spread(bigs)
    av, am = spread(bases)
    print("bench/sync-records: first full pull of %d Contacts + %d Leads (%d run%s each)" %
          (n, records, runs, "" if runs == 1 else "s"))
    print("  %d Leads on one address:   %s CPU s per 100,000 records (%d records a pull)" %
          (records, ", ".join("%.2f" % x for x in bv), big["pulled"]))
    print("  %d Leads, %d addresses: %s CPU s per 100,000 records" %
          (records, records, ", ".join("%.2f" % x for x in av)))
    print("  ratio of the medians: %.2f (one person of %d records / as many persons)" %
          (bm / am, records))
    s = big["spread"]
    minimum = -(-(records - 1) // 200)
    print("  opt-out of one of the %d Leads in Salesforce, spread to the others in one cycle:" %
          records)
    print("    %d collections (minimum %d: %.3f x) + %d query pages; %d pushes landed; "
          "%d of %d Leads opted out in Salesforce; %.2f CPU s" %
          (s["collections"], minimum, s["collections"] / minimum, s["queries"], s["succeeded"],
           s["opted_out_in_salesforce"], records, s["cpu"]))
    print("    next cycle (reads the writes back): %d collections" % s["next_collections"])
    for name, (size, cpu, wall) in big["outputs"].items():
        print("  contact %s of that person: %d bytes, %.2f CPU s, %.2f s" %
              (name, size, cpu, wall))


if __name__ == "__main__":
    main()
