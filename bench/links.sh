#!/usr/bin/env bash
# bench/links.sh: the public unsubscribe listener of a real `optsync run`,
# driven by wrk on loopback.
#  1. one-click: wrk POSTs `List-Unsubscribe=One-Click` to a different
#     freshly minted link per request (each a new, durable opt-out: the
#     ledger's group commit answers each request only after the commit that
#     holds it); prints durable opt-outs/s and p99, then checks that the
#     ledger holds one opt-out per 200 answered.
#  2. the page: GET of valid links next to nginx serving a static file of
#     the same size, in the same run.
# Targets (issue 15): >= 2,000 durable opt-outs/s with p99 < 20 ms; the
# page at >= 0.5 of nginx.
#
# usage: bench/links.sh [OPTSYNC] [SECONDS (10)] [CONNECTIONS (64)] [PAGE CONNECTIONS (8)]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
optsync="$(realpath "${1:-$here/../build/optsync}")"
secs="${2:-10}"
conns="${3:-64}"
pconns="${4:-8}"
links=$((secs * 40000 + 20000)) # more than wrk can use: every POST a new opt-out
command -v wrk >/dev/null && command -v nginx >/dev/null || {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
}
tmp="$(mktemp -d /var/tmp/optsync-bench-links-XXXXXX)" # on disk: fsyncs are real
trap 'kill $(jobs -p) 2>/dev/null; nginx -c "$tmp/nginx.conf" -s stop 2>/dev/null; rm -rf "$tmp"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

python3 "$here/../tests/fake_salesforce/fake_sf.py" --port-file "$tmp/sfport" >"$tmp/fake.log" 2>&1 &
while [ ! -s "$tmp/sfport" ]; do sleep 0.1; done
port=$(free_port)
pub=$(free_port)
head -c 32 /dev/urandom >"$tmp/link.key"
chmod 600 "$tmp/link.key"
cat >"$tmp/optsync.toml" <<EOF
[salesforce]
login_url = "http://localhost:$(cat "$tmp/sfport")"
auth = "client_credentials"
client_id = "fake-client-id"
[state]
path = "$tmp/state"
map_size = "1GiB"
[api]
listen = "127.0.0.1:$port"
[sync]
interval = "1h"
[unsubscribe]
listen = "127.0.0.1:$pub"
base_url = "http://localhost:$pub"
key_file = "$tmp/link.key"
organization = "Example B.V."
privacy_url = "https://example.com/privacy"
[log]
level = "warn"
EOF
export OPTSYNC_SALESFORCE_CLIENT_SECRET=fake-client-secret OPTSYNC_API_TOKEN=bench-token-0123456789
"$optsync" -c "$tmp/optsync.toml" run 2>"$tmp/run.log" &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
sleep 1 # the first cycle (an empty Salesforce) out of the way

# mint the links through the API, 1,000 per call, into a Lua table
python3 - "$port" "$links" "$tmp/paths.lua" <<'PY'
import json, sys, urllib.request
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(out, "w") as f:
    f.write("paths = {\n")
    for start in range(0, n, 1000):
        emails = ["reader.%d@list%d.example" % (i, i % 997) for i in range(start, min(n, start + 1000))]
        req = urllib.request.Request("http://127.0.0.1:%d/v1/unsubscribe-links" % port,
                                     data=json.dumps({"emails": emails, "campaign": "bench"}).encode(),
                                     headers={"Authorization": "Bearer bench-token-0123456789",
                                              "Content-Type": "application/json"})
        links = json.load(urllib.request.urlopen(req))["links"]
        for e in emails:
            f.write('"%s",\n' % links[e]["url"].split("/u/", 1)[1])
    f.write("}\n")
PY

cat >"$tmp/oneclick.lua" <<EOF
dofile("$tmp/paths.lua")
local threads = 0
setup = function(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
init = function(args)
  n = 0
end
wrk.method = "POST"
wrk.body = "List-Unsubscribe=One-Click"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  -- thread k of 2 takes paths k+1, k+3, ...: no link is used twice
  local i = offset + 1 + n * 2
  n = n + 1
  if i > #paths then i = #paths end
  return wrk.format(nil, "/u/" .. paths[i])
end
EOF
run() { wrk -t2 -c"$1" -d"${secs}s" --latency "${@:2}" 2>&1; }
rate() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1=="99%" {print $2}'; }
total() { awk '/requests in/ {print $1}'; }
events() {
	curl -s -H "Authorization: Bearer $OPTSYNC_API_TOKEN" "http://127.0.0.1:$port/v1/status" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["ledger"]["history_events"])'
}
before=$(events)
o=$(run "$conns" -s "$tmp/oneclick.lua" "http://127.0.0.1:$pub")
after=$(events)
errors=$(grep -E "Non-2xx|Socket errors" <<<"$o" || true)
echo "bench/links one-click: POST /u/{token} (a new link each), wrk -t2 -c$conns ${secs}s, loopback, ledger on disk"
echo "  optsync: $(rate <<<"$o") durable opt-outs/s, p99 $(p99 <<<"$o")   target: >= 2,000/s, p99 < 20ms"
echo "  answered: $(total <<<"$o") requests; the ledger gained $((after - before)) opt-out events"
[ "$(total <<<"$o")" -le "$links" ] || echo "  NOTE: wrk ran out of fresh links ($links): the rate above counts repeats"
[ -z "$errors" ] || echo "  errors: $errors"

# the page: GET of valid links, next to nginx with a static file of that size
cat >"$tmp/page.lua" <<EOF
dofile("$tmp/paths.lua")
math.randomseed(5)
request = function()
  return wrk.format("GET", "/u/" .. paths[math.random(1, 5000)])
end
EOF
first=$(sed -n 2p "$tmp/paths.lua" | tr -d '",')
size=$(curl -s "http://127.0.0.1:$pub/u/$first" | wc -c)
head -c "$size" /dev/urandom | base64 -w0 | head -c "$size" >"$tmp/static.html"
nport=$(free_port)
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
g=$(run "$pconns" -s "$tmp/page.lua" "http://127.0.0.1:$pub")
n=$(run "$pconns" "http://127.0.0.1:$nport/static.html")
echo "bench/links page: GET /u/{token}, ${size}-byte page, wrk -t2 -c$pconns ${secs}s, loopback"
echo "  optsync: $(rate <<<"$g") requests/s, p99 $(p99 <<<"$g")"
echo "  nginx:   $(rate <<<"$n") requests/s, p99 $(p99 <<<"$n") (static file of the same size)"
python3 -c "print('  ratio:   %.2f of nginx   target >= 0.5' % ($(rate <<<"$g") / $(rate <<<"$n")))"
gerr=$(grep -E "Non-2xx|Socket errors" <<<"$g" || true)
[ -z "$gerr" ] || echo "  page errors: $gerr"
