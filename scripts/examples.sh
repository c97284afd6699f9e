#!/usr/bin/env bash
# Builds and runs every example (README "Examples", docs/integration-*.md) and checks
# what it prints: chargpt's greedy text against ONNX Runtime's greedy loop, the vocoder's
# WAV against the reference audio, the firmware's text against the host's and the digit
# images against ONNX Runtime, the KV-cache decode loop's tokens against ONNX Runtime's. Needs scripts/setup.sh's venv and toolchains.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MODELS=testsuite/models
PROMPT="This program is free software: "
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "examples: FAIL: $*" >&2; exit 1; }

# The same package set as scripts/test.sh's build: one feature resolution, one build of
# edgec (a different set would rebuild edgec and its dependencies with other features).
cargo build --release -p edgec -p edgec-testsuite -p edgec-example-host -p edgec-example-chargpt -p edgec-example-vocoder

echo "== examples/rust-host"
target/release/edgec-example-host

echo "== examples/chargpt-host"
host=$(target/release/chargpt-host --greedy 200 "$PROMPT")
ort=$("$PY" examples/chargpt-host/greedy_ort.py "$MODELS/chargpt" 200 "$PROMPT")
echo "edgec greedy: $host"
echo "ORT greedy:   $ort"
[ "$host" = "$ort" ] || fail "chargpt-host --greedy differs from ONNX Runtime's greedy loop"
target/release/chargpt-host --sample 120 --seed 7 "$PROMPT"

echo "== examples/vocoder"
target/release/vocoder -o "$tmp/vocoder.wav"
"$PY" examples/vocoder/check_wav.py "$tmp/vocoder.wav" "$MODELS/hifigan_tiny/test_data_set_0/output_0.pb"

echo "== examples/firmware-cortex-m7"
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
(cd examples/firmware-cortex-m7 && cargo run --release) | tee "$tmp/fw.txt"
fw=$(sed -n 's/^greedy: //p' "$tmp/fw.txt")
[ -n "$fw" ] || fail "the firmware printed no greedy text"
[ "$fw" = "${host:0:${#fw}}" ] || fail "the firmware's greedy text differs from the host's: '$fw'"
echo "firmware greedy text = the host's first ${#fw} characters"
"$PY" examples/check_digits.py "$MODELS/digits_vae_decoder/model.onnx" "$tmp/fw.txt"
grep -q '^memory: flash [0-9]* B, ram [0-9]* B' "$tmp/fw.txt" || fail "the firmware printed no memory figures"

echo "== examples/c-firmware"
make -s -C examples/c-firmware clean
make -s -C examples/c-firmware run EDGEC="$PWD/target/release/edgec" | tee "$tmp/c.txt"
"$PY" examples/check_digits.py "$MODELS/digits_vae_decoder/model.onnx" "$tmp/c.txt"
grep -q '^memory: flash [0-9]* B, ram [0-9]* B' "$tmp/c.txt" || fail "the C firmware printed no memory figures"
echo "== examples/gpt2-kv"
examples/gpt2-kv/run.sh host
examples/gpt2-kv/run.sh cortex-a53
echo "examples: all passed"
