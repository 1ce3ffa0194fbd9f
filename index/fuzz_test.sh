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
# The bound image index and clip artifact parsers (registry/image_binding.h,
# index_artifact_manifest.h), one target fed the same bytes. RapidJSON 1.1's parser
# stack adds an offset to a null pointer before its first allocation (fixed upstream
# after 1.1): that one check is off for this target only.
build image_binding_fuzzer -fno-sanitize=pointer-overflow "$root/registry/image_binding_fuzzer.cc" \
  "$root/registry/image_binding.cc" "$root/registry/index_artifact_manifest.cc" \
  "$root/registry/manifest.cc"

# Seeds: real tars made here, with names, link targets and an xattr name that are not
# UTF-8 (Linux names are bytes); for the decoder, the index clipctl builds of them,
# framed and as a bare payload (the fuzzer frames raw bytes itself).
mkdir -p "$work/tar-corpus" "$work/index-corpus" "$work/seedsrc/d"
echo hello > "$work/seedsrc/d/f"
ln -sf f "$work/seedsrc/d/l"
printf 'latin-1\n' > "$work/seedsrc/d/caf$(printf '\xe9')"
ln -sf "caf$(printf '\xe9')" "$work/seedsrc/d/link-$(printf '\xff')"
ln "$work/seedsrc/d/f" "$work/seedsrc/d/hard-$(printf '\xe0')"
python3 -c 'import os,sys; os.setxattr(sys.argv[1].encode() + b"/d/caf\xe9", b"user.\xe9", b"v")' \
  "$work/seedsrc"
tar --format=posix --xattrs --xattrs-include='*' -C "$work/seedsrc" -cf "$work/tar-corpus/seed.tar" .
tar --format=gnu -C "$work/seedsrc" -cf "$work/tar-corpus/seed-gnu.tar" .
for t in seed seed-gnu; do
  "$root/cmd/clipctl" index build --layer "$work/tar-corpus/$t.tar" -o "$work/index-corpus/$t.idx" >/dev/null
  python3 - "$work/index-corpus/$t.idx" "$work/index-corpus/$t.payload" <<'PY'
import sys, zlib
raw = open(sys.argv[1], "rb").read()
stored = int.from_bytes(raw[16:24], "little")
open(sys.argv[2], "wb").write(zlib.decompress(raw[32:32 + stored], -15))
PY
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
"$work/tar_parser_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  "$work/tar-corpus" 2>&1 | tail -n 3
"$work/index_format_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  "$work/index-corpus" 2>&1 | tail -n 3
# Binding seeds: a bound two-platform index and its parts (what clipctl publishes).
mkdir -p "$work/binding-corpus"
a=sha256:$(printf a | sha256sum | cut -c1-64)
m=sha256:$(printf m | sha256sum | cut -c1-64)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.clip.index.v1","digest":"%s","size":3,"annotations":{"dev.clip.index.manifest":"%s"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":5,"platform":{"architecture":"amd64","os":"linux"}}]}' \
  "$a" "$m" "$m" >"$work/binding-corpus/bound.json"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.clip.index.v1","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.clip.index.v1","digest":"%s","size":9,"annotations":{"dev.clip.layer.digest":"%s"}},{"mediaType":"application/vnd.clip.profile.v1","digest":"%s","size":4,"annotations":{"dev.clip.layer.digest":"%s"}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":5}}' \
  "$a" "$a" "$m" "$a" "$m" "$m" >"$work/binding-corpus/artifact.json"
"$work/image_binding_fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=16384 \
  "$work/binding-corpus" 2>&1 | tail -n 3
echo "fuzzers ran ${seconds}s each without findings"
