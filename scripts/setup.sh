#!/usr/bin/env bash
# Installs what the tests need that cargo does not: a Python venv (.venv) with the
# ONNX node-test data (onnx==1.22.0 ships it), onnxruntime and numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import onnx, onnxruntime, numpy; assert onnx.__version__ == '1.22.0'" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check onnx==1.22.0 onnxruntime numpy
fi
echo "setup: .venv ready ($(.venv/bin/python -c 'import onnx; print("onnx", onnx.__version__)'))"
