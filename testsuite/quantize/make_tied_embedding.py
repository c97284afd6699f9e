"""Writes tied_embedding.onnx: one embedding table W [96, 64] used three ways — a
Gather (token embedding), a Gemm with transB=1 on W (the tied output head, as a
Linear export) and a MatMul on W's transpose (as a folded Transpose would leave it) —
plus a Gemm with a bias. The weight-only quantizer must pack W once for all three.
Run: python make_tied_embedding.py (onnx only)."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)
W = rng.standard_normal((96, 64)).astype(np.float32) * 0.5
B = rng.standard_normal((64, 64)).astype(np.float32) * 0.2
C = rng.standard_normal((64,)).astype(np.float32)
nodes = [
    helper.make_node("Gather", ["W", "ids"], ["emb"], axis=0),
    helper.make_node("Reshape", ["emb", "shape"], ["x"]),
    helper.make_node("Gemm", ["x", "B", "C"], ["h"], alpha=0.5, beta=2.0),
    helper.make_node("Gemm", ["h", "W"], ["logits_a"], transB=1),
    helper.make_node("MatMul", ["h", "WT"], ["logits_b"]),
]
graph = helper.make_graph(
    nodes,
    "tied_embedding",
    [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 8])],
    [
        helper.make_tensor_value_info("logits_a", TensorProto.FLOAT, [8, 96]),
        helper.make_tensor_value_info("logits_b", TensorProto.FLOAT, [8, 96]),
    ],
    [
        numpy_helper.from_array(W, "W"),
        numpy_helper.from_array(np.ascontiguousarray(W.T), "WT"),
        numpy_helper.from_array(B, "B"),
        numpy_helper.from_array(C, "C"),
        numpy_helper.from_array(np.array([8, 64], dtype=np.int64), "shape"),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, "tied_embedding.onnx")
