"""Writes the corpus of malformed models that tests/malformed.rs loads.

Run with the project's venv: .venv/bin/python testsuite/malformed/make_corpus.py
Each file breaks one rule; the Rust test asserts the error message for each.
"""
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def model(nodes, inputs=None, outputs=None, inits=(), opset=17, ir=8):
    inputs = inputs if inputs is not None else [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])]
    outputs = outputs if outputs is not None else [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def save(name, m):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(m if isinstance(m, bytes) else m.SerializeToString())


relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
good = model([relu])
bytes_ = good.SerializeToString()
save("truncated.onnx", bytes_[: len(bytes_) * 2 // 3])
save("truncated_half.onnx", bytes_[: len(bytes_) // 2])
save("not_protobuf.onnx", b"this is not an ONNX model, just some text\n")
save("empty.onnx", b"")
save("dangling_input.onnx", model([helper.make_node("Relu", ["nope"], ["y"], name="relu")]))
save(
    "cycle.onnx",
    model([
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
        helper.make_node("Identity", ["a"], ["y"], name="out"),
    ]),
)
bad = TensorProto()
bad.name = "w"
bad.data_type = TensorProto.FLOAT
bad.dims.extend([4])
bad.raw_data = b"\0" * 8
save("initializer_wrong_size.onnx", model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[bad]))
save("unknown_op.onnx", model([helper.make_node("FooBar", ["x"], ["y"], name="mystery")]))
save("opset99.onnx", model([relu], opset=99))
neg = TensorProto()
neg.name = "w"
neg.data_type = TensorProto.FLOAT
neg.dims.extend([-3])
save("negative_dim.onnx", model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[neg]))
ovf = TensorProto()
ovf.name = "w"
ovf.data_type = TensorProto.FLOAT
ovf.dims.extend([1 << 31, 1 << 31, 1 << 31])
ovf.raw_data = b"\0" * 4
save("dims_overflow.onnx", model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[ovf]))
huge = TensorProto()
huge.name = "w"
huge.data_type = TensorProto.FLOAT
huge.dims.extend([1 << 40])
huge.float_data.extend([1.0])
save("huge_claim.onnx", model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[huge]))
save(
    "negative_input_dim.onnx",
    model([relu], inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [-2])]),
)
save(
    "duplicate_name.onnx",
    model([relu, helper.make_node("Neg", ["x"], ["y"], name="neg")]),
)
save("ir_version_2.onnx", model([relu], ir=2))
save("output_undefined.onnx", model([helper.make_node("Relu", ["x"], ["z"], name="relu")]))
save(
    "string_input.onnx",
    model([relu], inputs=[helper.make_tensor_value_info("x", TensorProto.STRING, [2])]),
)
save(
    "bad_attribute.onnx",
    model([helper.make_node("Softmax", ["x"], ["y"], name="softmax", axis=7)]),
)
ext = TensorProto()
ext.name = "w"
ext.data_type = TensorProto.FLOAT
ext.dims.extend([2])
ext.data_location = TensorProto.EXTERNAL
e = ext.external_data.add()
e.key, e.value = "location", "../../etc/passwd"
save("external_escape.onnx", model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[ext]))
ext2 = TensorProto()
ext2.CopyFrom(ext)
ext2.external_data[0].value = "missing.bin"
save("external_missing.onnx", model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], inits=[ext2]))
