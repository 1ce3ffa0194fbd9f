#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined) from
# the runfiles and runs each briefly from an empty corpus plus seeds. Any crash, leak
# or sanitizer report fails the test. FUZZ_SECONDS overrides the time per target.
set -euo pipefail
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
work="${TEST_TMPDIR}/fuzz"
mkdir -p "$work"
seconds="${FUZZ_SECONDS:-20}"
libs=$(pkg-config --libs protobuf zlib libisal libcrypto absl_status absl_statusor \
  absl_strings absl_str_format absl_flat_hash_map absl_hash)
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -fno-sanitize=vptr -I"$root" -I"$root/proto" -w)
common=("$root/common/digest.cc" "$root/common/blob_reader.cc")

build() {
  local name=$1
  shift
  clang++ "${flags[@]}" -o "$work/$name" "$@" "${common[@]}" $libs
}

build tar_parser_fuzzer "$root/index/tar_parser_fuzzer.cc" "$root/index/tar_parser.cc" \
  "$root/index/entry_table.cc" "$root/proto/clip/index/v1/index.pb.cc"
build index_format_fuzzer "$root/index/index_format_fuzzer.cc" "$root/index/index_format.cc" \
  "$root/index/gzip_checkpoint.cc" "$root/index/entry_tree.cc" \
  "$root/proto/clip/index/v1/index.pb.cc"

# Seeds: a real tar made here, and nothing for the decoder (it builds its own frames).
mkdir -p "$work/tar-corpus" "$work/index-corpus" "$work/seedsrc/d"
echo hello > "$work/seedsrc/d/f"
ln -sf f "$work/seedsrc/d/l"
tar --format=posix -C "$work/seedsrc" -cf "$work/tar-corpus/seed.tar" .
tar --format=gnu -C "$work/seedsrc" -cf "$work/tar-corpus/seed-gnu.tar" .

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
"$work/tar_parser_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  "$work/tar-corpus" 2>&1 | tail -n 3
"$work/index_format_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  "$work/index-corpus" 2>&1 | tail -n 3
echo "fuzzers ran ${seconds}s each without findings"
