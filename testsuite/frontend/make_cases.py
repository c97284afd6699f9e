"""Writes small models that exercise the ONNX frontend, each with reference data
computed by onnx's ReferenceEvaluator, for tests/frontend.rs.

Run with the project's venv: .venv/bin/python testsuite/frontend/make_cases.py
"""
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))


def write_case(name, model, inputs, external=False, outputs=None):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "test_data_set_0"))
    path = os.path.join(d, "model.onnx")
    if outputs is None:
        outputs = ReferenceEvaluator(model).run(None, {i.name: v for i, v in zip(model.graph.input, inputs)})
    if external:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="weights.bin", size_threshold=0)
    else:
        onnx.save_model(model, path)
    for k, v in enumerate(inputs):
        with open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(v).SerializeToString())
    for k, v in enumerate(outputs):
        with open(os.path.join(d, "test_data_set_0", f"output_{k}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(np.asarray(v)).SerializeToString())


rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3)).astype(np.float32)
X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])

# A model-local function with an attribute reference, called twice.
scale = helper.make_function(
    "local", "Scale", ["a"], ["b"],
    [helper.make_node("Constant", [], ["s"], value_float=0.0),
     helper.make_node("Constant", [], ["k"], name="k"),
     helper.make_node("Mul", ["a", "k"], ["b"])],
    opset_imports=[helper.make_opsetid("", 17)], attributes=[],
)
# Give the constant its value through a reference to the call's attribute 'factor'.
ref = onnx.AttributeProto()
ref.name = "value_float"
ref.ref_attr_name = "factor"
ref.type = onnx.AttributeProto.FLOAT
del scale.node[1].attribute[:]
scale.node[1].attribute.append(ref)
scale.attribute.append("factor")
g = helper.make_graph(
    [helper.make_node("Scale", ["x"], ["t"], domain="local", factor=2.0),
     helper.make_node("Scale", ["t"], ["y"], domain="local", factor=-0.5)],
    "g", [X], [Y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)], functions=[scale])
write_case("local_function", m, [x])

# Initializers in external data, float16 and typed fields; an input with an initializer.
w = rng.standard_normal((2, 3)).astype(np.float32)
h = rng.standard_normal((2, 3)).astype(np.float16)
typed = helper.make_tensor("typed", TensorProto.FLOAT, [2, 3], w.flatten().tolist(), raw=False)
g = helper.make_graph(
    [helper.make_node("Add", ["x", "w"], ["a"]),
     helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
     helper.make_node("Add", ["a", "hf"], ["b"]),
     helper.make_node("Add", ["b", "typed"], ["c"]),
     helper.make_node("Mul", ["c", "bias"], ["y"])],
    "g", [X, helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1])], [Y],
    initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(h, "h"), typed,
                 numpy_helper.from_array(np.array([3.0], np.float32), "bias")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
write_case("external_data", m, [x], external=True)

# Constant in every value_* form.
consts = [
    helper.make_node("Constant", [], ["c0"], value=numpy_helper.from_array(np.full((2, 3), 0.5, np.float32))),
    helper.make_node("Constant", [], ["c1"], value_float=1.5),
    helper.make_node("Constant", [], ["c2"], value_floats=[1.0, 2.0, 3.0]),
    helper.make_node("Constant", [], ["c3"], value_int=2),
    helper.make_node("Constant", [], ["c4"], value_ints=[1, 2, 3]),
    helper.make_node("Constant", [], ["c5"], sparse_value=helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([4.0, 5.0], np.float32)),
        numpy_helper.from_array(np.array([1, 5], np.int64)), [2, 3])),
]
ops = [
    helper.make_node("Add", ["x", "c0"], ["a0"]),
    helper.make_node("Mul", ["a0", "c1"], ["a1"]),
    helper.make_node("Add", ["a1", "c2"], ["a2"]),
    helper.make_node("Cast", ["c3"], ["c3f"], to=TensorProto.FLOAT),
    helper.make_node("Cast", ["c4"], ["c4f"], to=TensorProto.FLOAT),
    helper.make_node("Mul", ["a2", "c3f"], ["a3"]),
    helper.make_node("Sub", ["a3", "c4f"], ["a4"]),
    helper.make_node("Add", ["a4", "c5"], ["y"]),
]
g = helper.make_graph(consts + ops, "g", [X], [Y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
# The reference evaluator has no sparse constants: the expected value by hand.
sparse = np.zeros(6, np.float32)
sparse[[1, 5]] = [4.0, 5.0]
want = ((x + 0.5) * 1.5 + np.array([1, 2, 3], np.float32)) * 2.0 - np.array([1, 2, 3], np.float32) + sparse.reshape(2, 3)
write_case("constants", m, [x], outputs=[want.astype(np.float32)])
