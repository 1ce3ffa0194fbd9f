#!/usr/bin/env bash
# Under systemd the mount's fd lives in the service manager's fd store: `clipctl mount
# --systemd-fd-store` run by a stand-in for systemd (testdata/fake_systemd.py: the notify
# socket, FDSTORE=1/FDSTOREREMOVE=1, LISTEN_FDS on the next start, Restart=). While two
# threads read and verify files, the service is killed with SIGKILL 5 times and sent
# SIGTERM (a restart) 5 times: every new start takes the live connection over from the
# fds systemd passed back, 0 failed reads. SIGINT then unmounts and empties the store.
#
# Every step waits for an event, never for a fixed time: a signal goes to a service only
# once it has taken over (its log says so; a start that is slow under ASan or load is
# waited for), and only after the reader has read through it. Each wait has a deadline
# that fails the test naming what did not happen. Everything the test starts runs in the
# manager's own process group and is killed with it on every exit, also on SIGTERM (a
# Bazel timeout) or SIGINT.
set -uo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
clipctl="$root/cmd/clipctl"
work="$(mktemp -d /tmp/sdXXXXXX)"
fail=0
manager=""
reader=""
deadline_s=30  # for any one step; a hang fails here, well before Bazel's timeout
error() { echo "FAIL: $*"; fail=1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
service_pid() { cat "$work/service.pid" 2>/dev/null; }
# Starts of the service that serve: the first mount, then one line per takeover.
served() { grep -c -e "^clipctl: took over" -e "^clipctl: mounted" "$work/mount.log" 2>/dev/null; }
reads() { stat -c %s "$work/progress" 2>/dev/null || echo 0; }  # one byte per good read
mounted() { grep -q " $work/mnt fuse.clip " /proc/mounts; }
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
show_logs() {
  echo "--- mount.log"; cat "$work/mount.log"
  echo "--- manager.log"; cat "$work/manager.log"
  echo "--- reader"; cat "$work/reader.out"
}
cleanup() {
  # The manager first, with its whole process group (every service it started): nothing
  # restarts a service any more, and the store's fds close with it.
  if [ -n "$manager" ]; then
    kill -KILL -- "-$manager" 2>/dev/null
    wait "$manager" 2>/dev/null
  fi
  touch "$work/stop"
  local i
  for ((i = 0; i < 20 && $(grep -c " $work/mnt " /proc/mounts) > 0; i++)); do
    umount -l "$work/mnt" 2>/dev/null || sleep 0.1
  done
  grep -q " $work/mnt " /proc/mounts && echo "FAIL: cannot unmount $work/mnt"
  if [ -n "$reader" ]; then
    kill -KILL "$reader" 2>/dev/null
    wait "$reader" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "FAIL: SIGTERM (a Bazel timeout?): stopping"; show_logs; exit 143' TERM
trap 'exit 130' INT

CLIP_FIXTURES_SKIP_REAL=1 bash "$root/index/testdata/make_layers.sh" "$work/layers" >/dev/null 2>&1 || error "fixtures"
layer="$work/layers/posix.tar.gz"
"$clipctl" index build --layer "$layer" -o "$work/l.idx" >/dev/null || error "index"
mkdir -p "$work/mnt" "$work/ref"
: >"$work/mount.log"
tar -xzf "$layer" -C "$work/ref" 2>/dev/null

# setsid: the manager leads a process group of its own with every service it starts.
setsid python3 "$root/fs/testdata/fake_systemd.py" "$work" -- "$clipctl" mount --systemd-fd-store \
  --index "$work/l.idx" --layer "$layer" "$work/mnt" 2>>"$work/mount.log" &
manager=$!
# "mounted" is logged once the fd is in the store: a kill from then on is survived.
wait_for "the first mount" eval '[ "$(served)" -ge 1 ]' || { show_logs; exit 1; }
mounted || error "not mounted"

python3 - "$work/mnt" "$work/ref" "$work/stop" "$work/progress" >"$work/reader.out" 2>&1 <<'PY' &
import os, sys, threading
mnt, ref, stop, progress = sys.argv[1:5]
files = ["etc/app/seq.txt", "usr/bin/random3m", "etc/hello.txt", "caf\udce9"]
want = {f: open(os.path.join(ref, f), "rb").read() for f in files}
st = {"ok": 0, "bad": 0, "errs": set()}
lock = threading.Lock()
out = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def work(k):
    i = k
    while not os.path.exists(stop):
        f = files[i % len(files)]; i += 1
        try:
            fd = os.open(os.path.join(mnt, f), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            got = b""
            while True:
                b = os.read(fd, 1 << 17)
                if not b:
                    break
                got += b
            os.close(fd)
            good = got == want[f]
            with lock:
                st["ok" if good else "bad"] += 1
            if good:
                os.write(out, b".")
        except OSError as e:
            with lock:
                st["bad"] += 1
                st["errs"].add(e.errno)
ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
[t.start() for t in ts]
[t.join() for t in ts]
print("reads=%d bad=%d errnos=%s" % (st["ok"], st["bad"], sorted(st["errs"])))
sys.exit(0 if st["bad"] == 0 and st["ok"] > 20 else 1)
PY
reader=$!

# read_through N: the reader has done N more good reads, on the service serving now.
read_through() {
  local want=$(($(reads) + $1))
  wait_for "$1 more good reads (at $(reads), service $(service_pid))" eval '[ "$(reads)" -ge "$want" ]'
}
k=0
for sig in KILL KILL KILL KILL KILL TERM TERM TERM TERM TERM; do
  k=$((k + 1))
  read_through 2 || break
  p=$(service_pid)
  before=$(served)
  [ "$sig" = TERM ] && touch "$work/restart"  # systemctl restart: start it again
  t0=$(now_ms)
  kill -"$sig" "$p" || { error "service $p gone before SIG$sig"; break; }
  # Taken over: a new service (pid) has logged it; only now does it handle signals.
  wait_for "a new service taking over after SIG$sig $k/10" \
    eval '[ "$(served)" -gt "$before" ] && [ "$(service_pid)" != "$p" ]' || break
  echo "SIG$sig $k/10: service $p -> $(service_pid), taken over in $(($(now_ms) - t0)) ms"
  # SIGTERM is a handover and a clean exit; systemd restarts because it was asked to.
  [ "$sig" = TERM ] && [ -e "$work/restart" ] && error "SIGTERM $k killed service $p instead of a handover"
done
read_through 4  # the last service serves too
touch "$work/stop"
wait_for "the reader to stop" eval '! kill -0 "$reader" 2>/dev/null'
wait "$reader" || error "reads failed across systemd restarts"
reader=""
cat "$work/reader.out"
took=$(grep -c "took over" "$work/mount.log")
[ "$took" -eq 10 ] || error "expected 10 takeovers, saw $took"
[ "$(grep -c "handing .* over" "$work/mount.log")" -eq 5 ] || error "SIGTERM did not hand over 5 times"
grep -q "started .* with 2 stored fds" "$work/manager.log" || error "systemd was not given the fd and its data"

# SIGINT: unmount, the store emptied, the manager stops (a clean exit).
kill -INT "$(service_pid)"
wait_for "the manager to stop after SIGINT" eval '! kill -0 "$manager" 2>/dev/null'
wait "$manager"
manager=""
grep -q "exited 0: stopping" "$work/manager.log" || error "the service did not exit 0 on SIGINT"
mounted && error "still mounted after SIGINT"
[ "$fail" -ne 0 ] && show_logs
exit $fail
