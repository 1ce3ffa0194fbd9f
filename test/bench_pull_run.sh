#!/usr/bin/env bash
# Pull + first run of an image through clip's ordinary (non-lazy) path vs containerd's
# built-in overlayfs snapshotter, alternated in one run, medians of RUNS (default 3).
# The image: a static program plus Python's standard library (~55 MB, 2 layers).
#
#   bazel build -c opt //snapshotter:containerd-clip-grpc
#   bash test/bench_pull_run.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
src=$(pwd)
daemon="$src/.bazel/bin/snapshotter/containerd-clip-grpc"
source "$src/test/e2e_env.sh"
trap e2e_cleanup EXIT
t="$E2E_DIR"

mkdir -p "$t/l1" "$t/l2/usr/lib"
gcc -static -O2 -o "$t/l1/hello" test/testdata/hello.c
cp -a /usr/lib/python3.11 "$t/l2/usr/lib/"
python3 test/testdata/make_image.py "$t/layout" v1 /hello "$t/l1" "$t/l2"
e2e_registry
image="$E2E_REGISTRY/bench/py:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$t/layout:v1" "docker://$image"
e2e_clip "$daemon"
e2e_containerd
size=$(du -sb "$t/layout/blobs" | cut -f1)

one() {  # one SNAPSHOTTER -> seconds for pull + run
  local s=$1 start end
  start=$(date +%s.%N)
  $E2E_CTR images pull --plain-http --snapshotter "$s" "$image" >/dev/null
  $E2E_CTR run --rm --snapshotter "$s" "$image" "b$$" /hello >/dev/null
  end=$(date +%s.%N)
  $E2E_CTR images rm --sync "$image" >/dev/null
  echo "$end - $start" | bc
}
declare -a clip_t=() overlay_t=()
for i in $(seq 1 "$runs"); do
  overlay_t+=("$(one overlayfs)")
  clip_t+=("$(one clip)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mo=$(median "${overlay_t[@]}")
mc=$(median "${clip_t[@]}")
echo "image: 2 layers, $size bytes compressed; $runs alternated runs"
echo "overlayfs pull+run: ${overlay_t[*]} s (median $mo)"
echo "clip      pull+run: ${clip_t[*]} s (median $mc)"
echo "ratio clip/overlayfs: $(echo "scale=2; $mc / $mo" | bc)"
