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
export OPTSYNC_SALESFORCE_CLIENT_SECRET=fake-client-secret
# named clients: the application (check, optout) that the figures are about,
# and an operator's tool (read, write, export) sending the slow requests
app_token=bench-app-token-0123456789abcdefghijklmnopqrstuvwxyz
ops_token=bench-ops-token-0123456789abcdefghijklmnopqrstuvwxyz
{
	echo '[[api.clients]]'
	echo 'name = "app"'
	printf '%s\n' "$app_token" | "$optsync" admin hash-token --client
	echo 'scopes = ["check", "optout"]'
	echo '[[api.clients]]'
	echo 'name = "ops"'
	printf '%s\n' "$ops_token" | "$optsync" admin hash-token --client
	echo 'scopes = ["read", "write", "export"]'
} >>"$tmp/optsync.toml"
OPTSYNC_API_TOKEN=$app_token
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

# the mixed run (issue 13): suppression checks beside slow requests
cat >"$tmp/check.lua" <<EOF
math.randomseed(7)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local i = math.random(0, $persons - 1)
  return wrk.format(nil, "/v1/suppression/check", nil,
    '{"emails": ["person.number' .. i .. '@company' .. (i % 5000) .. '.example"]}')
end
EOF
cat >"$tmp/slow.lua" <<EOF
math.randomseed(9)
local n = 0
request = function()
  n = n + 1
  local i = math.random(0, $persons - 1)
  local who = "person.number" .. i .. "%40company" .. (i % 5000) .. ".example"
  if n % 2 == 0 then
    return wrk.format("GET", "/v1/contacts/" .. who .. "/export")
  end
  return wrk.format("POST", "/v1/contacts/" .. who .. "/resubscribe",
    {["X-Optsync-Admin"] = "alice:wrong-token-" .. n, ["Content-Type"] = "application/json"},
    '{"consent_date": "2026-01-01T00:00:00Z", "purpose": "p", "evidence_ref": "r"}')
end
EOF
auth=(-H "Authorization: Bearer $OPTSYNC_API_TOKEN")
wrk -t1 -c4 -d"$((secs + 2))s" --latency -H "Authorization: Bearer $ops_token" -s "$tmp/slow.lua" \
	"http://127.0.0.1:$port" >"$tmp/slow.out" 2>&1 &
slow=$!
sleep 1
m=$(run "${auth[@]}" -s "$tmp/check.lua" "http://127.0.0.1:$port")
wait "$slow"
s=$(cat "$tmp/slow.out")
echo "bench/api mixed: POST /v1/suppression/check (1 email), wrk -t2 -c$conns ${secs}s, beside wrk -t1 -c4 of wrong-token admin requests and exports"
echo "  checks: $(rate <<<"$m") requests/s, p99 $(p99 <<<"$m")   target: p99 < 2ms"
echo "  slow:   $(rate <<<"$s") requests/s, $(grep -E 'requests in' <<<"$s" | awk '{print $1}') requests, $(grep -E 'Non-2xx' <<<"$s" || echo 'no non-2xx') (403, 429 and 503 expected)"
merr=$(grep -E "Non-2xx|Socket errors" <<<"$m" || true)
[ -z "$merr" ] || echo "  check errors: $merr"
