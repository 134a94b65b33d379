#!/usr/bin/env bash
# Build the optsync image with podman and check it.
#
# No image registry can be reached here, so debian:bookworm-slim is made
# locally from a `debootstrap --variant=minbase bookworm` tree imported into
# podman (once; it is reused afterwards). Then the image is built from the
# Dockerfile and checked: `optsync --version` works inside, the process is
# not root, and the health check passes against a running container
# (talking to the fake Salesforce on the host network).
#
# usage: scripts/container.sh [TAG]   (default optsync:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-optsync:latest}"
# without systemd, podman logs an error for each health-check timer it cannot
# set up; the checks themselves work (podman healthcheck run), so that
# message is filtered out
podman_quiet() { command podman "$@" 2> >(grep -v "systemd connection" >&2); }
podman=(podman_quiet --runtime runc)
limits=(--ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
need=()
for p in podman buildah debootstrap runc uidmap curl; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! "${podman[@]}" image exists debian:bookworm-slim; then
	echo "== making debian:bookworm-slim with debootstrap (a few minutes, once)"
	rootfs="${OPTSYNC_ROOTFS:-$(mktemp -d /var/tmp/optsync-rootfs.XXXXXX)}"
	[ -x "$rootfs/usr/bin/apt-get" ] ||
		debootstrap --variant=minbase bookworm "$rootfs" >/dev/null
	tar -C "$rootfs" -c . | "${podman[@]}" import - debian:bookworm-slim >/dev/null
fi

echo "== building $tag"
"${podman[@]}" build --format docker --network host --ulimit nofile=20000:20000 \
	--ulimit nproc=32768:32768 -t "$tag" . >/tmp/optsync-image-build.log 2>&1 || {
	tail -30 /tmp/optsync-image-build.log
	exit 1
}
"${podman[@]}" image inspect "$tag" --format 'size: {{.Size}} bytes'

echo "== checking $tag"
"${podman[@]}" run --rm "${limits[@]}" "$tag" --version
uid=$("${podman[@]}" run --rm "${limits[@]}" --entrypoint id "$tag" -u)
[ "$uid" != 0 ] || { echo "the container runs as root" >&2; exit 1; }
echo "runs as uid $uid"

tmp=$(mktemp -d)
name="optsync-check-$$"
cleanup() {
	"${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
	kill "$fake" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
python3 tests/fake_salesforce/fake_sf.py --port-file "$tmp/sfport" --contacts 20 \
	>"$tmp/fake.log" 2>&1 &
fake=$!
while [ ! -s "$tmp/sfport" ]; do sleep 0.1; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/optsync.toml" <<EOF
[salesforce]
login_url = "http://localhost:$(cat "$tmp/sfport")"
auth = "client_credentials"
client_id = "fake-client-id"
[state]
path = "/var/lib/optsync/ledger"
map_size = "16MiB"
[api]
listen = "127.0.0.1:$port"
EOF
chmod 644 "$tmp/optsync.toml"
"${podman[@]}" run -d "${limits[@]}" --health-interval disable --name "$name" --network host \
	-v "$tmp/optsync.toml:/etc/optsync/optsync.toml:ro" \
	-v optsync-check-state:/var/lib/optsync \
	-e OPTSYNC_SALESFORCE_CLIENT_SECRET=fake-client-secret \
	-e OPTSYNC_API_TOKEN=container-check-token-0123 \
	"$tag" run >/dev/null
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
# the image's HEALTHCHECK (optsync healthcheck) reads api.listen from the config
"${podman[@]}" healthcheck run "$name" && echo "health check: healthy"
"${podman[@]}" exec "$name" optsync status | grep -E "result|persons" || true
"${podman[@]}" stop -t 10 "$name" >/dev/null
echo "exit status after SIGTERM: $("${podman[@]}" inspect "$name" --format '{{.State.ExitCode}}')"
"${podman[@]}" volume rm -f optsync-check-state >/dev/null
