#!/usr/bin/env bash
# The randomized simulation of both sides (tests/sim): the real optsync
# against the fake Salesforce, checked against the reference model of the
# sync rules. Builds nothing: it runs build/optsync, or the binary named by
# --optsync PATH (or $OPTSYNC).
#
#   bash scripts/sim.sh --histories N [--seed S]      more or longer runs
#   bash scripts/sim.sh --seed S --history H [--keep 0,3,7]   replay one
#   bash scripts/sim.sh --without many-records,email-change   switch off the
#                                     operations of a defect not yet fixed
#   bash scripts/sim.sh --help        every option and switch
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${OPTSYNC:-$root/build/optsync}"
for a in "$@"; do
  case "$a" in --optsync|--optsync=*) bin="" ;; esac
done
if [ -n "$bin" ]; then
  if [ ! -x "$bin" ]; then
    echo "sim.sh: no optsync at $bin: build it first (cmake --build build --target optsync) or pass --optsync PATH" >&2
    exit 2
  fi
  set -- --optsync "$bin" "$@"
fi
exec python3 "$root/tests/sim/sim.py" --fake "$root/tests/fake_salesforce/fake_sf.py" "$@"
