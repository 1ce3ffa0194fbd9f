#!/usr/bin/env bash
# The daemon under systemd (a stand-in: fs/testdata/fake_systemd.py, Type=notify with an
# fd store and Restart=): with fd_store = "auto" and $NOTIFY_SOCKET set it keeps its
# listening socket in systemd's fd store; killed with SIGKILL, the next start gets it
# back as LISTEN_FDS and serves on it (READY=1 again), and a client connected while no
# daemon ran is served. (Lazy layers' connections go the same way: //fs:systemd_fd_store_test
# and, with the holder, //snapshotter:remote_test.)
set -uo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$root/snapshotter/containerd-clip-grpc"
work="$(mktemp -d /tmp/sdXXXXXX)"
fail=0
manager=""
error() { echo "FAIL: $*"; fail=1; }
service_pid() { cat "$work/service.pid" 2>/dev/null; }
cleanup() {
  [ -n "$manager" ] && kill -KILL "$manager" 2>/dev/null
  local p
  p=$(service_pid)
  [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
printf 'root = "%s/root"\naddress = "%s/clip.sock"\ncontainerd_root = ""\n' "$work" "$work" > "$work/clip.toml"

python3 "$root/fs/testdata/fake_systemd.py" "$work" -- "$daemon" --config "$work/clip.toml" \
  2>>"$work/daemon.log" &
manager=$!
for _ in $(seq 1 100); do grep -q READY "$work/manager.log" 2>/dev/null && break; sleep 0.05; done
grep -q READY "$work/manager.log" || error "no READY=1"
first=$(service_pid)
kill -KILL "$first"
# A client while no daemon runs: the held socket accepts into its backlog.
python3 - "$work/clip.sock" >"$work/client.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
print("answered" if s.recv(9) else "closed")
PY
client=$!
for _ in $(seq 1 100); do [ "$(grep -c READY "$work/manager.log")" -ge 2 ] && break; sleep 0.05; done
[ "$(grep -c READY "$work/manager.log")" -ge 2 ] || error "no READY=1 after the restart"
[ "$(service_pid)" != "$first" ] || error "not restarted"
wait "$client"
grep -qx answered "$work/client.out" || error "the client connected during the restart was not served: $(cat "$work/client.out")"
grep -q "systemd's fd store keeps the mounts; it passed 1 fd(s) back" "$work/daemon.log" ||
  error "the daemon did not get its fds back from systemd"
grep -q "(listening socket taken over)" "$work/daemon.log" || error "listening socket not taken over"
grep -q "started .* with 2 stored fds" "$work/manager.log" || error "systemd did not keep the socket"

# SIGUSR1: a full stop empties the store; the daemon exits 0 and the manager stops.
kill -USR1 "$(service_pid)"
wait "$manager"
manager=""
[ $fail -ne 0 ] && { cat "$work/daemon.log" "$work/manager.log"; }
exit $fail
