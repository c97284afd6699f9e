"""chargpt's greedy loop under ONNX Runtime: the reference for `chargpt-host --greedy N`.

Same loop as examples/textgen: the last 64 ids at positions 0..len, padded with 0 after
them; the next id is the argmax of the logits at position len-1.
usage: greedy_ort.py MODEL_DIR N PROMPT
"""
import json
import sys

import numpy as np
import onnxruntime as ort

model_dir, n, prompt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
vocab = json.load(open(f"{model_dir}/vocab.json"))
chars, block = vocab["chars"], vocab["block_size"]
sess = ort.InferenceSession(f"{model_dir}/model.onnx", providers=["CPUExecutionProvider"])
ids = [chars.index(c) for c in prompt]
out = []
for _ in range(n):
    window = ids[-block:]
    x = np.zeros((1, block), dtype=np.int64)
    x[0, : len(window)] = window
    logits = sess.run(None, {"input_ids": x})[0]
    nxt = int(np.argmax(logits[0, len(window) - 1]))
    out.append(chars[nxt])
    ids.append(nxt)
print("".join(out))
