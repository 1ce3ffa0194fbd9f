#!/usr/bin/env bash
# The headline benchmark: time from "pull" to a container's first output, clip (lazy:
# clipctl pull + ctr run --snapshotter clip) vs containerd's built-in overlayfs
# snapshotter (ctr image pull, which downloads and unpacks everything, + ctr run),
# alternated in one run, RUNS runs each, medians, page cache dropped before every run,
# a fresh clip daemon (empty caches) for every clip run.
#
# Images (built offline from this machine's files, gzip -6 layers):
#   py   ~180 MB: a base layer (loader, libc, locales data, dpkg db) + Python 3.11 with its
#        standard library and dist-packages; the container runs python3 importing a few modules
#   big  ~1 GB: py's layers + 2 layers of toolchain files and documentation (never read)
# Networks: everything (registry, a delay proxy in front of it, containerd, clip) runs in a
# network namespace this script creates;
#   loopback  no shaping, no added latency
#   shaped    1 Gbit/s (htb on the namespace's loopback, registry->client traffic) and
#             10 ms round trips (delay_proxy.py: 5 ms each way, no netem in this kernel)
#   rtt50     1 Gbit/s and 50 ms round trips (25 ms each way): a registry far away
# Registry bytes are counted by the proxy (bytes sent towards the clients).
#
# Per image and network, each run has four parts: overlayfs pull + run; the same image
# run again while it is local (the floor: a warm local start); clip without an access
# profile (a fresh daemon, as on a node that never ran the image); clip with the
# image's access profile (a fresh daemon whose store holds the profiles recorded once,
# before the runs, by a clip start of the image: as on a node where the profile came
# from the remote cache). Ratios: speed-up = overlayfs / clip; profile / warm = clip
# with the profile / the warm local start.
#
# CLIP_BENCH_LOG=FILE keeps the clip daemon's log. CLIP_BENCH_INDEX_ARGS: extra flags for
# `clipctl index --push` (e.g. "--small-file-interval 512K"). CLIP_BENCH_REQUESTS=FILE
# logs the registry connections and requests, timed, to FILE.<network>.
#
#   bazel build -c opt //cmd:clipctl //snapshotter:containerd-clip-grpc //fs:clip-fd-holder
#   bash test/bench_cold_start.sh [RUNS=3] [IMAGES="py big"] [NETS="loopback shaped rtt50"]
set -uo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
runs=${1:-3}
images=${2:-"py big"}
nets=${3:-"loopback shaped rtt50"}
clipctl="$src/.bazel/bin/cmd/clipctl"
daemon="$src/.bazel/bin/snapshotter/containerd-clip-grpc"
source "$src/test/e2e_env.sh"
ns="clipbench$$"
t="$E2E_DIR"
cleanup() {
  local status=$?
  # (The namespace lives on while the daemons in it run: e2e_cleanup stops them.)
  ip netns del "$ns" 2>/dev/null
  e2e_cleanup "$status"  # last: it exits non-zero if a holder of ours survived
}
trap cleanup EXIT
X="nsenter --net=/run/netns/$ns"  # network only: mounts and cgroups stay the host's
cmd=(/usr/bin/python3.11 -c "import json, decimal, email.message, http.client, sqlite3; print('ready')")

echo "== building images"
mkdir -p "$t/base" "$t/python" "$t/tools" "$t/docs"
copy() {  # copy DEST PATH...: host files (paths relative to /) into a layer directory
  local dest=$1; shift
  tar -C / -cf - "$@" | tar -C "$dest" -xf -
}
# Merged /usr, as Debian 12: /lib and /lib64 are symlinks into /usr.
ln -s usr/lib "$t/base/lib"
ln -s usr/lib64 "$t/base/lib64"
copy "$t/base" usr/lib64/ld-linux-x86-64.so.2 usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 \
  usr/lib/x86_64-linux-gnu/libc.so.6 usr/lib/x86_64-linux-gnu/libm.so.6 \
  usr/lib/x86_64-linux-gnu/libz.so.1 usr/lib/x86_64-linux-gnu/libz.so.1.2.13 \
  usr/lib/x86_64-linux-gnu/libexpat.so.1 usr/lib/x86_64-linux-gnu/libexpat.so.1.8.10 \
  usr/lib/x86_64-linux-gnu/libsqlite3.so.0 usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6 \
  usr/lib/x86_64-linux-gnu/libffi.so.8 usr/lib/x86_64-linux-gnu/libffi.so.8.1.2 \
  usr/lib/x86_64-linux-gnu/gconv usr/lib/x86_64-linux-gnu/perl-base usr/share/zoneinfo \
  usr/share/i18n var/lib/dpkg
copy "$t/python" usr/bin/python3.11 usr/lib/python3.11 usr/lib/python3/dist-packages
[[ " $images " == *" big "* ]] && copy "$t/tools" usr/lib/gcc usr/include
[[ " $images " == *" big "* ]] && copy "$t/docs" usr/share/locale usr/share/doc usr/share/man
rm -rf "$t/base/usr/lib/python3.11/__pycache__"
for i in py big; do
  case $i in
    py) dirs=("$t/base" "$t/python") ;;
    big) dirs=("$t/base" "$t/python" "$t/tools" "$t/docs") ;;
  esac
  [[ " $images " == *" $i "* ]] || continue
  python3 test/testdata/make_image.py "$t/$i" v1 /usr/bin/python3.11 "${dirs[@]}" || exit 1
done

ip netns add "$ns"
$X ip link set lo up
# The daemons run inside the namespace: `$X setsid CMD &` (nsenter and setsid exec, so
# $! is the daemon's own PID, the one cleanup stops).

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
bytes() { cat "$t/proxy.stats" 2>/dev/null || echo 0; }

E2E_EXEC="$X"
e2e_registry
reg_direct="$E2E_REGISTRY"
for i in $images; do
  $X skopeo copy --quiet --dest-tls-verify=false "oci:$t/$i:v1" "docker://$reg_direct/bench/$i:v1" || exit 1
done

e2e_containerd  # its proxy plugin "clip" dials $t/clip.sock, served by start_clip below
ctr="$E2E_CTR"

clip_pid=""
start_clip() {  # start_clip [PROFILES_DIR]: a fresh daemon: empty root, caches and index
  # store (with PROFILES_DIR's access profiles in its store when given)
  stop_clip
  rm -rf "$t/clip"
  if [ -n "${1:-}" ]; then mkdir -p "$t/clip/profiles" && cp "$1"/* "$t/clip/profiles/"; fi
  $X setsid "$daemon" --config "$t/clip.toml" --root "$t/clip" --address "$t/clip.sock" --containerd-root "$t/c-root" \
    >>"$t/clip.log" 2>&1 &
  clip_pid=$!
  E2E_PIDS+=($clip_pid)
  e2e_track_clip "$clip_pid" "$t/clip"  # cleanup: SIGUSR1, and its holder must end
  e2e_wait "clip daemon" test -S "$t/clip.sock"
  e2e_note_holders
  # containerd redials the proxy plugin with backoff: wait until it reaches this daemon
  # (List and Stat are answered from containerd's own metadata; Prepare goes through).
  for _ in $(seq 1 300); do
    if $ctr snapshots --snapshotter clip prepare "probe$$" >/dev/null 2>&1; then
      $ctr snapshots --snapshotter clip rm "probe$$" >/dev/null 2>&1
      return 0
    fi
    sleep 0.1
  done
  echo "containerd does not reach the clip daemon"; exit 1
}
stop_clip() {  # a full stop (SIGUSR1): every layer unmounted, the fd holder ended
  [ -n "$clip_pid" ] || return 0
  kill -USR1 "$clip_pid" 2>/dev/null
  for _ in $(seq 1 200); do kill -0 "$clip_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$clip_pid" 2>/dev/null && { echo "clip daemon $clip_pid did not stop on SIGUSR1"; exit 1; }
  wait "$clip_pid" 2>/dev/null
  e2e_forget "$clip_pid"
  clip_pid=""
}

echo "| network | image | compressed | overlayfs pull+run (s) | warm local run (s) | clip pull+run (s) | speed-up | clip + profile (s) | profile / warm | overlayfs bytes | clip bytes | clip bytes / image | clip + profile bytes / image |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for net in $nets; do
  delay=0
  [ "$net" = shaped ] && delay=5
  [ "$net" = rtt50 ] && delay=25
  pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  DELAY_PROXY_LOG=${CLIP_BENCH_REQUESTS:+$CLIP_BENCH_REQUESTS.$net} \
    $X setsid python3 test/testdata/delay_proxy.py "$pport" "$reg_direct" "$delay" "$t/proxy.stats" \
    >"$t/proxy-$net.log" 2>&1 &
  proxy_pid=$!
  E2E_PIDS+=($proxy_pid)
  e2e_wait "delay proxy" test -f "$t/proxy.stats"
  reg="127.0.0.1:$pport"
  $X tc qdisc del dev lo root 2>/dev/null
  if [ "$net" != loopback ]; then
    # Registry -> client traffic (from the proxy's port) at 1 Gbit/s; the rest unshaped.
    $X tc qdisc add dev lo root handle 1: htb default 20
    $X tc class add dev lo parent 1: classid 1:10 htb rate 1gbit ceil 1gbit burst 1mb cburst 1mb
    $X tc class add dev lo parent 1: classid 1:20 htb rate 100gbit
    $X tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport "$pport" 0xffff flowid 1:10
  fi
  printf 'plain_http = ["%s"]\n[access_profiles]\nquiet_seconds = 2\n' "$reg" > "$t/clip.toml"
  for i in $images; do
    # shellcheck disable=SC2086  # word splitting intended
    $X "$clipctl" index --plain-http "$reg" --push ${CLIP_BENCH_INDEX_ARGS:-} "$reg/bench/$i:v1" \
      >"$t/index-$i.log" 2>&1 ||
      { cat "$t/index-$i.log"; exit 1; }
    image="$reg/bench/$i:v1"
    size=$(python3 -c '
import json, sys, os
l = sys.argv[1]; idx = json.load(open(l + "/index.json"))
m = json.load(open(l + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(sum(x["size"] for x in m["layers"]))' "$t/$i")
    # The image's access profiles: one clip start records them (a full stop ends every
    # recording); every "clip + profile" run starts from a copy of them.
    if [ ! -d "$t/profiles-$i" ]; then
      start_clip
      $X "$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$image" >"$t/pull.log" 2>&1 ||
        { echo "clip pull failed"; cat "$t/pull.log"; exit 1; }
      first=$($X $ctr run --rm --snapshotter clip "$image" "rec" "${cmd[@]}" | head -n 1)
      [ "$first" = ready ] || { echo "recording run failed (printed '$first')"; exit 1; }
      sleep 3  # quiet_seconds = 2: the recordings end
      $ctr images rm --sync "$image" >/dev/null
      stop_clip
      mkdir -p "$t/profiles-$i" && cp "$t/clip/profiles/"* "$t/profiles-$i/" ||
        { echo "no access profile recorded"; tail -n 20 "$t/clip.log"; exit 1; }
      echo "  $i: recorded $(ls "$t/profiles-$i" | wc -l) access profile(s): $(grep -c 'recorded the access profile' "$t/clip.log") log line(s)" >&2
    fi
    declare -a ot=() ct=() ob=() cb=() wt=() pt=() pb=()
    for r in $(seq 1 "$runs"); do
      # overlayfs: containerd's own pull (download everything, unpack), then run.
      drop_caches
      b0=$(bytes); t0=$(date +%s.%N)
      $X $ctr images pull --plain-http --snapshotter overlayfs "$image" >/dev/null || echo "overlayfs pull failed"
      first=$($X $ctr run --rm --snapshotter overlayfs "$image" "o$r" "${cmd[@]}" | head -n 1)
      t1=$(date +%s.%N)
      sleep 0.5; b1=$(bytes)
      if [ "$first" != ready ]; then echo "overlayfs run $r failed (printed '$first')"; exit 1; fi
      ot+=("$(echo "$t1 - $t0" | bc)"); ob+=($((b1 - b0)))
      # The floor: the same image again, already local (page cache warm).
      t0=$(date +%s.%N)
      first=$($X $ctr run --rm --snapshotter overlayfs "$image" "w$r" "${cmd[@]}" | head -n 1)
      t1=$(date +%s.%N)
      [ "$first" = ready ] || { echo "warm run $r failed (printed '$first')"; exit 1; }
      wt+=("$(echo "$t1 - $t0" | bc)")
      $ctr images rm --sync "$image" >/dev/null
      # clip: fresh daemon, lazy pull, run.
      start_clip
      drop_caches
      b0=$(bytes); t0=$(date +%s.%N)
      $X "$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$image" >"$t/pull.log" 2>&1 ||
        { echo "clip pull failed"; cat "$t/pull.log"; }
      first=$($X $ctr run --rm --snapshotter clip "$image" "c$r" "${cmd[@]}" | head -n 1)
      t1=$(date +%s.%N)
      sleep 0.5; b1=$(bytes)
      if [ "$first" != ready ]; then echo "clip run $r failed (printed '$first')"; cat "$t/pull.log"; exit 1; fi
      ct+=("$(echo "$t1 - $t0" | bc)"); cb+=($((b1 - b0)))
      $ctr images rm --sync "$image" >/dev/null
      # clip with the access profiles: fresh daemon and caches, profiles in its store.
      start_clip "$t/profiles-$i"
      drop_caches
      b0=$(bytes); t0=$(date +%s.%N)
      $X "$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$image" >"$t/pull.log" 2>&1 ||
        { echo "clip pull failed"; cat "$t/pull.log"; }
      tp=$(date +%s.%N)
      first=$($X $ctr run --rm --snapshotter clip "$image" "p$r" "${cmd[@]}" | head -n 1)
      t1=$(date +%s.%N)
      sleep 0.5; b1=$(bytes)
      if [ "$first" != ready ]; then echo "clip + profile run $r failed (printed '$first')"; exit 1; fi
      grep -q "replaying the access profile" "$t/clip.log" || { echo "no profile was replayed"; exit 1; }
      pt+=("$(echo "$t1 - $t0" | bc)"); pb+=($((b1 - b0)))
      $ctr images rm --sync "$image" >/dev/null
      echo "  run $r $net $i: overlayfs ${ot[-1]} s ${ob[-1]} B; warm ${wt[-1]} s; clip ${ct[-1]} s ${cb[-1]} B; clip + profile ${pt[-1]} s (pull $(echo "$tp - $t0" | bc) s) ${pb[-1]} B" >&2
    done
    stop_clip
    [ -z "${CLIP_BENCH_LOG:-}" ] || cp "$t/clip.log" "$CLIP_BENCH_LOG"
    mo=$(median "${ot[@]}"); mc=$(median "${ct[@]}"); mw=$(median "${wt[@]}"); mp=$(median "${pt[@]}")
    mob=$(median "${ob[@]}"); mcb=$(median "${cb[@]}"); mpb=$(median "${pb[@]}")
    printf '| %s | %s | %.0f MB | %.2f | %.2f | %.2f | %.1fx | %.2f | %.2f | %.0f MB | %.1f MB | %.1f%% | %.1f%% |\n' \
      "$net" "$i" "$(echo "$size / 1000000" | bc -l)" "$mo" "$mw" "$mc" "$(echo "$mo / $mc" | bc -l)" \
      "$mp" "$(echo "$mp / $mw" | bc -l)" \
      "$(echo "$mob / 1000000" | bc -l)" "$(echo "$mcb / 1000000" | bc -l)" \
      "$(echo "100 * $mcb / $size" | bc -l)" "$(echo "100 * $mpb / $size" | bc -l)"
    unset ot ct ob cb wt pt pb
  done
  kill -TERM "$proxy_pid"; wait "$proxy_pid" 2>/dev/null; rm -f "$t/proxy.stats"
done
