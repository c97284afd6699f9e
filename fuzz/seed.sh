#!/usr/bin/env bash
# Seeds the fuzz corpus with the malformed corpus, the reference models and a sample of
# the ONNX node tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/corpus/load_model"
mkdir -p "$corpus"
cp "$here"/../testsuite/malformed/*.onnx "$corpus"/
for m in "$here"/../testsuite/models/*/model.onnx; do cp "$m" "$corpus/$(basename "$(dirname "$m")").onnx"; done
node_dir=$(ls -d "$here"/../.venv/lib/python3*/site-packages/onnx/backend/test/data/node 2>/dev/null | head -1 || true)
if [ -n "$node_dir" ]; then
  for d in $(ls "$node_dir" | awk 'NR % 4 == 0'); do cp "$node_dir/$d/model.onnx" "$corpus/$d.onnx"; done
fi
echo "corpus: $(ls "$corpus" | wc -l) files"
