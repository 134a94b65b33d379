#!/usr/bin/env bash
# Check that the repository stands alone, install what is needed, build, and
# run every test: first a normal build,
# then the Release binary the container ships (warnings as errors),
# then the same tests under AddressSanitizer and UndefinedBehaviorSanitizer,
# then the unit tests and fuzz-corpus runners under valgrind memcheck,
# then every libFuzzer target for 10 s (OPTSYNC_TEST_FUZZ_SECONDS).
# OPTSYNC_TEST_SANITIZE=0 / OPTSYNC_TEST_VALGRIND=0 / OPTSYNC_TEST_FUZZ=0
# skip those passes.
set -euo pipefail
cd "$(dirname "$0")/.."
# nothing tracked may name a path outside the repository (a fresh clone has
# nothing beside it)
bash scripts/check-standalone.sh
# every include follows the direction of docs/architecture.md
bash scripts/check-layers.sh
bash scripts/install-deps.sh
# the browser tests' driver and accessibility checker (exact versions in
# tests/browser/package.json), from the npm registry
(cd tests/browser && npm install --no-package-lock --no-audit --no-fund --silent)
jobs="$(nproc)"

bash scripts/build.sh build
(cd build && ctest --output-on-failure -j"$jobs")

# the binary as the image ships it (Release, -O3): the optimizer sees more
# there and -Werror must hold for it too
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DOPTSYNC_WERROR=ON -DOPTSYNC_TESTS=OFF \
  -DOPTSYNC_BENCH=OFF >/dev/null
cmake --build build-release -j"$jobs" --target optsync

if [ "${OPTSYNC_TEST_SANITIZE:-1}" = 1 ]; then
  bash scripts/build.sh build-asan -DOPTSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1 ctest --output-on-failure -j"$jobs")
fi

if [ "${OPTSYNC_TEST_VALGRIND:-1}" = 1 ]; then
  # no leak, no invalid access: every cmocka test and fuzz corpus runner
  vg=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect
      --errors-for-leak-kinds=definite,indirect --error-exitcode=99)
  failed=0 passed=0
  for t in build/tests/test_*; do
    if CMOCKA_MESSAGE_OUTPUT=stdout "${vg[@]}" "$t" >/tmp/optsync-vg.log 2>&1; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); echo "valgrind: $t failed"; tail -30 /tmp/optsync-vg.log
    fi
  done
  for t in build/tests/fuzz_*_corpus; do
    name=$(basename "$t" _corpus); name=${name#fuzz_}
    if "${vg[@]}" "$t" "tests/fuzz/corpus/$name" >/tmp/optsync-vg.log 2>&1; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1)); echo "valgrind: $t failed"; tail -30 /tmp/optsync-vg.log
    fi
  done
  echo "valgrind memcheck: $passed passed, $failed failed"
  [ "$failed" = 0 ]
fi

if [ "${OPTSYNC_TEST_FUZZ:-1}" = 1 ]; then
  # the CI mode of the fuzz targets: each for a short time (scripts/fuzz.sh
  # with a longer time, or -runs=10000000 by hand, for the long runs)
  bash scripts/fuzz.sh "${OPTSYNC_TEST_FUZZ_SECONDS:-10}"
fi
