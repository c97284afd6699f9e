"""Checks the vocoder's WAV against hifigan_tiny's reference output.

Reads the float32 samples of the WAV's `data` chunk (walking the RIFF chunks) and
compares them with test_data_set_0/output_0.pb within |got - want| <= 1e-4 + 1e-3 |want|.
usage: check_wav.py OUT.wav OUTPUT_0.pb
"""
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper

wav, ref = sys.argv[1], sys.argv[2]
data = open(wav, "rb").read()
assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a RIFF/WAVE file"
pos, fmt, samples = 12, None, None
while pos + 8 <= len(data):
    cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
    body = data[pos + 8 : pos + 8 + size]
    if cid == b"fmt ":
        fmt = struct.unpack("<HHIIHH", body[:16])
    elif cid == b"data":
        samples = np.frombuffer(body, dtype="<f4")
    pos += 8 + size + (size & 1)
assert fmt is not None and fmt[0] == 3 and fmt[1] == 1 and fmt[5] == 32, f"expected mono float32, fmt {fmt}"
want = numpy_helper.to_array(onnx.load_tensor(ref)).reshape(-1)
if samples is None or samples.shape != want.shape:
    sys.exit(f"check_wav: {None if samples is None else samples.shape} samples, want {want.shape}")
err = np.abs(samples - want)
if (err > 1e-4 + 1e-3 * np.abs(want)).any():
    sys.exit(f"check_wav: samples differ from the reference (max abs error {err.max():.3g})")
print(f"check_wav: {len(samples)} samples at {fmt[2]} Hz match the reference (max abs error {err.max():.3g})")
