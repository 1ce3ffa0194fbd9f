#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds everything, runs every test
# (then the unit tests again under ASan+UBSan), and ends with `N passed, N failed`
# counting test cases, plus one for clang-format cleanliness. README command 2; .ci/run
# calls exactly this.
#
# Environment: CI=true stops the Bazel server at the end; CLIP_SKIP_ASAN=1 skips
# the sanitizer pass (local iteration only).
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
logs=$(mktemp -d /tmp/clip-tests-XXXXXX)
trap 'rm -rf "$logs"' EXIT

total_passed=0
total_failed=0
total_skipped=0

finish() {
  if [ "${CI:-}" = "true" ]; then bazel shutdown >/dev/null 2>&1 || true; fi
  echo "suite wall time: $(( $(date +%s) - start ))s"
  echo "${total_passed} passed, ${total_failed} failed, ${total_skipped} skipped"
  [ "$total_failed" -eq 0 ]
  exit $?
}

if ! bash deploy/setup.sh; then
  echo "setup failed: could not install the Debian packages clip needs" >&2
  total_failed=1
  finish
fi

# A disk cache shared by every clone on this machine makes fresh clones build faster.
# Build outputs come from the cache; test results never do (--nocache_test_results):
# the suite drives real daemons and mounts, so every run must really run every test.
common_flags=(--disk_cache="${HOME}/.cache/clip-bazel-disk" --keep_going --nocache_test_results)
if [ "${CI:-}" = "true" ]; then
  common_flags+=(--curses=no --color=no --show_progress_rate_limit=30)
fi

# run_pass LABEL [bazel flags...]: builds and tests //..., then counts its test cases.
run_pass() {
  local label=$1
  shift
  local out="$logs/$label.out"
  echo "=== $label: bazel test $* //..."
  bazel test "${common_flags[@]}" "$@" //... 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  # 0 = all passed, 3 = some tests failed; anything else is a build or tool failure.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
    echo "[$label] bazel exited $rc (build failure or no tests)" >&2
    total_failed=$((total_failed + 1))
  fi
  local testlogs
  testlogs=$(bazel info "${common_flags[@]:0:1}" "$@" bazel-testlogs 2>/dev/null)
  python3 test/summarize_results.py "$out" "$testlogs" --label "$label" --json "$logs/$label.json"
  local counts
  counts=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["passed"], r["failed"], r["skipped"])' "$logs/$label.json")
  read -r p f s <<<"$counts"
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  total_skipped=$((total_skipped + s))
}

# Formatting: every C++ file as clang-format (.clang-format) writes it, counted as one
# test case. (Debian 12 has no buildifier package, so BUILD files are not checked.)
check_format() {
  local bad
  bad=$(git ls-files '*.cc' '*.h' | while read -r f; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"
  done)
  if [ -n "$bad" ]; then
    echo "=== format: not clang-format clean (fix: clang-format -i FILE):"
    echo "$bad"
    total_failed=$((total_failed + 1))
  else
    echo "=== format: $(git ls-files '*.cc' '*.h' | wc -l) C++ files clang-format clean"
    total_passed=$((total_passed + 1))
  fi
}

check_format
run_pass default
if [ "${CLIP_SKIP_ASAN:-}" != "1" ]; then
  # The tests again under AddressSanitizer + UndefinedBehaviorSanitizer. Targets tagged
  # no_asan are left out by the config's filter: the fuzzers (built with clang) and the
  # containerd 1.7 / 2.1 matrix (test/BUILD.bazel; the e2e tests run under ASan on 1.6).
  run_pass asan --config=asan
fi

finish
