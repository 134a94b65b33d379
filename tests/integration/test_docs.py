#!/usr/bin/env python3
"""The configuration reference in the README and config.example.toml name
every key optsync knows (the effective configuration `config check` prints),
and nothing else.

Usage: test_docs.py OPTSYNC SOURCE_DIR"""
import json
import os
import re
import subprocess
import sys


def keys_of(settings, prefix=""):
    for k, v in settings.items():
        if isinstance(v, dict) and k in ("fields", "values"):
            yield prefix + k + ".*"
        elif isinstance(v, dict):
            yield from keys_of(v, prefix + k + ".")
        elif k in ("admins", "purposes") or prefix in ("admins.", "purposes.") or \
                prefix + k == "api.clients":
            continue
        else:
            yield prefix + k


def main():
    optsync, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    p = subprocess.run([optsync, "-c", os.path.join(src, "config.example.toml"), "config",
                        "check", "--json"], capture_output=True, text=True)
    settings = json.loads(p.stdout)["settings"]
    settings.pop("admins", None)
    settings.pop("purposes", None)
    keys = set(keys_of(settings))
    readme = open(os.path.join(src, "README.md")).read()
    table = readme[readme.index("| key | default | meaning |"):]
    table = table[:table.index("\n\n")]
    documented = set(re.findall(r"^\| `([a-z_.*]+)` \|", table, re.M)) - {"admins", "purposes",
                                                                        "api.clients"}
    example = open(os.path.join(src, "config.example.toml")).read()
    # optional keys left unset are not printed by config check; the example
    # file names them (commented out)
    for k in list(documented - keys):
        if re.search(r"^# %s = " % re.escape(k.split(".")[-1]), example, re.M):
            keys.add(k)
    failed = 0
    for k in sorted(keys - documented):
        print("FAIL: %s is not in the README's configuration reference" % k)
        failed += 1
    for k in sorted(documented - keys):
        print("FAIL: the README documents %s, which optsync does not know" % k)
        failed += 1
    for k in sorted(keys):
        name = k.split(".")[-1]
        if name != "*" and not re.search(r"^#? ?%s = " % re.escape(name), example, re.M):
            print("FAIL: %s is not in config.example.toml" % k)
            failed += 1
    print("%d passed, %d failed" % (len(keys) - failed if failed < len(keys) else 0, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
