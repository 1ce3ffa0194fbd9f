#!/usr/bin/env bash
# Real containerd 1.6 with clip as its proxy_plugins snapshotter: pulls a two-layer image
# from a local docker-registry (the ordinary, non-lazy path) and runs a container with
# `ctr run --snapshotter clip`. Starts its own registry, clip daemon and containerd in a
# private directory (short path: unix sockets), stops them by PID, even on failure.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
t="$(mktemp -d /tmp/cxXXXX)"
ns="clip-e2e-$$"
declare -a pids=()
fail=0
error() { echo "FAIL: $*"; fail=1; }

cleanup() {
  if [ -S "$t/containerd.sock" ]; then
    ctr -a "$t/containerd.sock" -n "$ns" tasks kill -s KILL "c$$" >/dev/null 2>&1
    ctr -a "$t/containerd.sock" -n "$ns" containers rm "c$$" >/dev/null 2>&1
    ctr -a "$t/containerd.sock" -n "$ns" images rm --sync "$image" >/dev/null 2>&1
  fi
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  grep -o " $t[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$t"
}
trap cleanup EXIT

wait_for() {  # wait_for DESCRIPTION TEST-COMMAND...
  local what=$1; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  error "$what did not come up"; return 1
}

# The image: a static program in layer 1, data and a file to delete in layer 2.
mkdir -p "$t/l1/etc" "$t/l2/etc"
gcc -static -O2 -o "$t/l1/hello" "$src/test/testdata/hello.c" || error "gcc -static"
echo base > "$t/l1/etc/base"
echo upper > "$t/l2/etc/upper"
python3 "$src/test/testdata/make_image.py" "$t/layout" v1 /hello "$t/l1" "$t/l2" || error "image"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$t/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $t/registry}}
http: {addr: 127.0.0.1:$port}
YML
setsid docker-registry serve "$t/registry.yml" >"$t/registry.log" 2>&1 &
pids+=($!)
wait_for registry curl -sf "http://127.0.0.1:$port/v2/"
image="127.0.0.1:$port/clip/hello:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$t/layout:v1" "docker://$image" || error "skopeo push"

setsid "$daemon" --root "$t/clip" --address "$t/clip.sock" --log-level debug >"$t/clip.log" 2>&1 &
pids+=($!)
wait_for "clip daemon" test -S "$t/clip.sock"
[ "$(stat -c %a "$t/clip.sock")" = 600 ] || error "socket permissions $(stat -c %a "$t/clip.sock")"

cat > "$t/containerd.toml" <<TOML
version = 2
root = "$t/c-root"
state = "$t/c-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$t/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$t/opt"
[proxy_plugins.clip]
  type = "snapshot"
  address = "$t/clip.sock"
  [proxy_plugins.clip.exports]
    root = "$t/clip"
TOML
setsid containerd --config "$t/containerd.toml" >"$t/containerd.log" 2>&1 &
pids+=($!)
wait_for containerd ctr -a "$t/containerd.sock" version
ctr="ctr -a $t/containerd.sock -n $ns"
$ctr plugins ls | grep -q "io.containerd.snapshotter.v1 *clip *.*ok" || error "clip plugin not ok"

$ctr images pull --plain-http --snapshotter clip "$image" >"$t/pull.log" 2>&1 || {
  error "pull through clip"; tail -n 20 "$t/pull.log"; }
out=$($ctr run --rm --snapshotter clip "$image" "c$$" /hello /etc/base /etc/upper 2>&1)
echo "$out"
echo "$out" | grep -q "hello from a clip snapshot" || error "container output"
echo "$out" | grep -q "/etc/upper: present" || error "second layer not visible"
layers=$($ctr snapshots --snapshotter clip ls | grep -c Committed)
[ "$layers" -eq 2 ] || error "expected 2 committed layers in clip, saw $layers"
ls "$t/clip/snapshots" | grep -q . || error "no snapshot directories under the clip root"

if [ "$fail" -ne 0 ]; then
  echo "--- clip log"; tail -n 20 "$t/clip.log"
  echo "--- containerd log"; tail -n 20 "$t/containerd.log"
fi
exit $fail
