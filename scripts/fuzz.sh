#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for SECONDS (default
# 60) over its committed corpus. New inputs go to build-fuzz/corpus-*, not
# into the repository; a crash leaves crash-* in build-fuzz/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
OPTSYNC_FUZZ_DEPS=1 bash scripts/install-deps.sh
CC=clang bash scripts/build.sh build-fuzz -DOPTSYNC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang
cd build-fuzz
for target in tests/fuzz_*; do
  [ -x "$target" ] || continue
  name="$(basename "$target")"
  case "$name" in *_corpus) continue ;; esac
  seed="../tests/fuzz/corpus/${name#fuzz_}"
  work="corpus-${name#fuzz_}"
  mkdir -p "$work"
  echo "== $name for ${secs}s"
  "$target" -max_total_time="$secs" -print_final_stats=1 "$work" "$seed" 2>&1 | \
    grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|Done' || true
  ls crash-* leak-* timeout-* >/dev/null 2>&1 && { echo "fuzz: $name found a failure" >&2; exit 1; }
done
echo "fuzz: no crash"
