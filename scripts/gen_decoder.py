#!/usr/bin/env python3
"""Generates GPT-2-shaped decoder ONNX models for the benchmarks (docs/performance.md).

No torch: the graph is built node by node with onnx.helper, weights are seeded random
~N(0, 0.02) (biases and LayerNorm shifts small, LayerNorm scales ~1). GPT-2 structure:
token + position embedding Gather, per layer LayerNorm -> QKV MatMul -> split heads ->
attention with a KV cache (past/present, causal mask) -> output projection -> residual
-> LayerNorm -> MLP with tanh GELU -> residual; final LayerNorm and an LM head tied to
the token embedding (one initializer read by the Gather and by a Gemm with transB=1).

Presets (each a folder NAME/model.onnx + test_data_set_0 with seeded random inputs and
ONNX Runtime's outputs, so `edgec verify` and the benchmarks use the same data):
  medium  -> medium_decode  (input_ids [1,1], past k/v [1,8,128,32] per layer)
             medium_prefill (input_ids [1,128], no past)
             4 layers, d=256, 8 heads, vocab 2048, 256 positions
  scale   -> decoder_100m_decode: 12 layers, d=768, 12 heads, vocab 20480 (~101M
             parameters, ~405 MB), weights in model.onnx.data (external data), written
             straight to the data file so the generator never holds two copies.

Usage: gen_decoder.py OUT_DIR [--preset medium|scale]... [--no-outputs]
"""

import argparse
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PRESETS = {
    "medium": dict(layers=4, d=256, heads=8, vocab=2048, positions=256, past=128, prefill=128, external=False),
    "scale": dict(layers=12, d=768, heads=12, vocab=20480, positions=256, past=128, prefill=None, external=True),
}


class Weights:
    """Initializers, either inline or appended to one external data file."""

    def __init__(self, rng, data_path=None):
        self.rng = rng
        self.inits = []
        self.data_path = data_path
        self.data = open(data_path, "wb") if data_path else None
        self.offset = 0
        self.count = 0

    def add(self, name, array):
        array = np.ascontiguousarray(array, dtype=np.float32)
        self.count += array.size
        if self.data is None:
            self.inits.append(numpy_helper.from_array(array, name))
            return name
        t = TensorProto()
        t.name = name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(array.shape)
        # 64-byte aligned offsets, like onnx's own external data writer with align.
        pad = (-self.offset) % 64
        self.data.write(b"\0" * pad)
        self.offset += pad
        raw = array.tobytes()
        self.data.write(raw)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", os.path.basename(self.data_path)), ("offset", str(self.offset)), ("length", str(len(raw)))):
            e = t.external_data.add()
            e.key, e.value = k, v
        self.offset += len(raw)
        self.inits.append(t)
        return name

    def normal(self, name, shape, std=0.02):
        return self.add(name, self.rng.standard_normal(shape, dtype=np.float32) * std)

    def close(self):
        if self.data:
            self.data.close()


def build(cfg, mode, rng, data_path=None):
    """The decode step (mode 'decode', past length cfg['past']) or the prefill."""
    L, D, H, V = cfg["layers"], cfg["d"], cfg["heads"], cfg["vocab"]
    Dh = D // H
    S = 1 if mode == "decode" else cfg["prefill"]
    P = cfg["past"] if mode == "decode" else 0
    T = P + S
    w = Weights(rng, data_path)
    nodes = []
    n = [0]

    def node(op, inputs, out=None, **attrs):
        n[0] += 1
        out = out or f"{op.lower()}_{n[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{n[0]}", **attrs))
        return out

    def const(name, array):
        w.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    const("shape_heads", np.array([1, S, H, Dh], dtype=np.int64))
    const("shape_model", np.array([1, S, D], dtype=np.int64))
    const("shape_rows", np.array([S, D], dtype=np.int64))
    const("shape_logits", np.array([1, S, V], dtype=np.int64))
    const("split_qkv", np.array([D, D, D], dtype=np.int64))
    const("scale", np.array(1.0 / math.sqrt(Dh), dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    const("one", np.array(1.0, dtype=np.float32))
    const("three", np.array(3.0, dtype=np.float32))
    const("gelu_c", np.array(0.044715, dtype=np.float32))
    const("gelu_k", np.array(math.sqrt(2.0 / math.pi), dtype=np.float32))
    const("position_ids", np.arange(P, P + S, dtype=np.int64).reshape(1, S))
    if S > 1:
        # Causal: query i (absolute position P + i) sees keys 0..P+i.
        mask = np.where(np.arange(T)[None, :] <= (P + np.arange(S))[:, None], 0.0, -1e9).astype(np.float32)
        const("causal_mask", mask.reshape(1, 1, S, T))

    wte = w.normal("wte", (V, D))
    wpe = w.normal("wpe", (cfg["positions"], D), std=0.01)
    h = node("Add", [node("Gather", [wte, "input_ids"]), node("Gather", [wpe, "position_ids"])])

    def layer_norm(x, prefix):
        g = w.add(prefix + ".g", 1.0 + 0.02 * rng.standard_normal(D, dtype=np.float32))
        b = w.normal(prefix + ".b", (D,))
        return node("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-5)

    def linear(x, prefix, k, m):
        return node("Add", [node("MatMul", [x, w.normal(prefix + ".w", (k, m))]), w.normal(prefix + ".b", (m,))])

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, S])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, S, V])]
    for l in range(L):
        p = f"h{l}"
        x = layer_norm(h, p + ".ln1")
        qkv = linear(x, p + ".attn.qkv", D, 3 * D)
        q, k, v = (f"{p}.q", f"{p}.k", f"{p}.v")
        nodes.append(helper.make_node("Split", [qkv, "split_qkv"], [q, k, v], name=f"{p}.split", axis=2))
        heads = lambda t: node("Transpose", [node("Reshape", [t, "shape_heads"])], perm=[0, 2, 1, 3])
        q, k, v = heads(q), heads(k), heads(v)
        present_k, present_v = f"present.{l}.key", f"present.{l}.value"
        if P > 0:
            past_k, past_v = f"past.{l}.key", f"past.{l}.value"
            inputs += [helper.make_tensor_value_info(n_, TensorProto.FLOAT, [1, H, P, Dh]) for n_ in (past_k, past_v)]
            node("Concat", [past_k, k], present_k, axis=2)
            node("Concat", [past_v, v], present_v, axis=2)
        else:
            node("Identity", [k], present_k)
            node("Identity", [v], present_v)
        outputs += [helper.make_tensor_value_info(n_, TensorProto.FLOAT, [1, H, T, Dh]) for n_ in (present_k, present_v)]
        scores = node("Mul", [node("MatMul", [q, node("Transpose", [present_k], perm=[0, 1, 3, 2])]), "scale"])
        if S > 1:
            scores = node("Add", [scores, "causal_mask"])
        att = node("MatMul", [node("Softmax", [scores], axis=-1), present_v])
        att = node("Reshape", [node("Transpose", [att], perm=[0, 2, 1, 3]), "shape_model"])
        h = node("Add", [h, linear(att, p + ".attn.proj", D, D)])
        x = layer_norm(h, p + ".ln2")
        u = linear(x, p + ".mlp.fc", D, 4 * D)
        # tanh GELU as GPT-2 has it: 0.5 u (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3)))
        inner = node("Mul", [node("Add", [u, node("Mul", [node("Pow", [u, "three"]), "gelu_c"])]), "gelu_k"])
        g = node("Mul", [node("Mul", [u, "half"]), node("Add", [node("Tanh", [inner]), "one"])])
        h = node("Add", [h, linear(g, p + ".mlp.proj", 4 * D, D)])
    x = node("Reshape", [layer_norm(h, "ln_f"), "shape_rows"])
    node("Reshape", [node("Gemm", [x, wte], transB=1), "shape_logits"], "logits")
    w.close()
    graph = helper.make_graph(nodes, f"decoder_{mode}", inputs, outputs, w.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgec gen_decoder.py")
    model.ir_version = 8
    return model, w.count


def seeded_inputs(model, cfg, seed):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in model.graph.input:
        shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.elem_type == TensorProto.INT64:
            feeds[i.name] = rng.integers(0, cfg["vocab"], size=shape, dtype=np.int64)
        else:
            feeds[i.name] = rng.standard_normal(shape, dtype=np.float32)
    return feeds


def write(folder, name, cfg, mode, seed, outputs):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    data = os.path.join(folder, "model.onnx.data") if cfg["external"] else None
    model, params = build(cfg, mode, np.random.default_rng(seed), data)
    onnx.save(model, path)
    onnx.checker.check_model(path)
    feeds = seeded_inputs(model, cfg, seed + 1)
    sets = os.path.join(folder, "test_data_set_0")
    os.makedirs(sets, exist_ok=True)
    for k, i in enumerate(model.graph.input):
        onnx.save_tensor(numpy_helper.from_array(feeds[i.name], i.name), os.path.join(sets, f"input_{k}.pb"))
    if outputs:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        got = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)
        for k, (o, v) in enumerate(zip(model.graph.output, got)):
            onnx.save_tensor(numpy_helper.from_array(v, o.name), os.path.join(sets, f"output_{k}.pb"))
    print(f"{name}: {params} parameters ({params * 4} weight bytes) -> {path}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--preset", action="append", choices=sorted(PRESETS), help="default: medium")
    ap.add_argument("--no-outputs", action="store_true", help="skip ONNX Runtime's reference outputs")
    a = ap.parse_args()
    for preset in a.preset or ["medium"]:
        cfg = PRESETS[preset]
        if preset == "medium":
            write(os.path.join(a.out, "medium_decode"), "medium_decode", cfg, "decode", 7, not a.no_outputs)
            write(os.path.join(a.out, "medium_prefill"), "medium_prefill", cfg, "prefill", 7, not a.no_outputs)
        else:
            write(os.path.join(a.out, "decoder_100m_decode"), "decoder_100m_decode", cfg, "decode", 11, not a.no_outputs)


if __name__ == "__main__":
    main()
