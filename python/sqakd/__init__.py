"""sqakd from Python: label-free quantization-aware knowledge distillation (SQAKD) of image
classifiers by the sqakd C/CUDA library (libsqakd.so, bound with ctypes; no PyTorch needed).

    import sqakd
    t = sqakd.train(model="smallcnn", data="fashion-mnist", epochs=2, out="runs/t")
    s = sqakd.distill(t.best, data="fashion-mnist", quantizer="ewgs", wbits=2, abits=2, out="runs/s")
    sqakd.evaluate(s.best, data="fashion-mnist", teacher=t.best)   # {'top1': ..., 'agreement': ...}
    logits = sqakd.Model.load(s.best).forward(images)             # N x C x H x W, pixels in [0, 1]

Keyword arguments are the CLI's flags (epochs=2 is --epochs 2, quant_first_last=True is
--quant-first-last); data is a SPEC string or numpy arrays (images, or (images, labels)). A
failing command raises SqakdError, whose message is the CLI's error line. docs/python.md.
"""
from ._lib import SqakdError, LIBRARY_PATH
from ._commands import (Run, backends, distill, evaluate, export, flags, import_onnx, infer, info, models, report,
                        run, sweep, train, version)
from ._model import Model

try:
    from importlib.metadata import version as _dist_version
    __version__ = _dist_version("sqakd")
except Exception:  # not installed (SQAKD_LIBRARY development use)
    __version__ = version().split()[1]

__all__ = ["SqakdError", "Model", "Run", "train", "distill", "evaluate", "export", "import_onnx", "infer", "info",
           "models", "sweep", "report", "run", "flags", "version", "backends", "LIBRARY_PATH"]
