"""Writes N standard-normal input sets for a model, numpy default_rng(SEED), in the
backend-test layout: OUT/test_data_set_K/input_0.pb (one per set).

    make_latents.py MODEL.onnx OUT --n 64 --seed 0
"""
import argparse, os
import numpy as np
import onnx
from onnx import numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("out")
ap.add_argument("--n", type=int, default=64)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
m = onnx.load(a.model)
inits = {i.name for i in m.graph.initializer}
specs = [(i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in m.graph.input if i.name not in inits]
rng = np.random.default_rng(a.seed)
for k in range(a.n):
    d = os.path.join(a.out, f"test_data_set_{k}")
    os.makedirs(d, exist_ok=True)
    for j, (name, dims) in enumerate(specs):
        t = numpy_helper.from_array(rng.standard_normal(dims).astype(np.float32), name)
        open(os.path.join(d, f"input_{j}.pb"), "wb").write(t.SerializeToString())
