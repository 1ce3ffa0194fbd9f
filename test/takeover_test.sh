#!/usr/bin/env bash
# Daemon death and handover under a running container, end to end with the real programs
# (docker-registry behind the byte-counting proxy, clipctl index --push + clipctl pull,
# the clip daemon, containerd + runc; E2E_CONTAINERD: 1.6 by default, 1.7, 2.1).
#
# The contract: the daemon hands every FUSE /dev/fuse fd to `clip-fd-holder` (which it
# starts itself, detached; PID in <root>/fd-holder.sock.pid) at mount time. SIGKILL or
# SIGTERM (handover) of the daemon, then a new daemon with the same arguments, and a
# running container sees no failed call and no wrong byte. SIGUSR1 is a full stop
# (unmounts, stops the holder).
#   1. a 3-layer image: a static reader (test/testdata/reader.c) that checks every byte it
#      reads against SHA-256 sums stored in the image (/manifest.txt: 30 files of 1-200 KB
#      in layer 2, 3 files of 8-16 MB in layer 3; /blocks.txt: their 1 MiB blocks);
#   2. lazily pulled, a container runs the reader: a thread reading every file in turn,
#      four threads reading random blocks of the large ones;
#   2b. once the first pass has read everything, the layers become local trees
#      (local_trees); files the reader opens from then on open in FUSE passthrough
#      (Linux 6.9+), the large files it keeps open stay in cached mode (read through the
#      daemon, from the trees): both modes live across what follows;
#   3. meanwhile KILLS times SIGKILL, then KILLS times SIGTERM, of the daemon, each time
#      waited for and started again, the page cache dropped now and then so reads reach
#      FUSE (some of them in flight at the kill);
#   4. the reader exits 0: reads > 0, failed=0, wrong=0; the longest read() call and the
#      longest whole read of a file or block since the kills began are printed; the
#      daemons opened files in passthrough (where the kernel offers it);
#   5. a new container of the image reads everything; `images rm --sync` leaves no FUSE
#      mount, no snapshot and no /dev/fuse fd in the holder;
#   6. holder and daemon both killed: the new daemon falls back to mounting afresh (the
#      log says so) and a container of the image reads everything.
# KILLS=0 (bazel test --test_env=KILLS=0) runs 1, 2, 4, 5 only: the harness without kills.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
# The daemon starts clip-fd-holder itself (//fs:clip-fd-holder, a data dependency: the
# daemon looks beside its binary and in Bazel's output tree).
source "$src/test/e2e_env.sh"
t="$E2E_DIR"
KILLS=${KILLS:-10}
error() { e2e_error "$@"; }
daemon_pid=""

now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_gone() {  # wait_gone PID SECONDS: not our child (the holder); gone or a zombie, or 1
  local i s
  for ((i = 0; i < $2 * 100; i++)); do
    s=$(e2e_proc_state "$1")
    [ -z "$s" ] || [ "$s" = Z ] && return 0
    sleep 0.01
  done
  return 1
}
holder_pid() {  # the running holder's PID from its pid file, or nothing
  local p
  p=$(tr -dc 0-9 2>/dev/null <"$t/clip/fd-holder.sock.pid")
  [ -n "$p" ] && e2e_is_holder "$p" && echo "$p"
}
holder_fuse_fds() { find "/proc/$1/fd" -lname /dev/fuse 2>/dev/null | wc -l; }
fuse_mounts() { awk -v d="$t/" 'index($2, d) == 1 && $3 ~ /^fuse/' /proc/mounts | wc -l; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
task_status() { timeout 10 $E2E_CTR tasks ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
task_pid() { timeout 10 $E2E_CTR tasks ls 2>/dev/null | awk -v id="$1" '$1 == id {print $2}'; }
# A task's exit status from containerd's /tasks/exit event (0 is left out of the event's
# JSON), empty while there is none; 128+N is death by signal N.
exit_status() {
  grep -a "/tasks/exit" "$t/events.log" 2>/dev/null | grep -a "\"container_id\":\"$1\"" | tail -n 1 |
    python3 -c 'import json, sys
l = sys.stdin.read()
print(json.loads(l[l.index("{"):]).get("exit_status", 0) if l else "")'
}
# After a restart containerd's connection to the daemon may sit in gRPC's reconnect
# backoff (Unavailable at once): how long until a snapshot call goes through.
clip_reachable() {
  local t0 i
  t0=$(now_ms)
  for ((i = 0; i < 200; i++)); do
    timeout 10 $E2E_CTR snapshots --snapshotter clip ls >/dev/null 2>&1 &&
      { echo "containerd reached the daemon after $(($(now_ms) - t0)) ms"; return 0; }
    sleep 0.05
  done
  error "containerd cannot reach the daemon 10 s after its restart"
  return 1
}

# Starts the daemon (again), ready once it serves.
start_daemon() {
  local rc=0
  e2e_clip_serving "$daemon" || rc=1
  daemon_pid=$E2E_CLIP_PID
  return $rc
}

# Stops what this test started beyond e2e_env's list (containers), then e2e_cleanup,
# which stops the current daemon with SIGUSR1 and fails the test if a holder of ours
# outlives it. A reader stuck on a FUSE connection nobody serves is in D state: umount -f
# of the FUSE mounts aborts their connections and frees it.
abort_fuse() {
  local m
  awk -v d="$t/" 'index($2, d) == 1 && $3 ~ /^fuse/ {print $2}' /proc/mounts | sort -r |
    while read -r m; do timeout 5 umount -f "$m" 2>/dev/null; done
}
takeover_cleanup() {
  local status=$? ids id i
  if [ -n "${E2E_CTR:-}" ] && timeout 5 $E2E_CTR version >/dev/null 2>&1; then
    ids=$(timeout 10 $E2E_CTR tasks ls -q 2>/dev/null)
    for id in $ids; do timeout 10 $E2E_CTR tasks kill -s KILL "$id" >/dev/null 2>&1; done
    for ((i = 0; i < 50; i++)); do
      timeout 10 $E2E_CTR tasks ls 2>/dev/null | grep -q RUNNING || break
      sleep 0.1
    done
    timeout 10 $E2E_CTR tasks ls 2>/dev/null | grep -q RUNNING && abort_fuse
    for id in $ids; do timeout 10 $E2E_CTR tasks rm -f "$id" >/dev/null 2>&1; done
    for id in $(timeout 10 $E2E_CTR containers ls -q 2>/dev/null); do
      timeout 10 $E2E_CTR containers rm "$id" >/dev/null 2>&1
    done
  fi
  abort_fuse
  e2e_cleanup "$status"
}
trap takeover_cleanup EXIT

show_logs() {
  echo "--- reader log"; tail -n 20 "$t/reader1.log" 2>/dev/null
  echo "--- clip log (current daemon)"; tail -n 30 "$t/clip.log"
  echo "--- earlier daemons: warnings and errors"
  grep -E "WARN|ERROR" "$t/clip-all.log" 2>/dev/null | tail -n 20
  echo "--- containerd log"; tail -n 15 "$t/containerd.log"
}
finish() {
  [ "$E2E_FAIL" -ne 0 ] && show_logs
  exit "$E2E_FAIL"
}
# reader_ok LOG WHAT: the reader's summary says all was read right.
reader_ok() {
  local sum
  sum=$(grep -a "^reads=" "$1" | tail -n 1)
  echo "$2: ${sum:-no summary}"
  grep -a "^reader: .*errno\|WRONG" "$1" | head -n 10
  [[ "$sum" =~ ^reads=([0-9]+)\ failed=0\ wrong=0 ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]
}

# 1. The image. Layer 1: the reader and the sums; 2: small files; 3: large files.
mkdir -p "$t/l1/share" "$t/l2/data/small" "$t/l3/data/large" "$t/share"
gcc -static -O2 -pthread -o "$t/l1/reader" "$src/test/testdata/reader.c" || { error "gcc -static reader.c"; finish; }
for i in $(seq 0 29); do
  head -c $((1024 + i * 6800 + i * i * 37 % 1000)) /dev/urandom >"$t/l2/data/small/f$(printf %02d "$i")"
done
head -c $((8 << 20)) /dev/urandom >"$t/l3/data/large/big1"
head -c $((12 << 20 | 12345)) /dev/urandom >"$t/l3/data/large/big2"
head -c $((16 << 20 | 777)) /dev/urandom >"$t/l3/data/large/big3"
{ (cd "$t/l2" && sha256sum data/small/*); (cd "$t/l3" && sha256sum data/large/*); } |
  sed 's|  |  /|' >"$t/l1/manifest.txt"
python3 - "$t/l3" >"$t/l1/blocks.txt" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
for name in sorted(os.listdir(os.path.join(root, "data/large"))):
    with open(os.path.join(root, "data/large", name), "rb") as f:
        off = 0
        while block := f.read(1 << 20):
            print(hashlib.sha256(block).hexdigest(), "/data/large/" + name, off, len(block))
            off += len(block)
PY
[ "$(wc -l <"$t/l1/manifest.txt")" -eq 33 ] || error "manifest: $(wc -l <"$t/l1/manifest.txt") lines"
python3 "$src/test/testdata/make_image.py" "$t/img" v1 /reader "$t/l1" "$t/l2" "$t/l3" || error "image"

# 2. Registry, proxy, index, daemon, containerd, lazy pull.
e2e_registry
skopeo copy --quiet --dest-tls-verify=false "oci:$t/img:v1" "docker://$E2E_REGISTRY/e2e/reader:v1" ||
  error "push"
e2e_proxy "$src/registry/testdata/fault_proxy.py"
reg="$E2E_PROXY"
img="$reg/e2e/reader:v1"
"$clipctl" index --plain-http "$reg" --push "$img" >"$t/index.log" 2>&1 ||
  { error "clipctl index"; cat "$t/index.log"; }
printf 'plain_http = ["%s"]\nmetrics_address = "unix:%s"\npassthrough_min_file_bytes = 0\n' "$reg" "$t/metrics.sock" >"$t/clip.toml"
start_daemon || finish
e2e_containerd
ctr="$E2E_CTR"
$ctr events >"$t/events.log" 2>&1 &
E2E_PIDS+=($!)
[ "$E2E_FAIL" -eq 0 ] || finish
pull() {
  local out
  out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$img" 2>&1) ||
    { error "clipctl pull: $out"; return 1; }
  echo "$out" | tail -n 1
  grep -q "3 lazy" <<<"$out" || error "not lazy: $out"
}
pull || finish
e2e_note_holders
hp=$(holder_pid)
if [ -n "$hp" ]; then
  n=$(holder_fuse_fds "$hp") m=$(fuse_mounts)
  echo "holder pid $hp holds $n /dev/fuse fds; $m FUSE mounts under $t"
  [ "$n" -ge "$m" ] || error "the holder holds $n /dev/fuse fds for $m FUSE mounts"
elif [ "$KILLS" -gt 0 ]; then
  error "no fd holder running after the first mounts ($t/clip/fd-holder.sock.pid)"
else
  echo "NOTE: no fd holder running ($t/clip/fd-holder.sock.pid): holder checks skipped"
fi

# The reader, until /share/stop appears (120 s at most). Its stdout and stderr go to a file.
run_args=(--snapshotter clip --mount "type=bind,src=$t/share,dst=/share,options=rbind:rw")
$ctr run -d "${run_args[@]}" --log-uri "file://$t/reader1.log" "$img" reader1 \
  /reader -b /blocks.txt -t 4 -d 120 -s /share/stop -r /share/warm >/dev/null 2>&1 ||
  { error "ctr run reader1"; finish; }
# Every file read once (fetched lazily), the reader's maxima start again: what it
# reports is then the takeovers' doing, not the registry's.
for ((i = 0; i < 300; i++)); do grep -q "pass 1 done" "$t/reader1.log" 2>/dev/null && break; sleep 0.1; done
grep -q "pass 1 done" "$t/reader1.log" || error "the reader did not finish a first pass within 30 s"
touch "$t/share/warm"
for ((i = 0; i < 300; i++)); do grep -q "maxima reset" "$t/reader1.log" 2>/dev/null && break; sleep 0.1; done
grep -q "maxima reset" "$t/reader1.log" || error "the reader did not reset its maxima within 30 s"
grep -a "^reader: " "$t/reader1.log"

# 2b. The layers become trees (all their spans are on disk, the reads are quiet).
metric() {  # metric SERIES: its value in the current daemon, or 0
  curl -sf --unix-socket "$t/metrics.sock" http://clip/metrics 2>/dev/null |
    awk -v s="$1" '$1 == s {v = $2} END {print v + 0}'
}
for ((i = 0; i < 600; i++)); do [ "$(metric 'clip_layers{state="local"}')" = 3 ] && break; sleep 0.1; done
[ "$(metric 'clip_layers{state="local"}')" = 3 ] ||
  error "the layers did not become local trees within 60 s: $(metric 'clip_layers{state="local"}') of 3"
pt_opens=0  # passthrough opens of the daemons killed so far

# 3. The kills.
if [ "$KILLS" -gt 0 ]; then
  for sig in KILL TERM; do
    for ((k = 1; k <= KILLS; k++)); do
      ((k % 2 == 1)) && drop_caches && sleep 0.$((RANDOM % 3 + 1))
      pt_opens=$((pt_opens + $(metric clip_fuse_passthrough_opens_total)))
      t0=$(now_ms)
      # (stderr: bash's "Killed" notice for the reaped job is noise)
      { kill -"$sig" "$daemon_pid"; e2e_wait_dead "$daemon_pid" 15; } 2>/dev/null ||
        { error "daemon $daemon_pid still there 15 s after SIG$sig"; break 2; }
      t1=$(now_ms)
      start_daemon || break 2
      t2=$(now_ms)
      st=$(task_status reader1)
      echo "SIG$sig $k/$KILLS: daemon gone in $((t1 - t0)) ms, serving again in $((t2 - t1)) ms;" \
        "$(fuse_mounts) FUSE mounts; reader ${st:-gone}"
      if [ "$st" != RUNNING ]; then
        for ((i = 0; i < 50; i++)); do [ -n "$(exit_status reader1)" ] && break; sleep 0.1; done
        error "the reader is ${st:-gone} after SIG$sig $k (exit status $(exit_status reader1))"
        break 2
      fi
      sleep 0.$((RANDOM % 5 + 5))
    done
  done
  hp=$(holder_pid)
  [ -n "$hp" ] && echo "holder pid $hp holds $(holder_fuse_fds "$hp") /dev/fuse fds after the kills"
  sleep 1
else
  sleep 2
fi
drop_caches
sleep 2

# 4. The reader stops and reports.
pt_opens=$((pt_opens + $(metric clip_fuse_passthrough_opens_total)))
echo "files opened in FUSE passthrough by the daemons: $pt_opens"
if grep -q "offers no FUSE passthrough" "$t/clip-all.log" "$t/clip.log" 2>/dev/null; then
  echo "NOTE: this kernel has no FUSE passthrough: the reads went through the daemons"
elif [ "$pt_opens" -eq 0 ]; then
  error "no file was opened in FUSE passthrough once the layers were trees"
fi
touch "$t/share/stop"
for ((i = 0; i < 300; i++)); do [ "$(task_status reader1)" = STOPPED ] && break; sleep 0.1; done
st=$(task_status reader1)
if [ "$st" != STOPPED ]; then
  error "the reader did not stop within 30 s of its stop file (status ${st:-gone})"
  rp=$(task_pid reader1)
  [ -n "$rp" ] && for th in /proc/"$rp"/task/*; do
    echo "  thread ${th##*/}: state $(e2e_proc_state "${th##*/}") wchan $(cat "$th/wchan" 2>/dev/null)"
  done
else
  for ((i = 0; i < 50; i++)); do rc=$(exit_status reader1); [ -n "$rc" ] && break; sleep 0.1; done
  [ "$rc" = 0 ] || error "the reader exited ${rc:-(no exit event)}"
  timeout 20 $ctr tasks rm reader1 >/dev/null 2>&1 || error "tasks rm reader1"
  reader_ok "$t/reader1.log" "reader during takeovers" || error "the reader saw failed or wrong reads"
  max=$(sed -n 's/^reads=.* max_read_ms=\([0-9.]*\) max_call_ms=\([0-9.]*\).*/\2 ms for one call, \1 ms for one whole file or block/p' "$t/reader1.log")
  echo "longest single read during takeovers: ${max:-?}"
  timeout 20 $ctr containers rm reader1 >/dev/null 2>&1 || error "containers rm reader1"
  # The layers are trees: their FUSE mounts left the mountpoints and lived on for the
  # reader alone; it is gone, so the kernel let go and the holder with it.
  # (Connections another mount namespace still holds a copy of stay, by design.)
  hp=$(holder_pid)
  holder_let_go() { [ "$(holder_fuse_fds "$hp")" -le "$(e2e_fuse_copies_elsewhere "$t")" ]; }
  [ -z "$hp" ] || e2e_wait "the holder letting go of the FUSE connections" holder_let_go ||
    error "the holder still holds $(holder_fuse_fds "$hp") /dev/fuse fds after the last container"
  elsewhere=$(e2e_fuse_copies_elsewhere "$t")
  [ "$elsewhere" -eq 0 ] ||
    echo "NOTE: $elsewhere FUSE mount(s) still held by another mount namespace's copy (their connections stay)"
fi

# 5. A new container reads everything; removal leaves nothing behind.
run_reader() {  # run_reader ID WHAT: a container reads every file twice, blocks too
  local rc
  drop_caches
  timeout 60 $ctr run --rm "${run_args[@]}" "$img" "$1" /reader -b /blocks.txt -t 2 -n 2 -d 30 \
    >"$t/$1.log" 2>&1
  rc=$?
  reader_ok "$t/$1.log" "$2" && [ "$rc" -eq 0 ] || { error "$2: exit $rc"; tail -n 5 "$t/$1.log"; }
}
clip_reachable
run_reader reader2 "new container after the takeovers"
timeout 30 $ctr images rm --sync "$img" >/dev/null || error "images rm"
left=$($ctr snapshots --snapshotter clip ls | tail -n +2)
[ -z "$left" ] || error "snapshots left after images rm: $left"
n=$(fuse_mounts)
[ "$n" -eq 0 ] || { error "$n FUSE mounts left under $t after images rm"; grep " $t/" /proc/mounts | grep fuse; }
hp=$(holder_pid)
if [ -n "$hp" ]; then
  n=$(holder_fuse_fds "$hp")
  [ "$n" -eq 0 ] || error "the holder (pid $hp) still holds $n /dev/fuse fds after images rm"
  echo "after images rm: 0 FUSE mounts, 0 snapshots, holder pid $hp holds $n /dev/fuse fds"
else
  echo "after images rm: no holder running"
fi

# 6. Holder and daemon both gone: the connections are lost, the new daemon mounts afresh.
if [ "$KILLS" -gt 0 ]; then
  pull
  hp=$(holder_pid)
  if [ -n "$hp" ]; then
    echo "holder pid $hp holds $(holder_fuse_fds "$hp") /dev/fuse fds; killing it and the daemon"
  else
    error "no holder to kill"
  fi
  # One kill for both: the daemon must not get the chance to start another holder.
  { kill -KILL $hp "$daemon_pid"; e2e_wait_dead "$daemon_pid" 15; } 2>/dev/null ||
    error "daemon $daemon_pid still there 15 s after SIGKILL"
  [ -z "$hp" ] || wait_gone "$hp" 5 || error "the holder $hp still there 5 s after SIGKILL"
  if start_daemon; then
    lines=$(grep -iE "fall|remount|mounted again|afresh|not be taken over" "$t/clip.log")
    echo "daemon log after losing the holder:"
    sed 's/^/  /' <<<"${lines:-(nothing about falling back or remounting)}"
    [ -n "$lines" ] || error "the daemon's log does not say it fell back to mounting afresh"
    clip_reachable
    run_reader reader3 "container after holder + daemon death"
    timeout 30 $ctr images rm --sync "$img" >/dev/null || error "images rm (after step 6)"
  fi
fi
finish
