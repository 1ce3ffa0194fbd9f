#!/usr/bin/env bash
# Layers made local become plain directory trees (issue 26), end to end with containerd
# (E2E_CONTAINERD) + runc and clip as its proxy snapshotter:
#   1. a 3-layer image (a static reader that checks every byte it reads against SHA-256
#      sums stored in the image, small and large files) is pulled lazily; background fill
#      (no delay) makes every span local, and the daemon writes each layer as a tree;
#      no container holds the FUSE mounts: they leave (the trees are bound at their
#      mountpoints), their connections end, the fd holder lets go of them;
#   2. a container's rootfs through clip has the three trees as its lowerdirs (no FUSE
#      mount in it) and equals containerd's own overlayfs unpack of the image, file by file;
#   3. a new container reads every file and random blocks; the daemon serves 0 FUSE
#      requests for it, and is killed (SIGKILL) and restarted while the container reads:
#      the container notices nothing (failed=0 wrong=0, exit 0);
#   4. the disk cache holds none of the layers' spans (each layer is on disk once);
#   5. images rm: the trees go with their snapshots; nothing of clip's stays mounted.
# Along the way, clip_layers{state} and `clipctl layers` show the three layers as local.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"
error() { e2e_error "$@"; }
finish() {
  if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- clip log"; tail -n 30 "$t/clip.log" 2>/dev/null
    echo "--- reader log"; tail -n 10 "$t/reader.log" 2>/dev/null
  fi
  exit "$E2E_FAIL"
}
fuse_ops() {  # the daemon's FUSE requests since it started
  curl -sf --unix-socket "$t/metrics.sock" http://clip/metrics 2>/dev/null |
    awk 'index($1, "clip_fuse_ops_total") == 1 {s += $NF} END {printf "%.0f\n", s}'
}

# 1. The image. Layer 1: the reader, its sums and blocks; 2: small files; 3: large files.
mkdir -p "$t/l1" "$t/l2/data/small" "$t/l3/data/large"
gcc -static -O2 -pthread -o "$t/l1/reader" "$src/test/testdata/reader.c" || { error "gcc reader.c"; finish; }
for i in $(seq 0 29); do
  head -c $((1024 + i * 6800)) /dev/urandom >"$t/l2/data/small/f$(printf %02d "$i")"
done
ln "$t/l2/data/small/f01" "$t/l2/data/small/hard"
e9=$(printf '\xe9')
echo latin1 >"$t/l2/data/caf$e9"
head -c $((8 << 20)) /dev/urandom >"$t/l3/data/large/big1"
head -c $((12 << 20 | 12345)) /dev/urandom >"$t/l3/data/large/big2"
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
python3 "$src/test/testdata/make_image.py" "$t/img" v1 /reader "$t/l1" "$t/l2" "$t/l3" || error "image"

e2e_registry || finish
reg="$E2E_REGISTRY"
img="$reg/e2e/tree:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$t/img:v1" "docker://$img" || error "push"
"$clipctl" index --plain-http "$reg" --push "$img" >"$t/index.log" 2>&1 ||
  { cat "$t/index.log"; error "clipctl index"; finish; }
cat >"$t/clip.toml" <<TOML
plain_http = ["$reg"]
metrics_address = "unix:$t/metrics.sock"
[background_fill]
enabled = true
delay_seconds = 0
TOML
e2e_clip_serving "$daemon" || finish
e2e_containerd || finish
ctr="$E2E_CTR"
out=$("$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$reg" "$img" 2>&1) ||
  { error "clipctl pull: $out"; finish; }
grep -q "3 lazy" <<<"$out" || error "not lazy: $out"
three_local() { [ "$(grep -c "is local: written as a tree at" "$t/clip.log")" -eq 3 ]; }
e2e_wait "3 local trees" three_local || finish
grep "is local: written as a tree" "$t/clip.log" | sed 's/^.* layer /layer /; s/ at .* in / in /'
layers_metric=$(curl -sf --unix-socket "$t/metrics.sock" http://clip/metrics | grep '^clip_layers{')
echo "$layers_metric"
grep -q '^clip_layers{state="local"} 3$' <<<"$layers_metric" || error "clip_layers does not count 3 local layers"
fuse_mounts() { awk -v d="$t/" 'index($2, d) == 1 && $3 ~ /^fuse/' /proc/mounts | wc -l; }
holder_fuse_fds() {  # /dev/fuse fds of the holder named by the clip root's pid file
  local p
  p=$(tr -dc 0-9 2>/dev/null <"$t/clip/fd-holder.sock.pid")
  [ -n "$p" ] && find "/proc/$p/fd" -lname /dev/fuse 2>/dev/null | wc -l
}
# (a connection another mount namespace still holds a copy of stays, by design)
no_fuse_left() {
  [ "$(fuse_mounts)" -eq 0 ] && [ "$(holder_fuse_fds)" -le "$(e2e_fuse_copies_elsewhere "$t")" ]
}
e2e_wait "the unused FUSE mounts of the local layers to end" no_fuse_left || finish
binds=$(awk -v d="$t/clip/snapshots/" 'index($2, d) == 1 && $2 ~ /\/fs$/' /proc/mounts | wc -l)
echo "FUSE mounts: $(fuse_mounts), the holder's /dev/fuse fds: $(holder_fuse_fds), trees bound at the mountpoints: $binds"
[ "$binds" -eq 3 ] || error "$binds trees bound at the layers' mountpoints, not 3"
"$clipctl" layers --root "$t/clip" >"$t/layers.txt" || error "clipctl layers"
sed "s|$t|\$t|g" "$t/layers.txt"
[ "$(grep -c ' local ' "$t/layers.txt")" -eq 3 ] || error "clipctl layers does not list 3 local layers"

# 2. A container's rootfs reads the trees, and equals overlayfs's unpack.
$ctr images pull --plain-http "$img" >/dev/null 2>&1 || error "ctr images pull (overlayfs)"
for sn in clip overlayfs; do
  mkdir -p "$t/view-$sn"
  $ctr containers create --snapshotter "$sn" "$img" "view-$sn" >/dev/null || error "container ($sn)"
  cmd=$($ctr snapshots --snapshotter "$sn" mounts "$t/view-$sn" "view-$sn") || error "mounts ($sn)"
  [ "$sn" = clip ] && echo "clip's rootfs: ${cmd//$t/\$t}"
  eval "$cmd" || error "mount $sn view"
  python3 "$src/fs/testdata/tree_manifest.py" "$t/view-$sn" --no-dir-nlink |
    sed 's/^\(\. .*\) mtime=[0-9]*/\1/' >"$t/view-$sn.txt"
done
cmd=$($ctr snapshots --snapshotter clip mounts "$t/view-clip" view-clip)
lowers=$(sed -n 's/.*lowerdir=\([^ ,]*\).*/\1/p' <<<"$cmd")
[ "$(tr ':' '\n' <<<"$lowers" | grep -c '/tree$')" -eq 3 ] ||
  error "the rootfs's lowerdirs are not the 3 trees: $lowers"
LC_ALL=C grep -aq "^data/caf$e9 " "$t/view-clip.txt" || error "clip's view lacks data/caf\\xe9"
LC_ALL=C grep -aq "^data/small/hard .*nlink=2 " "$t/view-clip.txt" || error "clip's view lacks the hardlink"
diff -u "$t/view-overlayfs.txt" "$t/view-clip.txt" >"$t/view.diff" ||
  { error "clip's trees differ from containerd's overlayfs unpack:"; head -n 20 "$t/view.diff"; }
echo "clip's view: $(wc -l <"$t/view-clip.txt") entries, equal to overlayfs's unpack"
for sn in clip overlayfs; do
  umount "$t/view-$sn" || error "umount $sn view"
  $ctr containers rm "view-$sn" >/dev/null || error "rm view-$sn"
done

# 3. A new container reads; 0 FUSE requests; the daemon killed and restarted meanwhile.
ops0=$(fuse_ops)
timeout 90 $ctr run --rm --snapshotter clip "$img" reader \
  /reader -m /manifest.txt -b /blocks.txt -t 2 -d 6 >"$t/reader.log" 2>&1 &
runner=$!
E2E_PIDS+=("$runner")
e2e_wait "the reader's first pass" grep -q "pass 1 done" "$t/reader.log" || finish
ops1=$(fuse_ops)
echo "FUSE requests while the new container read every file: $((ops1 - ops0))"
[ "$ops1" -eq "$ops0" ] || error "the new container's reads sent the daemon $((ops1 - ops0)) FUSE requests"
pid=$E2E_CLIP_PID
{ kill -KILL "$pid"; e2e_wait_dead "$pid" 15; } 2>/dev/null || error "daemon still there after SIGKILL"
e2e_clip_serving "$daemon" || finish
wait "$runner"
st=$?
e2e_forget "$runner"
sum=$(grep -a "^reads=" "$t/reader.log" | tail -n 1)
echo "the reader, across the kill: ${sum:-no summary}; exit status $st"
[[ "$sum" =~ ^reads=([0-9]+)\ failed=0\ wrong=0 ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
  error "the reader saw failures: $sum"
[ "$st" = 0 ] || error "the reader exited with $st"

# 4. The spans left the disk cache: each layer once on disk, as its tree.
spans=$(find "$t/clip/cache" -type f -regex '.*/[0-9a-f]\{64\}' | wc -l)
echo "disk cache: $spans span files"
[ "$spans" -eq 0 ] || error "$spans spans still in the disk cache besides the trees"

# 5. images rm: the trees go with the snapshots.
$ctr images rm --sync "$img" >/dev/null || error "images rm"
for _ in $(seq 1 100); do
  [ -z "$($ctr snapshots --snapshotter clip ls | tail -n +2)" ] && break
  sleep 0.1
done
[ -z "$($ctr snapshots --snapshotter clip ls | tail -n +2)" ] || error "clip snapshots left"
trees=$(find "$t/clip/snapshots" -maxdepth 2 -name tree 2>/dev/null | wc -l)
[ "$trees" -eq 0 ] || error "$trees trees left after images rm"
grep -q " $t/clip/.* fuse" /proc/mounts && error "FUSE mounts left after images rm"
if [ "$E2E_FAIL" -eq 0 ]; then echo "PASS: local layers as trees"; fi
finish
