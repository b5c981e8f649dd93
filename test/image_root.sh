#!/bin/sh
# test/image_root.sh IMAGE_ROOT ENGINE_SIM: acemux from the container
# image's root alone. A copy of the root gets only what a container runtime
# adds (/etc/hosts naming the engine "acestream", /etc/resolv.conf); acemux
# runs chrooted in it (in a user namespace when not root), streams a channel
# from the engine simulator by that name, answers its own health check, and
# its log is printed. Then the image is built with docker or podman where
# one works, and skipped with the reason otherwise. Everything started is
# stopped and every file made removed, whatever happens.
set -u
ROOT_SRC=$1
SIM=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/acemux-image.XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "test-image: FAILED: $*"; [ -f "$WORK/acemux.log" ] && sed 's/^/    /' "$WORK/acemux.log"; exit 1; }
# A port from a program's "listening on ...:PORT" line in its log.
port_in() { for i in $(seq 50); do p=$(sed -n 's|.*listening on [a-z:/]*127\.0\.0\.1:\([0-9]*\).*|\1|p' "$1" | head -1)
	[ -n "$p" ] && { echo "$p"; return; }; sleep 0.1; done; }

ROOT=$WORK/root
cp -a "$ROOT_SRC" "$ROOT" || fail "cannot copy $ROOT_SRC"
printf '127.0.0.1\tlocalhost\n127.0.0.1\tacestream\n' > "$ROOT/etc/hosts"
printf 'nameserver 127.0.0.1\n' > "$ROOT/etc/resolv.conf"
echo "image root: $(cd "$ROOT" && find . -type f | sort | tr '\n' ' ')"

"$SIM" --port 0 --content data >"$WORK/sim.log" 2>&1 &
PIDS="$PIDS $!"
SIM_PORT=$(port_in "$WORK/sim.log")
[ -n "$SIM_PORT" ] || fail "engine_sim did not start: $(cat "$WORK/sim.log")"
# The image's own config, with the simulator's port and a port of the kernel's choosing.
sed -i -e "s|^port = 6878|port = $SIM_PORT|" -e "s|^listen = \[\"0.0.0.0:8000\"\]|listen = [\"127.0.0.1:0\"]|" \
	"$ROOT/etc/acemux/acemux.toml"
grep -q "^host = \"acestream\"" "$ROOT/etc/acemux/acemux.toml" || fail "the image's config does not name the engine acestream"

if [ "$(id -u)" = 0 ]; then RUN="chroot $ROOT"
elif unshare -r true 2>/dev/null; then RUN="unshare -r chroot $ROOT"
else echo "test-image: skipped: not root and no user namespaces here (unshare -r fails), so no chroot"; exit 0; fi
$RUN /usr/sbin/acemux -f -c /etc/acemux/acemux.toml >"$WORK/acemux.log" 2>&1 &
APID=$!
PIDS="$PIDS $APID"
for i in $(seq 50); do grep -q "started (pid" "$WORK/acemux.log" && break; kill -0 $APID 2>/dev/null || break; sleep 0.1; done
grep -q "started (pid" "$WORK/acemux.log" || fail "acemux did not start in the empty root"
HTTP_PORT=$(port_in "$WORK/acemux.log")

"$ROOT/usr/sbin/acemux" --health "127.0.0.1:$HTTP_PORT" || fail "its health check"
ID=0123456789abcdef0123456789abcdef01234567
curl -s --max-time 4 -o "$WORK/stream.ts" "http://127.0.0.1:$HTTP_PORT/ace/getstream?id=$ID"
BYTES=$(stat -c %s "$WORK/stream.ts" 2>/dev/null || echo 0)
[ "$BYTES" -gt 188000 ] || fail "only $BYTES bytes of the stream"
# Whole 188-byte packets with their sync bytes: the first 1000 checked.
od -An -tx1 -v -w188 -N 188000 "$WORK/stream.ts" | awk '$1 != "47" { bad++ } END { exit bad > 0 || NR < 1000 }' ||
	fail "not whole MPEG-TS packets"
curl -s --max-time 2 "http://127.0.0.1:$HTTP_PORT/watch?id=$ID" | grep -q "hls.min.js" || fail "the watch page"
curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/static/hls.min.js" | grep -q 200 ||
	fail "hls.min.js is not served from the image"
kill $APID; wait $APID 2>/dev/null
echo "test-image: acemux streamed $BYTES bytes from the engine by name, from the image root alone; its log:"
sed 's/^/    /' "$WORK/acemux.log"

# The image itself, where a container tool works here.
DIR=$(cd "$(dirname "$0")/.." && pwd)
for tool in docker podman; do
	command -v $tool >/dev/null || continue
	if $tool info >/dev/null 2>&1; then
		# podman's default OCI format drops HEALTHCHECK; Docker's keeps it.
		fmt=""; [ $tool = podman ] && fmt="--format docker"
		echo "test-image: $tool build $fmt -t acemux:test $DIR"
		$tool build $fmt -t acemux:test "$DIR" || fail "$tool build"
		$tool image inspect acemux:test --format '{{.Config.User}} {{.Config.Entrypoint}} {{.Config.Healthcheck.Test}}' ||
			fail "$tool image inspect"
		$tool rmi acemux:test >/dev/null
		exit 0
	fi
	echo "test-image: $tool is installed but cannot build here ($($tool info 2>&1 | tail -1))"
done
echo "test-image: no docker or podman that can build here; image build skipped"
