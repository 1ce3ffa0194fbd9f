# CRI end-to-end helpers, sourced after e2e_env.sh by the scripts that drive containerd's
# CRI plugin as kubelet does (cri_test.sh, cri_private_test.sh): finding what their pods
# left running, and the EXIT trap that stops it all. The script sets `t` (E2E_DIR),
# `cgroup_parent` (its pods' cgroup parent), `pods` (sandboxes to stop and remove at exit
# if it did not get that far) and a `cri` function (cri_client.py on its sockets).

cri_shim_pids() {  # the runc shims our containerd started (they name its socket)
  local d
  for d in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -q "containerd-shim.* -address $t/containerd.sock" &&
      echo "${d#/proc/}"
  done
}

cri_cgroup_pids() {  # processes in the pod's cgroups (containers: cgroup_parent/<id>)
  grep -l ":$cgroup_parent/" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3
}

cri_cleanup() {
  local status=$? p c d
  if [ -S "$t/containerd.sock" ]; then
    for p in "${pods[@]}"; do
      cri --call-timeout 10 stopp "$p" >/dev/null 2>&1
      cri --call-timeout 10 rmp "$p" >/dev/null 2>&1
    done
  fi
  # Containers still in our private runc root (containerd gone or stuck): killed, deleted.
  # (The shim keeps its runc state in <Root>/<namespace>.)
  if [ -d "$t/runc/k8s.io" ]; then
    for c in $(runc --root "$t/runc/k8s.io" list -q 2>/dev/null); do
      runc --root "$t/runc/k8s.io" delete --force "$c" >/dev/null 2>&1
    done
  fi
  for p in $(cri_shim_pids); do kill -TERM "$p" 2>/dev/null; done
  for p in $(cri_shim_pids); do
    for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  # Last resort: processes still in our pod's cgroups are our containers' (by PID).
  for p in $(cri_cgroup_pids); do kill -KILL "$p" 2>/dev/null; done
  for p in $(cri_cgroup_pids); do
    for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  # The pod's cgroups (runc removes each container's; the parent is ours): its
  # processes are gone by now.
  for d in /sys/fs/cgroup/*/"${cgroup_parent#/}"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  e2e_cleanup "$status"  # last: it exits non-zero if a holder of ours survived
}
