#!/usr/bin/env bash
# README command 1: the main job.
#
# Installs every package, builds clip, then in a private directory: starts a local
# docker-registry holding a sample multi-layer image built offline (a static program,
# configuration, and a 20 MB data layer the program never reads), indexes it and
# publishes the indexes next to the image, bound to it (`clipctl index --push`: the
# tag then names an image index listing the image and its clip index), starts the clip
# daemon and containerd with clip as its proxy_plugins snapshotter, pulls lazily
# (`clipctl pull`: no layer is downloaded) and runs a container with
# `ctr run --snapshotter clip`. It prints how many layer bytes the registry served.
# Everything it starts is stopped at the end.
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
  local status=$?
  [ -n "${image:-}" ] && [ -n "${E2E_CTR:-}" ] && { $E2E_CTR images rm --sync "$image" >/dev/null 2>&1 || true; }
  if [ "${CI:-}" = "true" ]; then bazel shutdown >/dev/null 2>&1 || true; fi
  # Last: stops the daemon with SIGUSR1 (its fd holder ends with it; one that does not
  # fails the demo) and everything else.
  e2e_cleanup "$status"
}
trap finish EXIT
t="$E2E_DIR"

echo "== sample image: a static program, its configuration, 20 MB of data it never reads"
mkdir -p "$t/l1/etc" "$t/l2/etc" "$t/l3/srv"
gcc -static -O2 -o "$t/l1/hello" test/testdata/hello.c
echo "base layer" > "$t/l1/etc/base"
echo "upper layer" > "$t/l2/etc/upper"
head -c 20000000 /dev/urandom > "$t/l3/srv/data.bin"
python3 test/testdata/make_image.py "$t/layout" v1 /hello "$t/l1" "$t/l2" "$t/l3"

echo "== local registry (behind a proxy that counts the bytes it serves)"
e2e_registry
skopeo copy --quiet --dest-tls-verify=false "oci:$t/layout:v1" "docker://$E2E_REGISTRY/demo/hello:v1"
e2e_proxy "$src/registry/testdata/fault_proxy.py"
image="$E2E_PROXY/demo/hello:v1"

echo "== clipctl index --push $image"
"$clipctl" index --plain-http "$E2E_PROXY" --push "$image"

echo "== clip daemon and containerd (clip as proxy_plugins snapshotter)"
printf 'plain_http = ["%s"]\n' "$E2E_PROXY" > "$t/clip.toml"
e2e_clip "$daemon"
e2e_containerd
$E2E_CTR plugins ls | awk '$2 == "clip"'
curl -sf -X POST -d '{}' "http://$E2E_PROXY/__reset" >/dev/null

echo "== clipctl pull $image"
"$clipctl" pull -a "$t/containerd.sock" -n "$E2E_NS" --plain-http "$E2E_PROXY" "$image"
$E2E_CTR images ls
$E2E_CTR snapshots --snapshotter clip ls
# The tag names the bound image index clipctl index --push published: the daemon
# believes each layer's index because that binding proves it (index_trust = "bound").
echo "== the daemon's lazy mounts (README \"Trust model\")"
sed -n 's/.* INFO remote: \(mounted sha256:[0-9a-f]\{12\}\)[0-9a-f]* of .* lazily at .* (\(index in [^,]*\),.*/\1... (\2)/p' "$t/clip.log"
grep -q "lazily at .*(index in the registry (bound)" "$t/clip.log" ||
  { echo "demo: no layer was mounted through the image's binding" >&2; exit 1; }

echo "== ctr run --snapshotter clip $image"
$E2E_CTR run --rm --snapshotter clip "$image" "demo$$" /hello /etc/base /etc/upper /srv/data.bin
layers=$(du -cb "$t"/layout/blobs/sha256/* | tail -n 1 | cut -f1)
echo "== the registry served $(e2e_blob_bytes) blob bytes (image: $layers bytes of blobs)"
echo "== done"
