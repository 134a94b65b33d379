#!/usr/bin/env bash
# Install what is needed, build, and run optsync's main job on an embedded
# default. The full demo against the bundled fake Salesforce arrives with
# the sync engine; until then this builds optsync and checks the example
# configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
echo
echo "== optsync $(./build/optsync --version | cut -d' ' -f2) built. Checking config.example.toml:"
./build/optsync -c config.example.toml config check
