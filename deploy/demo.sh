#!/usr/bin/env bash
# README command 1: the main job.
#
# Today (foundation stage) it installs every package, builds every target and prints
# the versions of clip's binaries and of the programs it runs beside. Later stages turn
# it into the full lazy start: local registry with a sample image, containerd with clip
# as proxy plugin, `ctr run --snapshotter clip ...`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
bazel build --disk_cache="${HOME}/.cache/clip-bazel-disk" //...

echo "== clipctl version"
.bazel/bin/cmd/clipctl version
echo "== programs clip runs beside"
containerd --version
runc --version | head -n 1
echo "docker-registry $(docker-registry --version 2>&1 | awk '{print $NF}')"
nginx -v 2>&1
fusermount3 --version 2>&1
if [ "${CI:-}" = "true" ]; then bazel shutdown >/dev/null 2>&1 || true; fi
