"""Writes a QDQ int8 model with onnxruntime.quantization.quantize_static, plus input sets
and ONNX Runtime's outputs for them in the backend-test layout.

    make_qdq.py MODEL.onnx OUT_DIR [--sets N] [--seed S]

QDQ format, per-channel symmetric int8 weights, asymmetric int8 activations, calibrated
(min/max) on 32 standard-normal inputs drawn with numpy default_rng(1234). The test
sets use a different seed (`--seed`, default 7), so calibration and test data differ.
"""
import argparse, os, sys
import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)


def input_specs(model):
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for i in model.graph.input:
        if i.name in inits:
            continue
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        specs.append((i.name, dims))
    return specs


class Latents(CalibrationDataReader):
    def __init__(self, specs, n, seed):
        rng = np.random.default_rng(seed)
        self.sets = [{name: rng.standard_normal(dims).astype(np.float32) for name, dims in specs}
                     for _ in range(n)]
        self.it = iter(self.sets)

    def get_next(self):
        return next(self.it, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--sets", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    model = onnx.load(a.model)
    specs = input_specs(model)
    qpath = os.path.join(a.out, "model.onnx")
    quantize_static(a.model, qpath, Latents(specs, 32, 1234), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    q = onnx.load(qpath)
    # Full graph optimisation: ORT fuses DQ -> op -> Q units into its integer kernels
    # where it has one (QLinearConv, QGemm ...), float emulation elsewhere.
    so = ort.SessionOptions()
    sess = ort.InferenceSession(qpath, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(a.seed)
    outs = [o.name for o in q.graph.output]
    for s in range(a.sets):
        d = os.path.join(a.out, f"test_data_set_{s}")
        os.makedirs(d, exist_ok=True)
        feed = {name: rng.standard_normal(dims).astype(np.float32) for name, dims in specs}
        for k, (name, _) in enumerate(specs):
            t = numpy_helper.from_array(feed[name], name)
            open(os.path.join(d, f"input_{k}.pb"), "wb").write(t.SerializeToString())
        for k, v in enumerate(sess.run(outs, feed)):
            t = numpy_helper.from_array(v, outs[k])
            open(os.path.join(d, f"output_{k}.pb"), "wb").write(t.SerializeToString())
    print("ops:", sorted({n.op_type for n in q.graph.node}))


if __name__ == "__main__":
    main()
