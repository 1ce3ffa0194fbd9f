#!/usr/bin/env bash
# End to end: `clipctl doctor` (issue 25, deliverable 3) on a node with the real clip
# daemon (and its fd holder) and a real containerd with its CRI plugin, for each
# containerd: 1.6 (Debian 12's, the system's), 1.7 and 2.1 (Debian 13's and sid's,
# unpacked by deploy/setup.sh into /opt/clip-deps; containerd is started by its path).
#   - the good config (1.x: version 2 with snapshot annotations; 2.1: version 3, CRI
#     through the transfer service) -> exit 0, no warning, no error;
#   - traps, each in a copy of the containerd or the clip config that doctor reads (the
#     daemons keep running with the good ones) -> the exit status and the finding's line:
#     errors (exit 1) for what blocks lazy pulls or restart survival, warnings (exit 0)
#     for the rest.
set -uo pipefail
start_ns=$(date +%s%N)
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"
error() { e2e_error "$@"; }
finish() {
  if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- clip log"; tail -n 20 "$t/clip.log" 2>/dev/null
    echo "--- containerd log"; grep -v 'level=debug' "$t/containerd.log" 2>/dev/null | tail -n 20
  else
    echo "PASS: clipctl doctor: good configs pass, every trap is named"
  fi
  echo "wall time: $((($(date +%s%N) - start_ns) / 1000000)) ms"
  exit "$E2E_FAIL"
}
fatal() { error "$@"; finish; }

"$clipctl" doctor --no-such-flag >/dev/null 2>&1
rc=$?
[ "$rc" = 2 ] || error "clipctl doctor --no-such-flag: exit $rc, want 2 (a usage error)"

case $(uname -m) in
  x86_64) platform=linux/amd64 ;;
  aarch64) platform=linux/arm64 ;;
  *) platform="linux/$(uname -m)" ;;
esac
versions=(1.6:/usr/bin)
for d in /opt/clip-deps/containerd-1.7.24 /opt/clip-deps/containerd-2.1.9; do
  [ -x "$d/usr/bin/containerd" ] || fatal "no containerd in $d: run deploy/setup.sh"
  versions+=("$(basename "$d" | sed 's/containerd-\([0-9]*\.[0-9]*\).*/\1/'):$d/usr/bin")
done

# The clip daemon, with the config doctor reads (the flags e2e_clip passes say the same).
mkdir -p "$t/hosts" "$t/cni/bin" "$t/cni/conf"
cat >"$t/clip.toml" <<TOML
root = "$t/clip"
address = "$t/clip.sock"
containerd_root = "$t/c-root"
hosts_dir = "$t/hosts"
TOML
e2e_clip "$daemon" || fatal "clip daemon"

# good_config VERSION: the config doctor should find nothing wrong with.
good_config() {
  if [ "$1" = 2.1 ]; then
    cat <<TOML
version = 3
root = '$t/c-root'
state = '$t/c-state'
[grpc]
  address = '$t/containerd.sock'
[plugins.'io.containerd.internal.v1.opt']
  path = '$t/opt'
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'clip'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '$t/hosts'
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ['$t/cni/bin']
  conf_dir = '$t/cni/conf'
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
  platform = '$platform'
  snapshotter = 'clip'
[[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
  platform = '$platform'
  snapshotter = 'overlayfs'
[proxy_plugins.clip]
  type = 'snapshot'
  address = '$t/clip.sock'
  [proxy_plugins.clip.exports]
    root = '$t/clip'
    enable_remote_snapshot_annotations = 'true'
TOML
  else
    v2_config
  fi
}
v2_config() {  # the project's version 2 stanza (deploy/containerd-config.toml), private paths
  cat <<TOML
version = 2
root = "$t/c-root"
state = "$t/c-state"
[grpc]
  address = "$t/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$t/opt"
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "clip"
    disable_snapshot_annotations = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$t/cni/bin"
    conf_dir = "$t/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$t/hosts"
[proxy_plugins.clip]
  type = "snapshot"
  address = "$t/clip.sock"
  [proxy_plugins.clip.exports]
    root = "$t/clip"
TOML
}

# check NAME WANT_RC LINE BASE CONTAINERD_SED CLIP_SED [DOCTOR_ARGS...]: doctor on BASE
# (a containerd config) and clip.toml, each edited by its sed script; it must exit
# WANT_RC and print LINE (the start of a line, literally).
check() {
  local name=$1 want=$2 line=$3 base=$4 csed=$5 ksed=$6 out rc
  shift 6
  sed "$csed" "$base" >"$t/containerd-check.toml"
  sed "$ksed" "$t/clip.toml" >"$t/clip-check.toml"
  out=$("$clipctl" doctor --containerd-bin "$bin/containerd" \
    --containerd-config "$t/containerd-check.toml" --config "$t/clip-check.toml" "$@" 2>&1)
  rc=$?
  local l found=""
  while IFS= read -r l; do [[ "$l" == "$line"* ]] && found=$l && break; done <<<"$out"
  if [ "$rc" != "$want" ] || [ -z "$found" ]; then
    error "containerd $v, $name: exit $rc (want $want), or no line '$line'"
    echo "$out"
  else
    echo "containerd $v, $name: exit $rc: ${found:0:160}"
  fi
}

# The CRI snapshotter set to overlayfs, in either version's table.
cri_overlayfs='s/^    snapshotter = "clip"/    snapshotter = "overlayfs"/'
cri_overlayfs+="; /^\[plugins.'io.containerd.cri.v1.images'\]\$/,/snapshotter/ s/'clip'/'overlayfs'/"

for entry in "${versions[@]}"; do
  v=${entry%%:*}
  bin=${entry#*:}
  step_ns=$(date +%s%N)
  good_config "$v" >"$t/containerd-good.toml"
  v2_config >"$t/containerd-v2.toml"
  # containerd N.M with the good config (its own shim first in PATH; none runs here).
  PATH="$bin:$PATH" setsid "$bin/containerd" --config "$t/containerd-good.toml" \
    >"$t/containerd.log" 2>&1 &
  cpid=$!
  E2E_PIDS+=("$cpid")
  e2e_wait "containerd $v" "$bin/ctr" -a "$t/containerd.sock" version || fatal "containerd $v"
  [[ "$("$bin/containerd" --version)" == *" $v."* ]] || fatal "$bin/containerd is not $v"

  # The good config: nothing to fix.
  out=$("$clipctl" doctor --containerd-bin "$bin/containerd" \
    --containerd-config "$t/containerd-good.toml" --config "$t/clip.toml" 2>&1)
  rc=$?
  echo "--- containerd $v, good config: exit $rc"
  echo "$out"
  [ "$rc" = 0 ] || error "containerd $v, good config: exit $rc"
  grep -q "^doctor: .* 0 warning(s), 0 error(s): ready for lazy pulls$" <<<"$out" ||
    error "containerd $v, good config: warnings or errors"
  grep -q "^ok: containerd $v\..* answers at $t/containerd.sock$" <<<"$out" ||
    error "containerd $v, good config: its API was not reached"
  grep -q "^ok: fd holder pid [0-9]* at $t/clip/fd-holder.sock keeps the daemon's socket" \
    <<<"$out" || error "containerd $v, good config: the daemon's fd holder was not found"
  grep -q "^ok: the clip daemon (pid ${E2E_CLIPS[0]}) answers at $t/clip.sock$" <<<"$out" ||
    error "containerd $v, good config: the daemon (pid ${E2E_CLIPS[0]}) was not found"

  # Traps on every version.
  check "CRI snapshotter overlayfs" 1 "error: CRI's snapshotter is \"overlayfs\", not \"clip\"" \
    "$t/containerd-good.toml" "$cri_overlayfs" ""
  check "proxy address" 1 "error: [proxy_plugins.clip] address = \"$t/other.sock\"" \
    "$t/containerd-good.toml" "s#^  address = \(.\)$t/clip.sock#  address = \1$t/other.sock#" ""
  check "containerd down" 1 "error: containerd does not answer at $t/none.sock" \
    "$t/containerd-good.toml" "" "" --containerd-address "$t/none.sock"
  check "no fd holder" 1 "error: takeover = true, but no fd holder answers at $t/none.sock" \
    "$t/containerd-good.toml" "" "\$a fd_holder_socket = \"$t/none.sock\""
  check "clip daemon down" 1 "error: the clip daemon does not answer at $t/none.sock" \
    "$t/containerd-good.toml" "" "s#^address = .*#address = \"$t/none.sock\"#"
  check "hosts directories" 0 "warning: CRI reads registry hosts from \"$t/hosts\", clip from" \
    "$t/containerd-good.toml" "" "s#^hosts_dir = .*#hosts_dir = \"$t/other-hosts\"#"
  check "index_trust referrers" 0 "warning: index_trust = \"referrers\"" \
    "$t/containerd-good.toml" "" "\$a index_trust = \"referrers\""

  # Traps of a version.
  case $v in
    1.6 | 1.7)
      check "annotations disabled" 1 "error: CRI passes no snapshot annotations" \
        "$t/containerd-good.toml" "/disable_snapshot_annotations/d" ""
      ;;
  esac
  case $v in
    1.6)
      # 1.6 reports <containerd root>/io.containerd.snapshotter.v1.clip; the daemon's link
      # is under its containerd_root.
      check "containerd_root" 0 "warning: CRI reports $t/c-root2/io.containerd.snapshotter.v1.clip" \
        "$t/containerd-good.toml" "s#^root = \"$t/c-root\"#root = \"$t/c-root2\"#" ""
      check "version 3 file" 1 "error: $t/containerd-check.toml is version 3, which containerd 1.x" \
        "$t/containerd-good.toml" "s/^version = 2/version = 3/" ""
      ;;
    1.7 | 2.1)
      check "exports.root" 0 "warning: CRI reports $t/elsewhere as the image filesystem" \
        "$t/containerd-good.toml" "s#^    root = \(.\)$t/clip\(.\)#    root = \1$t/elsewhere\2#" ""
      ;;
  esac
  if [ "$v" = 2.1 ]; then
    check "no remote-snapshot labels" 1 \
      "error: CRI pulls through the transfer service, and the transfer service passes clip no remote-snapshot labels" \
      "$t/containerd-good.toml" "/enable_remote_snapshot_annotations/d" ""
    check "no unpack_config" 1 \
      "error: CRI pulls through the transfer service, and the transfer service does not unpack $platform images to \"clip\"" \
      "$t/containerd-good.toml" "/unpack_config/,+2d" ""
    check "version 2 stanza without runtimes" 1 \
      "error: CRI's snapshotter is \"overlayfs\", not \"clip\": Kubernetes pulls never reach clip (the file's version 2" \
      "$t/containerd-v2.toml" "/containerd.runtimes.runc\]/,+1d" ""
    check "local pull (the alternative)" 0 "ok: CRI pulls into \"clip\" itself (local pull" \
      "$t/containerd-good.toml" "/^\[plugins.'io.containerd.cri.v1.images'\]$/a\  disable_snapshot_annotations = false" ""
  fi

  kill -TERM "$cpid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$cpid" 2>/dev/null
  wait "$cpid" 2>/dev/null
  e2e_forget "$cpid"
  # The next containerd starts afresh (metadata of a newer one is not for an older one);
  # the daemon's image-fs link stays.
  find "$t/c-root" -mindepth 1 -maxdepth 1 ! -name io.containerd.snapshotter.v1.clip \
    -exec rm -rf {} + 2>/dev/null
  rm -rf "$t/c-state"
  echo "containerd $v: $((($(date +%s%N) - step_ns) / 1000000)) ms"
done
finish
