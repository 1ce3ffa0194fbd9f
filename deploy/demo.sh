#!/usr/bin/env bash
# README command 1: the main job.
#
# Installs every package, builds clip, then in a private directory starts a local
# docker-registry holding a sample two-layer image (built offline), the clip daemon and
# containerd with clip as its proxy_plugins snapshotter, pulls the image through clip
# and runs a container with `ctr run --snapshotter clip`; it also builds the clip index
# of each layer and reads a file through it. Everything it starts is stopped at the end.
#
# Status: the pull here is containerd's ordinary one (clip stores the layers as overlay
# snapshots). The lazy pull - layers mounted from their indexes, never downloaded - is in
# the snapshotter already, but needs `clipctl pull` (issue 9) to send containerd the
# layer labels that `ctr image pull` does not.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

bash deploy/setup.sh
bazel build -c opt --disk_cache="${HOME}/.cache/clip-bazel-disk" \
  //cmd:clipctl //snapshotter:containerd-clip-grpc
clipctl="$src/.bazel/bin/cmd/clipctl"
daemon="$src/.bazel/bin/snapshotter/containerd-clip-grpc"
"$clipctl" version | head -n 1

source "$src/test/e2e_env.sh"
finish() {
  [ -n "${image:-}" ] && [ -n "${E2E_CTR:-}" ] && $E2E_CTR images rm --sync "$image" >/dev/null 2>&1
  e2e_cleanup
  if [ "${CI:-}" = "true" ]; then bazel shutdown >/dev/null 2>&1 || true; fi
}
trap finish EXIT
t="$E2E_DIR"

echo "== sample image: a static program and a data layer"
mkdir -p "$t/l1/etc" "$t/l2/etc"
gcc -static -O2 -o "$t/l1/hello" test/testdata/hello.c
echo "base layer" > "$t/l1/etc/base"
echo "upper layer" > "$t/l2/etc/upper"
python3 test/testdata/make_image.py "$t/layout" v1 /hello "$t/l1" "$t/l2"

echo "== clip indexes of the layers"
for blob in $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"].split(":")[1]; print(" ".join(l["digest"].split(":")[1] for l in json.load(open(sys.argv[1]+"/blobs/sha256/"+m))["layers"]))' "$t/layout"); do
  "$clipctl" index build --layer "$t/layout/blobs/sha256/$blob" -o "$t/$blob.idx"
done
last=$(ls "$t"/*.idx | tail -n 1)
"$clipctl" index inspect "$last" | tail -n 3

echo "== local registry, clip daemon, containerd"
e2e_registry
image="$E2E_REGISTRY/demo/hello:v1"
skopeo copy --quiet --dest-tls-verify=false "oci:$t/layout:v1" "docker://$image"
e2e_clip "$daemon"
e2e_containerd
$E2E_CTR plugins ls | awk '$2 == "clip"'

echo "== ctr image pull --snapshotter clip $image"
$E2E_CTR images pull --plain-http --snapshotter clip "$image" >/dev/null
$E2E_CTR snapshots --snapshotter clip ls

echo "== ctr run --snapshotter clip $image"
$E2E_CTR run --rm --snapshotter clip "$image" "demo$$" /hello /etc/base /etc/upper
echo "== done"
