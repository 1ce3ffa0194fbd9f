#!/usr/bin/env bash
# The daemon under systemd (a stand-in: fs/testdata/fake_systemd.py, Type=notify with an
# fd store and Restart=): with fd_store = "auto" and $NOTIFY_SOCKET set it keeps its
# listening socket in systemd's fd store; killed with SIGKILL, the next start gets it
# back as LISTEN_FDS and serves on it (READY=1 again), and a client connected while no
# daemon ran is served. (Lazy layers' connections go the same way: //fs:systemd_fd_store_test
# and, with the holder, //snapshotter:remote_test.)
#
# Each step waits for an event with a deadline that fails the test naming it; on every
# exit (also SIGTERM, a Bazel timeout) the manager and every service it started (one
# process group) are killed.
set -uo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$root/snapshotter/containerd-clip-grpc"
work="$(mktemp -d /tmp/sdXXXXXX)"
fail=0
manager=""
client=""
deadline_s=30
error() { echo "FAIL: $*"; fail=1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
service_pid() { cat "$work/service.pid" 2>/dev/null; }
readies() { grep -c READY "$work/manager.log" 2>/dev/null; }
# wait_for WHAT COMMAND...: polls COMMAND until it succeeds; after $deadline_s seconds
# fails the test with "WHAT" and returns 1.
wait_for() {
  local what=$1 end=$(($(now_ms) + deadline_s * 1000))
  shift
  until "$@"; do
    if [ "$(now_ms)" -ge "$end" ]; then
      error "$what: not within ${deadline_s} s"
      return 1
    fi
    sleep 0.02
  done
}
cleanup() {
  if [ -n "$manager" ]; then
    kill -KILL -- "-$manager" 2>/dev/null
    wait "$manager" 2>/dev/null
  fi
  [ -n "$client" ] && kill -KILL "$client" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "FAIL: SIGTERM (a Bazel timeout?)"; cat "$work/daemon.log" "$work/manager.log"; exit 143' TERM
trap 'exit 130' INT
printf 'root = "%s/root"\naddress = "%s/clip.sock"\ncontainerd_root = ""\n' "$work" "$work" > "$work/clip.toml"

# setsid: the manager leads a process group of its own with every service it starts.
setsid python3 "$root/fs/testdata/fake_systemd.py" "$work" -- "$daemon" --config "$work/clip.toml" \
  2>>"$work/daemon.log" &
manager=$!
wait_for "READY=1" eval '[ "$(readies)" -ge 1 ]'
first=$(service_pid)
kill -KILL "$first"
# A client while no daemon runs: the held socket accepts into its backlog.
python3 - "$work/clip.sock" >"$work/client.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
print("answered" if s.recv(9) else "closed")
PY
client=$!
wait_for "READY=1 after the restart" eval '[ "$(readies)" -ge 2 ]'
[ "$(service_pid)" != "$first" ] || error "not restarted"
wait "$client"
client=""
grep -qx answered "$work/client.out" || error "the client connected during the restart was not served: $(cat "$work/client.out")"
grep -q "systemd's fd store keeps the mounts; it passed 1 fd(s) back" "$work/daemon.log" ||
  error "the daemon did not get its fds back from systemd"
grep -q "(listening socket taken over)" "$work/daemon.log" || error "listening socket not taken over"
grep -q "started .* with 2 stored fds" "$work/manager.log" || error "systemd did not keep the socket"
# Under systemd the store keeps the fds: no clip-fd-holder is started.
[ -e "$work/root/fd-holder.sock.pid" ] && error "a clip-fd-holder was started under systemd: pid $(cat "$work/root/fd-holder.sock.pid")"

# SIGUSR1: a full stop empties the store; the daemon exits 0 and the manager stops.
kill -USR1 "$(service_pid)"
wait_for "the manager to stop after SIGUSR1" eval '! kill -0 "$manager" 2>/dev/null'
wait "$manager"
manager=""
grep -q "exited 0: stopping" "$work/manager.log" || error "the daemon did not exit 0 on SIGUSR1"
[ $fail -ne 0 ] && { cat "$work/daemon.log" "$work/manager.log"; }
exit $fail
