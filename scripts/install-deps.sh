#!/usr/bin/env bash
# Install the Debian 12 packages optsync needs to build, test and run
# (prometheus brings promtool, which checks the alert rules in the tests;
# chromium runs the unsubscribe page in a real browser; libidn2 and
# libunistring normalize email addresses: IDNA2008 domains, NFC, case).
# Idempotent and non-interactive; does nothing when all are present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libcurl4-openssl-dev libcjson-dev liblmdb-dev lmdb-utils libssl-dev libmicrohttpd-dev
  libidn2-dev libunistring-dev
  libcmocka-dev python3 ca-certificates openssl curl yamllint groff-base valgrind
  prometheus chromium
)
# Node.js validates the Kubernetes manifests; machines that have it already
# (from elsewhere than Debian) keep theirs
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
if [ "${OPTSYNC_FUZZ_DEPS:-0}" = 1 ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
