#!/usr/bin/env python3
"""ONNX Runtime's latency for `edgec-testsuite bench-host` (docs/performance.md).

Usage: bench_ort.py MODEL.onnx RUNS WARMUP INPUT_0.pb [INPUT_1.pb ...]
One thread (intra_op 1, inter_op 1, sequential), all graph optimisations on, the
inputs in graph-input order. Prints `median_us MIN_us` on one line.
"""

import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def main():
    model, runs, warmup, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(files):
        sys.exit(f"{model}: {len(names)} inputs, {len(files)} files given")
    feeds = {n: numpy_helper.to_array(onnx.load_tensor(f)) for n, f in zip(names, files)}
    for _ in range(warmup):
        sess.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        sess.run(None, feeds)
        times.append(time.perf_counter_ns() - t0)
    print(f"{np.median(times) / 1e3:.3f} {min(times) / 1e3:.3f}")


if __name__ == "__main__":
    main()
