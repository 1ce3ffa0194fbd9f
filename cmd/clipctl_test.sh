#!/usr/bin/env bash
# The clipctl binary as users run it: exit codes, stdout and stderr of
# `clipctl index build|inspect|cat` on a layer made here with GNU tar.
set -uo pipefail
clipctl="${TEST_SRCDIR}/${TEST_WORKSPACE}/cmd/clipctl"
dir="${TEST_TMPDIR}/clipctl"
mkdir -p "$dir/src/etc"
fail=0
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  if ! "$@"; then echo "FAIL: $what"; fail=1; fi
}
refuse() {  # refuse DESCRIPTION PATTERN COMMAND...: non-zero exit and PATTERN on stderr
  local what=$1 pattern=$2
  shift 2
  if "$@" >"$dir/out" 2>"$dir/err"; then echo "FAIL: $what succeeded"; fail=1; return; fi
  if ! grep -q -- "$pattern" "$dir/err"; then
    echo "FAIL: $what: stderr lacks '$pattern':"; cat "$dir/err"; fail=1
  fi
}

seq 1 200000 > "$dir/src/etc/numbers"
ln -s numbers "$dir/src/etc/link"
tar --format=posix -C "$dir/src" -czf "$dir/layer.tar.gz" .

check "build" "$clipctl" index build --layer "$dir/layer.tar.gz" -o "$dir/layer.idx"
check "inspect lists the file" bash -c "'$clipctl' index inspect '$dir/layer.idx' | grep -q ' etc/numbers$'"
check "inspect shows the link" bash -c "'$clipctl' index inspect '$dir/layer.idx' | grep -q ' etc/link -> numbers$'"
check "inspect summary" bash -c "'$clipctl' index inspect '$dir/layer.idx' | tail -n 1 | grep -q '^# 4 entries'"
check "cat equals the file" bash -c "'$clipctl' index cat '$dir/layer.idx' --layer '$dir/layer.tar.gz' etc/numbers | cmp - '$dir/src/etc/numbers'"
refuse "cat of a missing path" "no such file" "$clipctl" index cat "$dir/layer.idx" --layer "$dir/layer.tar.gz" nope
refuse "inspect of a non-index" "bad magic" "$clipctl" index inspect "$dir/layer.tar.gz"
refuse "build of a missing layer" "No such file" "$clipctl" index build --layer "$dir/missing" -o "$dir/x.idx"
head -c 1000 "$dir/layer.tar.gz" > "$dir/cut.tar.gz"
refuse "build of a truncated layer" "truncated" "$clipctl" index build --layer "$dir/cut.tar.gz" -o "$dir/x.idx"
refuse "missing required flag" "layer" "$clipctl" index build -o "$dir/x.idx"
[ ! -e "$dir/x.idx" ] || { echo "FAIL: a failed build left an index behind"; fail=1; }
exit $fail
