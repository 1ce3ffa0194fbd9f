#!/usr/bin/env bash
# Benchmark: the read stall of a running reader across N `kill -9` takeovers of the clip
# daemon (issue: 0 failed reads in N of N, p99 stall <= 100 ms).
#
#   bazel build -c opt //cmd:clipctl //snapshotter:containerd-clip-grpc //fs:clip-fd-holder
#   bash test/bench_takeover.sh [N=100]
#
# A local docker-registry holds a 2-layer image indexed with `clipctl index --push`;
# containerd + clip pull it lazily (`clipctl pull`). A reader on the host reads 4 KiB at
# random offsets of a 20 MB file of the lazily mounted layer, in 4 threads, each read
# after dropping the file's pages (so every read reaches FUSE), and records every read's
# start, end and result. Meanwhile the daemon is killed with SIGKILL N times; each time
# it is started again at once (as systemd's Restart= would) and the loop waits until it
# serves before the next kill. A takeover's stall is the longest read in flight during
# [kill, kill + 2 s]. Prints failed reads, and the stall's median, p99 and max.
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
kills=${1:-100}
bin="$src/.bazel/bin"
daemon="$bin/snapshotter/containerd-clip-grpc"
clipctl="$bin/cmd/clipctl"
for b in "$daemon" "$clipctl" "$bin/fs/clip-fd-holder"; do
  [ -x "$b" ] || { echo "build first: $b missing" >&2; exit 1; }
done
source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"

mkdir -p "$t/l1/etc" "$t/l2/srv"
gcc -static -O2 -o "$t/l1/hello" test/testdata/hello.c
head -c 20000000 /dev/urandom > "$t/l2/srv/data.bin"
python3 test/testdata/make_image.py "$t/layout" v1 /hello "$t/l1" "$t/l2" >/dev/null
e2e_registry
skopeo copy --quiet --dest-tls-verify=false "oci:$t/layout:v1" "docker://$E2E_REGISTRY/bench/tk:v1"
image="$E2E_REGISTRY/bench/tk:v1"
"$clipctl" index --plain-http "$E2E_REGISTRY" --push "$image" >/dev/null
printf 'plain_http = ["%s"]\nlog_level = "info"\n' "$E2E_REGISTRY" > "$t/clip.toml"
e2e_clip "$daemon"
clip_pid=${E2E_PIDS[-1]}
e2e_containerd
"$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$E2E_REGISTRY" "$image" >/dev/null
file=$(ls -d "$t"/clip/snapshots/*/fs/srv/data.bin | head -n 1)
[ -n "$file" ] || { echo "no lazily mounted data.bin" >&2; exit 1; }
cat "$file" > /dev/null  # spans local: the stall measured is the takeover, not the registry

serving() { grep -c "serving snapshotter" "$t/clip.log"; }
python3 - "$file" "$t/stop" "$t/reads.txt" <<'PY' &
import os, random, sys, threading, time
path, stop, out = sys.argv[1:4]
size = os.path.getsize(path)
lines, lock = [], threading.Lock()
def work(seed):
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY)
    while not os.path.exists(stop):
        off = rng.randrange(0, size - 4096) & ~4095
        os.posix_fadvise(fd, off, 4096, os.POSIX_FADV_DONTNEED)
        t0 = time.time()
        try:
            ok = len(os.pread(fd, 4096, off)) == 4096
        except OSError:
            ok = False
        with lock:
            lines.append("%.6f %.6f %d\n" % (t0, time.time(), ok))
    os.close(fd)
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
open(out, "w").writelines(lines)
PY
reader=$!
sleep 0.5
: > "$t/kills.txt"
for i in $(seq 1 "$kills"); do
  before=$(serving)
  date +%s.%N >> "$t/kills.txt"
  kill -KILL "$clip_pid"
  wait "$clip_pid" 2>/dev/null
  e2e_forget "$clip_pid"
  e2e_clip "$daemon"
  clip_pid=${E2E_PIDS[-1]}
  for _ in $(seq 1 6000); do [ "$(serving)" -gt "$before" ] && break; sleep 0.005; done
  [ "$(serving)" -gt "$before" ] || { echo "kill $i: the new daemon did not serve within 30 s" >&2; exit 1; }
  sleep 0.2  # the kills' rhythm (reads between takeovers), not a wait for anything
done
sleep 0.5
touch "$t/stop"
wait "$reader"
python3 - "$t/reads.txt" "$t/kills.txt" <<'PY'
import sys
reads = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
kills = [float(l) for l in open(sys.argv[2])]
failed = sum(1 for r in reads if not r[2])
stalls = []
for k in kills:
    inflight = [e - s for s, e, _ in reads if s <= k + 2 and e >= k]
    stalls.append(max(inflight) * 1000 if inflight else 0.0)
stalls.sort()
n = len(stalls)
pct = lambda p: stalls[min(n - 1, int(p * n))]
print("takeovers=%d reads=%d failed_reads=%d" % (n, len(reads), failed))
print("read stall per takeover (ms): median %.1f  p99 %.1f  max %.1f" % (pct(0.5), pct(0.99), stalls[-1]))
PY
took=$(grep -c "took over [0-9]* live layer mount" "$t/clip.log")
echo "daemon log: $took takeovers of the layer's live mount"

# The first Prepare containerd forwards right after a kill -9 and restart (not waiting
# for the new daemon): the listening socket stayed in the holder, so the call waits in
# its backlog instead of failing with "dial ... timeout".
top=$($E2E_CTR snapshots --snapshotter clip ls | awk 'NR > 1 && $2 != "" && $3 == "Committed" {print $1; exit}')
: > "$t/prepare.txt"
for i in $(seq 1 10); do
  kill -KILL "$clip_pid"
  wait "$clip_pid" 2>/dev/null
  e2e_forget "$clip_pid"
  e2e_clip "$daemon"
  clip_pid=${E2E_PIDS[-1]}
  s=$(date +%s%N)
  if $E2E_CTR snapshots --snapshotter clip prepare "bench-$i" "$top" >/dev/null 2>"$t/prepare.err"; then
    echo "ok $(( ($(date +%s%N) - s) / 1000000 ))" >> "$t/prepare.txt"
  else
    echo "failed $(( ($(date +%s%N) - s) / 1000000 )) $(head -c 200 "$t/prepare.err")" >> "$t/prepare.txt"
  fi
  $E2E_CTR snapshots --snapshotter clip rm "bench-$i" >/dev/null 2>&1
done
python3 - "$t/prepare.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
ok = sorted(int(r[1]) for r in rows if r[0] == "ok")
print("first Prepare right after kill -9 + restart: %d of %d succeeded; ms: median %d max %d" %
      (len(ok), len(rows), ok[len(ok) // 2] if ok else -1, ok[-1] if ok else -1))
for r in rows:
    if r[0] != "ok":
        print("  failed:", " ".join(r[1:]))
PY
