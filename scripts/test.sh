#!/usr/bin/env bash
# The full test run (what CI runs): setup, the cargo tests, then the ONNX node-test
# conformance run, which fails on any failed case or a pass count below the floor
# recorded in testsuite/conformance-floor.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --release
floor=$(cat testsuite/conformance-floor.txt)
cargo run --release -p edgec-testsuite -- onnx-node --target reference --min-passed "$floor"
