#!/usr/bin/env bash
# A FUSE connection outlives its server: `clipctl mount --holder` hands the mount's fd to
# clip-fd-holder; while four threads read and verify files (page cache dropped before
# every read, so reads reach FUSE), the server is killed with SIGKILL 10 times and sent
# SIGTERM (handover) 10 times, each time started again: the new server takes the live
# connection over (replayed INIT, FUSE_NOTIFY_RESEND). 0 failed reads, 0 wrong bytes.
# Then SIGINT unmounts and the holder lets go; with the holder killed as well, a new
# server mounts afresh. Everything it starts is stopped on exit.
#
# Every step waits for an event (a server logging that it serves, the reader reading
# through it, a process gone), each with a deadline that fails the test saying what did
# not happen; nothing sleeps on the hope that something finished. On any exit, also
# SIGTERM (a Bazel timeout) or SIGINT, the server is killed, every holder the test
# started (found by its pid file, h.sock.pid) is stopped and checked gone, and the
# mount is detached.
set -uo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
clipctl="$root/cmd/clipctl"
holder_bin="$root/fs/clip-fd-holder"
work="$(mktemp -d /tmp/tkXXXXXX)"  # short: the holder's unix socket lives here
fail=0
pid=""
reader=""
holders=()  # every holder PID the test's servers started
deadline_s=30  # for any one step; a hang fails here, well before Bazel's timeout
error() { echo "FAIL: $*"; fail=1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# is_holder PID: a running clip-fd-holder (not a zombie, not a PID reused since).
is_holder() {
  local argv0=""
  IFS= read -r -d '' argv0 2>/dev/null <"/proc/$1/cmdline" || true
  [[ "$argv0" == *clip-fd-holder ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}
holder_pid() { local p; p=$(tr -dc 0-9 2>/dev/null <"$work/h.sock.pid") && [ -n "$p" ] && echo "$p"; }
note_holder() {
  local p
  p=$(holder_pid) && is_holder "$p" || return 0
  [[ " ${holders[*]} " == *" $p "* ]] || holders+=("$p")
}
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
  local status=$? p i
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  note_holder
  for p in "${holders[@]}"; do
    is_holder "$p" || continue
    kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < 100; i++)); do is_holder "$p" || break; sleep 0.05; done
    if is_holder "$p"; then
      echo "FAIL: clip-fd-holder $p survived SIGTERM: killed"
      kill -KILL "$p" 2>/dev/null
      status=1
    fi
  done
  touch "$work/stop"
  for ((i = 0; i < 20 && $(grep -c " $work/mnt " /proc/mounts) > 0; i++)); do
    umount -l "$work/mnt" 2>/dev/null || sleep 0.1
  done
  grep -q " $work/mnt " /proc/mounts && { echo "FAIL: cannot unmount $work/mnt"; status=1; }
  if [ -n "$reader" ]; then
    kill -KILL "$reader" 2>/dev/null
    wait "$reader" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'echo "FAIL: SIGTERM (a Bazel timeout?): stopping"; tail -n 20 "$work/mount.log"; exit 143' TERM
trap 'exit 130' INT

CLIP_FIXTURES_SKIP_REAL=1 bash "$root/index/testdata/make_layers.sh" "$work/layers" >/dev/null 2>&1 || error "fixtures"
layer="$work/layers/posix.tar.gz"
"$clipctl" index build --layer "$layer" -o "$work/l.idx" >/dev/null || error "index"
mkdir -p "$work/mnt" "$work/ref"
: >"$work/mount.log"
tar -xzf "$layer" -C "$work/ref" 2>/dev/null

# served: how many servers have served (mounted or took over), by their log lines.
served() { grep -c -e "^clipctl: took over" -e "^clipctl: mounted" "$work/mount.log" 2>/dev/null; }
fresh() { grep -c "^clipctl: mounted" "$work/mount.log" 2>/dev/null; }
# start: a new server; returns once it serves (so it handles signals), or fails the test.
start() {
  local before
  before=$(served)
  setsid "$clipctl" mount --index "$work/l.idx" --layer "$layer" --holder "$work/h.sock" \
    --holder-binary "$holder_bin" "$work/mnt" 2>>"$work/mount.log" &
  pid=$!
  wait_for "server $pid serving (its log line)" eval '[ "$(served)" -gt "$before" ]' || return 1
  note_holder
}
# stop SIG: signals the server and reaps it.
stop() {
  kill -"$1" "$pid"
  wait_for "server $pid gone after SIG$1" eval '! kill -0 "$pid" 2>/dev/null' || return 1
  wait "$pid" 2>/dev/null
  pid=""
}
reads() { stat -c %s "$work/progress" 2>/dev/null || echo 0; }  # one byte per good read
# read_through N: the reader has done N more good reads (through the server serving now).
read_through() {
  local want=$(($(reads) + $1))
  wait_for "$1 more good reads (at $(reads))" eval '[ "$(reads)" -ge "$want" ]'
}
start || exit 1

python3 - "$work/mnt" "$work/ref" "$work/stop" "$work/progress" >"$work/reader.out" 2>&1 <<'PY' &
import hashlib, os, sys, threading, time
mnt, ref, stop, progress = sys.argv[1:5]
files = ["etc/app/seq.txt", "etc/app/zeros.txt", "usr/bin/random3m", "usr/bin/random700k",
         "etc/hello.txt", "caf\udce9"]
want = {f: hashlib.sha256(open(os.path.join(ref, f), "rb").read()).hexdigest() for f in files}
st = {"ok": 0, "fail": 0, "wrong": 0, "max": 0.0, "errs": set()}
lock = threading.Lock()
out = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def work(k):
    i = k
    while not os.path.exists(stop):
        f = files[i % len(files)]; i += 1
        t0 = time.time()
        try:
            fd = os.open(os.path.join(mnt, f), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            h = hashlib.sha256()
            while True:
                b = os.read(fd, 1 << 17)
                if not b:
                    break
                h.update(b)
            os.close(fd)
            names = os.listdir(os.path.join(mnt, "usr/bin"))
            good = h.hexdigest() == want[f] and "random3m" in names
            with lock:
                st["max"] = max(st["max"], time.time() - t0)
                st["ok" if good else "wrong"] += 1
            if good:
                os.write(out, b".")
        except OSError as e:
            with lock:
                st["fail"] += 1
                st["errs"].add(e.errno)
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print("reads=%d failed=%d wrong=%d max_read_ms=%.1f errnos=%s" %
      (st["ok"], st["fail"], st["wrong"], st["max"] * 1000, sorted(st["errs"])))
sys.exit(0 if st["fail"] == 0 and st["wrong"] == 0 and st["ok"] > 100 else 1)
PY
reader=$!
k=0
for sig in KILL KILL KILL KILL KILL KILL KILL KILL KILL KILL TERM TERM TERM TERM TERM TERM TERM TERM TERM TERM; do
  k=$((k + 1))
  # Reads in flight at the kill: the reader is busy on this server.
  read_through 3 || break
  t0=$(now_ms)
  stop "$sig" 2>/dev/null || break
  t1=$(now_ms)
  start || break
  echo "SIG$sig $k/20: gone in $((t1 - t0)) ms, taken over in $(($(now_ms) - t1)) ms"
done
read_through 8  # the last server serves too (and the total passes 100 reads)
touch "$work/stop"
wait_for "the reader to stop" eval '! kill -0 "$reader" 2>/dev/null'
wait "$reader" || error "reads failed during takeovers"
reader=""
cat "$work/reader.out"
took=$(grep -c "took over" "$work/mount.log")
[ "$took" -eq 20 ] || error "expected 20 takeovers, saw $took"
grep -c "handing .* over" "$work/mount.log" | grep -qx 10 || error "SIGTERM did not hand over 10 times"
[ "${#holders[@]}" -eq 1 ] || error "expected one holder across the takeovers, saw ${holders[*]}"

# State this build cannot read (another layout version): the next server falls back to
# mounting afresh, says why, and serves; nothing hangs.
python3 - "$work/h.sock" "$work/mnt" <<'PY' || error "could not rewrite the held state"
import socket, struct, sys
path, mnt = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
def msg(op, name=b"", data=b""):
    return b"CFH1" + op + struct.pack("<I", len(name)) + name + struct.pack("<I", len(data)) + data
s.send(msg(b"L"))
held = {}
while True:
    data, fds, _, _ = socket.recv_fds(s, 1 << 17, 4)
    if data[4:5] == b"Z":
        break
    n = struct.unpack("<I", data[5:9])[0]
    held[data[9:9 + n]] = fds[0]
fd = held[mnt.encode()]
socket.send_fds(s, [msg(b"P", mnt.encode(), b"clip-fuse-init-v999\nfuture layout")], [fd])
assert s.recv(1 << 16)[4:5] == b"K"
PY
stop KILL 2>/dev/null  # (bash's "Killed" notice is noise)
before=$(fresh)
start
[ "$(fresh)" -gt "$before" ] || error "no fresh mount after unreadable state"
grep -q "unknown holder data version; mounting again" "$work/mount.log" ||
  error "unreadable state was not reported"
cmp -s "$work/mnt/etc/hello.txt" "$work/ref/etc/hello.txt" || error "no fresh mount after unreadable state"

# SIGINT: a full stop. The mount goes and the holder holds no /dev/fuse fd any more.
stop INT
grep -q " $work/mnt fuse.clip " /proc/mounts && error "still mounted after SIGINT"
h=$(holder_pid)
[ -n "$h" ] && [ "$(ls -l "/proc/$h/fd" | grep -c /dev/fuse)" -eq 0 ] || error "holder still holds the fd"

# The holder gone too: the next server mounts afresh (nothing to take over).
start
h=$(holder_pid)
kill -KILL "$h" "$pid"
wait_for "holder $h gone after SIGKILL" eval '! is_holder "$h"'
stop KILL 2>/dev/null
before=$(fresh)
start
[ "$(fresh)" -gt "$before" ] || error "no fresh mount once the holder died"
[ "$(holder_pid)" != "$h" ] || error "no new holder once the holder died"
cmp -s "$work/mnt/etc/hello.txt" "$work/ref/etc/hello.txt" || error "fresh mount does not read"
exit $fail
