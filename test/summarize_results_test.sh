#!/usr/bin/env bash
# Runs the summarizer's unit tests with the system python3 (Bazel's py_test wants a
# `python` binary that Debian does not ship by default).
set -euo pipefail
cd "${TEST_SRCDIR}/${TEST_WORKSPACE}/test"
exec python3 -m unittest -v summarize_results_test
