#!/usr/bin/env bash
# The full test run (what CI runs): setup, the cargo tests, then the ONNX node-test
# conformance run on every target in testsuite/conformance-floors.txt, each failing on
# any failed case or a pass count below its floor.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --release
# The runtime is no_std: it must build for a bare Cortex-M.
rustup target add thumbv7em-none-eabihf
cargo build --release -p edgec-runtime --target thumbv7em-none-eabihf
# Every example built and run, its output checked (ONNX Runtime, reference data, the
# host's text for the firmware's): docs/integration-*.md.
scripts/examples.sh
# Same package set as scripts/examples.sh (already built there: a no-op).
cargo build --release -p edgec -p edgec-testsuite -p edgec-example-host -p edgec-example-chargpt -p edgec-example-vocoder
grep -v '^#' testsuite/conformance-floors.txt | while read -r target floor; do
  [ -n "$target" ] || continue
  target/release/edgec-testsuite onnx-node --target "$target" --min-passed "$floor"
done
# Weight-only quantization of chargpt: nats/char on its validation text, float32 vs
# int4 and int8-weights, with the issue's bounds (docs/quantization.md).
target/release/edgec-testsuite eval-text --quantize int4 --quantize int8-weights
# Instructions per inference of the shared models under QEMU (docs/benchmarks.md); the
# bench fails when two counted runs differ or an output is wrong.
target/release/edgec-testsuite bench --target cortex-m7 --target cortex-a53 --target riscv64 --dim past_sequence_length=16
# int8 (docs/quantization.md): the onnxruntime QDQ dcgan within one step of ORT on
# host, cortex-a53 and cortex-m7; digits_vae_decoder PTQ PSNR, weight size and (--strict)
# instructions <= 0.6x float32 on cortex-m7.
target/release/edgec-testsuite quant-int8 --strict
# A generated ~100M-parameter decoder (external data) compiles for cortex-a53 within 60 s
# and 1.5x its weight bytes of peak memory (docs/performance.md; ~40 s with generation).
target/release/edgec-testsuite scale --python .venv/bin/python
