#!/usr/bin/env bash
# The direction of dependencies (docs/architecture.md): a folder of src/
# includes only the folders below it, and inside src/connector/ the layers
# point one way (rules <- core <- mappings <- sync <- the use cases).
# Fails naming each include against the direction. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import os, re, sys

# what each folder of src/ may include besides itself and system headers
allowed = {
    "util": set(),
    "config": {"util"},
    "state": {"util"},
    "salesforce": {"util"},
    "links": {"util", "config"},
    "public": {"util", "config"},
    "connector": {"util", "config", "state", "salesforce", "links"},
    "api": {"util", "config", "connector", "public", "links"},
    "cli": {"util", "config", "connector", "api"},
}
# inside src/connector: what a layer's files may include of the connector
# (None: any). rules/ is pure: the public types, the ledger's value types,
# nothing of a transaction or of Salesforce.
conn_layers = {
    "rules": {"connector/connector.h", "connector/rules/"},
    "core": {"connector/connector.h", "connector/internal.h", "connector/rules/",
             "connector/core/"},
    "mappings": {"connector/connector.h", "connector/internal.h", "connector/rules/",
                 "connector/core/", "connector/mappings/"},
    "sync": {"connector/connector.h", "connector/internal.h", "connector/rules/",
             "connector/core/", "connector/mappings/", "connector/sync/"},
}
pure_forbidden = re.compile(r"\bstruct ledger_txn\b|\bstruct ledger\b|\bsf_[a-z_]+\(|\bledger_(write|read|[a-z_]*_(get|put|delete|add))\(")
inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
bad = []
for root, _, files in os.walk("src"):
    for f in sorted(files):
        if not f.endswith((".c", ".h")):
            continue
        path = os.path.join(root, f)
        parts = os.path.relpath(path, "src").split(os.sep)
        top = parts[0]
        layer = parts[1] if top == "connector" and len(parts) > 2 else None
        text = open(path, encoding="utf-8").read()
        for n, line in enumerate(text.split("\n"), 1):
            m = inc.match(line)
            if not m:
                continue
            target = m.group(1)
            ttop = target.split("/")[0]
            if "/" not in target:
                continue  # a header of its own folder
            if ttop != top and ttop not in allowed.get(top, set()):
                bad.append("%s:%d: %s includes %s (%s may include: %s)" % (
                    path, n, top, target, top, ", ".join(sorted(allowed[top])) or "nothing"))
            if layer in conn_layers and ttop == "connector":
                ok = any(target == a or (a.endswith("/") and target.startswith(a))
                         for a in conn_layers[layer])
                if not ok:
                    bad.append("%s:%d: connector/%s includes %s, a layer above it" % (
                        path, n, layer, target))
            if layer == "rules" and ttop not in ("connector", "state", "util"):
                bad.append("%s:%d: connector/rules is pure, yet includes %s" % (path, n, target))
        if layer == "rules":
            for n, line in enumerate(text.split("\n"), 1):
                if pure_forbidden.search(line):
                    bad.append("%s:%d: connector/rules is pure (no ledger transaction, no "
                               "Salesforce call): %s" % (path, n, line.strip()))
for b in bad:
    print(b, file=sys.stderr)
if bad:
    sys.exit("check-layers: %d include(s) against the direction" % len(bad))
print("check-layers: every include follows the direction")
PY
