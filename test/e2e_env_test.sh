#!/usr/bin/env bash
# e2e_cleanup as the EXIT trap of a `set -e` script (README command 1 is one): it keeps
# the script's exit status, stops every recorded process even when some have already
# exited, reaps them, removes the private directory and the namespace's empty cgroups.
# A clip daemon is stopped with SIGUSR1 and the fd holder it started must end with it:
# one that survives fails the script (and is stopped). SIGTERM (a Bazel timeout) cleans
# up too.
set -uo pipefail
env_sh="${TEST_SRCDIR}/${TEST_WORKSPACE}/test/e2e_env.sh"
fail=0
error() { echo "FAIL: $*"; fail=1; }

# run_script STATUS: a set -e script that records an exited process and a live one,
# then exits with STATUS. Prints "DIR LIVE_PID" before exiting.
run_script() {
  bash -c '
    set -euo pipefail
    source "$1"
    trap e2e_cleanup EXIT
    true & E2E_PIDS+=($!)
    wait "$!"                      # the first process has exited
    setsid sleep 600 & E2E_PIDS+=($!)
    mkdir -p "$E2E_DIR/sub"
    mkdir -p "/sys/fs/cgroup/memory/$E2E_NS/ctr1" 2>/dev/null || true  # as runc leaves it
    echo "$E2E_DIR $! $E2E_NS"
    exit "$2"
  ' _ "$env_sh" "$1"
}

for status in 0 3; do
  out=$(run_script "$status")
  rc=$?
  read -r dir pid ns <<<"$out"
  [ "$rc" -eq "$status" ] || error "exit status $rc, want $status"
  [ -n "$dir" ] && [ ! -e "$dir" ] || error "private directory $dir left behind"
  [ -n "$ns" ] && ls -d /sys/fs/cgroup/*/"$ns" 2>/dev/null && error "cgroup of $ns left behind"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    error "process $pid left running"
    kill -KILL "$pid"
  fi
done
# A stand-in for the clip daemon: starts a "holder" (a sleep whose argv[0] is
# clip-fd-holder, in its own session, PID in ROOT/fd-holder.sock.pid as the real one
# writes it), makes its socket and waits. SIGUSR1 (a full stop) ends the holder too,
# unless FAKE_LEAK is set; SIGTERM (a handover) leaves it.
fake="${TEST_TMPDIR:-/tmp}/containerd-clip-grpc"
cat >"$fake" <<'SH'
#!/usr/bin/env bash
while [ $# -gt 0 ]; do
  case $1 in --root) root=$2; shift ;; --address) address=$2; shift ;; esac
  shift
done
mkdir -p "$root"
setsid bash -c 'exec -a clip-fd-holder sleep 600' </dev/null >/dev/null 2>&1 &
holder=$!
echo "$holder" >"$root/fd-holder.sock.pid"
trap '[ -n "${FAKE_LEAK:-}" ] || kill "$holder"; exit 0' USR1
trap 'exit 0' TERM
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$address"
while :; do sleep 0.1; done
SH
chmod +x "$fake"

# run_clip_script STATUS [LEAK]: a set -e script with one (fake) clip daemon that exits
# with STATUS. Prints "DIR DAEMON_PID HOLDER_PID" before exiting.
run_clip_script() {
  FAKE_LEAK=${2:-} bash -c '
    set -euo pipefail
    source "$1"
    trap e2e_cleanup EXIT
    e2e_clip "$3"
    echo "$E2E_DIR ${E2E_PIDS[0]} $(cat "$E2E_DIR/clip/fd-holder.sock.pid")"
    exit "$2"
  ' _ "$env_sh" "$1" "$fake"
}
gone() { [ ! -e "/proc/$1" ] || [ "$(sed -n 's/^.*) \([A-Z]\).*/\1/p' "/proc/$1/stat")" = Z ]; }
for c in "0 -" "3 -" "0 leak" "3 leak"; do
  read -r status leak <<<"$c"
  [ "$leak" = leak ] || leak=""
  out=$(run_clip_script "$status" "$leak" 2>&1)
  rc=$?
  read -r dir daemon holder <<<"$(grep "^/" <<<"$out")"
  want=$status
  [ -n "$leak" ] && [ "$status" = 0 ] && want=1
  [ "$rc" -eq "$want" ] || error "clip daemon (status $status${leak:+, leaky}): exit status $rc, want $want: $out"
  if [ -n "$leak" ]; then
    grep -q "FAIL: clip-fd-holder $holder .* outlived its daemon" <<<"$out" || error "leaked holder not reported: $out"
  else
    grep -q FAIL <<<"$out" && error "a clean full stop reported: $out"
  fi
  [ -n "$dir" ] && [ ! -e "$dir" ] || error "private directory $dir left behind"
  for p in $daemon $holder; do
    for _ in $(seq 1 50); do gone "$p" && break; sleep 0.1; done
    gone "$p" || { error "process $p left running ($c)"; kill -KILL "$p"; }
  done
done

# SIGTERM (Bazel's timeout: to the test's process group) while the script waits for a
# command in the foreground: its EXIT trap still runs.
setsid bash -c '
  source "$1"
  trap e2e_cleanup EXIT
  e2e_clip "$2"
  echo "$E2E_DIR ${E2E_PIDS[0]} $(cat "$E2E_DIR/clip/fd-holder.sock.pid")"
  sleep 600
' _ "$env_sh" "$fake" >"${TEST_TMPDIR:-/tmp}/term.out" 2>&1 &
script=$!
for _ in $(seq 1 100); do grep -q "^/" "${TEST_TMPDIR:-/tmp}/term.out" && break; sleep 0.1; done
read -r dir daemon holder <<<"$(grep "^/" "${TEST_TMPDIR:-/tmp}/term.out")"
kill -TERM -- "-$script"
wait "$script"
rc=$?
[ "$rc" -eq 143 ] || error "SIGTERM: exit status $rc, want 143"
[ -n "$dir" ] && [ ! -e "$dir" ] || error "SIGTERM: private directory $dir left behind"
for p in $daemon $holder; do
  for _ in $(seq 1 50); do gone "$p" && break; sleep 0.1; done
  gone "$p" || { error "SIGTERM: process $p left running"; kill -KILL "$p"; }
done
# E2E_CONTAINERD: each version's binaries first in PATH, and the config it is given is
# the one it loads (containerd's own `config dump`): the proxy plugin and its exports,
# on 2.1 the transfer service's unpack_config, and the CRI plugin's pull settings.
for v in 1.6 1.7 2.1; do
  for pull in transfer local; do
    [ "$v" = 2.1 ] || [ "$pull" = transfer ] || continue
    out=$(E2E_CONTAINERD=$v E2E_CRI_PULL=$pull bash -c '
      source "$1"
      trap e2e_cleanup EXIT
      e2e_containerd_ready || exit 1
      plain=$(e2e_containerd_toml) && cp "$plain" "$E2E_DIR/plain.toml" || exit 1
      E2E_CRI_TOML=$(e2e_cri_toml pause:v1 /hosts) && cri=$(e2e_containerd_toml) || exit 1
      for f in "$E2E_DIR/plain.toml" "$cri"; do
        containerd --config "$f" config dump >"$f.dump" 2>"$f.err" || { cat "$f.err"; exit 1; }
      done
      python3 - "$E2E_DIR" "$E2E_CONTAINERD" "$E2E_CRI_PULL" <<'"'PY'"'
import sys, tomllib
d, v, pull = sys.argv[1:]
def load(name):
    with open(f"{d}/{name}.toml.dump", "rb") as f:
        return tomllib.load(f)
for name in ("plain", "containerd"):
    c = load(name)
    p, clip = c["plugins"], c["proxy_plugins"]["clip"]
    assert clip["address"] == f"{d}/clip.sock", clip
    # (1.6 ignores exports: its dump has none)
    assert v == "1.6" or clip["exports"]["root"] == f"{d}/clip", clip
    cri_off = "io.containerd.grpc.v1.cri" in c.get("disabled_plugins", [])
    assert cri_off == (name == "plain"), (name, c.get("disabled_plugins"))
    if v == "2.1":
        assert c["version"] == 3, c["version"]
        assert clip["exports"]["enable_remote_snapshot_annotations"] == "true", clip
        unpack = {(u["platform"], u["snapshotter"])
                  for u in p["io.containerd.transfer.v1.local"]["unpack_config"]}
        assert unpack == {("linux/amd64", "clip"), ("linux/amd64", "overlayfs")}, unpack
        assert p["io.containerd.nri.v1.nri"]["disable"] is True
if v == "2.1":
    images = c["plugins"]["io.containerd.cri.v1.images"]
    assert images["disable_snapshot_annotations"] == (pull == "transfer"), images
    assert images["pinned_images"]["sandbox"] == "pause:v1", images
else:
    cri = c["plugins"]["io.containerd.grpc.v1.cri"]
    images = cri["containerd"]
    assert cri["sandbox_image"] == "pause:v1", cri
    assert images["disable_snapshot_annotations"] is False, images
assert images["snapshotter"] == "clip", images
print("ok")
PY
    ' _ "$env_sh" 2>&1)
    [ "$(tail -n 1 <<<"$out")" = ok ] || error "containerd $v (CRI pull $pull): config: $out"
  done
done
out=$(E2E_CONTAINERD=1.5 bash -c 'source "$1"' _ "$env_sh" 2>&1)
rc=$?
[ "$rc" -eq 2 ] && grep -q "want 1.6, 1.7 or 2.1" <<<"$out" || error "E2E_CONTAINERD=1.5: exit $rc: $out"
exit $fail
