#!/usr/bin/python3
"""ort_bench.py: the deployment figure of issue 18 (item 7): how a full-precision teacher and its
quantized (QDQ) student export run in onnxruntime on this machine's CPU.

    ort_bench.py --fp32 TEACHER.onnx --q STUDENT.onnx [--batch 1,64] [--runs 30]

For each batch size: a fixed input (uniform [0,1), the models' input shape with that batch),
--warmup runs of each model, then --runs rounds alternating teacher and student (so drift in
clock speed or load hits both alike; thread-pool spinning is off so that one session's idle pool
does not steal the other's cores); the figure is the median wall time per run divided by the
batch, in ms per image, with the interquartile range of the runs beside it.

Also the two file sizes and their ratio, and which ops the runtime really executes: each session is created with ORT_ENABLE_ALL and SessionOptions.optimized_model_filepath,
and the node op types of that optimized graph are counted (a QDQ model is only fast when ORT has
fused its DequantizeLinear -> Conv -> QuantizeLinear groups into QLinearConv / ConvInteger /
MatMulInteger ...; DequantizeLinear or QuantizeLinear nodes left around a float Conv mean it runs
in float with extra work). Everything is printed as Markdown tables.

Stand-in for a student while our exporter is not there:
    ort_bench.py --fp32 resnet18.onnx --make-qdq resnet18_qdq.onnx [--runs ...]
first writes a QDQ model with onnxruntime.quantization.quantize_static (per-channel int8
weights, uint8 activations, calibrated with MinMax on 8 random batches), then benchmarks it as --q.

Errors: one line on stderr starting "ort_bench:", exit 2."""
import argparse
import collections
import os
import platform
import statistics
import sys
import tempfile
import time


def die(msg, code=2):
    print(f"ort_bench: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:
    die(f"{e.name} missing: run `make deps-py` (tools/install_py_deps.sh)")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def input_shape(path, override):
    """(name, [C, H, W]) of the model's single input; batch must be its first dimension"""
    m = onnx.load(path, load_external_data=False)
    init = {t.name for t in m.graph.initializer}
    ins = [v for v in m.graph.input if v.name not in init]
    if len(ins) != 1:
        die(f"{path}: {len(ins)} graph inputs, expected one image input")
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in ins[0].type.tensor_type.shape.dim]
    if override:
        return ins[0].name, override
    if len(dims) < 2 or any(d is None for d in dims[1:]):
        die(f"{path}: input {ins[0].name} has shape {dims}; give --shape C,H,W")
    return ins[0].name, dims[1:]


class Model:
    def __init__(self, path, threads, tmp, tag):
        self.path = path
        self.size = os.path.getsize(path)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        # two sessions alternate: a pool left spinning after its run would steal the cores the
        # other session's run needs (on 2 cores it doubled the teacher's batch-1 time)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opt = os.path.join(tmp, f"{tag}.optimized.onnx")
        so.optimized_model_filepath = opt
        try:
            self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        except Exception as e:   # noqa: BLE001
            die(f"{path}: {str(e).strip().splitlines()[0]}")
        g = onnx.load(opt, load_external_data=False).graph
        self.ops = collections.Counter(
            (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}")
            for n in g.node)
        self.name = self.sess.get_inputs()[0].name

    def run(self, x):
        t = time.perf_counter()
        self.sess.run(None, {self.name: x})
        return time.perf_counter() - t


def iqr(ts, b):
    """'q1-q3' of the per-image times in ms"""
    ms = [t / b * 1e3 for t in ts]
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else ms * 3
    return f"{q[0]:.2f}-{q[2]:.2f}"


def make_qdq(fp32, out, shape, seed=0):
    """QDQ stand-in student: quantize_static, per-channel QInt8 weights, QUInt8 activations"""
    try:
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                              quantize_static)
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        die(f"onnxruntime.quantization unusable ({e}): run `make deps-py`")
    name, chw = shape
    rng = np.random.default_rng(seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{name: rng.random((4, *chw), dtype=np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as d:
        pre = os.path.join(d, "pre.onnx")
        quant_pre_process(fp32, pre, skip_symbolic_shape=True)
        quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)


# op types (any domain: ORT's fused forms live in com.microsoft, com.microsoft.nchwc ...)
INTEGER = {"QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QLinearAdd",
           "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool", "QGemm",
           "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax",
           "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
FLOAT = {"Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}


def fmt_ops(c, kinds):
    """'op n, ...' for the ops of c (keys domain:op or op) whose op type is in kinds"""
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())
                     if k.rpartition(":")[2] in kinds) or "-"


def count(c, kinds):
    return sum(v for k, v in c.items() if k.rpartition(":")[2] in kinds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--fp32", required=True, metavar="TEACHER.onnx")
    ap.add_argument("--q", metavar="STUDENT.onnx", help="quantized (QDQ) model")
    ap.add_argument("--make-qdq", metavar="OUT.onnx",
                    help="write a quantize_static QDQ stand-in of --fp32 here and use it as --q")
    ap.add_argument("--batch", default="1,64", help="comma-separated batch sizes (default 1,64)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per model and batch")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ORT default)")
    ap.add_argument("--shape", help="C,H,W when the model's input dims are not fixed")
    args = ap.parse_args()
    if bool(args.q) == bool(args.make_qdq):
        die("give exactly one of --q and --make-qdq")
    try:
        batches = [int(b) for b in args.batch.split(",")]
        override = [int(v) for v in args.shape.split(",")] if args.shape else None
    except ValueError:
        die("--batch and --shape take comma-separated integers")
    if any(b < 1 for b in batches) or args.runs < 1:
        die("batch sizes and --runs must be >= 1")
    for p in (args.fp32, args.q):
        if p and not os.path.isfile(p):
            die(f"{p}: no such file")
    shape = input_shape(args.fp32, override)
    if args.make_qdq:
        t = time.perf_counter()
        make_qdq(args.fp32, args.make_qdq, shape)
        print(f"wrote QDQ stand-in {args.make_qdq} ({time.perf_counter() - t:.1f} s)\n")
        args.q = args.make_qdq
    with tempfile.TemporaryDirectory() as tmp:
        fp = Model(args.fp32, args.threads, tmp, "fp32")
        q = Model(args.q, args.threads, tmp, "q")
    rng = np.random.default_rng(0)
    print(f"onnxruntime {ort.__version__}, CPUExecutionProvider, {cpu_name()}, "
          f"{os.cpu_count()} logical CPUs, intra-op threads "
          f"{args.threads or 'default'}; input {shape[0]} [N,{','.join(map(str, shape[1]))}]; "
          f"{args.warmup} warm-up + {args.runs} alternated runs, medians\n")
    print("| batch | fp32 ms/img (IQR) | quantized ms/img (IQR) | speedup (fp32/q) |")
    print("|------:|-----------------:|----------------------:|-----------------:|")
    for b in batches:
        x = rng.random((b, *shape[1]), dtype=np.float32)
        for _ in range(args.warmup):
            fp.run(x)
            q.run(x)
        tf, tq = [], []
        for _ in range(args.runs):
            tf.append(fp.run(x))
            tq.append(q.run(x))
        mf, mq = statistics.median(tf) / b * 1e3, statistics.median(tq) / b * 1e3
        print(f"| {b:5d} | {mf:8.3f} ({iqr(tf, b)}) | {mq:8.3f} ({iqr(tq, b)}) | "
              f"{mf / mq:15.2f}x |", flush=True)
    print(f"\n| file | bytes | MB |\n|---|---:|---:|\n"
          f"| {os.path.basename(args.fp32)} (fp32) | {fp.size} | {fp.size / 1e6:.2f} |\n"
          f"| {os.path.basename(args.q)} (quantized) | {q.size} | {q.size / 1e6:.2f} |\n"
          f"| ratio fp32/quantized | | {fp.size / q.size:.2f}x |")
    print("\nops the runtime runs after its graph optimisations (ORT_ENABLE_ALL):\n")
    print("| model | nodes | integer kernels | Q/DQ nodes | float conv/GEMM/MatMul | "
          "all op types |")
    print("|---|---:|---|---|---|---|")
    for tag, m in (("fp32", fp), ("quantized", q)):
        print(f"| {tag} | {sum(m.ops.values())} | {fmt_ops(m.ops, INTEGER)} | "
              f"{fmt_ops(m.ops, QDQ)} | {fmt_ops(m.ops, FLOAT)} | "
              f"{', '.join(f'{k} {v}' for k, v in sorted(m.ops.items()))} |")
    left = count(q.ops, FLOAT)
    if left and count(q.ops, QDQ):
        print(f"\nnote: the quantized model still runs {left} float conv/GEMM nodes beside "
              f"Q/DQ nodes (not fused into integer kernels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
