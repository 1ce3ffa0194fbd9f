#!/usr/bin/env bash
# End to end through Kubernetes' CRI, the way kubelet drives containerd: containerd
# (E2E_CONTAINERD: 1.6 by default, 1.7, 2.1) with its CRI plugin (snapshotter = "clip",
# snapshot annotations on; on 2.1 pulling through the transfer service or, with
# E2E_CRI_PULL=local, locally), the clip daemon, docker-registry behind a byte-counting
# proxy, and a small CRI v1 client (cri_client.py; stubs generated here from
# testdata/cri_api.proto).
#   1. Version, Status (RuntimeReady); on 2.1, the pull path containerd took;
#   2. PullImage of an indexed image is lazy (the registry serves a small part of its
#      layers, the daemon mounts them "lazily") and idempotent (same image ref);
#   3. a host-network pod (sandbox image: a local static pause program, itself lazily
#      pulled) runs a container of that image: EXITED, exit code 0, its log line;
#   4. an image without an index falls back (downloaded + unpacked) and runs the same;
#   5. ImageFsInfo's image filesystem mountpoint is where the version looks;
#   6. RemoveContainer, StopPodSandbox, RemovePodSandbox, RemoveImage: no clip snapshot
#      in containerd's view nor in clip's own store (the daemon's List), no FUSE mount,
#      no shim and no process with a file under the clip root is left.
# Everything runs in a private directory; every process is stopped by PID at exit.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
source "$src/test/e2e_env.sh"
t="$E2E_DIR"
error() { e2e_error "$@"; }
# Debian's python3-grpcio, python3-grpc-tools and python3-protobuf are /usr/bin/python3's.
PY=/usr/bin/python3
cri() { "$PY" "$src/test/cri_client.py" --socket "$t/containerd.sock" --stubs "$t/py" "$@"; }
kctr="ctr -a $t/containerd.sock -n k8s.io"
cgroup_parent="/clip-cri-$$"
pods=()  # sandboxes to stop and remove at exit if the test did not get that far
runc_k8s_existed=0
[ -e /run/containerd/runc/k8s.io ] && runc_k8s_existed=1

source "$src/test/cri_env.sh"
trap cri_cleanup EXIT

logs() {
  echo "--- clip log"; tail -n 40 "$t/clip.log" 2>/dev/null
  echo "--- containerd log"; grep -v 'level=debug' "$t/containerd.log" 2>/dev/null | tail -n 40
  echo "--- proxy log"; tail -n 10 "$t/proxy.log" 2>/dev/null
}
finish() {
  if [ "$E2E_FAIL" -ne 0 ]; then logs; fi
  exit "$E2E_FAIL"
}
fatal() { error "$@"; finish; }

layers() {  # layers LAYOUT: the manifest's layers, "HEX SIZE" per line
  "$PY" - "$1" <<'PY'
import json, os, sys
layout = sys.argv[1]
idx = json.load(open(os.path.join(layout, "index.json")))
m = json.load(open(os.path.join(layout, "blobs/sha256", idx["manifests"][0]["digest"][7:])))
for l in m["layers"]:
    print(l["digest"][7:], l["size"])
PY
}
served() {  # served LAYOUT: layer bytes the proxy served for this image since the last reset
  local hex n=0
  while read -r hex _; do n=$((n + $(e2e_blob_bytes "$hex"))); done < <(layers "$1")
  echo "$n"
}
layer_size() {  # layer_size LAYOUT: the sum of its compressed layer sizes
  layers "$1" | awk '{s += $2} END {print s}'
}
reset_counts() { curl -sf -X POST -d '{}' "http://$reg/__reset" >/dev/null || error "proxy reset"; }

# --- 1. Images, built offline. hello: [static /hello + 8 MB never read, /etc/marker];
# pause: [static /pause]; plain: [/hello + /etc/plain], never indexed.
mkdir -p "$t/h1" "$t/h2/etc" "$t/p1" "$t/u1/etc" "$t/py" "$t/logs"
gcc -static -O2 -o "$t/h1/hello" "$src/test/testdata/hello.c" || fatal "gcc -static hello.c"
gcc -static -O2 -o "$t/p1/pause" "$src/test/testdata/pause.c" || fatal "gcc -static pause.c"
head -c 8000000 /dev/urandom >"$t/h1/data.bin"
echo marker >"$t/h2/etc/marker"
cp "$t/h1/hello" "$t/u1/hello"
echo plain >"$t/u1/etc/plain"
python3 "$src/test/testdata/make_image.py" "$t/img-hello" v1 /hello "$t/h1" "$t/h2" || fatal "image hello"
python3 "$src/test/testdata/make_image.py" "$t/img-pause" v1 /pause "$t/p1" || fatal "image pause"
python3 "$src/test/testdata/make_image.py" "$t/img-plain" v1 /hello "$t/u1" || fatal "image plain"
"$PY" -m grpc_tools.protoc -I "$src/test/testdata" --python_out="$t/py" --grpc_python_out="$t/py" \
  "$src/test/testdata/cri_api.proto" || fatal "CRI stubs (python3-grpc-tools installed?)"

# --- 2. Registry (behind the counting proxy), clip indexes, clip daemon.
e2e_registry || fatal "docker-registry"
for i in hello pause plain; do
  skopeo copy --quiet --dest-tls-verify=false "oci:$t/img-$i:v1" "docker://$E2E_REGISTRY/cri/$i:v1" ||
    fatal "push $i"
done
e2e_proxy "$src/registry/testdata/fault_proxy.py" || fatal "proxy"
reg="$E2E_PROXY"
hello="$reg/cri/hello:v1" pause="$reg/cri/pause:v1" plain="$reg/cri/plain:v1"
for i in hello pause; do
  "$clipctl" index --plain-http "$reg" --push "$reg/cri/$i:v1" >"$t/index-$i.log" 2>&1 ||
    { cat "$t/index-$i.log"; fatal "clipctl index $i"; }
  # The tag now names the bound image index (the image's manifest + its clip artifact):
  # CRI pulls and runs that, as it would the plain image.
  grep -q "^bound $reg/cri/$i:v1 -> sha256:" "$t/index-$i.log" ||
    { cat "$t/index-$i.log"; fatal "clipctl index $i bound no image index"; }
done
printf 'plain_http = ["%s"]\n' "$reg" >"$t/clip.toml"
e2e_clip "$daemon" || fatal "clip daemon"
clip_pid=${E2E_PIDS[-1]}

# --- 3. containerd with the CRI plugin (e2e_containerd_cri: the config for
# E2E_CONTAINERD, and for 2.1 E2E_CRI_PULL). Its root is $t/c-root, the
# --containerd-root e2e_clip gives the daemon: containerd 1.6's CRI reports
# <root>/io.containerd.snapshotter.v1.clip as the image filesystem, 1.7+ clip's root.
mkdir -p "$t/hosts/$reg"
cat >"$t/hosts/$reg/hosts.toml" <<TOML
server = "http://$reg"
[host."http://$reg"]
  capabilities = ["pull", "resolve"]
TOML
e2e_containerd_cri "$pause" "$t/hosts" || fatal "containerd $E2E_CONTAINERD (CRI)"
e2e_wait "containerd (CRI)" cri version || fatal "containerd's CRI service"

# --- 4. CRI: version and status.
out=$(cri version) || fatal "Version"
echo "Version: $(jq -c . <<<"$out")"
[ "$(jq -r .runtime_name <<<"$out")" = containerd ] || error "Version: runtime_name: $out"
[ "$(jq -r .runtime_api_version <<<"$out")" = v1 ] || error "Version: runtime_api_version: $out"
out=$(cri status) || fatal "Status"
echo "Status: $(jq -c '.status.conditions' <<<"$out")"
[ "$(jq -r '.status.conditions[] | select(.type == "RuntimeReady") | .status' <<<"$out")" = true ] ||
  error "Status: RuntimeReady is not true: $out"

# How the CRI plugin pulls: 2.1 logs when its config makes it leave the transfer service.
if [ "$E2E_CONTAINERD" = 2.1 ]; then
  fallback=$(grep -m 1 "Falling back to local image pull mode" "$t/containerd.log")
  case ${E2E_CRI_PULL:-transfer} in
    transfer) [ -z "$fallback" ] || error "containerd 2.1 left the transfer service: $fallback" ;;
    local) [ -n "$fallback" ] || error "containerd 2.1 did not fall back to the local pull" ;;
  esac
  echo "containerd 2.1's CRI plugin pulls through: $([ -n "$fallback" ] && echo "the local pull" || echo "the transfer service")"
fi

# Lazy pulls of the indexed images: pause first (the sandbox image), then hello,
# counted on its own.
pause_ref=$(cri pull "$pause") || fatal "PullImage $pause"
echo "PullImage $pause -> $pause_ref"
reset_counts
start=$(date +%s%N)
hello_ref=$(cri pull "$hello") || fatal "PullImage $hello"
echo "PullImage $hello -> $hello_ref in $((($(date +%s%N) - start) / 1000000)) ms"
hello_size=$(layer_size "$t/img-hello")
fetched=$(served "$t/img-hello")
echo "hello: layers $hello_size bytes, registry served $fetched layer bytes for PullImage"
[ $((fetched * 10)) -lt "$hello_size" ] ||
  error "PullImage not lazy: registry served $fetched of $hello_size layer bytes (>= 10%)"
while read -r hex _; do
  # Believed through the binding CRI's image reference resolves to (index_trust = bound).
  grep -q "mounted sha256:$hex of .* lazily at .*(index in the \(registry\|remote cache\|local store\)" \
    "$t/clip.log" || error "clip did not mount layer sha256:$hex of hello lazily"
  grep -q "index of sha256:$hex: bound to artifact sha256:" "$t/clip.log" ||
    error "layer sha256:$hex of hello was not found through the image's binding"
done < <(layers "$t/img-hello")
grep -q "of $pause lazily at" "$t/clip.log" || error "the pause image was not mounted lazily"
again=$(cri pull "$hello") || error "second PullImage $hello"
[ "$again" = "$hello_ref" ] || error "PullImage not idempotent: $hello_ref, then $again"
for r in "$pause_ref" "$hello_ref"; do
  case "$r" in sha256:*) ;; *) error "PullImage returned image ref '$r' (not an image ID)" ;; esac
done

# --- A host-network pod running hello.
pod=$(cri runp --name clip-cri-pod --uid "uid-$$" --logdir "$t/logs" \
  --cgroup-parent "$cgroup_parent" --save "$t/pod.cfg") || fatal "RunPodSandbox"
pods+=("$pod")
echo "RunPodSandbox -> ${pod:0:12}"
run_container() {  # run_container NAME IMAGE LOG CMD...: create, start, wait; prints the status
  local name=$1 image=$2 log=$3 id st; shift 3
  id=$(cri create --pod "$pod" --pod-config "$t/pod.cfg" --name "$name" --image "$image" \
    --log-path "$log" -- "$@") || { error "CreateContainer $name"; return 1; }
  echo "$id" >"$t/$name.id"
  cri start "$id" || { error "StartContainer $name"; return 1; }
  st=$(cri wait "$id" --timeout 30) || { error "container $name did not exit: $st"; return 1; }
  echo "$st" >"$t/$name.status"
  [ "$(jq -r .status.exit_code <<<"$st")" = 0 ] ||
    error "container $name: exit code $(jq -r .status.exit_code <<<"$st"): $(jq -c .status <<<"$st")"
  echo "container $name: $(jq -r .status.state <<<"$st"), exit code $(jq -r .status.exit_code <<<"$st")"
}
run_container hello "$hello" hello.log /hello /etc/marker /data.bin /etc/plain
echo "--- hello.log"; cat "$t/logs/hello.log" 2>/dev/null
grep -q " stdout F hello from a clip snapshot$" "$t/logs/hello.log" 2>/dev/null ||
  error "hello's log lacks its line"
grep -q "/etc/marker: present" "$t/logs/hello.log" 2>/dev/null || error "hello's second layer not visible"
grep -q "/etc/plain: absent" "$t/logs/hello.log" 2>/dev/null || error "hello sees another image's file"
fetched=$(served "$t/img-hello")
echo "hello: registry served $fetched of $hello_size layer bytes for PullImage + the container's run"
[ $((fetched * 10)) -lt "$hello_size" ] ||
  error "the run fetched $fetched of $hello_size layer bytes (>= 10%): the 8 MB never read?"

# --- The image without an index: downloaded and unpacked, runs all the same.
reset_counts
plain_ref=$(cri pull "$plain") || error "PullImage $plain (no index)"
echo "PullImage $plain -> $plain_ref"
plain_size=$(layer_size "$t/img-plain")
fetched=$(served "$t/img-plain")
echo "plain: layers $plain_size bytes, registry served $fetched layer bytes for PullImage"
[ "$fetched" -ge "$plain_size" ] || error "plain: only $fetched of $plain_size layer bytes downloaded"
while read -r hex _; do
  grep -q "sha256:$hex of .* lazily at" "$t/clip.log" && error "plain's layer $hex mounted lazily?"
  grep -q "layer sha256:$hex of .* is not lazy" "$t/clip.log" ||
    error "clip's log does not say why plain's layer $hex is not lazy"
done < <(layers "$t/img-plain")
run_container plain "$plain" plain.log /hello /etc/plain /etc/marker
grep -q "/etc/plain: present" "$t/logs/plain.log" 2>/dev/null || error "plain's log: $(cat "$t/logs/plain.log")"
grep -q "/etc/marker: absent" "$t/logs/plain.log" 2>/dev/null || error "plain sees hello's file"

# --- ImageFsInfo: the image filesystem CRI reports (kubelet's image GC watches it).
out=$(cri imagefs) || error "ImageFsInfo"
echo "ImageFsInfo: $(jq -c . <<<"$out")"
mnt=$(jq -r '.image_filesystems[0].fs_id.mountpoint // empty' <<<"$out")
[ -n "$mnt" ] || error "ImageFsInfo has no image filesystem mountpoint"
[ -z "$mnt" ] || [ -e "$mnt" ] || error "ImageFsInfo mountpoint $mnt does not exist"
# containerd 1.6 ignores exports.root (the daemon symlinks its root there); 1.7+ reports it.
want="$t/clip"
[ "$E2E_CONTAINERD" != 1.6 ] || want="$t/c-root/io.containerd.snapshotter.v1.clip"
[ "$mnt" = "$want" ] || error "ImageFsInfo mountpoint is $mnt, want $want (containerd $E2E_CONTAINERD)"

# --- Teardown through CRI; nothing of clip's may be left behind (issue 25, deliverable 5).
# containerd drops a snapshot from its metadata at once and from clip's own store in a
# garbage collection pass: after RemoveContainer and RemovePodSandbox in the
# background, in RemoveImage before it returns (the image is deleted synchronously: the
# pass, clip's Removes included, is waited for; 1.6 to 2.1 alike). So once the last
# RemoveImage returned, containerd's view and clip's own store (the daemon's List, asked
# on its socket) must be empty and nothing mounted: a condition waited for with a
# deadline (met at the first look on every version here). What clip still lists once
# containerd dropped it, its GC failed to remove (its log says so) or clip kept (a leak).
clip_store() {  # the daemon's own snapshots (its List, not containerd's metadata)
  ctr -a "$t/clip.sock" snapshots --snapshotter clip ls 2>/dev/null | awk 'NR > 1 {print $1}'
}
ctr_view() { $kctr snapshots --snapshotter clip ls 2>&1 | awk 'NR > 1 {print $1}'; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
before=$(ctr_view)
# (the same snapshots; clip names containers' and unpacked layers' by containerd's
# <namespace>/<id>/<key>)
[ "$(clip_store | wc -l)" = "$(wc -l <<<"$before")" ] && [ "$(wc -l <<<"$before")" -ge 5 ] ||
  error "before the teardown: clip's own store holds $(clip_store | wc -l) snapshots," \
    "containerd's view $(wc -l <<<"$before") (want the images' 4 layers + the containers')"
for name in hello plain; do
  [ -f "$t/$name.id" ] && { cri rm "$(cat "$t/$name.id")" || error "RemoveContainer $name"; }
done
cri stopp "$pod" || error "StopPodSandbox"
cri rmp "$pod" || error "RemovePodSandbox"
pods=()
for ref in "$hello" "$plain" "$pause"; do cri rmi "$ref" || error "RemoveImage $ref"; done
rmi_done=$(date +%s%N)
for i in $(seq 0 100); do
  view=$(ctr_view) store=$(clip_store) fuse=$(grep -c " $t/clip/.* fuse" /proc/mounts)
  [ -z "$view$store" ] && [ "$fuse" -eq 0 ] && break
  [ "$i" -gt 0 ] || echo "right after the last RemoveImage: containerd's view $(wc -w <<<"$view")," \
    "clip's own store $(wc -w <<<"$store") snapshots, $fuse FUSE mounts: waiting"
  sleep 0.1
done
if [ -z "$view$store" ] && [ "$fuse" -eq 0 ]; then
  echo "teardown: $(wc -l <<<"$before") clip snapshots gone from containerd's view and clip's own" \
    "store, nothing mounted, $([ "$i" = 0 ] && echo "at the first look" || echo "$(ms_since "$rmi_done") ms")" \
    "after the last RemoveImage returned"
else
  [ -z "$view" ] || error "clip snapshots in containerd's view 10 s after RemoveImage: $(tr '\n' ' ' <<<"$view")"
  [ -n "$view" ] || [ -z "$store" ] ||
    error "in clip's own store 10 s after containerd dropped them: $(tr '\n' ' ' <<<"$store")" \
      "(containerd's GC logged $(grep -c 'failed to remove snapshot' "$t/containerd.log") failed removals)"
  [ "$fuse" -eq 0 ] || error "$fuse clip FUSE mounts left after RemoveImage: $(grep " $t/clip/" /proc/mounts)"
fi
left=$(grep -c " $t/clip/" /proc/mounts)
[ "$left" -eq 0 ] || error "$left mounts left under the clip root"
shims=$(cri_shim_pids)
[ -z "$shims" ] || error "shims still running after RemovePodSandbox: $shims"
holders=""
for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = "$clip_pid" ] && continue
  for f in "$d"/fd/* "$d/cwd" "$d/root"; do
    case "$(readlink "$f" 2>/dev/null)" in "$t/clip" | "$t/clip"/*) holders+=" ${d#/proc/}:$(readlink "$f")"; break ;; esac
  done
done
[ -z "$holders" ] || error "processes other than the daemon hold files under the clip root:$holders"
[ "$runc_k8s_existed" = 1 ] || [ ! -e /run/containerd/runc/k8s.io ] ||
  error "/run/containerd/runc/k8s.io was created (runc's Root should be private)"

if [ "$E2E_FAIL" -eq 0 ]; then echo "PASS: CRI pull (lazy and fallback), pod, containers, teardown"; fi
finish
