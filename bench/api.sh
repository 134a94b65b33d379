#!/usr/bin/env bash
# bench/api: GET /v1/contacts/{email} on a real `optsync run` over 100,000
# known persons, driven by wrk on loopback, next to nginx serving a static
# file of the same size in the same run. Prints requests/s and p99 latency
# for both. Targets (issue 6): p99 under 2 ms, at least half of nginx's rate.
#
# usage: bench/api.sh [OPTSYNC] [PERSONS] [SECONDS] [CONNECTIONS (8)]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
optsync="$(realpath "${1:-$here/../build/optsync}")"
persons="${2:-100000}"
secs="${3:-10}"
conns="${4:-8}"
command -v wrk >/dev/null && command -v nginx >/dev/null || {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
}
tmp="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; nginx -c "$tmp/nginx.conf" -s stop 2>/dev/null; rm -rf "$tmp"' EXIT

python3 "$here/../tests/fake_salesforce/fake_sf.py" --port-file "$tmp/sfport" >"$tmp/fake.log" 2>&1 &
while [ ! -s "$tmp/sfport" ]; do sleep 0.1; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/optsync.toml" <<EOF
[salesforce]
login_url = "http://localhost:$(cat "$tmp/sfport")"
auth = "client_credentials"
client_id = "fake-client-id"
[state]
path = "$tmp/state"
map_size = "256MiB"
[api]
listen = "127.0.0.1:$port"
[sync]
interval = "1h"
[log]
level = "warn"
EOF
export OPTSYNC_SALESFORCE_CLIENT_SECRET=fake-client-secret OPTSYNC_API_TOKEN=bench-token-0123456789
python3 -c "
for i in range($persons):
    print('person.number%d@company%d.example' % (i, i % 5000))" >"$tmp/emails"
"$optsync" -c "$tmp/optsync.toml" optout --from "$tmp/emails" >/dev/null
"$optsync" -c "$tmp/optsync.toml" run 2>"$tmp/run.log" &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

# a random known person per request
cat >"$tmp/random.lua" <<EOF
math.randomseed(42)
request = function()
  local i = math.random(0, $persons - 1)
  return wrk.format("GET", "/v1/contacts/person.number" .. i .. "%40company" .. (i % 5000) .. ".example")
end
EOF
size=$(curl -s -H "Authorization: Bearer $OPTSYNC_API_TOKEN" \
	"http://127.0.0.1:$port/v1/contacts/person.number12345%40company2345.example" | wc -c)
head -c "$size" /dev/urandom | base64 -w0 | head -c "$size" >"$tmp/static.json"
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$nport; location / { root $tmp; } }
}
EOF
nginx -c "$tmp/nginx.conf"

run() { wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" 2>&1; }
o=$(run -H "Authorization: Bearer $OPTSYNC_API_TOKEN" -s "$tmp/random.lua" "http://127.0.0.1:$port")
n=$(run "http://127.0.0.1:$nport/static.json")
rate() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1=="99%" {print $2}'; }
orate=$(rate <<<"$o"); nrate=$(rate <<<"$n")
errors=$(grep -E "Non-2xx|Socket errors" <<<"$o" || true)
echo "bench/api: GET /v1/contacts/{email}, $persons known persons, ${size}-byte answers, wrk -t2 -c$conns ${secs}s, loopback"
echo "  optsync: $orate requests/s, p99 $(p99 <<<"$o")   target: p99 < 2ms"
echo "  nginx:   $nrate requests/s, p99 $(p99 <<<"$n") (static file of the same size)"
python3 -c "print('  ratio:   %.2f of nginx   target >= 0.5' % ($orate / $nrate))"
[ -z "$errors" ] || echo "  optsync errors: $errors"
