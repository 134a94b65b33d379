#!/usr/bin/env bash
# Configure and build into DIR (default build/) with warnings as errors.
# Extra arguments go to cmake, e.g. -DOPTSYNC_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build}"
shift || true
cmake -S . -B "$dir" -DOPTSYNC_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
