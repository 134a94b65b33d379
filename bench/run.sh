#!/usr/bin/env bash
# Run every benchmark and write a table of their figures to bench/results.md
# (and stdout). QUICK=1 uses smaller sizes. Build first (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
opt="$PWD/build/optsync"
if [ "${QUICK:-0}" = 1 ]; then persons=100000 pull=100000 drain=100000 api_secs=5; else
	persons=1000000 pull=1000000 drain=1000000 api_secs=10; fi
out=bench/results.md
{
	echo "# Benchmark results"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, optsync $("$opt" --version | cut -d' ' -f2)"
	echo
	echo "| command | figures |"
	echo "|---|---|"
} >"$out"
row() {
	local cmd="$1"
	echo "== $cmd" >&2
	local figures
	figures=$(bash -c "$cmd" 2>&1 | grep -E '^  ' | sed 's/^ *//; s/|/\\|/g' | paste -sd ';' - |
		sed 's/;/<br>/g')
	echo "| \`$cmd\` | $figures |" >>"$out"
}
row "build/bench/ledger $persons"
row "build/bench/salesforce-pull 100000"
row "python3 bench/sync_cost.py $opt"
row "python3 bench/sync_pull.py $opt $pull"
row "python3 bench/sync_records.py $opt 100000 10000"
row "python3 bench/sync_drain.py $opt $drain"
row "bash bench/api.sh $opt 100000 $api_secs 8"
row "bash bench/api.sh $opt 100000 $api_secs 32"
row "python3 bench/bulk.py $opt 100000"
row "python3 bench/compare_jsforce.py 100000"
cat "$out"
