#!/usr/bin/env bash
# The repository stands alone: no tracked file may read or name a path
# outside it (the folder beside the checkout that the developers have, or
# the machine's work tree). The patterns are written with bracket classes so
# that this file does not match itself.
set -euo pipefail
cd "$(dirname "$0")/.."
patterns=(
  -e '[.][.]/shared'                                       # the folder beside the repository
  -e '(^|[^a-z_])shared/(SPEC|STYLE|salesforce-notes|toml-test)'  # its files, named without ../
  -e '/wor[k]/'                                            # the machine's work tree
)
if hits=$(git grep -nIE "${patterns[@]}" -- . ':!scripts/check-standalone.sh'); then
  echo "check-standalone: these tracked lines name a path outside the repository:" >&2
  echo "$hits" >&2
  echo "check-standalone: 0 passed, 1 failed" >&2
  exit 1
fi
echo "check-standalone: no tracked file names a path outside the repository"
