#!/usr/bin/python3
"""onnx_models.py: exports the ONNX models and reference outputs that the tests of sqakd's ONNX
importer (issue 18) run against. Build outputs, written under --out (e.g. build/onnx/); nothing here
goes into git.

    /usr/bin/python3 tools/onnx_models.py --out build/onnx [--models resnet18,vgg13]

Models (random weights, fixed seeds; every BatchNorm gets random weight/bias and running statistics
that are data-calibrated then randomly perturbed, so folding BN is not an identity and activations
keep a sane scale through the network):

    resnet18, mobilenet_v2, shufflenet_v2_x1_0, squeezenet1_1   torchvision 0.14, weights=None,
                                                                num_classes=200, input 3x64x64
    vgg13                                                       the zoo's own VGG-13
                                                                (tools/torch_models.py), 10
                                                                classes, input 3x32x32

For each NAME it writes:

    NAME.onnx        exported in eval mode (TrainingMode.EVAL, constant folding on): PyTorch folds
                     every BatchNorm into the preceding convolution's weight and bias; the script
                     checks there is no BatchNormalization node left.
    NAME_bn.onnx     exported with TrainingMode.PRESERVE while the model is in eval mode: torch 1.13
                     then skips the Conv+BN fusion and emits one inference-form
                     BatchNormalization (single output, running statistics as initializers) per
                     BatchNorm2d; the script checks the count matches the module count.
                     (squeezenet1_1 has no BatchNorm: its two files are identical.)
    NAME.input.npy   a fixed batch of 4 images, uniform [0,1), float32, NCHW
    NAME.torch.npy   PyTorch's logits on it (eval mode), float32 [4, classes]
    NAME.ort.npy     onnxruntime's logits (CPUExecutionProvider, NAME.onnx) on it

Both .onnx files: opset 13, one input "input" [batch,3,H,W] and one output "logits" [batch,classes]
with the batch dimension dynamic (checked by running batch 1 as well), initializers not listed as
graph inputs. What the exporter makes of them, which an importer has to handle: Identity nodes
where initializers are equal (zero conv biases: squeezenet1_1, vgg13_bn), Clip with Constant
min/max (ReLU6, mobilenet_v2), and for shufflenet_v2_x1_0 the shape arithmetic of channel_shuffle
and chunk under a dynamic batch (Shape, Gather, Div, Cast, Unsqueeze, Concat, Reshape, Transpose,
Slice: ~800 of its ~900 nodes) and ReduceMean for the final pooling.

onnxruntime is run on both forms and compared with PyTorch; the error printed is
max|ort - torch| / max|torch| (relative to the logits' scale; element-wise relative error is
meaningless near zero). Exit 1 if any check fails (folding, BN count, error above --tol), 2 on bad
usage or a missing package.

Deterministic: the same files byte for byte on every run of the same software (torch and
onnxruntime run single-threaded here; it takes a few seconds per model)."""
import argparse
import collections
import os
import sys
import warnings
import zlib

MODELS = ("resnet18", "mobilenet_v2", "shufflenet_v2_x1_0", "squeezenet1_1", "vgg13")
OPSET = 13
BATCH = 4


def die(msg, code=2):
    print(f"onnx_models: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import numpy as np
    import onnx
    import torch
    import torchvision
except ImportError as e:
    die(f"{e.name} missing: run `make deps-py` (tools/install_py_deps.sh)")
try:
    import onnxruntime as ort
except ImportError:
    ort = None


def build(name):
    """(model in eval mode, input H=W, classes)"""
    if name == "vgg13":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch_models
        return torch_models.build_model("vgg13", 3, 10, 32, 32), 32, 10
    return getattr(torchvision.models, name)(weights=None, num_classes=200), 64, 200


@torch.no_grad()
def randomize_bn(model, x, gen):
    """Every BatchNorm2d: running stats calibrated on x (so activations keep their scale), then
    perturbed (mean + 0.2 sd N(0,1), var * U(0.6, 1.6)); weight U(0.5, 1.5), bias 0.2 N(0,1)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None      # cumulative average: one pass gives the batch's statistics
        m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        m.bias.copy_(0.2 * torch.randn(m.num_features, generator=gen))
    model.train()
    model(x)
    model.eval()
    for m in bns:
        sd = m.running_var.sqrt()
        m.running_mean.add_(0.2 * sd * torch.randn(m.num_features, generator=gen))
        m.running_var.mul_(0.6 + torch.rand(m.num_features, generator=gen))
        m.momentum = 0.1
    return len(bns)


def export(model, x, path, preserve_bn):
    with warnings.catch_warnings():
        # PRESERVE with constant folding warns about training-mode parameters; the model is in
        # eval mode, so folding changes nothing it shouldn't (checked against PyTorch below)
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, path, opset_version=OPSET,
                          training=(torch.onnx.TrainingMode.PRESERVE if preserve_bn
                                    else torch.onnx.TrainingMode.EVAL),
                          do_constant_folding=True, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def op_counts(m):
    return collections.Counter(n.op_type for n in m.graph.node)


def ort_run(path, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def rel_err(a, ref):
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated subset of {','.join(MODELS)} (default: all)")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="max |ort - torch| / max|torch| accepted (default 1e-4)")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    bad = [n for n in names if n not in MODELS]
    if bad:
        die(f"unknown model {bad[0]!r}; known: {', '.join(MODELS)}")
    if ort is None:
        die("onnxruntime missing: run `make deps-py` (tools/install_py_deps.sh)")
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    failures = []
    for name in names:
        seed = zlib.crc32(name.encode())           # per model: independent of --models
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model, hw, classes = build(name)
        xn = np.random.default_rng(seed).random((BATCH, 3, hw, hw), dtype=np.float32)
        x = torch.from_numpy(xn)
        nbn = randomize_bn(model, x, gen)
        with torch.no_grad():
            ref = model(x).numpy()
        base = os.path.join(args.out, name)
        np.save(base + ".input.npy", xn)
        np.save(base + ".torch.npy", ref)
        for suffix, preserve in (("", False), ("_bn", True)):
            path = f"{base}{suffix}.onnx"
            m = export(model, x, path, preserve)
            c = op_counts(m)
            got_bn = c.get("BatchNormalization", 0)
            want_bn = nbn if preserve else 0
            if got_bn != want_bn:
                failures.append(f"{name}{suffix}: {got_bn} BatchNormalization nodes, "
                                f"expected {want_bn}")
            multi = [n.name for n in m.graph.node
                     if n.op_type == "BatchNormalization" and len(n.output) != 1]
            if multi:
                failures.append(f"{name}{suffix}: training-form BatchNormalization {multi[0]}")
            out = ort_run(path, xn)
            err = rel_err(out, ref)
            err1 = rel_err(ort_run(path, xn[:1]), out[:1])   # dynamic batch: batch 1 = row 0
            if not suffix:
                np.save(base + ".ort.npy", out)
            argmax = int((out.argmax(1) == ref.argmax(1)).sum())
            ok = err <= args.tol and err1 <= args.tol
            if not ok:
                failures.append(f"{name}{suffix}: ort vs torch rel err {err:.2e} "
                                f"(batch 1: {err1:.2e}) > {args.tol:g}")
            ops = " ".join(f"{k}:{v}" for k, v in sorted(c.items()))
            print(f"{name + suffix:22s} {os.path.getsize(path) / 1e6:7.2f} MB "
                  f"{sum(c.values()):4d} nodes  ort-vs-torch rel {err:.1e} (b1 {err1:.1e}) "
                  f"argmax {argmax}/{BATCH} |logits|max {np.abs(ref).max():.3g}  [{ops}]",
                  flush=True)
    for f in failures:
        print(f"onnx_models: FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
