#!/usr/bin/python3
"""torch_quant.py: PyTorch twins of sqakd's quantizers (ewgs, pact, lsq, dorefa; 1..8 bits, weights
and activations) and of its quantized student, for the zoo architectures of tools/torch_models.py.

The forward is sqakd's, operation for operation in float32 (include/sqakd/quant_math.h):
  ewgs    weight: c = clip((w - lW)/(uW - lW), 0, 1), W_q = 2 q - 1;  act: c = clip((x - lA)/(uA - lA)),
          x_q = q; the conv's output scaled by |output_scale| (folded into weight and bias)
  pact    act: x_q = alphaA q(clip(x, 0, alphaA)/alphaA); weight: DoReFa's
  lsq     v = clip(x/s, -Qn, Qp), y = round(v) s (weights sW, signed; activations sA, signed
          only for the stem, which sees the normalised image)
  dorefa  weight: c = tanh(w)/(2 max|tanh w|) + 1/2, W_q = 2 q - 1;  act: c = clip(x, 0, 1)
with q = round_half_even(c (L - 1))/(L - 1), L = 2^bits. The backward is quant_math.h's: the
discretizer's g_c = g_q + delta |g_q| (c - q) (delta: the checkpoint's bkwd_scaling_factorW/A,
0 = straight-through), inclusive clip masks, EWGS's gradients of lW/uW (zero outside the clip),
PACT's alpha gradient sum(gy [x > alpha]), LSQ's scaled step gradient with
gs = 1/sqrt(grad_numel max(Qp, 1)), DoReFa's (1 - tanh^2)/(2M) with M held constant.

In eval mode (the default after load_checkpoint.load_torch_model) a quantized layer computes what
sqakd's CPU backend computes: the convolution in integer arithmetic on the quantizers' grids where
sqakd does (kernels/cpu/qconv.c: stride 1, groups 1, activation codes 0..255, weight codes
-128..127, on a CPU with AVX-512 VNNI, which cpu_has_qconv() looks for on this machine), i.e.
fl(fl(sum of code products) fl(fl(step_x step_w) |s|)) + |s| b, else the float convolution (here
in float64, rounded once); DoReFa's tanh is glibc's tanhf (called through ctypes, as sqakd's CPU
backend calls it: torch's tanh differs from it by up to 2 ulp, which moves a weight lying that
close to a rounding boundary to the next level); eval BatchNorm is sqakd's y = x a + b with a = gamma fl(1/sqrt(var + eps)) (in double),
b = beta - mean a. Everything else (the unquantized stem conv, the classifier, pooling) is
PyTorch's, which differs from sqakd's by float rounding only. In train mode the layers are
ordinary autograd modules with the backward above.

  quantize_model(model, arch, quantizer, wbits, abits, first_last=False, delta_w=0, delta_a=0)
      swaps the convs (and with first_last the stem conv and the classifier) that sqakd quantizes
      (host/model/zoo.c, quantize.c) for QConv2d / QLinear; state_dict names are sqakd's
  sqakd_numerics(model)   eval-mode BatchNorm as sqakd computes it (same state_dict)
  quant_init(model, x)    sqakd's initialisation of every quantizer from one batch (train mode)
  split_params(model)     (model parameters, quantizer parameters) for the two optimizers

`python3 tools/torch_quant.py --golden tests/data/quant_golden.bin` checks the forward and backward
of every quantizer here against the golden values the C code is tested against (tests/test_quant.c).
"""
import argparse
import ctypes
import ctypes.util
import math
import re
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

KINDS = ("ewgs", "pact", "lsq", "dorefa")

# which zoo modules sqakd quantizes (host/model/zoo.c: "quantizable"), and the stem conv and the
# classifier ("first_or_last": quantized only with --quant-first-last)
QUANTIZABLE = {
    "smallcnn": r"conv[23]",
    "resnet20": r"layer\d\.\d+\.conv[12]",
    "resnet32": r"layer\d\.\d+\.conv[12]",
    "vgg8": r"layer[1-4]\.\d+\.conv2d",
    "vgg13": r"layer[1-4]\.\d+\.conv2d",
}
FIRST_LAST = {
    "smallcnn": ("conv1", "fc"),
    "resnet20": ("conv1", "linear"),
    "resnet32": ("conv1", "linear"),
    "vgg8": ("layer0.0.conv2d", "classifier"),
    "vgg13": ("layer0.0.conv2d", "classifier"),
}
# the quantizer tensors each kind adds to a quantized layer (include/sqakd/quant.h), besides the
# EWGS deltas every quantized layer carries as bkwd_scaling_factorW / bkwd_scaling_factorA
QPARAMS = {"ewgs": ("lW", "uW", "lA", "uA", "output_scale"), "pact": ("alphaA",),
           "lsq": ("sW", "sA"), "dorefa": ()}
QUANT_LEAVES = {"lW", "uW", "lA", "uA", "output_scale", "alphaA", "sW", "sA"}

F32 = np.float32
_cpu_flags = None


def _flags():
    global _cpu_flags
    if _cpu_flags is None:
        _cpu_flags = set()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("flags"):
                        _cpu_flags = set(line.split(":", 1)[1].split())
                        break
        except OSError:
            pass
    return _cpu_flags


def cpu_has_qconv():
    """Whether this CPU has what sqakd's integer convolution needs (AVX-512 F, VL, BW and VNNI:
    kernels/cpu/qconv.c sq_cpu_qconv_available); without it sqakd's CPU backend convolves
    quantized tensors in float."""
    return {"avx512f", "avx512vl", "avx512bw", "avx512_vnni"} <= _flags()


def cpu_has_igemm():
    """Whether sqakd's float convolution runs its AVX2/FMA implicit GEMM on this CPU
    (kernels/cpu/conv_fast.c sq_cpu_fast_available); else im2col and OpenBLAS."""
    return {"avx2", "fma"} <= _flags()


def conv2d_igemm(x, w, b, stride, pad):
    """sqakd's float convolution on CPUs with AVX2/FMA (kernels/cpu/conv_igemm.c, conv_fast.c
    igemm_tile), bit for bit: every output starts at its bias (or +0) and takes one fused
    multiply-add per tap, taps in (c, r, s) order, padding taps included (they add +0). The FMA
    is computed in double (the product is exact there) and rounded to float32 once per tap.
    x (N, C, H, W), w (K, C, R, S) float32; groups 1."""
    n, c, h, wd = x.shape
    k, c2, r, s = w.shape
    if c2 != c:
        raise ValueError("conv2d_igemm: grouped convolutions are not emulated")
    oh, ow = (h + 2 * pad - r) // stride + 1, (wd + 2 * pad - s) // stride + 1
    xp = F.pad(x.detach(), (pad, pad, pad, pad)).double()
    w64 = w.detach().double()
    acc = torch.zeros((n, k, oh, ow), dtype=torch.float32)
    if b is not None:
        acc += b.detach().float().view(1, k, 1, 1)
    a64 = torch.empty((n, k, oh, ow), dtype=torch.float64)
    for ci in range(c):
        for ri in range(r):
            for si in range(s):
                xk = xp[:, ci:ci + 1, ri:ri + stride * (oh - 1) + 1:stride,
                        si:si + stride * (ow - 1) + 1:stride]
                a64.copy_(acc)
                a64.addcmul_(w64[:, ci, ri, si].view(1, k, 1, 1), xk)
                acc.copy_(a64)
    return acc


def lsq_bounds(bits, signed):
    """(Qn, Qp) of quant_math.h sq_qm_lsq_bounds"""
    if signed:
        return float(1 << (bits - 1)), float((1 << (bits - 1)) - 1)
    return 0.0, float((1 << bits) - 1)


def lsq_grad_scale(grad_numel, qp):
    """gs = 1/sqrt(numel max(Qp, 1)) in float32, as sq_qm_lsq_grad_scale"""
    p = max(qp, 1.0)
    n = max(float(F32(grad_numel)), 1.0)
    return float(F32(1.0) / np.sqrt(F32(n) * F32(p)))


# ---------------------------------------------------------------- glibc's tanhf
_tanhf = None


def tanhf_glibc(w):
    """tanhf of the C library elementwise (float32 tensor in, float32 tensor out): sqakd's CPU
    backend computes DoReFa's weights with it. None when the C library cannot be loaded."""
    global _tanhf
    if _tanhf is None:
        name = ctypes.util.find_library("m")
        try:
            fn = ctypes.CDLL(name).tanhf if name else None
        except (OSError, AttributeError):
            fn = None
        if fn is not None:
            fn.restype = ctypes.c_float
            fn.argtypes = [ctypes.c_float]
            _tanhf = np.frompyfunc(fn, 1, 1)
        else:
            _tanhf = False
    if _tanhf is False:
        return None
    a = w.detach().cpu().numpy().astype(F32).ravel()
    t = _tanhf(a).astype(F32) if a.size else a.copy()
    return torch.from_numpy(t.reshape(tuple(w.shape))).to(w.device)


# ---------------------------------------------------------------- per-element math (autograd)
def _disc(c, steps):
    """q = round_half_even(c steps) / steps (float32, as sq_qm_disc_fwd_unit_r)"""
    return torch.round(c * steps) / steps


def _sym(c, steps):
    """2 q - 1 on the weight grid, rounded once: (2 round_half_even(c steps) - steps) / steps
    (float32, as sq_qm_sym_fwd_unit_r)"""
    return (2.0 * torch.round(c * steps) - steps) / steps


def _sum32(v):
    """sum in double, rounded to float32 (fakequant.c sums the parameter gradients in double)"""
    return v.double().sum().float()


class EwgsFQ(torch.autograd.Function):
    """EWGS interval quantizer; weight: W_q = 2 q - 1, act: x_q = q"""

    @staticmethod
    def forward(ctx, x, l, u, bits, delta, weight):
        steps = float((1 << bits) - 1)
        c = ((x - l) / (u - l)).clamp(0.0, 1.0)
        ctx.save_for_backward(x, l, u)
        ctx.steps, ctx.delta, ctx.weight = steps, float(delta), weight
        return _sym(c, steps) if weight else _disc(c, steps)

    @staticmethod
    def backward(ctx, gy):
        x, l, u = ctx.saved_tensors
        gq = 2.0 * gy if ctx.weight else gy
        d = u - l
        ux = (x - l) / d
        inside = (ux >= 0.0) & (ux <= 1.0)
        q = torch.round(ux * ctx.steps) / ctx.steps
        gc = (gq + ctx.delta * gq.abs() * (ux - q)) / d
        zero = torch.zeros_like(gc)
        gx = torch.where(inside, gc, zero)
        gl = _sum32(torch.where(inside, gc * (ux - 1.0), zero))
        gu = _sum32(torch.where(inside, -gc * ux, zero))
        return gx, gl.reshape(l.shape), gu.reshape(u.shape), None, None, None


class PactActFQ(torch.autograd.Function):
    """PACT activations: y = alpha q(clip(x, 0, alpha)/alpha); G_alpha = sum(gy [x > alpha])"""

    @staticmethod
    def forward(ctx, x, alpha, bits, delta):
        steps = float((1 << bits) - 1)
        zero = torch.zeros_like(x)
        xc = torch.where(x < 0.0, zero, torch.where(x > alpha, alpha.expand_as(x), x))
        ctx.save_for_backward(x, alpha)
        ctx.steps, ctx.delta = steps, float(delta)
        return alpha * _disc(xc / alpha, steps)

    @staticmethod
    def backward(ctx, gy):
        x, alpha = ctx.saved_tensors
        above, below = x > alpha, x < 0.0
        c = x / alpha
        q = _disc(c, ctx.steps)
        gq = alpha * gy
        g = (gq + ctx.delta * gq.abs() * (c - q)) / alpha
        zero = torch.zeros_like(g)
        gx = torch.where(above | below, zero, g)
        ga = _sum32(torch.where(above, gy, zero))
        return gx, ga.reshape(alpha.shape), None, None


class LsqFQ(torch.autograd.Function):
    """LSQ: y = round(clip(x/s, -Qn, Qp)) s"""

    @staticmethod
    def forward(ctx, x, s, qn, qp, delta, gscale):
        v = x / s
        v = torch.where(v < -qn, torch.full_like(v, -qn), torch.where(v > qp, torch.full_like(v, qp), v))
        ctx.save_for_backward(x, s)
        ctx.qn, ctx.qp, ctx.delta, ctx.gscale = qn, qp, float(delta), float(gscale)
        return torch.round(v) * s

    @staticmethod
    def backward(ctx, gy):
        x, s = ctx.saved_tensors
        qn, qp = ctx.qn, ctx.qp
        v = x / s
        below, above = v < -qn, v > qp
        out = below | above
        vq = torch.round(v)
        sgn = torch.sign(s)
        gx = gy + ctx.delta * gy.abs() * sgn * (v - vq) / (qn + qp)
        gs_in = ctx.gscale * (gy * vq - v * gx)
        gs_out = ctx.gscale * gy * torch.where(below, torch.full_like(v, -qn), torch.full_like(v, qp))
        gx = torch.where(out, torch.zeros_like(gx), gx)
        gs = _sum32(torch.where(out, gs_out, gs_in))
        return gx, gs.reshape(s.shape), None, None, None, None


class DorefaWeightFQ(torch.autograd.Function):
    """DoReFa weights (also PACT's): c = t/(2M) + 1/2, W_q = 2 q - 1, t = tanh(w) given,
    M = max|t| (a constant of the backward)"""

    @staticmethod
    def forward(ctx, w, t, bits, delta):
        steps = float((1 << bits) - 1)
        m = t.abs().max() if t.numel() else torch.zeros((), dtype=t.dtype)
        if m > 0:
            c = t / (2.0 * m) + 0.5
        else:
            c = torch.full_like(t, 0.5)
        ctx.save_for_backward(t, m)
        ctx.steps, ctx.delta = steps, float(delta)
        return _sym(c, steps)

    @staticmethod
    def backward(ctx, gy):
        t, m = ctx.saved_tensors
        if not m > 0:
            return torch.zeros_like(gy), None, None, None
        c = t / (2.0 * m) + 0.5
        q = _disc(c, ctx.steps)
        g2 = 2.0 * gy
        return (g2 + ctx.delta * g2.abs() * (c - q)) * (1.0 - t * t) / (2.0 * m), None, None, None


class DorefaActFQ(torch.autograd.Function):
    """DoReFa activations: x_q = q(clip(x, 0, 1))"""

    @staticmethod
    def forward(ctx, x, bits, delta):
        steps = float((1 << bits) - 1)
        ctx.save_for_backward(x)
        ctx.steps, ctx.delta = steps, float(delta)
        return _disc(x.clamp(0.0, 1.0), steps)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        inside = (x >= 0.0) & (x <= 1.0)
        q = _disc(x, ctx.steps)
        g = gy + ctx.delta * gy.abs() * (x - q)
        return torch.where(inside, g, torch.zeros_like(g)), None, None


def fake_quant(kind, role, x, params, bits, signed=False, delta=0.0, grad_numel=None, exact_tanh=False):
    """The fake quantizer of kind ('ewgs' | 'pact' | 'lsq' | 'dorefa' | 'none') for role ('weight' |
    'act') on x. params: the kind's parameters for this role as 0-d float32 tensors (ewgs [l, u],
    pact act [alpha], lsq [s], else []). grad_numel: LSQ's gradient scale count (default x's
    element count). exact_tanh: DoReFa weights through glibc's tanhf (forward only)."""
    weight = role == "weight"
    if kind == "none":
        return x
    if kind == "ewgs":
        return EwgsFQ.apply(x, params[0], params[1], bits, delta, weight)
    if kind == "lsq":
        qn, qp = lsq_bounds(bits, signed)
        n = x.numel() if grad_numel is None else grad_numel
        return LsqFQ.apply(x, params[0], qn, qp, delta, lsq_grad_scale(n, qp))
    if weight and kind in ("pact", "dorefa"):
        t = tanhf_glibc(x) if exact_tanh else None
        if t is None:
            t = torch.tanh(x.detach())
        else:
            t = t.to(x.dtype)
        return DorefaWeightFQ.apply(x, t, bits, delta)
    if kind == "pact":
        return PactActFQ.apply(x, params[0], bits, delta)
    if kind == "dorefa":
        return DorefaActFQ.apply(x, bits, delta)
    raise ValueError(f"unknown quantizer {kind!r}; known: {', '.join(KINDS)}")


def grid(kind, role, bits, signed, params):
    """quant_math.h sq_qm_grid: (step as np.float32, cmin, cmax) of the integer grid the quantizer's
    outputs lie on, or None (no usable grid: then sqakd convolves in float)"""
    n = (1 << bits) - 1
    if kind == "ewgs" or (kind in ("pact", "dorefa") and role == "weight") or kind == "dorefa":
        step, lo, hi = F32(1.0) / F32(n), (-n if role == "weight" else 0), n
    elif kind == "pact":
        a = F32(params[0].item())
        if not a > 0:
            return None
        step, lo, hi = a / F32(n), 0, n
    elif kind == "lsq":
        s = F32(params[0].item())
        if not s > 0:
            return None
        qn, qp = lsq_bounds(bits, signed)
        step, lo, hi = s, -int(qn), int(qp)
    else:
        return None
    if not (step > 0 and np.isfinite(step)):
        return None
    return step, lo, hi


def _codes(v, step, lo, hi):
    """the integer codes sqakd recovers from grid values: clamp(rint(v fl(1/step)), lo, hi)"""
    inv = float(F32(1.0) / step)
    return torch.round(v * inv).clamp(lo, hi)


# ---------------------------------------------------------------- quantized layers
class _QLayer:
    """Quantizer parameters and fake quantizers of one quantized conv / linear, under sqakd's
    tensor names (host/model/quantize.c)."""

    def _setup_quant(self, quantizer, wbits, abits, act_signed, delta_w, delta_a):
        if quantizer not in KINDS:
            raise ValueError(f"unknown quantizer {quantizer!r}; known: {', '.join(KINDS)}")
        for what, b in (("wbits", wbits), ("abits", abits)):
            if not (isinstance(b, int) and 1 <= b <= 8):
                raise ValueError(f"{what} must be an integer 1..8, got {b!r}")
        self.quantizer, self.wbits, self.abits = quantizer, wbits, abits
        self.act_signed = bool(act_signed)
        self.exact = True            # eval: sqakd's CPU arithmetic (see the module docstring)
        # eval: emulate qconv.c's integer path where sqakd's CPU backend takes it on this machine
        self.integer_conv = cpu_has_qconv()
        init = {"lW": -1.0, "uW": 1.0, "lA": 0.0, "uA": 1.0, "output_scale": 1.0, "alphaA": 6.0,
                "sW": 1.0, "sA": 1.0}
        for name in QPARAMS[quantizer]:
            setattr(self, name, nn.Parameter(torch.tensor(init[name])))
        self.register_buffer("bkwd_scaling_factorW", torch.tensor(float(delta_w)))
        self.register_buffer("bkwd_scaling_factorA", torch.tensor(float(delta_a)))

    def extra_repr(self):
        return (super().extra_repr() + f", quantizer={self.quantizer}, wbits={self.wbits}, "
                f"abits={self.abits}, act_signed={self.act_signed}")

    def _wparams(self):
        k = self.quantizer
        return [self.lW, self.uW] if k == "ewgs" else [self.sW] if k == "lsq" else []

    def _aparams(self):
        k = self.quantizer
        return ([self.lA, self.uA] if k == "ewgs" else [self.sA] if k == "lsq"
                else [self.alphaA] if k == "pact" else [])

    def quant_weight(self, exact_tanh=False):
        if exact_tanh and self.quantizer in ("pact", "dorefa"):
            # glibc's tanhf of the weights, cached while the weight tensor is unchanged
            key = (self.weight.data_ptr(), self.weight._version)
            cache = getattr(self, "_tanh_cache", None)
            if cache is None or cache[0] != key:
                t = tanhf_glibc(self.weight)
                cache = (key, t if t is not None else torch.tanh(self.weight.detach()))
                self._tanh_cache = cache
            return DorefaWeightFQ.apply(self.weight, cache[1], self.wbits,
                                        float(self.bkwd_scaling_factorW))
        return fake_quant(self.quantizer, "weight", self.weight, self._wparams(), self.wbits, True,
                          float(self.bkwd_scaling_factorW), self.weight.numel(), exact_tanh)

    def quant_act(self, x):
        return fake_quant(self.quantizer, "act", x, self._aparams(), self.abits, self.act_signed,
                          float(self.bkwd_scaling_factorA), x[0].numel() if x.dim() else 1)

    def _scaled(self, wq):
        """(weight, bias) with EWGS's |output_scale| folded in, as graph.c does"""
        b = self.bias
        if self.quantizer != "ewgs":
            return wq, b
        s = self.output_scale.abs()
        return s * wq, (s * b if b is not None else None)

    def _use_exact(self):
        return self.exact and not self.training

    def forward(self, x):
        if not self._use_exact():
            wq, b = self._scaled(self.quant_weight())
            return self._float_op(self.quant_act(x), wq, b)
        with torch.no_grad():
            y = self._exact_forward(x)
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            # exact values, the float path's gradients
            wq, b = self._scaled(self.quant_weight())
            yf = self._float_op(self.quant_act(x), wq, b)
            y = y + (yf - yf.detach())
        return y

    def _exact_forward(self, x):
        xq = self.quant_act(x)
        wq = self.quant_weight(exact_tanh=True)
        if self.integer_conv and self._int_shape_ok(x):
            gx = grid(self.quantizer, "act", self.abits, self.act_signed, self._aparams())
            gw = grid(self.quantizer, "weight", self.wbits, True, self._wparams())
            if gx and gw and gx[1] >= 0 and gx[2] <= 255 and gw[1] >= -128 and gw[2] <= 127:
                return self._int_conv(xq, wq, gx, gw)
        w, b = self._scaled(wq)
        return self._exact_float_op(xq, w, b)

    def _int_shape_ok(self, x):
        return False

    def _int_conv(self, xq, wq, gx, gw):
        raise NotImplementedError


class QConv2d(_QLayer, nn.Conv2d):
    """nn.Conv2d with sqakd's fake quantizers on its input and weight."""

    def __init__(self, in_ch, out_ch, k, stride=1, padding=0, groups=1, bias=True, quantizer="ewgs",
                 wbits=4, abits=4, act_signed=False, delta_w=0.0, delta_a=0.0):
        nn.Conv2d.__init__(self, in_ch, out_ch, k, stride=stride, padding=padding, groups=groups,
                           bias=bias)
        self._setup_quant(quantizer, wbits, abits, act_signed, delta_w, delta_a)

    def _float_op(self, x, w, b):
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)

    def _exact_float_op(self, x, w, b):
        return exact_conv2d(self, x, w, b)

    def _int_shape_ok(self, x):
        """qconv.c sq_cpu_qconv_shape_ok (+ conv.c: not depthwise)"""
        kh, kw = self.kernel_size
        ph, pw = self.padding if isinstance(self.padding, tuple) else (None, None)
        if self.stride != (1, 1) or self.groups != 1 or self.dilation != (1, 1) or ph != pw:
            return False
        oh, ow = x.shape[2] + 2 * ph - kh + 1, x.shape[3] + 2 * pw - kw + 1
        return kh <= 7 and kw <= 7 and oh > 0 and ow > 0

    def _int_conv(self, xq, wq, gx, gw):
        """y = fl(fl(acc) fl(fl(step_x step_w) |s|)) + b' (qconv.c), acc exact in float64"""
        cx = _codes(xq, *gx).double()
        cw = _codes(wq, *gw).double()
        acc = F.conv2d(cx, cw, None, 1, self.padding).float()
        scale = gx[0] * gw[0]
        if self.quantizer == "ewgs":
            scale = scale * F32(abs(float(self.output_scale)))
        y = acc * float(F32(scale))
        _, b = self._scaled(wq)
        if b is not None:
            y = y + b.view(1, -1, 1, 1)
        return y


class QLinear(_QLayer, nn.Linear):
    """nn.Linear with sqakd's fake quantizers on its input and weight (--quant-first-last)."""

    def __init__(self, in_f, out_f, bias=True, quantizer="ewgs", wbits=4, abits=4, act_signed=False,
                 delta_w=0.0, delta_a=0.0):
        nn.Linear.__init__(self, in_f, out_f, bias=bias)
        self._setup_quant(quantizer, wbits, abits, act_signed, delta_w, delta_a)

    def _float_op(self, x, w, b):
        return F.linear(x, w, b)

    def _exact_float_op(self, x, w, b):
        # sqakd: y = b, then sgemm with beta 1 (kernels/cpu/linear.c), as torch's addmm calls it
        return F.linear(x, w, b)


def is_quant_layer(m):
    return isinstance(m, _QLayer)


def _igemm_ok(conv):
    """does sqakd's CPU backend run conv2d_igemm's arithmetic for this conv on this CPU?"""
    p = conv.padding
    return (cpu_has_igemm() and conv.groups == 1 and conv.dilation == (1, 1) and isinstance(p, tuple)
            and p[0] == p[1] and conv.stride[0] == conv.stride[1] and conv.stride[0] <= 4)


def exact_conv2d(conv, x, w, b):
    """sqakd's float convolution of x by (w, b) with conv's geometry: the FMA chain of
    conv2d_igemm where sqakd runs it, else float64 rounded once (sqakd: im2col and OpenBLAS)"""
    if _igemm_ok(conv):
        return conv2d_igemm(x, w, b, conv.stride[0], conv.padding[0])
    y = F.conv2d(x.double(), w.double(), b.double() if b is not None else None, conv.stride,
                 conv.padding, conv.dilation, conv.groups)
    return y.float()


class SqConv2d(nn.Conv2d):
    """An unquantized conv of a quantized student: in eval mode with exact set (sqakd_numerics),
    sqakd's float arithmetic (exact_conv2d), so the quantizers after it see sqakd's values bit for
    bit; otherwise nn.Conv2d."""

    exact = True

    def forward(self, x):
        if self.training or not self.exact:
            return super().forward(x)
        with torch.no_grad():
            y = exact_conv2d(self, x, self.weight, self.bias)
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            yf = super().forward(x)
            y = y + (yf - yf.detach())
        return y


# ---------------------------------------------------------------- BatchNorm as sqakd evaluates it
def _bn_eval_sqakd(bn, x):
    """kernels/cpu/bn.c sq_cpu_bn_fwd_eval: invstd = fl(1/sqrt(var + eps)) in double,
    a = gamma invstd, b = beta - mean a, y = x a + b, each step rounded to float32"""
    eps = float(F32(bn.eps))
    invstd = (1.0 / torch.sqrt(bn.running_var.double() + eps)).float()
    a = bn.weight * invstd if bn.weight is not None else invstd
    b = (bn.bias if bn.bias is not None else torch.zeros_like(a)) - bn.running_mean * a
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return x * a.view(shape) + b.view(shape)


class SqBatchNorm2d(nn.BatchNorm2d):
    def forward(self, x):
        if self.training or not self.track_running_stats:
            return super().forward(x)
        return _bn_eval_sqakd(self, x)


class SqBatchNorm1d(nn.BatchNorm1d):
    def forward(self, x):
        if self.training or not self.track_running_stats:
            return super().forward(x)
        return _bn_eval_sqakd(self, x)


def gap_sqakd(x):
    """sqakd's global average pooling (kernels/cpu/pool.c sq_cpu_gap_fwd as the x86-64-v2 build
    vectorises it): four float32 lanes summing elements 4i + j in order, the 0-3 left over added
    to lane 0, then (((lane0 + 0) + lane1) + lane2) + lane3, divided by H W"""
    n, c, h, w = x.shape
    hw = h * w
    if hw < 4:
        return x.mean((2, 3), keepdim=True)
    v = x.reshape(n, c, hw)
    q = hw // 4
    lanes = v[:, :, 0:4].clone()
    for i in range(1, q):
        lanes += v[:, :, 4 * i:4 * i + 4]
    l0 = lanes[:, :, 0].clone()
    for j in range(4 * q, hw):
        l0 += v[:, :, j]
    t = ((l0 + 0.0) + lanes[:, :, 1]) + lanes[:, :, 2]
    t = t + lanes[:, :, 3]
    return (t / float(hw)).view(n, c, 1, 1)


class SqAdaptiveAvgPool2d(nn.AdaptiveAvgPool2d):
    """global average pooling, in eval mode as sqakd computes it (gap_sqakd)"""

    exact = True

    def forward(self, x):
        if self.training or not self.exact or self.output_size not in (1, (1, 1)):
            return super().forward(x)
        with torch.no_grad():
            y = gap_sqakd(x)
        if torch.is_grad_enabled() and x.requires_grad:
            yf = super().forward(x)
            y = y + (yf - yf.detach())
        return y


def sqakd_numerics(model, convs=None):
    """Eval-mode BatchNorm computed as sqakd's CPU backend does and, with convs (default: when the
    model has quantized layers), its unquantized convs too (SqConv2d: slower, but the quantizers
    after them then see sqakd's values bit for bit). The modules' class is swapped; the
    state_dict and the train-mode behaviour are unchanged. Returns the model."""
    if convs is None:
        convs = any(is_quant_layer(m) for m in model.modules())
    for m in model.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = SqBatchNorm2d
        elif type(m) is nn.BatchNorm1d:
            m.__class__ = SqBatchNorm1d
        elif convs and type(m) is nn.Conv2d:
            m.__class__ = SqConv2d
        elif type(m) is nn.AdaptiveAvgPool2d:
            m.__class__ = SqAdaptiveAvgPool2d
    return model


def set_exact(model, exact=True, integer_conv=None):
    """exact: eval-mode quantized layers compute sqakd's CPU arithmetic (False: PyTorch's float
    path, the one training uses); integer_conv: emulate qconv.c's integer convolution where it
    applies (False: sqakd's float convolution, as on a CPU without AVX-512 VNNI or on CUDA; None:
    as sqakd's CPU backend does on this machine, cpu_has_qconv())."""
    if integer_conv is None:
        integer_conv = cpu_has_qconv()
    for m in model.modules():
        if is_quant_layer(m):
            m.exact, m.integer_conv = exact, integer_conv
        elif isinstance(m, (SqConv2d, SqAdaptiveAvgPool2d)):
            m.exact = exact
    return model


# ---------------------------------------------------------------- the quantized student
def quant_layer_names(model, arch, first_last=False):
    """names of the modules sqakd quantizes in arch, in model order; the stem's name second"""
    if arch not in QUANTIZABLE:
        raise ValueError(f"no quantization rule for arch {arch!r}; known: {', '.join(QUANTIZABLE)}")
    pat = re.compile(QUANTIZABLE[arch] + "$")
    fl = FIRST_LAST[arch] if first_last else ()
    names = [n for n, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.Linear)) and (pat.match(n) or n in fl)]
    return names, FIRST_LAST[arch][0]


def quantize_model(model, arch, quantizer, wbits, abits, first_last=False, delta_w=0.0, delta_a=0.0):
    """Replaces (in place) the layers sqakd quantizes in arch (host/model/quantize.c: the zoo's
    quantizable convs, plus the stem conv and the classifier with first_last) by QConv2d / QLinear
    holding the same weight and bias. Activations are quantized unsigned except the stem's (its
    input is the normalised image). Returns (model, names of the replaced modules)."""
    names, stem = quant_layer_names(model, arch, first_last)
    for name in names:
        old = model.get_submodule(name)
        kw = dict(quantizer=quantizer, wbits=wbits, abits=abits, act_signed=name == stem,
                  delta_w=delta_w, delta_a=delta_a)
        if isinstance(old, nn.Conv2d):
            q = QConv2d(old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                        old.groups, old.bias is not None, **kw)
        else:
            q = QLinear(old.in_features, old.out_features, old.bias is not None, **kw)
        with torch.no_grad():
            q.weight.copy_(old.weight)
            if old.bias is not None:
                q.bias.copy_(old.bias)
        q.train(old.training)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, q)
    return model, names


def _std(v):
    """unbiased std, two passes in double (quant.c host_std)"""
    v = v.double().ravel()
    return float(v.std(unbiased=True)) if v.numel() >= 2 else 0.0


def init_layer(layer, x):
    """sqakd's initialisation of one layer's quantizers from its input batch x (host/quant/quant.c,
    quantize.c): EWGS [lW, uW] = -+3 std(w), lA = min(x), uA = 3 std(x)/sqrt(1 - 2/pi); PACT
    alpha = 3 std(x)/sqrt(1 - 2/pi); LSQ s = 2 mean|.|/sqrt(Qp); EWGS's output scale
    mean|op(x, w) + b| / mean|op(x_q, W_q) + b|."""
    k = layer.quantizer
    bound = 3.0 / math.sqrt(1.0 - 2.0 / math.pi)
    with torch.no_grad():
        w = layer.weight
        if k == "ewgs":
            sd = _std(w)
            sd = sd if sd > 0 and math.isfinite(sd) else 1.0 / 3.0
            layer.lW.fill_(float(F32(-3.0 * sd)))
            layer.uW.fill_(float(F32(3.0 * sd)))
            lo = float(x.min()) if x.numel() else 0.0
            up = float(F32(bound * _std(x)))
            if not (up > lo and math.isfinite(up)):
                up = float(F32(lo) + F32(1.0))
            layer.lA.fill_(lo)
            layer.uA.fill_(up)
        elif k == "pact":
            a = bound * _std(x)
            layer.alphaA.fill_(float(F32(a)) if a > 0 and math.isfinite(a) else 6.0)
        elif k == "lsq":
            for p, v, signed, bits in ((layer.sW, w, True, layer.wbits),
                                       (layer.sA, x, layer.act_signed, layer.abits)):
                _, qp = lsq_bounds(bits, signed)
                s = 2.0 * float(v.double().abs().mean()) / math.sqrt(max(qp, 1.0))
                p.fill_(float(F32(s)) if s > 0 and math.isfinite(s) else 1.0)
        if k == "ewgs":
            layer.output_scale.fill_(1.0)
            fp = float(layer._float_op(x, w, layer.bias).abs().double().mean())
            qz = float(layer._float_op(layer.quant_act(x), layer.quant_weight(), layer.bias)
                       .abs().double().mean())
            s = float(F32(fp / qz)) if qz > 0 else 1.0
            layer.output_scale.fill_(s if math.isfinite(s) else 1.0)


def quant_init(model, x):
    """Initialises every quantized layer from one batch in train mode, layer by layer in forward
    order (each sees the output of the quantized layers before it); BN running statistics update
    once with the batch (host/model/quantize.c sq_model_quant_init)."""
    hooks = []

    def pre(layer, inputs):
        init_layer(layer, inputs[0])

    for m in model.modules():
        if is_quant_layer(m):
            hooks.append(m.register_forward_pre_hook(pre))
    model.train()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()


def split_params(model):
    """(model parameters, quantizer parameters): sqakd's two Adam optimizers (lr-model, lr-quant)"""
    mp, qp = [], []
    for name, p in model.named_parameters():
        (qp if name.rpartition(".")[2] in QUANT_LEAVES else mp).append(p)
    return mp, qp


# ---------------------------------------------------------------- golden check
def check_golden(path):
    """Forward and backward of every quantizer against tests/data/quant_golden.bin (the PyTorch
    golden values tests/test_quant.c holds the C code to): y and gx within 1e-5 + 1e-5 |ref|, the
    parameter gradients within 1e-4 + 1e-4 |ref|. Returns (cases, failures as text)."""
    names = {0: "none", 1: "ewgs", 2: "pact", 3: "lsq", 4: "dorefa"}
    blob = open(path, "rb").read()
    if blob[:8] != b"SQQGOLD1":
        raise ValueError(f"{path}: not a quant golden file (magic {blob[:8]!r})")
    _, count = struct.unpack_from("<II", blob, 8)
    off, fails = 16, []
    for _ in range(count):
        kind, role, bits, signed, delta, p0, p1, n = struct.unpack_from("<iiiif2fI", blob, off)
        off += struct.calcsize("<iiiif2fI")
        arr = np.frombuffer(blob, "<f4", 4 * n, off).reshape(4, n)
        off += 16 * n
        gqp_ref = struct.unpack_from("<2f", blob, off)
        off += 8
        x, gy, y_ref, gx_ref = (torch.from_numpy(a.copy()) for a in arr)
        k = names[kind]
        rname = "weight" if role == 0 else "act"
        npar = {"ewgs": 2, "lsq": 1, "pact": 1 if role == 1 else 0}.get(k, 0)
        params = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in (p0, p1)[:npar]]
        xt = x.clone().requires_grad_(True)
        y = fake_quant(k, rname, xt, params, bits, bool(signed), delta, n)
        (y * gy).sum().backward()
        what = f"{k} {rname} bits {bits} signed {signed} delta {delta:g}"
        checks = [("y", y.detach(), y_ref, 1e-5), ("gx", xt.grad if xt.grad is not None else
                                                   torch.zeros_like(x), gx_ref, 1e-5)]
        for j, p in enumerate(params):
            g = p.grad if p.grad is not None else torch.zeros(())
            checks.append((f"gqp[{j}]", g.reshape(1), torch.tensor([gqp_ref[j]]), 1e-4))
        for nm, got, ref, tol in checks:
            err = (got - ref).abs() - tol * (1 + ref.abs())
            if (err > 0).any() or not torch.isfinite(got).all():
                i = int(err.argmax())
                fails.append(f"{what}: {nm}[{i}] = {float(got.ravel()[i]):.9g}, golden "
                             f"{float(ref.ravel()[i]):.9g}")
    return count, fails


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", metavar="FILE", help="check every quantizer's forward and backward "
                    "against a quant golden file (tests/data/quant_golden.bin)")
    args = ap.parse_args()
    if not args.golden:
        ap.print_help()
        return 0
    n, fails = check_golden(args.golden)
    for f in fails[:20]:
        print(f"FAIL  {f}")
    print(f"{'ok' if not fails else 'FAIL'}\t{n} golden cases (forward, input and parameter gradients), "
          f"{len(fails)} mismatches")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
