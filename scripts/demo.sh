#!/usr/bin/env bash
# The demo: install what is needed, build optsync, start the bundled fake
# Salesforce with a seeded org, and walk through optsync's main job, step by
# step. It leaves demo/ behind (config, ledger, the fake's log) to play with.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
bash scripts/install-deps.sh
bash scripts/build.sh build >/dev/null

demo="$root/demo"
rm -rf "$demo"
mkdir -p "$demo"
chmod 700 "$demo"
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '%s\n' "$*" | fold -s -w 78; }

bold "1. A fake Salesforce org"
say "optsync talks to Salesforce over its REST API. For this demo a fake Salesforce (tests/fake_salesforce/fake_sf.py) runs on this machine with 2,000 Contacts and 300 Leads; some Leads share an email with a Contact, about 5% have opted out, and a third carry GDPR fields (lawful basis, consent date, purpose, source)."
python3 tests/fake_salesforce/fake_sf.py --port-file "$demo/port" --contacts 2000 --leads 300 \
	--seed 42 >"$demo/fake.log" 2>&1 &
fake=$!
trap 'kill $fake 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$demo/port" ] && break; sleep 0.1; done
port=$(cat "$demo/port")
ctl() { curl -sf -X "$1" "http://127.0.0.1:$port/__control/$2" ${3:+-d "$3"}; }
say "It listens on http://localhost:$port."

printf 'fake-client-secret\n' >"$demo/sf-secret"
chmod 600 "$demo/sf-secret"
cat >"$demo/optsync.toml" <<EOF
# The demo's configuration: see config.example.toml for every key.
[salesforce]
login_url = "http://localhost:$port"
auth = "client_credentials"
client_id = "fake-client-id"
client_secret_file = "$demo/sf-secret"

[state]
path = "$demo/ledger"
map_size = "64MiB"

[log]
level = "warn"
format = "text"
EOF
optsync() { "$root/build/optsync" -c "$demo/optsync.toml" "$@"; }

bold "2. The first sync"
say "optsync sync --once pulls every Contact and Lead, records each person (one normalized email) in its ledger, and pushes what must change: an opt-out on one record spreads to every record with the same email."
optsync sync --once --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
for obj, s in r["pulled"].items():
    print("  %-8s %5d records read, %3d opt-outs found, %3d writes queued" % (
        obj, s["records"], s["optouts_from_salesforce"], s["pushes_queued"]))
print("  pushed: %d records in %d collection call(s)" % (
    r["pushes"]["succeeded"], r["pushes"]["collection_calls"]))'

bold "3. An opt-out in the application"
read -r email id < <(ctl GET "records?object=Contact" | python3 -c '
import json, sys
r = [x for x in json.load(sys.stdin)["records"] if not x["HasOptedOutOfEmail"]][3]
print(r["Email"], r["Id"])')
say "Someone clicks 'unsubscribe' in the app, which tells optsync: optsync optout $email"
optsync optout "$email" --reason "unsubscribe link in the newsletter" >/dev/null
say "The opt-out is in the ledger now, queued for Salesforce. The next sync pushes it:"
optsync sync --once >/dev/null
ctl GET "records?object=Contact&id=$id" | python3 -c '
import json, sys
r = json.load(sys.stdin)["records"][0]
print("  Salesforce %s %s: HasOptedOutOfEmail = %s" % (r["Id"], r["Email"], r["HasOptedOutOfEmail"]))'

bold "4. A re-subscribe in Salesforce, without consent evidence"
say "A sales rep unticks 'Email Opt Out' on that Contact. GDPR does not allow a silent re-subscribe, so optsync keeps the person opted out, records a conflict and sets Salesforce back."
sleep 1
ctl POST records "{\"object\":\"Contact\",\"records\":[{\"Id\":\"$id\",\"HasOptedOutOfEmail\":false}]}" >/dev/null
optsync sync --once >/dev/null
optsync conflicts list --status all --json | python3 -c '
import json, sys
for c in json.load(sys.stdin)["conflicts"]:
    print("  conflict %d (%s): %s on %s %s of %s, Salesforce said %s, optsync keeps %s" % (
        c["id"], c["status"], c["kind"], c["record"]["object"], c["record"]["id"], c["email"],
        c["salesforce_value"], c["local_value"]))'
ctl GET "records?object=Contact&id=$id" | python3 -c '
import json, sys
r = json.load(sys.stdin)["records"][0]
print("  Salesforce again: HasOptedOutOfEmail = %s" % r["HasOptedOutOfEmail"])'
say "Only an admin, with new consent evidence, can re-subscribe someone: optsync resubscribe EMAIL --consent-date ... --purpose ... --evidence-ref ..."

bold "5. The person's history"
say "Reading it is on the record too: the last line is this very read, an access event naming the operator (OPTSYNC_OPERATOR, else the OS user)."
optsync contact history "$email" --json | python3 -c '
import json, sys
for h in json.load(sys.stdin):
    what = h.get("reason", "")
    if h["kind"] == "access":
        what = "%s read through %s" % (h["access"]["what"], h["access"]["via"])
    print("  #%-4d %s  %-13s by %-10s %s" % (h["seq"], h["at"], h["kind"], h["actor"],
                                            what[:60]))'

bold "6. An unsubscribe link, clicked in the inbox"
say "optsync mints the unsubscribe link of every email and serves it. A mailbox provider's 'Unsubscribe' button (RFC 8058) POSTs to that link; the opt-out lands in the ledger and in Salesforce like any other. For this step optsync runs as the sidecar (optsync run), with its public listener."
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port)
pub=$(free_port)
head -c 32 /dev/urandom >"$demo/link.key"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$demo/api-token"
chmod 600 "$demo/link.key" "$demo/api-token"
cat >>"$demo/optsync.toml" <<TOML

[api]
listen = "127.0.0.1:$api"
token_file = "$demo/api-token"

[unsubscribe]
listen = "127.0.0.1:$pub"
base_url = "http://localhost:$pub"
key_file = "$demo/link.key"
organization = "Example B.V."
privacy_url = "https://example.com/privacy"
TOML
# the binary itself in the background (not the optsync function, whose
# subshell's pid would not stop it)
"$root/build/optsync" -c "$demo/optsync.toml" run >"$demo/run.log" 2>&1 &
run=$!
trap 'kill $run 2>/dev/null || true; kill $fake 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api/healthz" >/dev/null && break; sleep 0.1; done
read -r email2 id2 < <(ctl GET "records?object=Contact" | python3 -c '
import json, sys
r = [x for x in json.load(sys.stdin)["records"] if not x["HasOptedOutOfEmail"]][7]
print(r["Email"], r["Id"])')
say "The application asks for the link of $email2 when it sends the newsletter (optsync link, or POST /v1/unsubscribe-links for up to 1,000 at once) and adds the two header lines it prints to the email:"
optsync link "$email2" --campaign demo-newsletter | sed -n '4,5p' | cut -c1-100 | sed 's/$/.../; s/^/  /'
url=$(optsync link "$email2" --campaign demo-newsletter --json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
sleep 2 # the run's first cycle out of the way
say "The reader presses 'Unsubscribe' in the mailbox, and the provider POSTs as Gmail does: curl -X POST -d 'List-Unsubscribe=One-Click' LINK"
t0=$(date +%s%N)
curl -s -X POST -H 'Content-Type: application/x-www-form-urlencoded' \
	--data 'List-Unsubscribe=One-Click' "$url" | sed 's/^/  optsync answered: /'
for _ in $(seq 200); do
	flipped=$(ctl GET "records?object=Contact&id=$id2" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["records"][0]["HasOptedOutOfEmail"])')
	[ "$flipped" = True ] && break
	sleep 0.05
done
ms=$((($(date +%s%N) - t0) / 1000000))
ctl GET "records?object=Contact&id=$id2" | MS="$ms" python3 -c '
import json, os, sys
r = json.load(sys.stdin)["records"][0]
print("  Salesforce %s %s: HasOptedOutOfEmail = %s, %s ms after the click" % (
    r["Id"], r["Email"], r["HasOptedOutOfEmail"], os.environ["MS"]))'
optsync contact history "$email2" --json | python3 -c '
import json, sys
for h in json.load(sys.stdin):
    if h["kind"] == "optout":
        print("  history: #%d %s, origin %s, campaign %s" % (h["seq"], h["kind"], h["origin"],
                                                          h.get("campaign")))'
say "Opened in a browser, the link shows a page with an Unsubscribe button (English, Dutch or Swedish). Opening it changes nothing: mail scanners fetch links."
kill $run 2>/dev/null || true
wait $run 2>/dev/null || true

bold "7. Status"
optsync status

bold "Done"
say "The ledger and the configuration are in demo/. To keep playing, start the fake again and point optsync at it:"
say "  python3 tests/fake_salesforce/fake_sf.py --port $port --contacts 2000 --leads 300 --seed 42 &"
say "  build/optsync -c demo/optsync.toml status"
say "optsync --help lists every command."
