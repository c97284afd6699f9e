"""The reference for examples/gpt2-kv: the same greedy decode loop as main.c, run by
ONNX Runtime on the exported model with its natural growing KV cache (past length 0, 1,
2, ...). Prints `tokens: ...` like main.c.

usage: ort_greedy.py MODEL.onnx N_NEW PROMPT_TOKEN...
"""
import sys

import numpy as np
import onnxruntime as ort

model, n_new, prompt = sys.argv[1], int(sys.argv[2]), [int(t) for t in sys.argv[3:]]
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
past_inputs = [i for i in sess.get_inputs() if i.name.startswith("past_key_values")]
heads, head_dim = past_inputs[0].shape[1], past_inputs[0].shape[3]
past = {i.name: np.zeros((1, heads, 0, head_dim), np.float32) for i in past_inputs}
out_names = [o.name for o in sess.get_outputs()]

generated, top = [], []
token = prompt[0]
for step in range(len(prompt) + n_new - 1):
    feeds = {"input_ids": np.array([[token]], np.int64), "attention_mask": np.ones((1, step + 1), np.int64), **past}
    outs = dict(zip(out_names, sess.run(None, feeds)))
    for name in past:
        past[name] = outs[name.replace("past_key_values", "present")]
    if step + 1 < len(prompt):
        token = prompt[step + 1]
    else:
        token = int(np.argmax(outs["logits"][0, -1]))
        generated.append(token)
        top.append(float(outs["logits"][0, -1, token]))
print("tokens:", " ".join(map(str, generated)))
print("top:", " ".join(f"{t:.6f}" for t in top))
