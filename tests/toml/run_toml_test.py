#!/usr/bin/env python3
"""Run toml-decoder over the toml-test cases that apply to TOML 1.0.0.

Usage: run_toml_test.py DECODER TOML_TEST_DIR [--min-percent 100] [--cases 709]

Valid cases must decode to the expected tagged JSON (floats and date-times
compared by value); invalid cases must be rejected with exit status 1.
Prints the pass figures and every failing case; exits 1 when either figure
is under the minimum, or when the list does not hold the expected number of
cases (a shortened copy must not pass unnoticed)."""
import argparse
import datetime
import json
import math
import os
import re
import subprocess
import sys


def norm_datetime(tag, s):
    s = s.strip()
    if tag == "time-local":
        return norm_time(s)
    if tag == "date-local":
        return s
    date, _, rest = re.split(r"([Tt ])", s, maxsplit=1)
    m = re.match(r"(\d\d:\d\d:\d\d(?:\.\d+)?)(.*)$", rest)
    t, off = m.group(1), m.group(2)
    if tag == "datetime-local":
        return (date, norm_time(t))
    off = off.upper()
    if off in ("Z", "+00:00", "-00:00"):
        minutes = 0
    else:
        sign = -1 if off[0] == "-" else 1
        minutes = sign * (int(off[1:3]) * 60 + int(off[4:6]))
    d = datetime.datetime.fromisoformat(date + "T" + t.split(".")[0])
    d -= datetime.timedelta(minutes=minutes)
    return (d.isoformat(), norm_frac(t))


def norm_frac(t):
    return t.split(".")[1].rstrip("0") if "." in t else ""


def norm_time(t):
    return (t.split(".")[0], norm_frac(t))


def same(a, b):
    if isinstance(b, dict) and set(b.keys()) == {"type", "value"} and isinstance(b["value"], str):
        if not (isinstance(a, dict) and a.get("type") == b["type"]):
            return False
        tag, av, bv = b["type"], a.get("value"), b["value"]
        if tag == "float":
            x, y = float(av), float(bv)
            if math.isnan(y):
                return math.isnan(x)
            return x == y
        if tag == "integer":
            return int(av) == int(bv)
        if tag in ("datetime", "datetime-local", "date-local", "time-local"):
            try:
                return norm_datetime(tag, av) == norm_datetime(tag, bv)
            except Exception:
                return False
        return av == bv
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("decoder")
    ap.add_argument("suite")
    ap.add_argument("--min-percent", type=float, default=100.0)
    ap.add_argument("--cases", type=int, default=709)
    args = ap.parse_args()
    with open(os.path.join(args.suite, "files-toml-1.0.0")) as f:
        files = [l.strip() for l in f if l.strip().endswith(".toml")]
    if len(files) != args.cases:
        print("toml-test: the list names %d cases, expected %d" % (len(files), args.cases))
        return 1
    results = {"valid": [0, 0, []], "invalid": [0, 0, []]}
    for rel in files:
        kind = rel.split("/")[0]
        with open(os.path.join(args.suite, rel), "rb") as f:
            data = f.read()
        try:
            p = subprocess.run([args.decoder], input=data, capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            results[kind][1] += 1
            results[kind][2].append(rel + " (timeout)")
            continue
        r = results[kind]
        r[1] += 1
        err = p.stderr.decode(errors="replace")
        if p.returncode < 0 or p.returncode > 1 or "Sanitizer" in err or "runtime error" in err:
            r[2].append("%s (crashed: status %d)" % (rel, p.returncode))
            continue
        if kind == "invalid":
            if p.returncode == 1:
                r[0] += 1
            else:
                r[2].append(rel + " (accepted)")
            continue
        if p.returncode != 0:
            r[2].append("%s (rejected: %s)" % (rel, p.stderr.decode(errors="replace").strip()))
            continue
        with open(os.path.join(args.suite, rel[:-5] + ".json")) as f:
            want = json.load(f)
        try:
            got = json.loads(p.stdout)
        except ValueError as e:
            r[2].append("%s (bad JSON out: %s)" % (rel, e))
            continue
        if same(got, want):
            r[0] += 1
        else:
            r[2].append(rel + " (wrong value)")
    ok = True
    for kind in ("valid", "invalid"):
        passed, total, failed = results[kind]
        pct = 100.0 * passed / total if total else 0.0
        print("toml-test %s: %d/%d passed (%.1f%%)" % (kind, passed, total, pct))
        for name in failed:
            print("  FAIL %s" % name)
        if pct < args.min_percent:
            ok = False
    total_pass = results["valid"][0] + results["invalid"][0]
    total = results["valid"][1] + results["invalid"][1]
    print("%d passed, %d failed" % (total_pass, total - total_pass))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
