#!/usr/bin/env bash
# Validate deploy/kubernetes: yamllint (relaxed), then the Kubernetes object
# schemas of npm's kubernetes-models plus our own unknown-field check.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
manifests="$here/../../deploy/kubernetes"
yamllint -d relaxed "$manifests"
echo "yamllint: ok"
cd "$here"
[ -d node_modules/kubernetes-models ] || npm ci --no-audit --no-fund --loglevel=error >/dev/null
node validate.mjs "$manifests"
