#!/usr/bin/env bash
# e2e_cleanup as the EXIT trap of a `set -e` script (README command 1 is one): it keeps
# the script's exit status, stops every recorded process even when some have already
# exited, reaps them, removes the private directory and the namespace's empty cgroups.
set -uo pipefail
env_sh="${TEST_SRCDIR}/${TEST_WORKSPACE}/test/e2e_env.sh"
fail=0
error() { echo "FAIL: $*"; fail=1; }

# run_script STATUS: a set -e script that records an exited process and a live one,
# then exits with STATUS. Prints "DIR LIVE_PID" before exiting.
run_script() {
  bash -c '
    set -euo pipefail
    source "$1"
    trap e2e_cleanup EXIT
    true & E2E_PIDS+=($!)
    sleep 0.2                      # the first process has exited by now
    setsid sleep 600 & E2E_PIDS+=($!)
    mkdir -p "$E2E_DIR/sub"
    mkdir -p "/sys/fs/cgroup/memory/$E2E_NS/ctr1" 2>/dev/null || true  # as runc leaves it
    echo "$E2E_DIR $! $E2E_NS"
    exit "$2"
  ' _ "$env_sh" "$1"
}

for status in 0 3; do
  out=$(run_script "$status")
  rc=$?
  read -r dir pid ns <<<"$out"
  [ "$rc" -eq "$status" ] || error "exit status $rc, want $status"
  [ -n "$dir" ] && [ ! -e "$dir" ] || error "private directory $dir left behind"
  [ -n "$ns" ] && ls -d /sys/fs/cgroup/*/"$ns" 2>/dev/null && error "cgroup of $ns left behind"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    error "process $pid left running"
    kill -KILL "$pid"
  fi
done
exit $fail
