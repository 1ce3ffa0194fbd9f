# Shared setup for end-to-end scripts (sourced): a private directory with short paths,
# and functions that start docker-registry, the clip daemon and containerd there, each
# recorded by PID and stopped by e2e_cleanup (install it as the EXIT trap).
#
#   source e2e_env.sh; trap e2e_cleanup EXIT
#   e2e_registry; e2e_clip "$daemon"; e2e_containerd
#   $E2E_CTR images pull --plain-http --snapshotter clip "$E2E_REGISTRY/x:v1"
#
# E2E_CONTAINERD picks the containerd every script drives (the suite's matrix):
#   1.6  the default: Debian 12's, the system's (/usr/bin);
#   1.7  Debian 13's, 2.1 Debian sid's: unpacked by deploy/setup.sh into /opt/clip-deps,
#        never installed. Sourcing puts that usr/bin first in PATH, so that containerd
#        finds its own shim and ctr is the same version.
# e2e_containerd writes the config the version reads: version 2 for 1.6 and 1.7;
# version 3 for 2.1, whose transfer service unpacks to clip with the remote-snapshot
# labels (exports enable_remote_snapshot_annotations, an unpack_config for clip and
# overlayfs). e2e_containerd_cri adds the CRI plugin (E2E_CRI_PULL: how 2.1 pulls).
#
# E2E_EXEC, when set, prefixes the daemons' commands (e.g. `nsenter --net=...` to run
# them in a network namespace); it must exec, so that $! stays the daemon's PID.
#
# clip daemons and their fd holders. Every clip daemon started here (or registered with
# e2e_track_clip by a script that starts its own) is stopped with SIGUSR1, a full stop
# that unmounts its layers and ends its clip-fd-holder; SIGTERM would be a handover
# and leave the holder running. Each holder a daemon of ours starts is recorded by the
# PID it writes (<root>/fd-holder.sock.pid, the daemon's default holder socket), never
# found by name; one still running after the daemons stopped fails the script loudly
# (and is stopped). Sourcing this file also turns SIGTERM (Bazel's timeout) and SIGINT
# into an exit, so that the EXIT trap cleans up then too.
E2E_CONTAINERD=${E2E_CONTAINERD:-1.6}
case $E2E_CONTAINERD in
  1.6) E2E_CONTAINERD_BIN=/usr/bin ;;
  1.7) E2E_CONTAINERD_BIN=/opt/clip-deps/containerd-1.7.24/usr/bin ;;
  2.1) E2E_CONTAINERD_BIN=/opt/clip-deps/containerd-2.1.9/usr/bin ;;
  *) echo "e2e: E2E_CONTAINERD=$E2E_CONTAINERD: want 1.6, 1.7 or 2.1" >&2; exit 2 ;;
esac
[ "$E2E_CONTAINERD" = 1.6 ] || PATH="$E2E_CONTAINERD_BIN:$PATH"
E2E_DIR="$(mktemp -d /tmp/cxXXXX)"
E2E_NS="clip-e2e-$$"
E2E_PIDS=()
E2E_FAIL=0
E2E_CLIPS=()         # clip daemons' PIDs (also in E2E_PIDS)
E2E_CLIP_ROOTS=()    # their roots, where each one's holder writes its pid file
declare -gA E2E_HOLDERS=()  # holder PID -> its pid file
trap 'echo "e2e: SIGTERM (a timeout?): cleaning up" >&2; exit 143' TERM
trap 'exit 130' INT
# containerd makes /run/containerd/{fifo,runc,s} for every instance (global state): if
# none existed when we started, the empty ones go again at cleanup.
E2E_MADE_RUN=0
[ -e /run/containerd ] || E2E_MADE_RUN=1

e2e_error() { echo "FAIL: $*"; E2E_FAIL=1; }

# e2e_fuse_copies_elsewhere DIR: how many FUSE mounts under DIR other mount namespaces
# still hold (a namespace made while they were mounted got copies - bazel's sandbox, a
# private-propagation unshare - and keeps their connections alive after we unmount).
e2e_fuse_copies_elsewhere() {
  local self p
  self=$(readlink /proc/self/ns/mnt)
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$self" ] && continue
    awk -v d="$1/" '$5 ~ "^"d && / - fuse\.clip / {print $3}' "$p/mountinfo" 2>/dev/null
  done | sort -u | wc -l
}

e2e_wait() {  # e2e_wait DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  e2e_error "$what did not come up within 30 s"; return 1
}

# e2e_is_holder PID: PID is a running clip-fd-holder (not a zombie, not a reused PID).
e2e_is_holder() {
  local state argv0=""
  state=$(sed -n 's/^.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  IFS= read -r -d '' argv0 2>/dev/null <"/proc/$1/cmdline" || true
  [ -n "$state" ] && [ "$state" != Z ] && [[ "$argv0" == *clip-fd-holder ]]
}

# e2e_note_holders: records the holder each tracked clip root's pid file names now
# (call it after a daemon of a root started again; e2e_clip and e2e_cleanup do).
e2e_note_holders() {
  local r f p
  for r in "${E2E_CLIP_ROOTS[@]}"; do
    f="$r/fd-holder.sock.pid"
    p=$(tr -dc 0-9 2>/dev/null <"$f") || continue
    [ -n "$p" ] && [ -z "${E2E_HOLDERS[$p]:-}" ] && e2e_is_holder "$p" && E2E_HOLDERS[$p]=$f
  done
  return 0
}

# e2e_track_clip PID ROOT: a clip daemon this script started itself (e2e_clip does this;
# call it right after starting one): stopped with SIGUSR1 at cleanup, the holders its
# root names (ROOT/fd-holder.sock.pid) checked.
e2e_track_clip() {
  E2E_CLIPS+=("$1")
  [[ " ${E2E_CLIP_ROOTS[*]} " == *" $2 "* ]] || E2E_CLIP_ROOTS+=("$2")
  e2e_note_holders
}

# e2e_forget PID: a process the script stopped and reaped itself; cleanup must not signal
# the PID (it may belong to someone else by then).
e2e_forget() {
  local keep=() p
  for p in "${E2E_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  E2E_PIDS=("${keep[@]}")
  keep=()
  for p in "${E2E_CLIPS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  E2E_CLIPS=("${keep[@]}")
}

# e2e_cleanup [STATUS]: stops the clip daemons with SIGUSR1 (a full stop: layers
# unmounted, holder ended; up to 20 s, then KILL), then every other recorded process
# (TERM, up to 5 s, then KILL), reaps them, unmounts what is left under the private
# directory and removes it. A clip-fd-holder of ours still running after its daemons
# stopped is a leak: it is reported (FAIL), stopped, and the script exits with STATUS
# (the script's exit status; by default $? on entry, right for `trap e2e_cleanup EXIT`)
# or 1 if that was 0. So call it last in an EXIT trap. Otherwise it keeps the exit
# status; safe under `set -e`: a process that already exited is not an error, and it
# never stops half way.
e2e_cleanup() {
  local status=${1:-$?}
  local i p m h leaked=0
  e2e_note_holders
  for p in "${E2E_CLIPS[@]}"; do kill -USR1 "$p" 2>/dev/null || true; done
  for p in "${E2E_CLIPS[@]}"; do
    for _ in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then
      echo "FAIL: clip daemon $p did not stop within 20 s of SIGUSR1: killed"
      leaked=1
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  # A holder ends with its daemon's full stop; give it a moment to exit.
  for h in "${!E2E_HOLDERS[@]}"; do
    for _ in $(seq 1 50); do e2e_is_holder "$h" || break; sleep 0.1; done
    e2e_is_holder "$h" || continue
    echo "FAIL: clip-fd-holder $h (${E2E_HOLDERS[$h]}) outlived its daemon: stopping it"
    leaked=1
    kill -TERM "$h" 2>/dev/null || true
    for _ in $(seq 1 30); do e2e_is_holder "$h" || break; sleep 0.1; done
    kill -KILL "$h" 2>/dev/null || true
  done
  for p in "${E2E_CLIPS[@]}"; do e2e_forget "$p"; done
  E2E_HOLDERS=()
  for ((i = ${#E2E_PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${E2E_PIDS[$i]}" 2>/dev/null || true; done
  for p in "${E2E_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  E2E_PIDS=()
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(grep -o " $E2E_DIR[^ ]*" /proc/mounts | sort -r)
  # The namespace's runc state and fifo directories are containerd's, per namespace.
  rm -rf "/run/containerd/runc/$E2E_NS" "/run/containerd/fifo/$E2E_NS" 2>/dev/null || true
  # runc made a cgroup per hierarchy for the namespace; empty once its containers are gone
  # (a shim may still be leaving one: a few tries).
  for _ in $(seq 1 20); do
    local left=0
    for m in /sys/fs/cgroup/*/"$E2E_NS" /sys/fs/cgroup/"$E2E_NS"; do
      [ -d "$m" ] || continue
      find "$m" -depth -type d -exec rmdir {} \; 2>/dev/null
      [ -d "$m" ] && left=1
    done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  if [ "$E2E_MADE_RUN" = 1 ] && [ -d /run/containerd ]; then
    find /run/containerd -depth -type d -empty -delete 2>/dev/null || true
  fi
  rm -rf "$E2E_DIR" 2>/dev/null || true
  if [ "$leaked" = 1 ]; then
    [ "$status" -ne 0 ] || status=1
    exit "$status"
  fi
  return 0
}

e2e_registry() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$E2E_DIR/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $E2E_DIR/registry}}
http: {addr: 127.0.0.1:$port}
YML
  ${E2E_EXEC:-} setsid docker-registry serve "$E2E_DIR/registry.yml" >"$E2E_DIR/registry.log" 2>&1 &
  E2E_PIDS+=($!)
  E2E_REGISTRY="127.0.0.1:$port"
  e2e_wait registry ${E2E_EXEC:-} curl -sf "http://$E2E_REGISTRY/v2/"
}

e2e_clip() {  # e2e_clip DAEMON_BINARY [N]: daemon N (root clipN, socket clipN.sock, clipN.toml if any)
  local n=${2:-} cfg=()
  [ -f "$E2E_DIR/clip$n.toml" ] && cfg=(--config "$E2E_DIR/clip$n.toml")
  setsid "$1" "${cfg[@]}" --root "$E2E_DIR/clip$n" --address "$E2E_DIR/clip$n.sock" --log-level debug \
    --containerd-root "$E2E_DIR/c-root$n" \
    >>"$E2E_DIR/clip$n.log" 2>&1 &
  local rc=0
  E2E_PIDS+=($!)
  e2e_track_clip "$!" "$E2E_DIR/clip$n"
  e2e_wait "clip daemon $n" test -S "$E2E_DIR/clip$n.sock" || rc=1
  e2e_note_holders
  return $rc
}

# e2e_proc_state PID: the state letter of a process (R, S, D, Z...), empty once it is gone.
e2e_proc_state() { sed -n 's/^.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null; }

# e2e_wait_dead PID SECONDS: a child of ours is dead (then reaped and forgotten), or 1.
e2e_wait_dead() {
  local i s
  for ((i = 0; i < $2 * 100; i++)); do
    s=$(e2e_proc_state "$1")
    # Reaped: e2e_cleanup must not signal the PID again (it may be reused).
    if [ -z "$s" ] || [ "$s" = Z ]; then wait "$1" 2>/dev/null; e2e_forget "$1"; return 0; fi
    sleep 0.01
  done
  return 1
}

# e2e_clip_serving DAEMON_BINARY: starts the clip daemon (again), sets E2E_CLIP_PID, and
# is ready once its log says "serving" (a killed daemon's stale socket makes e2e_clip's
# own wait pass at once). The previous log moves to clip-all.log first: e2e_clip
# truncates clip.log only once its background child runs, and until then the old
# "serving" line would be found.
e2e_clip_serving() {
  local log="$E2E_DIR/clip.log" i s
  if [ -f "$log" ]; then
    { echo "=== daemon ${E2E_CLIP_PID:-}"; cat "$log"; } >>"$E2E_DIR/clip-all.log"
    rm -f "$log"
  fi
  e2e_clip "$1"
  E2E_CLIP_PID=${E2E_PIDS[-1]}
  for ((i = 0; i < 600; i++)); do
    grep -q "serving snapshotter" "$log" 2>/dev/null && { e2e_note_holders; return 0; }
    s=$(e2e_proc_state "$E2E_CLIP_PID")
    [ -z "$s" ] || [ "$s" = Z ] && break
    sleep 0.05
  done
  e2e_error "the daemon (pid $E2E_CLIP_PID) did not start serving (30 s)"
  tail -n 20 "$log"
  return 1
}

# e2e_containerd_ready: the containerd and ctr in PATH are E2E_CONTAINERD's (or an error).
e2e_containerd_ready() {
  local v
  v=$(containerd --version 2>&1) && [[ "$v" == *" $E2E_CONTAINERD."* ]] &&
    [[ "$(ctr --version 2>&1)" == *" $E2E_CONTAINERD."* ]] && return 0
  e2e_error "no containerd $E2E_CONTAINERD in $E2E_CONTAINERD_BIN (${v:-none}): run deploy/setup.sh"
  return 1
}

# e2e_containerd_toml [N]: writes containerd N's config for E2E_CONTAINERD (its path on
# stdout): its root, state, socket and opt directory in $E2E_DIR, the proxy plugin clip
# (daemon N); the CRI plugin off unless E2E_CRI_TOML (e2e_cri_toml) holds its settings.
# Lines in E2E_CONTAINERD_TOML, when set, go to the end (e.g. [debug]).
e2e_containerd_toml() {
  local n=${1:-} cfg="$E2E_DIR/containerd${1:-}.toml" no_cri='"io.containerd.grpc.v1.cri"'
  local version=2 v3_plugins="" v3_exports=""
  [ -z "${E2E_CRI_TOML:-}" ] || no_cri=""
  if [ "$E2E_CONTAINERD" = 2.1 ]; then
    # Version 3. NRI is on by default in 2.x, and its socket is global: off. The transfer
    # service unpacks to clip (and overlayfs, ctr's default) and, for the exports' sake,
    # hands clip the remote-snapshot labels.
    version=3
    v3_plugins='[plugins."io.containerd.nri.v1.nri"]
  disable = true
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/amd64"
  snapshotter = "clip"
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/amd64"
  snapshotter = "overlayfs"'
    v3_exports='    enable_remote_snapshot_annotations = "true"'
  fi
  cat >"$cfg" <<TOML
version = $version
root = "$E2E_DIR/c-root$n"
state = "$E2E_DIR/c-state$n"
disabled_plugins = [$no_cri]
[grpc]
  address = "$E2E_DIR/containerd$n.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_DIR/opt$n"
$v3_plugins
[proxy_plugins.clip]
  type = "snapshot"
  address = "$E2E_DIR/clip$n.sock"
  [proxy_plugins.clip.exports]
    root = "$E2E_DIR/clip$n"
$v3_exports
TOML
  printf '%s\n' "${E2E_CRI_TOML:-}" "${E2E_CONTAINERD_TOML:-}" >>"$cfg"
  echo "$cfg"
}

e2e_containerd() {  # e2e_containerd [N]: containerd N using clip daemon N; sets E2E_CTR
  local n=${1:-} cfg
  e2e_containerd_ready || return 1
  cfg=$(e2e_containerd_toml "$n")
  ${E2E_EXEC:-} setsid containerd --config "$cfg" >"$E2E_DIR/containerd$n.log" 2>&1 &
  E2E_PIDS+=($!)
  E2E_CTR="ctr -a $E2E_DIR/containerd$n.sock -n $E2E_NS"
  e2e_wait "containerd $n" $E2E_CTR version
}

# e2e_cri_toml SANDBOX_IMAGE HOSTS_DIR: the CRI plugin's settings for E2E_CONTAINERD, as
# a kubelet node runs it: snapshotter clip, registries from HOSTS_DIR (hosts.toml),
# runc's state in $E2E_DIR/runc (not the global /run/containerd/runc/k8s.io), no CNI
# (empty $E2E_DIR/cni/{bin,conf}: host-network pods only), restrict_oom_score_adj
# (this VM withholds CAP_SYS_RESOURCE: runc cannot lower oom_score_adj). How the CRI
# plugin pulls:
#   1.6, 1.7  itself, with snapshot annotations (disable_snapshot_annotations = false);
#   2.1       E2E_CRI_PULL=transfer (the default, 2.1's own): through the transfer
#             service, which passes clip the labels because clip exports
#             enable_remote_snapshot_annotations and is in its unpack_config;
#             E2E_CRI_PULL=local: disable_snapshot_annotations = false, which makes 2.1
#             fall back to the local pull (as 1.x pulls).
e2e_cri_toml() {
  local d="$E2E_DIR" annotations=""
  if [ "$E2E_CONTAINERD" != 2.1 ]; then
    cat <<TOML
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$1"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "clip"
    disable_snapshot_annotations = false
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$d/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$d/cni/bin"
    conf_dir = "$d/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$2"
TOML
    return 0
  fi
  case ${E2E_CRI_PULL:-transfer} in
    transfer) ;;
    local) annotations='disable_snapshot_annotations = false' ;;
    *) echo "e2e: E2E_CRI_PULL=$E2E_CRI_PULL: want transfer or local" >&2; return 1 ;;
  esac
  cat <<TOML
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "clip"
  $annotations
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$1"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$2"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        Root = "$d/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$d/cni/bin"]
    conf_dir = "$d/cni/conf"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
TOML
}

# e2e_containerd_cri SANDBOX_IMAGE HOSTS_DIR: containerd (N = "") with its CRI plugin
# (e2e_cri_toml's settings).
e2e_containerd_cri() {
  local E2E_CRI_TOML
  E2E_CRI_TOML=$(e2e_cri_toml "$@") || { e2e_error "no CRI settings (E2E_CRI_PULL?)"; return 1; }
  mkdir -p "$E2E_DIR/cni/bin" "$E2E_DIR/cni/conf"
  e2e_containerd
}

e2e_layers() {  # e2e_layers LAYOUT: an OCI layout's (make_image.py's) layers, "HEX SIZE" a line
  local m
  m=$(jq -r '.manifests[0].digest[7:]' "$1/index.json") &&
    jq -r '.layers[] | "\(.digest[7:]) \(.size)"' "$1/blobs/sha256/$m"
}

e2e_proxy() {  # e2e_proxy FAULT_PROXY_PY: a byte-counting proxy in front of the registry
  local port_file="$E2E_DIR/proxy.port"
  setsid python3 -u "$1" "http://$E2E_REGISTRY" >"$port_file" 2>"$E2E_DIR/proxy.log" &
  E2E_PIDS+=($!)
  e2e_wait proxy grep -q PORT "$port_file"
  E2E_PROXY="127.0.0.1:$(awk '/PORT/ {print $2}' "$port_file")"
}

e2e_blob_bytes() {  # e2e_blob_bytes [HEX]: blob bytes the proxy served (all, or of one blob)
  curl -sf "http://$E2E_PROXY/__stats" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); k=sys.argv[1]; print(s.get("blob_bytes" + (":" + k if k else ""), 0))' "${1:-}"
}

e2e_nginx() {  # e2e_nginx: WebDAV remote cache (/cas/, /index/, /profile/) on loopback; sets E2E_NGINX
  local port d="$E2E_DIR/nginx"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$d/data/cas" "$d/data/index" "$d/data/profile" "$d/tmp"
  cat > "$d/nginx.conf" <<CONF
daemon off; master_process off; user root root; worker_processes 1;
pid $d/nginx.pid; error_log $d/error.log warn;
events { worker_connections 256; }
http {
  access_log off; client_max_body_size 0;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  server {
    listen 127.0.0.1:$port; root $d/data;
    location /cas/ { dav_methods PUT; create_full_put_path on; dav_access user:rw; }
    location /index/ { dav_methods PUT; create_full_put_path on; dav_access user:rw; }
    location /profile/ { dav_methods PUT; create_full_put_path on; dav_access user:rw; }
  }
}
CONF
  setsid nginx -p "$d" -c "$d/nginx.conf" >"$d/out.log" 2>&1 &
  E2E_PIDS+=($!)
  E2E_NGINX="http://127.0.0.1:$port"
  e2e_wait nginx curl -s -o /dev/null "$E2E_NGINX/cas/"
}
