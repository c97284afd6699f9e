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


# A Llama-style decoder block as a PyTorch export would write it: symbolic batch and
# sequence, shapes computed at run time (Shape -> Gather -> Unsqueeze -> Concat ->
# Reshape), RMSNorm decomposed, rotary embeddings by slicing, grouped-query attention
# (2 KV heads shared by 4 query heads), a causal mask from Trilu, SiLU MLP. Reference
# outputs from onnxruntime.
def llama_block():
    import onnxruntime as ort

    d, hq, hkv, hd, ff, seq = 32, 4, 2, 8, 64, 6
    r = np.random.default_rng(1)

    def w(name, *shape):
        return numpy_helper.from_array((r.standard_normal(shape) * 0.2).astype(np.float32), name)

    n = []
    inits = [w("wq", d, hq * hd), w("wk", d, hkv * hd), w("wv", d, hkv * hd), w("wo", hq * hd, d),
             w("w1", d, ff), w("w3", d, ff), w("w2", ff, d),
             numpy_helper.from_array(np.ones(d, np.float32) * 1.1, "g1"),
             numpy_helper.from_array(np.ones(d, np.float32) * 0.9, "g2")]
    c = lambda name, v: inits.append(numpy_helper.from_array(np.asarray(v), name)) or name
    c("two", np.float32(2.0)); c("eps", np.float32(1e-6)); c("one_f", np.float32(1.0))
    c("i0", np.array([0], np.int64)); c("i1", np.array([1], np.int64)); c("i_1", np.array([-1], np.int64))
    c("hq", np.array([hq], np.int64)); c("hkv", np.array([hkv], np.int64)); c("hd", np.array([hd], np.int64))
    c("half", np.array([hd // 2], np.int64)); c("big", np.array([1 << 62], np.int64))
    c("rep", np.array([1, 1, hq // hkv, 1, 1], np.int64)); c("neg_inf", np.float32(-1e9)); c("zero_f", np.float32(0.0))
    c("scale", np.float32(1.0 / np.sqrt(hd)))
    inv = 1.0 / (10000 ** (np.arange(0, hd, 2) / hd))
    ang = np.arange(64)[:, None] * inv[None, :]
    c("cos_tab", np.concatenate([np.cos(ang), np.cos(ang)], 1).astype(np.float32))
    c("sin_tab", np.concatenate([np.sin(ang), np.sin(ang)], 1).astype(np.float32))

    def rms(x, g, out):
        n.extend([helper.make_node("Pow", [x, "two"], [out + "_sq"]),
                  helper.make_node("ReduceMean", [out + "_sq", "i_1"], [out + "_ms"], keepdims=1),
                  helper.make_node("Add", [out + "_ms", "eps"], [out + "_mse"]),
                  helper.make_node("Sqrt", [out + "_mse"], [out + "_rt"]),
                  helper.make_node("Reciprocal", [out + "_rt"], [out + "_inv"]),
                  helper.make_node("Mul", [x, out + "_inv"], [out + "_n"]),
                  helper.make_node("Mul", [out + "_n", g], [out])])

    # Run-time shapes.
    n += [helper.make_node("Shape", ["x"], ["xs"]),
          helper.make_node("Gather", ["xs", "i0"], ["B"], axis=0),
          helper.make_node("Gather", ["xs", "i1"], ["S"], axis=0),
          helper.make_node("Squeeze", ["S", "i0"], ["S0"]),
          helper.make_node("Cast", ["S0"], ["S0f"], to=TensorProto.INT64)]
    rms("x", "g1", "h")

    def heads(src, wname, nh, out):
        n.extend([helper.make_node("MatMul", [src, wname], [out + "_p"]),
                  helper.make_node("Concat", ["B", "S", nh, "hd"], [out + "_shape"], axis=0),
                  helper.make_node("Reshape", [out + "_p", out + "_shape"], [out + "_r"]),
                  helper.make_node("Transpose", [out + "_r"], [out], perm=[0, 2, 1, 3])])

    heads("h", "wq", "hq", "q"); heads("h", "wk", "hkv", "k"); heads("h", "wv", "hkv", "v")
    # Rotary: positions 0..S-1 from Range, tables gathered, rotate_half by slicing.
    n += [helper.make_node("Constant", [], ["start"], value=numpy_helper.from_array(np.array(0, np.int64))),
          helper.make_node("Constant", [], ["step"], value=numpy_helper.from_array(np.array(1, np.int64))),
          helper.make_node("Range", ["start", "S0f", "step"], ["pos"]),
          helper.make_node("Gather", ["cos_tab", "pos"], ["cos"], axis=0),
          helper.make_node("Gather", ["sin_tab", "pos"], ["sin"], axis=0)]
    for t in ["q", "k"]:
        n += [helper.make_node("Slice", [t, "i0", "half", "i_1"], [t + "_a"]),
              helper.make_node("Slice", [t, "half", "big", "i_1"], [t + "_b"]),
              helper.make_node("Neg", [t + "_b"], [t + "_nb"]),
              helper.make_node("Concat", [t + "_nb", t + "_a"], [t + "_rot"], axis=-1),
              helper.make_node("Mul", [t, "cos"], [t + "_c"]),
              helper.make_node("Mul", [t + "_rot", "sin"], [t + "_s"]),
              helper.make_node("Add", [t + "_c", t + "_s"], [t + "_e"])]
    # GQA: [B, hkv, S, hd] -> [B, hkv, rep, S, hd] -> [B, hq, S, hd].
    for t, src in [("kx", "k_e"), ("vx", "v")]:
        n += [helper.make_node("Unsqueeze", [src, "two_axis"], [t + "_u"]),
              helper.make_node("Tile", [t + "_u", "rep"], [t + "_t"]),
              helper.make_node("Concat", ["B", "hq", "S", "hd"], [t + "_shape"], axis=0),
              helper.make_node("Reshape", [t + "_t", t + "_shape"], [t])]
    c("two_axis", np.array([2], np.int64))
    # Scores with a causal mask built from Trilu over a ConstantOfShape.
    n += [helper.make_node("Transpose", ["kx"], ["kt"], perm=[0, 1, 3, 2]),
          helper.make_node("MatMul", ["q_e", "kt"], ["sc0"]),
          helper.make_node("Mul", ["sc0", "scale"], ["sc"]),
          helper.make_node("Concat", ["S", "S"], ["ss"], axis=0),
          helper.make_node("ConstantOfShape", ["ss"], ["ones"], value=numpy_helper.from_array(np.array([1], np.int64))),
          helper.make_node("Trilu", ["ones"], ["tri"], upper=0),
          helper.make_node("Cast", ["tri"], ["keep"], to=TensorProto.BOOL),
          helper.make_node("Where", ["keep", "sc", "neg_inf"], ["scm"]),
          helper.make_node("Softmax", ["scm"], ["p"], axis=-1),
          helper.make_node("MatMul", ["p", "vx"], ["ctx"]),
          helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
          helper.make_node("Concat", ["B", "S", "i_1"], ["flat"], axis=0),
          helper.make_node("Reshape", ["ctx_t", "flat"], ["ctx_f"]),
          helper.make_node("MatMul", ["ctx_f", "wo"], ["attn"]),
          helper.make_node("Add", ["x", "attn"], ["x2"])]
    rms("x2", "g2", "h2")
    n += [helper.make_node("MatMul", ["h2", "w1"], ["a"]),
          helper.make_node("Sigmoid", ["a"], ["sa"]),
          helper.make_node("Mul", ["a", "sa"], ["silu"]),
          helper.make_node("MatMul", ["h2", "w3"], ["b"]),
          helper.make_node("Mul", ["silu", "b"], ["gate"]),
          helper.make_node("MatMul", ["gate", "w2"], ["mlp"]),
          helper.make_node("Add", ["x2", "mlp"], ["y"])]
    g = helper.make_graph(n, "llama_block",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence"] + [d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", d])],
                          initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(m)
    x = r.standard_normal((1, seq, d)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    write_case("llama_block", m, [x], outputs=want)


llama_block()
