#!/usr/bin/env bash
# Under systemd the mount's fd lives in the service manager's fd store: `clipctl mount
# --systemd-fd-store` run by a stand-in for systemd (testdata/fake_systemd.py: the notify
# socket, FDSTORE=1/FDSTOREREMOVE=1, LISTEN_FDS on the next start, Restart=). While two
# threads read and verify files, the service is killed with SIGKILL 5 times and sent
# SIGTERM (a restart) 5 times: every new start takes the live connection over from the
# fds systemd passed back, 0 failed reads. SIGINT then unmounts and empties the store.
set -uo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
clipctl="$root/cmd/clipctl"
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
  while grep -q " $work/mnt " /proc/mounts; do umount -l "$work/mnt"; done
  rm -rf "$work"
}
trap cleanup EXIT

CLIP_FIXTURES_SKIP_REAL=1 bash "$root/index/testdata/make_layers.sh" "$work/layers" >/dev/null 2>&1 || error "fixtures"
layer="$work/layers/posix.tar.gz"
"$clipctl" index build --layer "$layer" -o "$work/l.idx" >/dev/null || error "index"
mkdir -p "$work/mnt" "$work/ref"
tar -xzf "$layer" -C "$work/ref" 2>/dev/null

python3 "$root/fs/testdata/fake_systemd.py" "$work" -- "$clipctl" mount --systemd-fd-store \
  --index "$work/l.idx" --layer "$layer" "$work/mnt" 2>>"$work/mount.log" &
manager=$!
for _ in $(seq 1 100); do grep -q " $work/mnt fuse.clip " /proc/mounts && break; sleep 0.05; done
grep -q " $work/mnt fuse.clip " /proc/mounts || error "not mounted"

python3 - "$work/mnt" "$work/ref" "$work/stop" >"$work/reader.out" 2>&1 <<'PY' &
import hashlib, os, sys, threading
mnt, ref, stop = sys.argv[1:4]
files = ["etc/app/seq.txt", "usr/bin/random3m", "etc/hello.txt", "caf\udce9"]
want = {f: open(os.path.join(ref, f), "rb").read() for f in files}
st = {"ok": 0, "bad": 0, "errs": set()}
lock = threading.Lock()
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
            with lock:
                st["ok" if got == want[f] else "bad"] += 1
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
for sig in KILL KILL KILL KILL KILL TERM TERM TERM TERM TERM; do
  sleep 0.3
  p=$(service_pid)
  [ "$sig" = TERM ] && touch "$work/restart"  # systemctl restart: start it again
  kill -"$sig" "$p"
  for _ in $(seq 1 100); do [ "$(service_pid)" != "$p" ] && break; sleep 0.02; done
done
sleep 0.5
touch "$work/stop"
wait "$reader" || error "reads failed across systemd restarts"
cat "$work/reader.out"
took=$(grep -c "took over" "$work/mount.log")
[ "$took" -eq 10 ] || { error "expected 10 takeovers, saw $took"; cat "$work/mount.log" "$work/manager.log"; }
grep -q "started .* with 2 stored fds" "$work/manager.log" || error "systemd was not given the fd and its data"

# SIGINT: unmount, the store emptied, the manager stops (a clean exit).
kill -INT "$(service_pid)"
wait "$manager"
manager=""
grep -q " $work/mnt fuse.clip " /proc/mounts && error "still mounted after SIGINT"
exit $fail
