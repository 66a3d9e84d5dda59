#!/usr/bin/python3
"""ort_run.py MODEL.onnx IMAGES.f32 N C H W OUT.f32 [LEVELS]: checks MODEL with onnx.checker.check_model
and runs it in onnxruntime (CPU) on N images (raw float32, NCHW, pixels in [0, 1]); writes the
logits as raw float32. LEVELS: the session's graph optimisation, 'none' (ORT_DISABLE_ALL: the
graph's own semantics) or 'all' (the default ORT_ENABLE_ALL, which fuses QDQ patterns into integer
kernels that requantise with their own rounding), or several separated by commas ('none,all': one
session each, in one process, writing OUT.f32.none and OUT.f32.all). Used by tests/test_export.c. Exit status 77 (with the reason on stdout)
when onnx or onnxruntime cannot be imported, so that the test skips visibly."""
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except Exception as e:  # noqa: BLE001 - any import failure means "cannot run", reported as such
    print(f"skip: cannot import onnx/onnxruntime/numpy: {e}")
    sys.exit(77)


def main():
    model, images, n, c, h, w, out = sys.argv[1:8]
    levels = (sys.argv[8] if len(sys.argv) > 8 else "all").split(",")
    n, c, h, w = int(n), int(c), int(h), int(w)
    onnx.checker.check_model(onnx.load(model), full_check=True)
    x = np.fromfile(images, dtype=np.float32).reshape(n, c, h, w)
    for level in levels:
        so = ort.SessionOptions()
        if level == "none":
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        elif level != "all":
            raise SystemExit(f"unknown level {level!r}")
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        (logits,) = sess.run(["logits"], {"input": x})
        dest = out if len(levels) == 1 else f"{out}.{level}"
        np.ascontiguousarray(logits, dtype=np.float32).tofile(dest)
        print(f"ok {level} {logits.shape[0]}x{logits.shape[1]} onnxruntime {ort.__version__} onnx {onnx.__version__}")


main()
