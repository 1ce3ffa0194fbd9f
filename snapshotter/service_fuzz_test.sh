#!/usr/bin/env bash
# Builds snapshotter/service_fuzzer.cc with clang (-fsanitize=fuzzer,address,undefined)
# from the runfiles, as index/fuzz_test.sh does for the index parsers, and runs it
# briefly from seed requests: one per RPC, written below as text protos and encoded with
# protoc, behind the byte that picks the RPC. Any crash, leak or sanitizer report fails
# the test. FUZZ_SECONDS overrides the time.
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
work="${TEST_TMPDIR}/fuzz"
mkdir -p "$work/corpus"
seconds="${FUZZ_SECONDS:-20}"
libs=$(pkg-config --libs grpc++ protobuf sqlite3 prometheus-cpp-core re2 absl_status \
  absl_statusor absl_strings absl_str_format absl_synchronization absl_time)
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -fno-sanitize=vptr -I"$root" -I"$root/proto" -w)
gen="$root/proto/containerd"
clang++ "${flags[@]}" -o "$work/service_fuzzer" \
  "$root/snapshotter/service_fuzzer.cc" "$root/snapshotter/service.cc" \
  "$root/snapshotter/overlay_snapshotter.cc" "$root/snapshotter/metadata_store.cc" \
  "$root/snapshotter/filters.cc" "$root/common/errno_status.cc" "$root/common/logging.cc" \
  "$root/common/metrics.cc" "$root/common/remove_tree.cc" "$gen/services/snapshots/v1/snapshots.pb.cc" \
  "$gen/services/snapshots/v1/snapshots.grpc.pb.cc" "$gen/types/mount.pb.cc" $libs

# seed <rpc byte> <request message> <text proto>
n=0
seed() {
  n=$((n + 1))
  {
    printf "\\x$(printf %02x "$1")"
    printf '%s' "$3" | protoc --proto_path="$root/proto" --proto_path=/usr/include \
      --encode="containerd.services.snapshots.v1.$2" \
      containerd/services/snapshots/v1/snapshots.proto
  } > "$work/corpus/seed-$n"
}
seed 0 PrepareSnapshotRequest 'key: "new" parent: "base" labels { key: "app" value: "y" }'
seed 0 PrepareSnapshotRequest 'key: "new" labels { key: "containerd.io/snapshot.ref" value: "sha256:1" }'
seed 1 ViewSnapshotRequest 'key: "v2" parent: "base"'
seed 2 MountsRequest 'key: "active"'
seed 3 CommitSnapshotRequest 'name: "committed" key: "active" labels { key: "k" value: "v" }'
seed 4 RemoveSnapshotRequest 'key: "view"'
seed 5 StatSnapshotRequest 'key: "base"'
seed 6 UpdateSnapshotRequest 'info { name: "base" labels { key: "foo" value: "bar" }
  created_at { seconds: -62135596800 } updated_at { seconds: -62135596800 } }
  update_mask { paths: "labels.foo" }'
seed 6 UpdateSnapshotRequest 'info { name: "active" kind: ACTIVE
  created_at { seconds: 253402300799 nanos: 999999999 } updated_at { nanos: -1 } }
  update_mask { paths: "labels" paths: "name" }'
seed 7 ListSnapshotsRequest 'filters: "kind==committed,labels.app==x" filters: "name~=^v"'
# Expressions for RE2 (std::regex, before it, recursed compiling 20,000 nested groups
# until the stack ran out, and matching a starred group once per character).
seed 7 ListSnapshotsRequest "filters: \"name~=$(printf '(%.0s' {1..20000})a$(printf ')%.0s' {1..20000})\""
seed 7 ListSnapshotsRequest 'filters: "name~=^(a|b)*$" filters: "labels.app~=(?i)^X+$"'
seed 8 UsageRequest 'key: "active"'
seed 9 CleanupRequest 'snapshotter: "clip"'

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
"$work/service_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  "$work/corpus" 2>&1 | tail -n 3
echo "service fuzzer ran ${seconds}s without findings"
