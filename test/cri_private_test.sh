#!/usr/bin/env bash
# Private images lazy on Kubernetes (issue 25, deliverable 4): kubelet's image calls go
# through the clip daemon's CRI image proxy (cri_image_proxy; kubelet
# --image-service-endpoint), which forwards them to containerd (E2E_CONTAINERD, its CRI
# plugin) and keeps each PullImage's credentials in memory for the lazy reads of that
# image. The registry is docker-registry over TLS (a CA of the test's own) with htpasswd
# auth; the credentials reach the node only in PullImage (the daemon's docker config is
# empty, so are the hosts.toml files). Checks, with a small CRI v1 client (cri_client.py):
#   1. wrong credentials, and none: the proxy answers exactly what containerd itself
#      answers (code and message: what kubelet shows), and keeps nothing;
#   2. the right credentials: the pull is lazy (clip mounts every layer lazily through the
#      image's binding; containerd's content store has none of the layer blobs);
#   3. a pod's container reads a file (lazily), then, on a signal, another that nothing
#      has read: across a kill -9 and restart of the daemon (and so of its proxy) in
#      between, the container keeps running and its lazy read after the restart is
#      authorized with the credentials handed over in memory (fd holder, sealed memfd);
#   4. after the restart the proxy serves again; RemoveImage through it drops the
#      credentials (the daemon's log says so);
#   5. the password, and its base64 form, appear in no file of the test's directory
#      (logs, clip's root, containerd's root and state, configs) but the indexer's own
#      docker config, nor in any process's command line or environment of ours.
# Everything runs in a private directory; every process is stopped by PID at exit.
set -uo pipefail
src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
daemon="$src/snapshotter/containerd-clip-grpc"
clipctl="$src/cmd/clipctl"
source "$src/test/e2e_env.sh"
t="$E2E_DIR"
error() { e2e_error "$@"; }
PY=/usr/bin/python3
user=kubelet-user
password="pw-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# CRI: runtime calls to containerd, image calls to the proxy (as kubelet is configured).
cri() {
  "$PY" "$src/test/cri_client.py" --socket "$t/containerd.sock" --image-socket "$t/cri.sock" \
    --stubs "$t/py" "$@"
}
cri_direct() { "$PY" "$src/test/cri_client.py" --socket "$t/containerd.sock" --stubs "$t/py" "$@"; }
kctr="ctr -a $t/containerd.sock -n k8s.io"
cgroup_parent="/clip-cri-private-$$"
pods=()
daemon_pid=""

source "$src/test/cri_env.sh"
trap cri_cleanup EXIT

logs() {
  echo "--- clip log"; tail -n 40 "$t/clip.log" 2>/dev/null
  echo "--- containerd log"; grep -v 'level=debug' "$t/containerd.log" 2>/dev/null | tail -n 30
  echo "--- registry log"; tail -n 10 "$t/registry.log" 2>/dev/null
}
finish() {
  if [ "$E2E_FAIL" -ne 0 ]; then logs; fi
  exit "$E2E_FAIL"
}
fatal() { error "$@"; finish; }
start_daemon() {  # the daemon, serving, and its CRI image proxy
  e2e_clip_serving "$daemon" || return 1
  daemon_pid=$E2E_CLIP_PID
  e2e_wait "the CRI image proxy" test -S "$t/cri.sock"
}

# --- Images, built offline. private: [static /read_on_signal + /before.bin (1 MB)],
# [/after.bin (8 MB), read only on a signal]; pause: [static /pause].
mkdir -p "$t/l1" "$t/l2" "$t/p1" "$t/py" "$t/logs" "$t/indexer"
gcc -static -O2 -o "$t/l1/read_on_signal" "$src/test/testdata/read_on_signal.c" || fatal "gcc read_on_signal.c"
gcc -static -O2 -o "$t/p1/pause" "$src/test/testdata/pause.c" || fatal "gcc pause.c"
head -c 1000000 /dev/urandom >"$t/l1/before.bin"
head -c 8000000 /dev/urandom >"$t/l2/after.bin"
fnv() {  # fnv FILE: "N bytes fnv1a64 HEX", as read_on_signal prints it
  "$PY" - "$1" <<'PY'
import sys
h, data = 14695981039346656037, open(sys.argv[1], "rb").read()
for b in data:
    h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
print(f"{len(data)} bytes fnv1a64 {h:016x}")
PY
}
want_before=$(fnv "$t/l1/before.bin") want_after=$(fnv "$t/l2/after.bin")
python3 "$src/test/testdata/make_image.py" "$t/img-private" v1 /read_on_signal "$t/l1" "$t/l2" ||
  fatal "image private"
python3 "$src/test/testdata/make_image.py" "$t/img-pause" v1 /pause "$t/p1" || fatal "image pause"
"$PY" -m grpc_tools.protoc -I "$src/test/testdata" --python_out="$t/py" --grpc_python_out="$t/py" \
  "$src/test/testdata/cri_api.proto" || fatal "CRI stubs (python3-grpc-tools installed?)"

# --- The registry: TLS with a certificate for 127.0.0.1, htpasswd (bcrypt) auth.
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg="127.0.0.1:$port"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$t/registry.key" -out "$t/ca.pem" \
  >/dev/null 2>&1 || fatal "openssl: the registry's certificate"
htpasswd -Bbn "$user" "$password" >"$t/htpasswd" 2>/dev/null || fatal "htpasswd"
cat >"$t/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $t/registry}}
http:
  addr: $reg
  tls: {certificate: $t/ca.pem, key: $t/registry.key}
auth:
  htpasswd: {realm: clip-test, path: $t/htpasswd}
YML
setsid docker-registry serve "$t/registry.yml" >"$t/registry.log" 2>&1 &
E2E_PIDS+=($!)
e2e_wait "registry (TLS)" curl -s -o /dev/null --cacert "$t/ca.pem" "https://$reg/v2/" || fatal "docker-registry"
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$t/ca.pem" "https://$reg/v2/")" = 401 ] ||
  fatal "the registry does not ask for credentials"

# Who may read the registry: the indexer (CI's role) through its own docker config; the
# node (clip and containerd) only trusts the CA: hosts.toml without credentials.
auth64=$(printf '%s:%s' "$user" "$password" | base64 -w0)
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$reg" "$auth64" >"$t/indexer/config.json"
mkdir -p "$t/hosts/$reg" "$t/node-docker"
cat >"$t/hosts/$reg/hosts.toml" <<TOML
server = "https://$reg"
ca = "$t/ca.pem"
[host."https://$reg"]
  capabilities = ["pull", "resolve"]
  ca = "$t/ca.pem"
TOML
echo '{}' >"$t/node-docker/config.json"
printf 'hosts_dir = "%s"\ndocker_config = "%s"\n' "$t/hosts" "$t/indexer/config.json" >"$t/indexer.toml"
for i in private pause; do
  skopeo copy --quiet --dest-tls-verify=false --dest-creds "$user:$password" \
    "oci:$t/img-$i:v1" "docker://$reg/team/$i:v1" 2>"$t/skopeo.log" || { cat "$t/skopeo.log"; fatal "push $i"; }
  "$clipctl" index --config "$t/indexer.toml" --push "$reg/team/$i:v1" >"$t/index-$i.log" 2>&1 ||
    { cat "$t/index-$i.log"; fatal "clipctl index $i"; }
  grep -q "^bound $reg/team/$i:v1 -> sha256:" "$t/index-$i.log" ||
    { cat "$t/index-$i.log"; fatal "clipctl index $i bound no image index"; }
done
image="$reg/team/private:v1" pause="$reg/team/pause:v1"

# --- The clip daemon with its CRI image proxy, containerd with its CRI plugin.
cat >"$t/clip.toml" <<TOML
hosts_dir = "$t/hosts"
docker_config = "$t/node-docker/config.json"
cri_image_proxy = "$t/cri.sock"
cri_image_upstream = "$t/containerd.sock"
TOML
start_daemon || fatal "clip daemon"
e2e_containerd_cri "$pause" "$t/hosts" || fatal "containerd $E2E_CONTAINERD (CRI)"
e2e_wait "containerd (CRI)" cri_direct version || fatal "containerd's CRI service"
e2e_wait "the proxy forwarding" cri imagefs || fatal "the CRI image proxy does not forward"

# --- 1. Wrong credentials, and none: containerd's answer, unchanged; nothing kept.
for auth in "$user:wrong-$password" ""; do
  what=${auth:+wrong credentials}
  what=${what:-no credentials}
  args=(pull "$image")
  [ -z "$auth" ] || args+=(--auth "$auth")
  if via=$(cri "${args[@]}" 2>&1); then error "$what: the pull through the proxy succeeded"; fi
  if direct=$(cri_direct "${args[@]}" 2>&1); then error "$what: containerd pulled"; fi
  echo "$what: kubelet would show: ${via#cri_client: pull: }"
  [ "$via" = "$direct" ] || error "$what: the proxy answered '$via', containerd '$direct'"
  case "$via" in *UNKNOWN:*401*|*UNKNOWN:*nauthorized*|*UNKNOWN:*authoriz*) ;;
    *) error "$what: not containerd's authorization error: $via" ;; esac
done
grep -q "keeping the pull credentials" "$t/clip.log" && error "credentials of a failed pull were kept"

# --- 2. The right credentials: lazy.
pause_ref=$(cri pull "$pause" --auth "$user:$password") || fatal "PullImage $pause"
ref=$(cri pull "$image" --auth "$user:$password") || fatal "PullImage $image"
echo "PullImage $image -> $ref"
grep -q "keeping the pull credentials of $image for $reg in memory" "$t/clip.log" ||
  error "the daemon did not keep the pull's credentials"
while read -r hex _; do
  grep -q "mounted sha256:$hex of .* lazily at" "$t/clip.log" ||
    error "clip did not mount layer sha256:$hex lazily"
  grep -q "index of sha256:$hex: bound to artifact sha256:" "$t/clip.log" ||
    error "layer sha256:$hex was not found through the image's binding"
  $kctr content ls -q 2>/dev/null | grep -qx "sha256:$hex" &&
    error "containerd downloaded layer sha256:$hex (not lazy)"
done < <(e2e_layers "$t/img-private")

# --- 3. A container reads /before.bin, waits; the daemon is killed and started again.
pod=$(cri runp --name clip-private-pod --uid "uid-$$" --logdir "$t/logs" \
  --cgroup-parent "$cgroup_parent" --save "$t/pod.cfg") || fatal "RunPodSandbox"
pods+=("$pod")
cid=$(cri create --pod "$pod" --pod-config "$t/pod.cfg" --name reader --image "$image" \
  --log-path reader.log -- /read_on_signal /before.bin -- /after.bin) || fatal "CreateContainer"
cri start "$cid" || fatal "StartContainer"
e2e_wait "the container's first read" grep -q " stdout F waiting$" "$t/logs/reader.log" ||
  fatal "the container did not get to wait: $(cat "$t/logs/reader.log" 2>/dev/null)"
grep -q "/before.bin: $want_before$" "$t/logs/reader.log" ||
  error "the container read /before.bin wrong: $(cat "$t/logs/reader.log")"
reader_pid=""
for p in $(cri_cgroup_pids); do
  tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "^/read_on_signal " && reader_pid=$p
done
[ -n "$reader_pid" ] || fatal "the container's process is not found in $cgroup_parent"
{ kill -KILL "$daemon_pid"; e2e_wait_dead "$daemon_pid" 15; } 2>/dev/null ||
  fatal "the daemon is still there 15 s after SIGKILL"
start_daemon || fatal "the daemon did not start again"
grep -q "took over the CRI pull credentials of 1 registry host(s)" "$t/clip.log" ||
  error "the restarted daemon did not take the credentials over"
st=$(cri cstatus "$cid") || error "ContainerStatus after the restart"
[ "$(jq -r .status.state <<<"$st")" = CONTAINER_RUNNING ] ||
  error "the container is $(jq -r .status.state <<<"$st") after the daemon's restart"
kill -USR1 "$reader_pid" || error "cannot signal the container's process"
st=$(cri wait "$cid" --timeout 60) || error "the container did not exit after its signal"
echo "--- reader.log"; cat "$t/logs/reader.log"
[ "$(jq -r .status.exit_code <<<"$st")" = 0 ] || error "the container failed: $(jq -c .status <<<"$st")"
grep -q "/after.bin: $want_after$" "$t/logs/reader.log" ||
  error "the lazy read after the restart is wrong or failed"

# --- 4. The proxy after the restart: RemoveImage drops the credentials.
cri rm "$cid" || error "RemoveContainer"
cri stopp "$pod" || error "StopPodSandbox"
cri rmp "$pod" || error "RemovePodSandbox"
pods=()
cri rmi "$image" || error "RemoveImage $image"
grep -q "dropped the pull credentials of $image" "$t/clip.log" || error "credentials not dropped"
cri rmi "$pause" || error "RemoveImage $pause"

# --- 5. The password nowhere but the indexer's config.
leaks=$(grep -rlaF -e "$password" -e "$auth64" "$t" 2>/dev/null | grep -v "^$t/indexer/")
[ -z "$leaks" ] || error "the credentials are in: $leaks"
for p in "${E2E_PIDS[@]}"; do
  for f in cmdline environ; do
    grep -qaF -e "$password" -e "$auth64" "/proc/$p/$f" 2>/dev/null && error "the credentials are in /proc/$p/$f"
  done
done
echo "searched $(find "$t" -type f | wc -l) files for the credentials: found only in the indexer's config"

if [ "$E2E_FAIL" -eq 0 ]; then echo "PASS: private image lazy through the CRI image proxy"; fi
finish
