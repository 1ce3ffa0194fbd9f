#!/usr/bin/env bash
# Installs every Debian package clip needs to build, test and run end to end, and
# unpacks containerd 2.1 privately for the transfer service test.
# Idempotent: when everything is present it returns after one dpkg query and one
# checksum file read. Used by both README commands (deploy/demo.sh and test/run_all.sh).
set -euo pipefail

# Build: compilers, Bazel, and the Debian -dev libraries the WORKSPACE maps to @system//:*.
BUILD_PACKAGES=(
  bazel-bootstrap g++ clang clang-format libclang-rt-14-dev pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libfuse3-dev zlib1g-dev libcurl4-openssl-dev rapidjson-dev libabsl-dev
  libgtest-dev libgmock-dev libssl-dev libisal-dev
  libtomlplusplus-dev libcli11-dev libsqlite3-dev prometheus-cpp-dev libre2-dev
)
# Run and test: the real programs users run beside clip, and fixture tools.
RUNTIME_PACKAGES=(
  fuse3 containerd runc docker-registry nginx skopeo umoci jq
  apache2-utils openssl ca-certificates tar gzip pigz python3 python3-yaml systemd iproute2 procps bc curl
  python3-grpcio python3-grpc-tools python3-protobuf
)

# containerd 2.1 from Debian sid, for test/transfer_test.sh (containerd's transfer
# service, which 1.6 lacks). Never installed (a sid package would bring a sid libc):
# unpacked into CONTAINERD2_DIR, whose usr/bin the test puts first in PATH, beside the
# system's containerd 1.6. Pinned: the version and the .deb's SHA256 (amd64), which
# must also be the one the archive lists. CONTAINERD2_DIR/SHA256 records what was
# unpacked there. sid drops a version once a newer one is uploaded: then pin the new
# version and its SHA256 here (apt-cache show prints it).
CONTAINERD2_VERSION=2.1.9+ds1-5
CONTAINERD2_SHA256=2dda86ce7033fd612fc50e136679d8174ccad680eb29cd4611e0d2a1b84cf591
CONTAINERD2_DIR=/opt/clip-deps/containerd-2.1.9

missing=()
for p in "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
containerd2_ready() {
  [ -x "$CONTAINERD2_DIR/usr/bin/containerd" ] &&
    [ "$(cat "$CONTAINERD2_DIR/SHA256" 2>/dev/null)" = "$CONTAINERD2_SHA256" ]
}
if [ ${#missing[@]} -eq 0 ] && containerd2_ready; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root to install packages (${missing[*]:-none missing})" \
    "and containerd $CONTAINERD2_VERSION into $CONTAINERD2_DIR" >&2
  exit 1
fi

# Package scripts must not start daemons (containerd, nginx) on this machine: the
# project starts its own instances in private directories and stops only those.
policy=/usr/sbin/policy-rc.d
made_policy=0
scratch=""
cleanup() {
  if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
  if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} package(s): ${missing[*]}" >&2
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# containerd 2.1: fetched through a private apt state (its own sources.list, lists and
# cache; the system's apt configuration and state are not touched), checked, unpacked
# beside CONTAINERD2_DIR and moved into place only once complete.
if ! containerd2_ready; then
  echo "setup: unpacking containerd $CONTAINERD2_VERSION (Debian sid) into $CONTAINERD2_DIR" >&2
  scratch=$(mktemp -d /tmp/clip-containerd2-XXXXXX)
  mkdir -p "$scratch/lists/partial" "$scratch/cache/archives/partial"
  echo "deb [trusted=yes] http://deb.debian.org/debian sid main" >"$scratch/sources.list"
  apt_private=(-o "Dir::Etc::sourcelist=$scratch/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$scratch/lists" -o "Dir::Cache=$scratch/cache"
    -o APT::Sandbox::User=root)
  apt-get "${apt_private[@]}" update -q
  (cd "$scratch" && apt-get "${apt_private[@]}" download -q "containerd=$CONTAINERD2_VERSION")
  deb=$(echo "$scratch"/containerd_*.deb)
  listed=$(apt-cache "${apt_private[@]}" show "containerd=$CONTAINERD2_VERSION" |
    sed -n 's/^SHA256: //p')
  actual=$(sha256sum "$deb" | cut -d' ' -f1)
  if [ "$actual" != "$listed" ] || [ "$actual" != "$CONTAINERD2_SHA256" ]; then
    echo "setup: $(basename "$deb") has SHA256 $actual; the archive lists $listed," \
      "setup.sh pins $CONTAINERD2_SHA256" >&2
    exit 1
  fi
  dpkg-deb -x "$deb" "$scratch/root"
  echo "$actual" >"$scratch/root/SHA256"
  # Moved next to its destination first (/tmp may be another filesystem), so that
  # the last step is one atomic rename.
  mkdir -p "$(dirname "$CONTAINERD2_DIR")"
  rm -rf "$CONTAINERD2_DIR.new" "$CONTAINERD2_DIR"
  mv "$scratch/root" "$CONTAINERD2_DIR.new"
  mv "$CONTAINERD2_DIR.new" "$CONTAINERD2_DIR"
fi
