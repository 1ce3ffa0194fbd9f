# Shared setup for end-to-end scripts (sourced): a private directory with short paths,
# and functions that start docker-registry, the clip daemon and containerd there, each
# recorded by PID and stopped by e2e_cleanup (install it as the EXIT trap).
#
#   source e2e_env.sh; trap e2e_cleanup EXIT
#   e2e_registry; e2e_clip "$daemon"; e2e_containerd
#   $E2E_CTR images pull --plain-http --snapshotter clip "$E2E_REGISTRY/x:v1"
E2E_DIR="$(mktemp -d /tmp/cxXXXX)"
E2E_NS="clip-e2e-$$"
E2E_PIDS=()
E2E_FAIL=0

e2e_error() { echo "FAIL: $*"; E2E_FAIL=1; }

e2e_wait() {  # e2e_wait DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  e2e_error "$what did not come up"; return 1
}

e2e_cleanup() {
  for ((i=${#E2E_PIDS[@]}-1; i>=0; i--)); do kill -TERM "${E2E_PIDS[$i]}" 2>/dev/null; done
  for p in "${E2E_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  grep -o " $E2E_DIR[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$E2E_DIR"
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
  setsid docker-registry serve "$E2E_DIR/registry.yml" >"$E2E_DIR/registry.log" 2>&1 &
  E2E_PIDS+=($!)
  E2E_REGISTRY="127.0.0.1:$port"
  e2e_wait registry curl -sf "http://$E2E_REGISTRY/v2/"
}

e2e_clip() {  # e2e_clip DAEMON_BINARY
  setsid "$1" --root "$E2E_DIR/clip" --address "$E2E_DIR/clip.sock" --log-level debug \
    >"$E2E_DIR/clip.log" 2>&1 &
  E2E_PIDS+=($!)
  e2e_wait "clip daemon" test -S "$E2E_DIR/clip.sock"
}

e2e_containerd() {
  cat > "$E2E_DIR/containerd.toml" <<TOML
version = 2
root = "$E2E_DIR/c-root"
state = "$E2E_DIR/c-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$E2E_DIR/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_DIR/opt"
[proxy_plugins.clip]
  type = "snapshot"
  address = "$E2E_DIR/clip.sock"
  [proxy_plugins.clip.exports]
    root = "$E2E_DIR/clip"
TOML
  setsid containerd --config "$E2E_DIR/containerd.toml" >"$E2E_DIR/containerd.log" 2>&1 &
  E2E_PIDS+=($!)
  E2E_CTR="ctr -a $E2E_DIR/containerd.sock -n $E2E_NS"
  e2e_wait containerd $E2E_CTR version
}
