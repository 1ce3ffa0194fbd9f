#!/usr/bin/env bash
# Installs every Debian package clip needs to build, test and run end to end.
# Idempotent: when everything is present it returns after one dpkg query.
# Used by both README commands (deploy/demo.sh and test/run_all.sh).
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

missing=()
for p in "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${#missing[@]} package(s): ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root to install packages" >&2
  exit 1
fi

# Package scripts must not start daemons (containerd, nginx) on this machine: the
# project starts its own instances in private directories and stops only those.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
