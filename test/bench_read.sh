#!/usr/bin/env bash
# Benchmark: read speed through a clip snapshot vs containerd's overlayfs snapshotter, on
# the same ~0.9 GB three-layer image (264 MB compressed, 37.5k files), as ratios clip time / overlayfs time (1 = parity,
# > 1 = clip slower), medians of RUNS runs. Each run does overlayfs, then clip:
#
#   overlayfs  `ctr images pull --plain-http` (timed: download + unpack), a container of
#              the image, its rootfs mounted (`ctr snapshots mounts`); each workload with
#              the page cache dropped ("cold"), then at once again ("warm")
#   clip       a fresh daemon (empty root: empty memory and disk caches), `clipctl pull`
#              (lazy; timed), a container, its rootfs mounted (an overlay over the layers'
#              FUSE mounts, as in lazy_pull_test.sh step 1b);
#              pass 1 "first read": page cache dropped before each workload, the data
#                 comes from the registry (loopback docker-registry);
#              then the daemon is stopped with SIGTERM (hand-over) and started again on
#              the same root: it takes the live mounts over with an empty memory cache
#              while the disk cache holds what pass 1 fetched;
#              pass 2 "disk cache": page cache dropped before each workload;
#                     "page cache": right after, the same workload again
#              (with local_trees on, the default, a layer whose spans all came local
#              during pass 1 is written as a tree, and its FUSE mount reads from that:
#              each run says how many layers were trees before pass 2)
#              then the daemon is handed over again, to one with background fill
#              (no delay, no limit); once every layer is a tree,
#              pass 3 "new container": a new container of the image (overlayfs over the
#                     trees, no FUSE); its FUSE requests are counted (0 expected)
#              pass 4 "running container": the first container's rootfs again (its FUSE
#                     mounts, taken over twice, now reading the trees): files opened
#                     now open in FUSE passthrough where the kernel has it (Linux 6.9+);
#                     the daemon's READ requests and passthrough opens are counted
#              overlayfs is measured again beside passes 3 and 4 (the image pulled once
#              more while the trees are written, so both copies are as fresh in the VM
#              host's cache), interleaved with them: CLIP_BENCH_REPS rounds (default 5),
#              the order of the three sides reversed every other round, each workload
#              with the page cache dropped, then 3 times from the page cache; medians.
#              A second overlayfs copy, pulled at the same moment in another namespace,
#              is measured the same way: its ratio to the first is this machine's floor
#              for the ratios of passes 3 and 4 (identical copies differ by up to ~8 %)
#
# Columns compare clip first read and clip disk cache with overlayfs cold, clip page
# cache with overlayfs warm (overlayfs's data is on the local disk in both cold cases;
# note this VM's host caches the disk, so "cold" local reads run at 1.5-2 GB/s).
#
# Image (built offline from this machine's files by testdata/bench_read_layers.py, gzip
# -6 by testdata/make_image.py; cached in ~/.cache/clip-bench-read/ across invocations):
#   layer 1  ~480 MB in 32.5k files (38k entries under /usr with layer 2's): Python 3.11
#            (stdlib, dist-packages), the Cloud SDK's bundled Python 3.12 and its Python
#            library tree (lib/third_party, lib/surface): a deep /usr tree
#   layer 2  ~373 MB: 12 large real ELF binaries/libraries from /usr (2-40 MB each)
#   layer 3  5000 small files, 64 B - 16 KiB, half text, half binary, under /srv/small
# Workloads (testdata/bench_read.c, the same static reader on both sides, timing itself):
#   sequential  read every file of layer 2 whole, 1 MiB read()s
#   small       read the 5000 files of layer 3 whole (open, read, close each)
#   walk        readdir + lstat of every entry under /usr (layers 1 and 2)
#   layer1      read every file of layer 1 (first read / cold only): with the two
#               reads above, every file of the image, for the whole-image comparison
#               "clipctl pull + lazy read of everything" vs "ctr image pull + read"
#
#   bazel build -c opt --disk_cache=$HOME/.cache/clip-bazel-disk //cmd:clipctl \
#     //snapshotter:containerd-clip-grpc //fs:clip-fd-holder
#   bash test/bench_read.sh [RUNS=3]
#
# Prints a line per run and side (seconds per workload), the registry bytes clip fetched
# per pass, its FUSE requests by operation and the load average, then the markdown table
# of medians and ratios. One run takes ~5-6 min on the 2-core VM (+ ~1 min the first time,
# to build the image; delete ~/.cache/clip-bench-read to rebuild it).
#
# Needs root (mounts, drop_caches). Starts its own docker-registry, containerd and clip
# daemons in a private directory and stops them (by PID) at exit. Binaries come from
# .bazel/out/k8-opt/bin (CLIP_BIN=DIR overrides; DIR/snapshotter/containerd-clip-grpc,
# DIR/cmd/clipctl, DIR/fs/clip-fd-holder) and are copied first, so a rebuild during the
# run changes nothing. BENCH_READ_CACHE overrides the image cache directory.
# Profiling: CLIP_BENCH_PERF=FILE records the daemon (perf record -g) during one
# workload of one clip column (CLIP_BENCH_PERF_PASS=first|disk, default first;
# CLIP_BENCH_PERF_WORKLOAD=seq|small|walk, default seq; CLIP_BENCH_PERF_ALL=1 records
# the whole machine, registry and reader too); CLIP_BENCH_LOG_LEVEL=debug logs each span's source and time,
# CLIP_BENCH_LOG=FILE keeps the daemon's log of the last run; CLIP_BENCH_TOML adds lines
# to the daemon's configuration (e.g. 'readahead_spans = 4').
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
runs=${1:-3}
# The opt output tree itself, not .bazel/bin (which follows whichever configuration was
# built last); CLIP_BIN overrides it.
bin="${CLIP_BIN:-$src/.bazel/out/k8-opt/bin}"
cache_version=v1
cache="${BENCH_READ_CACHE:-$HOME/.cache/clip-bench-read}/$cache_version"
for b in snapshotter/containerd-clip-grpc cmd/clipctl fs/clip-fd-holder; do
  [ -x "$bin/$b" ] || { echo "build first: $bin/$b missing" >&2; exit 1; }
done
echo "== binaries from $bin (containerd-clip-grpc built $(date -r "$bin/snapshotter/containerd-clip-grpc" '+%F %T'))"
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }

source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"
# Private copies: a rebuild elsewhere (or .bazel/bin flipping to another configuration)
# must not change the binaries under a running benchmark. The daemon finds the holder
# beside itself.
mkdir -p "$t/bin"
cp "$bin/snapshotter/containerd-clip-grpc" "$bin/cmd/clipctl" "$bin/fs/clip-fd-holder" "$t/bin/"
daemon="$t/bin/containerd-clip-grpc"
clipctl="$t/bin/clipctl"
reader="$t/bin/bench_read"
gcc -O2 -static -o "$reader" test/testdata/bench_read.c || exit 1

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- the image (cached) ----
if [ ! -f "$cache/done" ]; then
  echo "== building the image in $cache (once)"
  rm -rf "$cache"
  mkdir -p "$cache"
  python3 test/testdata/bench_read_layers.py "$cache/layers" || fail "layers"
  mv "$cache/layers/"*.list "$cache/"
  python3 test/testdata/make_image.py "$cache/oci" v1 /usr/bin/python3.11 \
    "$cache/layers/l1" "$cache/layers/l2" "$cache/layers/l3" || fail "make_image.py"
  rm -rf "$cache/layers"
  touch "$cache/done"
fi
layout_info() {  # compressed bytes of the layers
  python3 - "$cache/oci" <<'PY'
import json, sys
l = sys.argv[1]; idx = json.load(open(l + "/index.json"))
m = json.load(open(l + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(sum(x["size"] for x in m["layers"]))
PY
}
compressed=$(layout_info)

echo "== registry, index, containerd"
e2e_registry
reg="$E2E_REGISTRY"
image="$reg/bench/read:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$cache/oci:v1" "docker://$image" || fail "skopeo copy"
"$clipctl" index --plain-http "$reg" --push "$image" >"$t/index.log" 2>&1 || { cat "$t/index.log"; fail "clipctl index"; }
cat > "$t/clip.toml" <<TOML
plain_http = ["$reg"]
log_level = "${CLIP_BENCH_LOG_LEVEL:-info}"
metrics_address = "unix:$t/metrics.sock"
${CLIP_BENCH_TOML:-}
TOML
e2e_containerd  # its proxy plugin "clip" dials $t/clip.sock, served by start_clip
ctr="$E2E_CTR"
ctr2="ctr -a $t/containerd.sock -n $E2E_NS-aa"  # the second overlayfs copy beside pass 3

# ---- the clip daemon ----
clip_pid=""
serving() { local n; n=$(grep -c "serving snapshotter" "$t/clip.log" 2>/dev/null); echo "${n:-0}"; }
start_clip() {  # start_clip fresh|takeover
  [ "$1" = fresh ] && rm -rf "$t/clip"
  local before
  before=$(serving)
  setsid "$daemon" --config "$t/clip.toml" --root "$t/clip" --address "$t/clip.sock" \
    --containerd-root "$t/c-root" >>"$t/clip.log" 2>&1 &
  clip_pid=$!
  E2E_PIDS+=("$clip_pid")
  e2e_track_clip "$clip_pid" "$t/clip"  # cleanup: SIGUSR1, and its holder must end
  for _ in $(seq 1 300); do [ "$(serving)" -gt "$before" ] && break; sleep 0.05; done
  [ "$(serving)" -gt "$before" ] || { tail -n 20 "$t/clip.log"; fail "clip daemon did not come up"; }
  e2e_note_holders
  [ "$1" = fresh ] || return 0
  # containerd redials the proxy plugin with backoff: wait until it reaches this daemon.
  for _ in $(seq 1 300); do
    if $ctr snapshots --snapshotter clip prepare "probe$$" >/dev/null 2>&1; then
      $ctr snapshots --snapshotter clip rm "probe$$" >/dev/null 2>&1
      return 0
    fi
    sleep 0.1
  done
  fail "containerd does not reach the clip daemon"
}
stop_clip() {  # stop_clip TERM (hand over: mounts stay) | USR1 (full stop: unmounts)
  [ -n "$clip_pid" ] || return 0
  kill -"$1" "$clip_pid" 2>/dev/null
  wait "$clip_pid" 2>/dev/null
  e2e_forget "$clip_pid"
  clip_pid=""
}
metric() {  # metric NAME [LABELS]: the sum of a counter's series (those with LABELS in
  # their label set, e.g. 'tier="disk"'); 0 if absent
  curl -sf --unix-socket "$t/metrics.sock" http://clip/metrics 2>/dev/null |
    awk -v n="$1" -v l="${2:-}" '($1 == n || index($1, n "{") == 1) && index($1, l) {s += $NF}
      END {printf "%.0f\n", s}'
}

fuse_ops() {  # the daemon's FUSE requests by operation since it started, "op=N ..."
  curl -sf --unix-socket "$t/metrics.sock" http://clip/metrics 2>/dev/null |
    sed -n 's/^clip_fuse_ops_total{op="\([a-z]*\)"} \([0-9.e+]*\)$/\1 \2/p' |
    awk '$2 > 0 {printf "%s%s=%.0f", sep, $1, $2; sep = " "}'
}

perf_pid=""
perf_start() {  # perf_start COLUMN WORKLOAD: profile the daemon if CLIP_BENCH_PERF asks
  [ -n "${CLIP_BENCH_PERF:-}" ] && [ "$1" = "${CLIP_BENCH_PERF_PASS:-first}" ] &&
    [ "$2" = "${CLIP_BENCH_PERF_WORKLOAD:-seq}" ] || return 0
  if [ -n "${CLIP_BENCH_PERF_ALL:-}" ]; then  # the whole machine: registry and reader too
    perf record -q -F 999 -a -g -o "$CLIP_BENCH_PERF" 2>/dev/null &
  else
    perf record -q -F 1999 -g -o "$CLIP_BENCH_PERF" -p "$clip_pid" 2>/dev/null &
  fi
  perf_pid=$!
  sleep 0.5
}
perf_stop() {
  [ -n "$perf_pid" ] || return 0
  kill -INT "$perf_pid"
  wait "$perf_pid"
  perf_pid=""
}
fuse_ops_total() { metric clip_fuse_ops_total; }  # all FUSE requests since the start
trees_written() { grep -c "is local: written as a tree" "$t/clip.log"; }
rss_mb() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$clip_pid/status" 2>/dev/null; }

# ---- workloads ----
declare -A res     # res[side,column,workload,run] = seconds
declare -A amount  # amount[side,workload] = "files=.. bytes=.." / "entries=.."
workload() {  # workload SIDE COLUMN NAME ROOT RUN
  local out
  case $3 in
    seq) out=$("$reader" files "$4" "$cache/seq.list") ;;
    small) out=$("$reader" files "$4" "$cache/small.list") ;;
    layer1) out=$("$reader" files "$4" "$cache/l1.list") ;;
    walk) out=$("$reader" walk "$4/usr") ;;
  esac || fail "$1 $2 $3: the reader failed"
  res[$1,$2,$3,$5]=$(sed 's/^seconds=\([0-9.]*\) .*/\1/' <<<"$out")
  local what=${out#* }
  if [ -z "${amount[$1,$3]:-}" ]; then
    amount[$1,$3]=$what
  elif [ "${amount[$1,$3]}" != "$what" ]; then
    fail "$1 $3 read $what, before ${amount[$1,$3]}"
  fi
}
mount_rootfs() {  # mount_rootfs SNAPSHOTTER CONTAINER DIR
  mkdir -p "$3"
  $ctr containers create --snapshotter "$1" "$image" "$2" >/dev/null || fail "container $2"
  local cmd
  cmd=$($ctr snapshots --snapshotter "$1" mounts "$3" "$2") || fail "mounts of $2"
  eval "$cmd" || fail "mount $2: $cmd"
}
unmount_rootfs() {  # unmount_rootfs CONTAINER DIR
  umount "$2" || fail "umount $2"
  $ctr containers rm "$1" >/dev/null || fail "containers rm $1"
  $ctr images rm --sync "$image" >/dev/null || fail "images rm"
  [ -z "$($ctr content ls -q)" ] || fail "content left after images rm --sync: $($ctr content ls -q | head -3)"
}

ws="seq small walk"
echo "== $runs run(s): image $image, $(wc -l < "$cache/l1.list") + $(wc -l < "$cache/seq.list") + $(wc -l < "$cache/small.list") files"
for r in $(seq 1 "$runs"); do
  run_t0=$(now)
  # overlayfs: containerd's own pull (download everything, unpack), then read.
  drop_caches
  t0=$(now)
  $ctr images pull --plain-http "$image" >/dev/null || fail "ctr images pull"
  res[ov,pull,-,$r]=$(printf '%.3f' "$(echo "$(now) - $t0" | bc)")
  mount_rootfs overlayfs "o$r" "$t/rootfs-o"
  for w in $ws layer1; do
    drop_caches
    workload ov cold "$w" "$t/rootfs-o" "$r"
    [ "$w" = layer1 ] || workload ov warm "$w" "$t/rootfs-o" "$r"
  done
  unmount_rootfs "o$r" "$t/rootfs-o"
  [ -z "$($ctr snapshots --snapshotter overlayfs ls | tail -n +2)" ] || fail "overlayfs snapshots left"

  # clip: fresh daemon (empty caches), lazy pull, read.
  start_clip fresh
  trees0=$(trees_written)
  drop_caches
  t0=$(now)
  out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$image" 2>&1) ||
    fail "clipctl pull: $out"
  res[clip,pull,-,$r]=$(printf '%.3f' "$(echo "$(now) - $t0" | bc)")
  grep -q "3 lazy" <<<"$out" || fail "the pull was not lazy: $out"
  mount_rootfs clip "c$r" "$t/rootfs-c"
  b0=$(metric clip_registry_blob_bytes_total)
  for w in $ws layer1; do
    drop_caches
    perf_start first "$w"
    workload clip first "$w" "$t/rootfs-c" "$r"
    perf_stop
  done
  [ -z "${CLIP_BENCH_LOG:-}" ] || cp "$t/clip.log" "$CLIP_BENCH_LOG"
  res[clip,regbytes1,-,$r]=$(( $(metric clip_registry_blob_bytes_total) - b0 ))
  res[clip,rss1,-,$r]=$(rss_mb)
  ops1=$(fuse_ops)
  page_ops=""
  # Hand over to a new daemon: same mounts, empty memory cache, full disk cache.
  stop_clip TERM
  start_clip takeover
  grep -q "took over 3 live layer mount" "$t/clip.log" || fail "the new daemon did not take the 3 mounts over"
  res[clip,trees1,-,$r]=$(( $(trees_written) - trees0 ))
  for w in $ws; do
    drop_caches
    perf_start disk "$w"
    workload clip disk "$w" "$t/rootfs-c" "$r"
    perf_stop
    n0=$(fuse_ops_total)
    workload clip page "$w" "$t/rootfs-c" "$r"
    page_ops+=" $w=$(( $(fuse_ops_total) - n0 ))"
  done
  res[clip,regbytes2,-,$r]=$(metric clip_registry_blob_bytes_total)
  res[clip,diskbytes2,-,$r]=$(metric clip_cache_read_bytes_total 'tier="disk"')
  ops2=$(fuse_ops)
  # Pass 3: background fill makes every layer a tree; a new container reads the trees
  # (CLIP_BENCH_PASS3=0 skips it, e.g. to compare passes 1-2 with local_trees = false).
  if [ "${CLIP_BENCH_PASS3:-1}" = 1 ]; then
  stop_clip TERM
  cp "$t/clip.toml" "$t/clip-nofill.toml"
  printf '[background_fill]\nenabled = true\ndelay_seconds = 0\n' >>"$t/clip.toml"
  start_clip takeover
  # overlayfs again, pulled and unpacked while the trees are written: both copies fresh
  # in the VM host's cache alike (its recency decides "cold" reads here). Twice, in two
  # namespaces: the second copy, measured like the first, shows how far two identical
  # overlayfs copies differ here (the floor under any ratio of this pass).
  $ctr images pull --plain-http "$image" >/dev/null 2>&1 &
  ov_pull=$!
  $ctr2 images pull --plain-http "$image" >/dev/null 2>&1 &
  ov2_pull=$!
  for _ in $(seq 1 1200); do [ $(( $(trees_written) - trees0 )) -ge 3 ] && break; sleep 0.1; done
  wait "$ov_pull" || fail "ctr images pull (beside pass 3)"
  wait "$ov2_pull" || fail "ctr images pull (the second copy, beside pass 3)"
  [ $(( $(trees_written) - trees0 )) -ge 3 ] || fail "the layers did not all become trees in 120 s"
  mount_rootfs clip "n$r" "$t/rootfs-n"
  [ "$(grep -o 'lowerdir=[^ ]*' <<<"$($ctr snapshots --snapshotter clip mounts "$t/x" "n$r")" | tr ':' '\n' |
    grep -c '/tree$')" -eq 3 ] || fail "the new container's lowerdirs are not the 3 trees"
  # overlayfs again, beside passes 3 and 4 (the machine as it is now, not as it was at
  # the start of the run): a container of the image pulled above.
  mount_rootfs overlayfs "p$r" "$t/rootfs-p"
  mkdir -p "$t/rootfs-q"
  $ctr2 containers create --snapshotter overlayfs "$image" "q$r" >/dev/null || fail "container q$r"
  cmd=$($ctr2 snapshots --snapshotter overlayfs mounts "$t/rootfs-q" "q$r") || fail "mounts of q$r"
  eval "$cmd" || fail "mount q$r: $cmd"
  # Passes 3 and 4 and overlayfs's two copies, interleaved: CLIP_BENCH_REPS rounds
  # (default 5), the order of the four sides reversed every other round; in a round each side reads each
  # workload with the page cache dropped, then 3 times from the page cache. A run's figure
  # is the median of its rounds (warm: of all its warm reads). Single 0.04-0.15 s reads on
  # this machine move by 20 % between identical setups, and a fixed order favours a side.
  declare -A samples=()
  res[clip,newops,-,$r]=0 res[clip,runreads,-,$r]=0 res[clip,runpt,-,$r]=0
  for k in $(seq 1 "${CLIP_BENCH_REPS:-5}"); do
    order="ov new run ov2"
    [ $((k % 2)) = 0 ] && order="ov2 run new ov"
    for s in $order; do
      case $s in
        ov) side=ov cold=cold2 warm=warm2 root=$t/rootfs-p ;;
        ov2) side=ov2 cold=cold2 warm=warm2 root=$t/rootfs-q ;;
        new) side=clip cold=newcold warm=newwarm root=$t/rootfs-n ;;
        run) side=clip cold=runcold warm=runwarm root=$t/rootfs-c ;;
      esac
      n0=$(fuse_ops_total)
      rd0=$(metric clip_fuse_ops_total 'op="read"')
      p0=$(metric clip_fuse_passthrough_opens_total)
      for w in $ws; do
        drop_caches
        workload "$side" "$cold" "$w" "$root" "$r.$k"
        samples[$side,$cold,$w]+=" ${res[$side,$cold,$w,$r.$k]}"
        for j in 1 2 3; do
          workload "$side" "$warm" "$w" "$root" "$r.$k.$j"
          samples[$side,$warm,$w]+=" ${res[$side,$warm,$w,$r.$k.$j]}"
        done
      done
      if [ "$s" = new ]; then  # 0 expected: overlayfs over the trees only
        res[clip,newops,-,$r]=$(( res[clip,newops,-,$r] + $(fuse_ops_total) - n0 ))
      elif [ "$s" = run ]; then
        res[clip,runreads,-,$r]=$(( res[clip,runreads,-,$r] + $(metric clip_fuse_ops_total 'op="read"') - rd0 ))
        res[clip,runpt,-,$r]=$(( res[clip,runpt,-,$r] + $(metric clip_fuse_passthrough_opens_total) - p0 ))
      fi
    done
  done
  for key in "${!samples[@]}"; do
    IFS=, read -r side col w <<<"$key"
    # shellcheck disable=SC2086  # the samples are space-separated numbers
    res[$side,$col,$w,$r]=$(median ${samples[$key]})
  done
  res[clip,rss3,-,$r]=$(rss_mb)
  umount "$t/rootfs-n" || fail "umount $t/rootfs-n"
  $ctr containers rm "n$r" >/dev/null || fail "containers rm n$r"
  umount "$t/rootfs-p" || fail "umount $t/rootfs-p"
  $ctr containers rm "p$r" >/dev/null || fail "containers rm p$r"
  umount "$t/rootfs-q" || fail "umount $t/rootfs-q"
  $ctr2 containers rm "q$r" >/dev/null || fail "containers rm q$r"
  $ctr2 images rm --sync "$image" >/dev/null || fail "images rm (the second copy)"
  mv "$t/clip-nofill.toml" "$t/clip.toml"
  fi
  unmount_rootfs "c$r" "$t/rootfs-c"
  stop_clip USR1
  grep -q " $t/clip/" /proc/mounts && fail "clip mounts left after a full stop"
  rm -rf "$t/clip"
  for s in ov clip; do
    [ "$s" = ov ] && line="  run $r overlayfs: ctr image pull ${res[ov,pull,-,$r]} s; cold/warm" ||
      line="  run $r clip: clipctl pull ${res[clip,pull,-,$r]} s; first/disk/page"
    for w in $ws layer1; do
      if [ "$s" = ov ]; then
        line+=" $w ${res[ov,cold,$w,$r]}/${res[ov,warm,$w,$r]:--}"
      else
        line+=" $w ${res[clip,first,$w,$r]}/${res[clip,disk,$w,$r]:--}/${res[clip,page,$w,$r]:--}"
      fi
    done
    echo "$line s"
  done
  printf '  run %d: clip registry bytes %.1f MB in the first-read pass, %.1f MB in the disk-cache pass (disk tier served %.1f MB); %.0f s for the run\n' "$r" \
    "$(echo "${res[clip,regbytes1,-,$r]} / 1000000" | bc -l)" "$(echo "${res[clip,regbytes2,-,$r]} / 1000000" | bc -l)" \
    "$(echo "${res[clip,diskbytes2,-,$r]} / 1000000" | bc -l)" "$(echo "$(now) - $run_t0" | bc)"
  echo "  run $r: clip FUSE requests, pull + first-read pass: $ops1"
  echo "  run $r: clip FUSE requests, disk-cache + page-cache passes: $ops2"
  echo "  run $r: clip FUSE requests in the page-cache pass:$page_ops"
  echo "  run $r: the daemon's RSS at the end of the first-read pass ${res[clip,rss1,-,$r]} MB," \
    "after pass 3 (every layer a tree) ${res[clip,rss3,-,$r]:--} MB"
  [ "${CLIP_BENCH_PASS3:-1}" = 1 ] &&
  echo "  run $r: layers that were trees before pass 2: ${res[clip,trees1,-,$r]}; new container" \
    "(trees) cold/warm: $(for w in $ws; do printf '%s %s/%s ' "$w" "${res[clip,newcold,$w,$r]}" "${res[clip,newwarm,$w,$r]}"; done)s;" \
    "its FUSE requests: ${res[clip,newops,-,$r]}; overlayfs beside it cold/warm:" \
    "$(for w in $ws; do printf '%s %s/%s ' "$w" "${res[ov,cold2,$w,$r]}" "${res[ov,warm2,$w,$r]}"; done)s;" \
    "the second overlayfs copy: $(for w in $ws; do printf '%s %s/%s ' "$w" "${res[ov2,cold2,$w,$r]}" "${res[ov2,warm2,$w,$r]}"; done)s"
  [ "${CLIP_BENCH_PASS3:-1}" = 1 ] &&
  echo "  run $r: running container (FUSE over the trees) cold/warm:" \
    "$(for w in $ws; do printf '%s %s/%s ' "$w" "${res[clip,runcold,$w,$r]}" "${res[clip,runwarm,$w,$r]}"; done)s;" \
    "READ requests ${res[clip,runreads,-,$r]}, passthrough opens ${res[clip,runpt,-,$r]}"
  echo "  run $r: load average at its end $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine slows FUSE's round trips most)"
done

# ---- medians and the table ----
med() {  # med SIDE COLUMN WORKLOAD
  local v=() r
  for r in $(seq 1 "$runs"); do v+=("${res[$1,$2,$3,$r]}"); done
  median "${v[@]}"
}
cell() {  # cell CLIP_COLUMN OV_COLUMN WORKLOAD [SIDE=clip]: the ratio of the medians,
  # [the median of the runs' own ratios] (each run's pair was measured side by side)
  local c o v=() r
  c=$(med "${4:-clip}" "$1" "$3"); o=$(med ov "$2" "$3")
  for r in $(seq 1 "$runs"); do v+=("$(echo "${res[${4:-clip},$1,$3,$r]} / ${res[ov,$2,$3,$r]}" | bc -l)"); done
  printf '**%.2f** [%.2f] (%.3f s / %.3f s)' "$(echo "$c / $o" | bc -l)" "$(median "${v[@]}")" "$c" "$o"
}
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }
seq_bytes=$(field bytes "${amount[clip,seq]}")
small_bytes=$(field bytes "${amount[clip,small]}")
l1_bytes=$(field bytes "${amount[clip,layer1]}")
walk_entries=$(field entries "${amount[clip,walk]}")
for w in seq small layer1 walk; do
  [ "${amount[clip,$w]}" = "${amount[ov,$w]}" ] ||
    echo "note: $w read ${amount[clip,$w]} through clip but ${amount[ov,$w]} through overlayfs"
done
echo
echo "Read through clip vs containerd's overlayfs, medians of $runs run(s); ratio = clip time / overlayfs time (1 = parity): of the medians, [of the runs]"
echo "(clip s / overlayfs s): first read and disk cache vs overlayfs with the page cache dropped, page cache vs overlayfs warm."
echo
echo "| workload | first read (data from a loopback registry) | spans in disk cache, page cache dropped | second read (page cache) |"
echo "|---|---|---|---|"
printf '| sequential, %.0f MB of large binaries (%s files) | %s | %s | %s |\n' "$(echo "$seq_bytes / 1000000" | bc -l)" \
  "$(field files "${amount[clip,seq]}")" "$(cell first cold seq)" "$(cell disk cold seq)" "$(cell page warm seq)"
printf '| %s small files, 64 B - 16 KiB (%.1f MB) | %s | %s | %s |\n' "$(field files "${amount[clip,small]}")" \
  "$(echo "$small_bytes / 1000000" | bc -l)" "$(cell first cold small)" "$(cell disk cold small)" "$(cell page warm small)"
printf '| find + lstat of /usr (%s entries) | %s | %s | %s |\n' "$walk_entries" \
  "$(cell first cold walk)" "$(cell disk cold walk)" "$(cell page warm walk)"
echo
pass3_table() {  # pass3_table TITLE WHAT COLD_COLUMN WARM_COLUMN [SIDE=clip]: columns of
  # passes 3 and 4 against the overlayfs copy measured beside them
  local w
  echo "$1, medians of $runs run(s):"
  echo
  echo "| workload | $2, page cache dropped (vs overlayfs cold) | $2, page cache (vs overlayfs warm) |"
  echo "|---|---|---|"
  for w in seq small walk; do
    printf '| %s | %s | %s |\n' "$w" "$(cell "$3" cold2 "$w" "${5:-clip}")" "$(cell "$4" warm2 "$w" "${5:-clip}")"
  done
}
if [ "${CLIP_BENCH_PASS3:-1}" = 1 ]; then
  pass3_table "A new container on layers made local (trees, overlayfs only) vs overlayfs measured beside it (same minute)" \
    "new container" newcold newwarm
  echo "FUSE requests of the new containers (per run): $(for r in $(seq 1 "$runs"); do printf '%s ' "${res[clip,newops,-,$r]}"; done)"
  echo
  pass3_table "Two overlayfs copies of the image, pulled at the same moment and read the same way (the second vs the first: how far identical copies differ on this machine)" \
    "second copy" cold2 warm2 ov2
  echo
  pass3_table "The running container once its layers are trees (its FUSE mounts; FUSE passthrough where the kernel has it) vs overlayfs measured beside pass 3" \
    "running container" runcold runwarm
  echo "READ requests / passthrough opens of the running container (per run): $(for r in $(seq 1 "$runs"); do printf '%s/%s ' "${res[clip,runreads,-,$r]}" "${res[clip,runpt,-,$r]}"; done)"
  echo
fi
mb_s() { echo "$1 / $2 / 1000000" | bc -l; }
printf 'sequential throughput: clip first read %.0f MB/s, clip disk cache %.0f MB/s, clip page cache %.0f MB/s; overlayfs cold %.0f MB/s, warm %.0f MB/s\n' \
  "$(mb_s "$seq_bytes" "$(med clip first seq)")" "$(mb_s "$seq_bytes" "$(med clip disk seq)")" \
  "$(mb_s "$seq_bytes" "$(med clip page seq)")" "$(mb_s "$seq_bytes" "$(med ov cold seq)")" \
  "$(mb_s "$seq_bytes" "$(med ov warm seq)")"
whole() {  # whole SIDE COLUMN [pull]: the median over runs of reading every file (+ the pull)
  local v=() r
  for r in $(seq 1 "$runs"); do
    v+=("$(echo "${3:+${res[$1,pull,-,$r]} + }${res[$1,$2,seq,$r]} + ${res[$1,$2,small,$r]} + ${res[$1,$2,layer1,$r]}" | bc -l)")
  done
  median "${v[@]}"
}
wc_=$(whole clip first pull); wo=$(whole ov cold pull)
total_mb=$(echo "($seq_bytes + $small_bytes + $l1_bytes) / 1000000" | bc -l)
printf 'whole image (%.0f MB compressed, %.0f MB in %d files), medians: clipctl pull %.2f s, lazy first read of every file %.2f s, together %.2f s; ctr image pull %.2f s, cold read of every file %.2f s, together %.2f s; ratio **%.2f**\n' \
  "$(echo "$compressed / 1000000" | bc -l)" "$total_mb" \
  "$(( $(field files "${amount[clip,seq]}") + $(field files "${amount[clip,small]}") + $(field files "${amount[clip,layer1]}") ))" \
  "$(med clip pull -)" "$(whole clip first)" "$wc_" \
  "$(med ov pull -)" "$(whole ov cold)" "$wo" "$(echo "$wc_ / $wo" | bc -l)"
printf 'layer 1 (%.0f MB, %s files) first read: clip %.2f s, overlayfs cold %.2f s\n' "$(echo "$l1_bytes / 1000000" | bc -l)" \
  "$(field files "${amount[clip,layer1]}")" "$(med clip first layer1)" "$(med ov cold layer1)"
printf 'clip registry bytes (median): first-read pass %.1f MB; disk-cache pass %.1f MB (spans missing from the disk cache; the disk tier served %.1f MB)\n' \
  "$(echo "$(med clip regbytes1 -) / 1000000" | bc -l)" "$(echo "$(med clip regbytes2 -) / 1000000" | bc -l)" \
  "$(echo "$(med clip diskbytes2 -) / 1000000" | bc -l)"
