#!/usr/bin/env bash
# Install what is needed, build, and run every test: first a normal build,
# then the same tests under AddressSanitizer and UndefinedBehaviorSanitizer.
# OPTSYNC_TEST_SANITIZE=0 skips the sanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs="$(nproc)"

bash scripts/build.sh build
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${OPTSYNC_TEST_SANITIZE:-1}" = 1 ]; then
  bash scripts/build.sh build-asan -DOPTSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1 ctest --output-on-failure -j"$jobs")
fi
