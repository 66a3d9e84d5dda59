"""sqakd.Model: a checkpoint or ONNX file opened once for inference (sq_api_model_*)."""
import ctypes
import json
import os

from . import _lib
from ._lib import SqakdError


class Model:
    """A model for inference. Model.load(path) opens a checkpoint (.safetensors: full-precision
    or a quantized student, simulated as in training) or an ONNX file; forward(x) is what
    `sqakd infer` computes: a checkpoint takes pixels in [0, 1] (uint8 arrays are divided by 255)
    and applies its own normalisation; an ONNX file takes what its graph takes."""

    def __init__(self, handle, path):
        self._h = handle
        self.path = path
        c, h, w, k = (ctypes.c_int() for _ in range(4))
        _lib.lib.sq_api_model_shape(handle, ctypes.byref(c), ctypes.byref(h), ctypes.byref(w), ctypes.byref(k))
        self.input_shape = (c.value, h.value, w.value)   # C, H, W
        self.classes = k.value
        self.meta = json.loads(_lib.lib.sq_api_model_describe(handle).decode("utf-8", "replace"))
        self.device = self.meta.get("device")

    @classmethod
    def load(cls, path, device="auto", batch=64, threads=0, input_shape=None):
        """Opens path on device "cpu", "cuda" or "auto" with room for batch samples per pass
        (larger inputs are split); threads > 0 sets the CPU threads. input_shape (C, H, W) fixes an
        ONNX graph's symbolic input dimensions. Raises SqakdError with the library's message."""
        c = h = w = 0
        if input_shape is not None:
            if isinstance(input_shape, str):
                input_shape = tuple(int(v) for v in input_shape.lower().split("x"))
            if len(input_shape) != 3:
                raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")
            c, h, w = (int(v) for v in input_shape)
        p = os.fspath(path)
        with _lib.LOCK:
            handle = _lib.lib.sq_api_model_open(p.encode(), str(device).encode(), int(batch), int(threads), c, h, w)
            if not handle:
                raise SqakdError(f"sqakd Model.load: {_lib.last_error()}", 2, "load")
        return cls(handle, p)

    def forward(self, x):
        """Logits (N x classes, float32) of x: N x C x H x W (or one C x H x W sample, giving 1 x
        classes)."""
        import numpy as np
        if self._h is None:
            raise ValueError("the model is closed")
        x = np.asarray(x)
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255.0
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"input of shape {tuple(x.shape)}: this model takes N x {' x '.join(map(str, self.input_shape))}"
                             " (N x C x H x W)")
        n = x.shape[0]
        y = np.empty((n, self.classes), dtype=np.float32)
        if n == 0:
            return y
        fp = ctypes.POINTER(ctypes.c_float)
        with _lib.LOCK:
            rc = _lib.lib.sq_api_model_forward(self._h, x.ctypes.data_as(fp), n, y.ctypes.data_as(fp))
            if rc:
                raise SqakdError(f"sqakd Model.forward: {_lib.last_error()}", rc, "forward")
        return y

    __call__ = forward

    def predict(self, x):
        """The class index of each sample (argmax of the logits)."""
        return self.forward(x).argmax(axis=1)

    def close(self):
        if getattr(self, "_h", None) is not None:
            with _lib.LOCK:
                _lib.lib.sq_api_model_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        m = self.meta
        q = "fp32" if m.get("quantizer") in (None, "none") else f"{m['quantizer']} W{m['wbits']}A{m['abits']}"
        return (f"Model({self.path!r}, {m.get('arch')}, {q}, input {'x'.join(map(str, self.input_shape))}, "
                f"{self.classes} classes, {self.device})")
