"""Checks a digits firmware's output (examples/c-firmware, examples/firmware-cortex-m7).

Every `zK:` line (latent vector, float32 bits in hex) is run through ONNX Runtime on
digits_vae_decoder; the `imageK:` line that follows must match within the contract's
tolerance |got - want| <= 1e-4 + 1e-3 |want|.
usage: check_digits.py MODEL.onnx OUTPUT.txt [EXPECTED_COUNT]
"""
import sys

import numpy as np
import onnxruntime as ort

model, path = sys.argv[1], sys.argv[2]
expected = int(sys.argv[3]) if len(sys.argv) > 3 else 4
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def floats(line):
    return np.array([int(h, 16) for h in line.split(":", 1)[1].split()], dtype=np.uint32).view(np.float32)


zs, images = {}, {}
for line in open(path, encoding="utf-8", errors="replace"):
    key = line.split(":", 1)[0]
    if key[:1] == "z" and key[1:].isdigit():
        zs[key[1:]] = floats(line)
    elif key.startswith("image") and key[5:].isdigit():
        images[key[5:]] = floats(line)
if len(zs) != expected or set(zs) != set(images):
    sys.exit(f"check_digits: expected {expected} z/image pairs in {path}, found z {sorted(zs)} image {sorted(images)}")
worst = 0.0
for k in sorted(zs):
    want = sess.run(None, {"z": zs[k].reshape(1, 8)})[0].reshape(-1)
    got = images[k]
    err = np.abs(got - want)
    bad = err > 1e-4 + 1e-3 * np.abs(want)
    worst = max(worst, float(err.max()))
    if bad.any():
        sys.exit(f"check_digits: image{k} differs from ONNX Runtime at {int(bad.sum())} pixels (max abs error {err.max():.3g})")
print(f"check_digits: {len(zs)} images match ONNX Runtime (max abs error {worst:.3g})")
