#!/usr/bin/env bash
# Validate deploy/kubernetes: yamllint (relaxed), then the Kubernetes object
# schemas of npm's kubernetes-models plus our own unknown-field check, and,
# given the optsync binary, `optsync config check` on each ConfigMap's config.
# usage: run.sh [OPTSYNC]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
manifests="$here/../../deploy/kubernetes"
yamllint -d relaxed "$manifests"
echo "yamllint: ok"
cd "$here"
[ -d node_modules/kubernetes-models ] || npm ci --no-audit --no-fund --loglevel=error >/dev/null
# the sidecar and CronJob files, then each other pattern's folder
OPTSYNC="${1:-}" node validate.mjs "$manifests" "$manifests"/*/
