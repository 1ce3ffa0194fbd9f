#!/usr/bin/env bash
# Installs every Debian package clip needs to build, test and run end to end, and
# unpacks containerd 1.7 and 2.1 privately for the suite's containerd matrix.
# Idempotent: when everything is present it returns after one dpkg query per package
# and one checksum file read per private containerd. Used by both README commands
# (deploy/demo.sh and test/run_all.sh).
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

# containerd 1.7 (Debian 13 trixie) and 2.1 (Debian sid), for the suite's containerd
# matrix (test/e2e_env.sh, E2E_CONTAINERD=1.7|2.1; 1.6 is the system's). Never installed
# (a newer suite's package would bring its libc): each is unpacked into its own
# directory, whose usr/bin a test puts first in PATH, beside the system's containerd
# 1.6. Both run with Debian 12's runc 1.1.5. Pinned: suite, version and the .deb's
# SHA256 (amd64), which must also be the one the archive lists; DIR/SHA256 records what
# was unpacked there. A suite drops a version once a newer one is uploaded: then pin the
# new version and its SHA256 here (`apt-cache show` with the private apt state below
# prints it). A line: "SUITE VERSION SHA256 DIR".
PRIVATE_CONTAINERDS=(
  "trixie 1.7.24~ds1-6+deb13u1 ed708deb96fe476a3bce4efa5c0538dfbcf717ab9a7c7944ba7260342c25899c /opt/clip-deps/containerd-1.7.24"
  "sid 2.1.9+ds1-5 2dda86ce7033fd612fc50e136679d8174ccad680eb29cd4611e0d2a1b84cf591 /opt/clip-deps/containerd-2.1.9"
)

missing=()
for p in "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
private_ready() {  # private_ready SHA256 DIR: DIR holds the unpacked .deb of that digest
  [ -x "$2/usr/bin/containerd" ] && [ "$(cat "$2/SHA256" 2>/dev/null)" = "$1" ]
}
unready=()  # the lines of PRIVATE_CONTAINERDS not unpacked yet
for line in "${PRIVATE_CONTAINERDS[@]}"; do
  read -r _ _ sha dir <<<"$line"
  private_ready "$sha" "$dir" || unready+=("$line")
done
if [ ${#missing[@]} -eq 0 ] && [ ${#unready[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root to install packages (${missing[*]:-none missing})" \
    "and unpack containerd into /opt/clip-deps (${#unready[@]} to do)" >&2
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

# Each private containerd: fetched through a private apt state (its own sources.list,
# lists and cache; the system's apt configuration and state are not touched), checked,
# unpacked beside DIR and moved into place only once complete.
unpack_private() {  # unpack_private SUITE VERSION SHA256 DIR
  local suite=$1 version=$2 sha=$3 dir=$4 deb listed actual apt_private
  echo "setup: unpacking containerd $version (Debian $suite) into $dir" >&2
  scratch=$(mktemp -d /tmp/clip-containerd-XXXXXX)
  mkdir -p "$scratch/lists/partial" "$scratch/cache/archives/partial"
  echo "deb [trusted=yes] http://deb.debian.org/debian $suite main" >"$scratch/sources.list"
  apt_private=(-o "Dir::Etc::sourcelist=$scratch/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$scratch/lists" -o "Dir::Cache=$scratch/cache"
    -o APT::Sandbox::User=root)
  apt-get "${apt_private[@]}" update -q
  (cd "$scratch" && apt-get "${apt_private[@]}" download -q "containerd=$version")
  deb=$(echo "$scratch"/containerd_*.deb)
  listed=$(apt-cache "${apt_private[@]}" show "containerd=$version" | sed -n 's/^SHA256: //p')
  actual=$(sha256sum "$deb" | cut -d' ' -f1)
  if [ "$actual" != "$listed" ] || [ "$actual" != "$sha" ]; then
    echo "setup: $(basename "$deb") has SHA256 $actual; the archive lists $listed," \
      "setup.sh pins $sha" >&2
    exit 1
  fi
  dpkg-deb -x "$deb" "$scratch/root"
  echo "$actual" >"$scratch/root/SHA256"
  # Moved next to its destination first (/tmp may be another filesystem), so that
  # the last step is one atomic rename.
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir.new" "$dir"
  mv "$scratch/root" "$dir.new"
  mv "$dir.new" "$dir"
  rm -rf "$scratch"
  scratch=""
}
for line in "${unready[@]}"; do
  # shellcheck disable=SC2086 # the line's four words are the arguments
  unpack_private $line
done
