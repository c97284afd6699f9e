#!/usr/bin/env bash
# Greedy decoding with gpt2_decode_kv compiled as a shape family, next to the same loop
# over ONNX Runtime. usage: examples/gpt2-kv/run.sh [host|cortex-a53] [N_NEW] [PROMPT...]
# Exits nonzero when the tokens differ.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
target="${1:-host}"
n_new="${2:-32}"
shift $(( $# > 2 ? 2 : $# ))
prompt=("${@:-11 222 33 444}")
prompt=(${prompt[@]})
model="$root/testsuite/models/gpt2_decode_kv/model.onnx"
edgec="$root/target/release/edgec"
[ -x "$edgec" ] || cargo build --release -p edgec --manifest-path "$root/Cargo.toml"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
max=$(( ${#prompt[@]} + n_new - 1 ))
"$edgec" compile "$model" --target "$target" --name gpt2 -o "$out" \
  --dim batch=1 --dim "past_sequence_length=0..$max" --dim total_sequence_length=past_sequence_length+1
case "$target" in
  host) cc=cc; run=() ;;
  cortex-a53) cc=aarch64-linux-gnu-gcc; run=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
  riscv64) cc=riscv64-linux-gnu-gcc; run=(qemu-riscv64 -L /usr/riscv64-linux-gnu) ;;
  *) echo "run.sh runs host, cortex-a53 or riscv64" >&2; exit 2 ;;
esac
"$cc" -std=c99 -O2 -Wall -I "$out" "$here/main.c" "$out/gpt2.o" -o "$out/gpt2_kv" -lm
got="$("${run[@]}" "$out/gpt2_kv" "$out/gpt2.weights" "$n_new" "${prompt[@]}")"
want="$("$root/.venv/bin/python" "$here/ort_greedy.py" "$model" "$n_new" "${prompt[@]}")"
echo "$got"
echo "onnxruntime $(echo "$want" | grep '^tokens:')"
if [ "$(echo "$got" | grep '^tokens:')" != "$(echo "$want" | grep '^tokens:')" ]; then
  echo "MISMATCH: the compiled loop's tokens differ from ONNX Runtime's" >&2
  exit 1
fi
echo "ok: $n_new tokens identical to ONNX Runtime's"
