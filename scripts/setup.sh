#!/usr/bin/env bash
# Installs what the tests need that cargo does not: a Python venv (.venv) with the
# ONNX node-test data (onnx==1.22.0 ships it), onnxruntime and numpy; and the C
# compilers and emulators that build and run generated code (see
# ../shared/TOOLCHAINS.md): host cc, aarch64/riscv64 Linux cross compilers with
# qemu-user, and the bare-metal Arm/RISC-V toolchains with qemu-system (the
# microcontroller targets, docs/microcontrollers.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import onnx, onnxruntime, numpy; assert onnx.__version__ == '1.22.0'" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check onnx==1.22.0 onnxruntime numpy
fi
echo "setup: .venv ready ($(.venv/bin/python -c 'import onnx; print("onnx", onnx.__version__)'))"

# Toolchains for the compile tests. Tests that need a missing tool fail (never skip),
# so install them when any is absent.
tools=(cc aarch64-linux-gnu-gcc riscv64-linux-gnu-gcc qemu-aarch64 qemu-riscv64 arm-none-eabi-gcc qemu-system-arm
  riscv64-unknown-elf-gcc qemu-system-riscv32 timeout)
missing=()
for t in "${tools[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing toolchains (missing: ${missing[*]})"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-riscv64-linux-gnu libc6-dev-riscv64-cross \
    qemu-user gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
    gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc coreutils
fi
echo "setup: toolchains ready ($(for t in "${tools[@]}"; do command -v "$t" >/dev/null && printf '%s ' "$t"; done))"
