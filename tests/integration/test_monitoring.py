#!/usr/bin/env python3
"""deploy/monitoring: the alert rules pass promtool, the PrometheusRule holds
exactly the plain file's rules, and the rules and the Grafana dashboard use
only metrics that a real `optsync run` exports (and Prometheus's own `up`).

Usage: test_monitoring.py OPTSYNC FAKE_SF_PY SOURCE_DIR"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_api  # noqa: E402  (the Sidecar fixture)

SRC = None
BUILTIN = {"up"}  # Prometheus's own series


def names_in(expr):
    return set(re.findall(r"\b(optsync_[a-z_]+)\b", expr)) | \
        {n for n in BUILTIN if re.search(r"\b%s\{" % n, expr)}


class Monitoring(unittest.TestCase):
    def setUp(self):
        self.dir = os.path.join(SRC, "deploy", "monitoring")
        self.rules = open(os.path.join(self.dir, "optsync-alerts.rules.yaml")).read()

    def test_rules_pass_promtool_and_agree(self):
        p = subprocess.run(["promtool", "check", "rules",
                            os.path.join(self.dir, "optsync-alerts.rules.yaml")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS", p.stdout)
        # the operator's resource: the same groups, two spaces in under spec
        op = open(os.path.join(self.dir, "prometheusrule.yaml")).read()
        self.assertIn("kind: PrometheusRule", op)
        spec = op[op.index("spec:\n") + 6:]
        dedented = "\n".join(l[2:] if l.startswith("  ") else l for l in spec.splitlines())
        plain = self.rules[self.rules.index("groups:"):]
        self.assertEqual(dedented.strip(), plain.strip(),
                         "prometheusrule.yaml differs from optsync-alerts.rules.yaml")
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(dedented)
            f.flush()
            p = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for alert in ("OptsyncSyncFailing", "OptsyncParkedPushes", "OptsyncOpenConflicts",
                      "OptsyncWebhookStalled", "OptsyncCursorLag"):
            self.assertIn("alert: " + alert, self.rules)

    def test_only_exported_metrics_are_used(self):
        used = set()
        for expr in re.findall(r"expr: >-\n((?:\s{10}.*\n)+)|expr: (.*)\n", self.rules):
            used |= names_in(expr[0] + expr[1])
        dash = json.load(open(os.path.join(self.dir, "grafana-dashboard.json")))
        for panel in dash["panels"]:
            self.assertTrue(panel["targets"], panel["title"])
            for t in panel["targets"]:
                used |= names_in(t["expr"])
        self.assertGreaterEqual(len(used), 12)
        # a real optsync run, with a backup taken, its webhook and a cycle done
        bdir = tempfile.mkdtemp()
        s = test_api.Sidecar(state_extra='backup_dir = "%s"\n' % bdir)
        try:
            def ready():
                m = s.get("/metrics", token=None)[1]
                return ("optsync_last_backup_timestamp_seconds" in m and
                        "optsync_last_success_timestamp_seconds" in m)
            self.assertTrue(s.wait(ready, 30))
            s.get("/v1/contacts/nobody%40example.com")  # a request and its duration
            text = s.get("/metrics", token=None)[1]
        finally:
            s.close()
            for f in os.listdir(bdir):
                os.unlink(os.path.join(bdir, f))
            os.rmdir(bdir)
        exported = {re.split(r"[{ ]", l)[0] for l in text.splitlines()
                    if l and not l.startswith("#")}
        missing = sorted(n for n in used - BUILTIN if n not in exported)
        self.assertEqual(missing, [], "used by the rules or the dashboard, not exported")


if __name__ == "__main__":
    test_api.OPTSYNC, test_api.FAKE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    SRC = os.path.abspath(sys.argv[3])
    h = subprocess.run([test_api.OPTSYNC, "admin", "hash-token"],
                       input=test_api.ADMIN_TOKEN + "\n", capture_output=True, text=True,
                       check=True)
    test_api.ADMIN_HASH = h.stdout.split('"')[1]
    prog = unittest.main(argv=sys.argv[:1], verbosity=2, exit=False)
    r = prog.result
    print("%d passed, %d failed" % (r.testsRun - len(r.failures) - len(r.errors),
                                    len(r.failures) + len(r.errors)))
    sys.exit(0 if r.wasSuccessful() else 1)
