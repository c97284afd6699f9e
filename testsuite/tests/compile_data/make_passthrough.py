"""Writes compile_data/passthrough: a model whose outputs are an input (f32), folded
constants (f16, bool) and another input (i64), so the compile path runs end to end
without any op lowering. Run with the project's venv: .venv/bin/python make_passthrough.py"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "passthrough")
x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
ids_info = helper.make_tensor_value_info("ids", TensorProto.INT64, [4])
table = np.array([1.5, -2.25, 65504], dtype=np.float16)
flags = np.array([True, False])
nodes = [
    helper.make_node("Constant", [], ["table"], value=numpy_helper.from_array(table, "t")),
    helper.make_node("Constant", [], ["flags"], value=numpy_helper.from_array(flags, "f")),
]
outputs = [
    x_info,
    helper.make_tensor_value_info("table", TensorProto.FLOAT16, [3]),
    helper.make_tensor_value_info("flags", TensorProto.BOOL, [2]),
    ids_info,
]
g = helper.make_graph(nodes, "passthrough", [x_info, ids_info], outputs)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.checker.check_model(m)
os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
onnx.save(m, os.path.join(d, "model.onnx"))
x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
ids = np.array([3, -1, 2**40, 0], dtype=np.int64)
for k, a in enumerate([x, ids]):
    with open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb") as f:
        f.write(numpy_helper.from_array(a).SerializeToString())
for k, a in enumerate([x, table, flags, ids]):
    with open(os.path.join(d, "test_data_set_0", f"output_{k}.pb"), "wb") as f:
        f.write(numpy_helper.from_array(a).SerializeToString())
