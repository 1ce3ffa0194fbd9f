#!/usr/bin/env bash
# Real containerd 1.6 with clip as its proxy_plugins snapshotter: pulls a two-layer image
# from a local docker-registry (the ordinary, non-lazy path) and runs a container with
# `ctr run --snapshotter clip`. Starts its own registry, clip daemon and containerd in a
# private directory (short path: unix sockets), stops them by PID, even on failure.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
source "$src/test/e2e_env.sh"
t="$E2E_DIR"
ns="$E2E_NS"
image=""
error() { e2e_error "$@"; }

cleanup() {
  local status=$?
  if [ -S "$t/containerd.sock" ] && [ -n "$image" ]; then
    $E2E_CTR tasks kill -s KILL "c$$" >/dev/null 2>&1
    $E2E_CTR containers rm "c$$" >/dev/null 2>&1
    $E2E_CTR images rm --sync "$image" >/dev/null 2>&1
  fi
  e2e_cleanup "$status"
}
trap cleanup EXIT

# The image: a static program in layer 1, data and a file to delete in layer 2.
mkdir -p "$t/l1/etc" "$t/l2/etc"
gcc -static -O2 -o "$t/l1/hello" "$src/test/testdata/hello.c" || error "gcc -static"
echo base > "$t/l1/etc/base"
echo upper > "$t/l2/etc/upper"
python3 "$src/test/testdata/make_image.py" "$t/layout" v1 /hello "$t/l1" "$t/l2" || error "image"

e2e_registry
image="$E2E_REGISTRY/clip/hello:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$t/layout:v1" "docker://$image" || error "skopeo push"
e2e_clip "$daemon"
[ "$(stat -c %a "$t/clip.sock")" = 600 ] || error "socket permissions $(stat -c %a "$t/clip.sock")"
e2e_containerd
ctr="$E2E_CTR"
# Captured first: `cmd | grep -q` under pipefail fails when grep exits before cmd ends.
plugins=$($ctr plugins ls)
grep -q "io.containerd.snapshotter.v1 *clip *.*ok" <<<"$plugins" || error "clip plugin not ok"

$ctr images pull --plain-http --snapshotter clip "$image" >"$t/pull.log" 2>&1 || {
  error "pull through clip"; tail -n 20 "$t/pull.log"; }
out=$($ctr run --rm --snapshotter clip "$image" "c$$" /hello /etc/base /etc/upper 2>&1)
echo "$out"
grep -q "hello from a clip snapshot" <<<"$out" || error "container output"
grep -q "/etc/upper: present" <<<"$out" || error "second layer not visible"
snapshots=$($ctr snapshots --snapshotter clip ls)
layers=$(grep -c Committed <<<"$snapshots")
[ "$layers" -eq 2 ] || error "expected 2 committed layers in clip, saw $layers"
[ -n "$(ls "$t/clip/snapshots")" ] || error "no snapshot directories under the clip root"

if [ "$E2E_FAIL" -ne 0 ]; then
  echo "--- clip log"; tail -n 20 "$t/clip.log"
  echo "--- containerd log"; tail -n 20 "$t/containerd.log"
fi
exit $E2E_FAIL
