#!/usr/bin/python3
"""onnx_node_tests.py: runs ONNX's own backend node tests (Debian's libonnx-testdata) through an
importer's command line, for the op types the importer claims; the per-op conformance check of
sqakd's ONNX import (issue 18).

List mode (no --cmd): one line per test directory, test_*/model.onnx, with the op types it
contains (only tests containing one of --ops, if given):

    onnx_node_tests.py [--ops Conv,Relu]

Run mode: every test whose op types are all among --ops (a test that also needs an unclaimed op is
not run, and is counted in the table's "needs other" column) is run through the command template,
once per test_data_set_*; {model} is model.onnx, {inputs} expands to `--input input_0.pb --input
input_1.pb ...` (ONNX TensorProto files, in graph-input order), {out} is the .npy file the command
must write (the graph's first output), {dir} the test directory:

    onnx_node_tests.py --ops Conv,Relu,Add \\
        --cmd "build/sqakd infer {model} {inputs} --out {out}"

The output is compared with output_0.pb: pass when |got - ref| <= atol + rtol |ref| everywhere
(defaults rtol 1e-5, atol 1e-6; both printed), same shape required. Outcome of each test:
    skipped   listed in SKIPS below (with the reason), or the command exited 3: "unsupported by
              the importer" (its first stderr line is printed as the reason);
    failed    any other non-zero exit, a timeout, no or unreadable output, shape or value mismatch;
    passed    otherwise (every data set).
Prints a per-op table (ran = passed + failed; a test counts in the row of each claimed op it
contains), then the final line exactly `N passed, M failed, K skipped`. Exit 1 if anything failed,
2 on bad usage (e.g. an op name no test contains), 0 otherwise.

    onnx_node_tests.py --self-test
runs the machinery against onnxruntime (tools/ort_run.py) and against a deliberately broken fake
command (exit 3, exit 1, perturbed output), and checks the counts: the proof that the harness
tells these cases apart before sqakd's importer exists."""
import argparse
import collections
import concurrent.futures
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = "/usr/share/libonnx-testdata/data/node"

# Tests we do not run, by regular expression on the test directory name, with the reason. A test
# can also be skipped by the dtype rule in skip_reason() and by the command exiting 3.
SKIPS = [
    (r"_training_mode$", "training-mode BatchNormalization (batch statistics, 3 outputs): "
                         "the importer takes inference graphs"),
    (r"^test_training_dropout", "training-mode Dropout (random mask)"),
    (r"pool_1d_|pool_3d_", "1-D / 3-D pooling: NCHW 2-D only"),
    (r"^test_maxpool_2d_dilations$", "dilated pooling"),
    (r"^test_maxpool_with_argmax", "MaxPool's second output (indices)"),
    (r"^test_concat_1d_axis_(0|negative_1)$|^test_concat_2d_axis_(0|negative_2)$|"
     r"^test_concat_3d_axis_(0|negative_3)$", "concat along axis 0, the batch axis"),
]


def die(msg, code=2):
    print(f"onnx_node_tests: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import numpy  # noqa: F401 - ort_run.compare needs it; fail here with the hint
    import onnx
except ImportError as e:
    die(f"{e.name} missing: run `make deps-py` (tools/install_py_deps.sh)")
sys.path.insert(0, HERE)
from ort_run import compare, load_array  # noqa: E402


class Test:
    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        m = onnx.load(os.path.join(path, "model.onnx"))
        self.ops = sorted({n.op_type for n in m.graph.node})
        init = {t.name for t in m.graph.initializer}
        self.in_types = [self._dtype(v) for v in m.graph.input if v.name not in init]
        self.out_types = [self._dtype(v) for v in m.graph.output]
        self.sets = sorted(glob.glob(os.path.join(path, "test_data_set_*")))

    @staticmethod
    def _dtype(v):
        if not v.type.HasField("tensor_type"):
            return "non-tensor"
        return onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()


def skip_reason(t):
    for pat, why in SKIPS:
        if re.search(pat, t.name):
            return why
    # dtype rule: float32 data; int64 inputs are accepted as shape/index operands (Reshape,
    # Slice, Pad, Gather...); int8/uint8 where every op is QuantizeLinear/DequantizeLinear (their
    # integer outputs are compared exactly)
    if set(t.ops) <= {"QuantizeLinear", "DequantizeLinear"}:
        odd = sorted({d for d in t.in_types + t.out_types[:1]
                      if d not in ("float", "int8", "uint8")})
        return f"dtype {', '.join(odd)} in a QDQ test" if odd else None
    if t.out_types[:1] != ["float"]:
        return f"non-float32 output ({t.out_types[0] if t.out_types else 'none'})"
    odd = sorted({d for d in t.in_types if d not in ("float", "int64")})
    if odd:
        return f"non-float32 input ({', '.join(odd)})"
    return None


def load_tests(data):
    dirs = sorted(d for d in glob.glob(os.path.join(data, "test_*"))
                  if os.path.isfile(os.path.join(d, "model.onnx")))
    if not dirs:
        die(f"no test_*/model.onnx under {data} (Debian package libonnx-testdata)")
    tests = []
    for d in dirs:
        try:
            tests.append(Test(d))
        except Exception as e:   # noqa: BLE001 - a model onnx cannot parse is listed, not fatal
            print(f"onnx_node_tests: cannot load {d}: {str(e).splitlines()[0]}", file=sys.stderr)
    return tests


def expand(template, model, inputs, out, tdir):
    argv = []
    for tok in shlex.split(template):
        if tok == "{inputs}":
            for p in inputs:
                argv += ["--input", p]
            continue
        argv.append(tok.replace("{model}", model).replace("{out}", out).replace("{dir}", tdir))
    return argv


def run_test(t, template, rtol, atol, timeout, tmp):
    """('passed'|'failed'|'skipped', detail)"""
    why = skip_reason(t)
    if why:
        return "skipped", why
    if not t.sets:
        return "skipped", "no test_data_set_*"
    worst = ""
    for ds in t.sets:
        inputs = sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                        key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
        ref_path = os.path.join(ds, "output_0.pb")
        out = os.path.join(tmp, f"{t.name}.{os.path.basename(ds)}.npy")
        argv = expand(template, os.path.join(t.path, "model.onnx"), inputs, out, t.path)
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "failed", f"timed out after {timeout:g} s"
        except OSError as e:
            return "failed", f"cannot run {argv[0]}: {e.strerror}"
        err = (p.stderr.strip().splitlines() or [""])[0] or (p.stdout.strip().splitlines()
                                                              or [""])[0]
        if p.returncode == 3:
            return "skipped", f"unsupported by the importer: {err}"
        if p.returncode != 0:
            return "failed", f"exit {p.returncode}: {err}"
        try:
            got, ref = load_array(out), load_array(ref_path)
        except Exception as e:   # noqa: BLE001
            return "failed", f"no readable output: {str(e).splitlines()[0]}"
        ok, msg = compare(got, ref, rtol, atol)
        if not ok:
            return "failed", f"{os.path.basename(ds)}: {msg}"
        worst = msg
    return "passed", worst


def run_all(tests, ops, template, rtol, atol, timeout, jobs, verbose=True):
    """runs the tests whose ops are all in ops; returns (results {name: (status, detail)},
    counts {op: Counter})"""
    claimed = set(ops)
    chosen = [t for t in tests if t.ops and set(t.ops) <= claimed]
    other = [t for t in tests if set(t.ops) & claimed and not set(t.ops) <= claimed]
    results = {}
    with tempfile.TemporaryDirectory(prefix="onnx_node_tests.") as tmp:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            futs = {t.name: ex.submit(run_test, t, template, rtol, atol, timeout, tmp)
                    for t in chosen}
            for t in chosen:
                results[t.name] = futs[t.name].result()
                st, detail = results[t.name]
                if verbose:
                    print(f"  {st:7s} {t.name:52s} {detail}", flush=True)
    counts = {op: collections.Counter() for op in ops}
    for t in chosen:
        st = results[t.name][0]
        for op in t.ops:
            counts[op][st] += 1
    for t in other:
        for op in set(t.ops) & claimed:
            counts[op]["needs other"] += 1
    return results, counts


def print_table(ops, counts):
    print(f"\n| {'op':22s} | {'ran':>4s} | {'passed':>6s} | {'failed':>6s} | {'skipped':>7s} "
          f"| {'needs other':>11s} |")
    print(f"|{'-' * 24}|{'-' * 5}:|{'-' * 7}:|{'-' * 7}:|{'-' * 8}:|{'-' * 12}:|")
    for op in ops:
        c = counts[op]
        print(f"| {op:22s} | {c['passed'] + c['failed']:4d} | {c['passed']:6d} | "
              f"{c['failed']:6d} | {c['skipped']:7d} | {c['needs other']:11d} |")


def summary(results):
    c = collections.Counter(st for st, _ in results.values())
    return c["passed"], c["failed"], c["skipped"]


def self_test(tests, rtol, atol, jobs):
    """proves the harness on onnxruntime and on a broken fake command"""
    py = sys.executable
    ort = f"{shlex.quote(py)} {shlex.quote(os.path.join(HERE, 'ort_run.py'))}"
    ops = ["Conv", "Relu", "Add", "MaxPool", "BatchNormalization"]
    print("self-test 1: onnxruntime as the importer (everything it runs must pass)")
    res, counts = run_all(tests, ops, f"{ort} {{model}} {{inputs}} --out {{out}}",
                          rtol, atol, 120, jobs, verbose=False)
    print_table(ops, counts)
    p, f, s = summary(res)
    print(f"{p} passed, {f} failed, {s} skipped")
    ok1 = f == 0 and p > 10 and s > 0
    fake = ("import subprocess, sys, numpy as np\n"
            "a = sys.argv[1:]\n"
            "m = a[a.index('--model') + 1]; o = a[a.index('--out') + 1]\n"
            "if 'test_relu' in m: print('sqakd infer: Relu: not supported', file=sys.stderr);"
            " sys.exit(3)\n"
            "if 'test_add_bcast' in m: print('sqakd infer: crashed', file=sys.stderr);"
            " sys.exit(1)\n"
            "r = subprocess.run([sys.executable] + a[a.index('--ort') + 1:a.index('--model')]"
            " + [m] + [x for x in a[a.index('--model') + 2:]])\n"
            "if r.returncode: sys.exit(r.returncode)\n"
            "if 'test_basic_conv_with_padding' in m:\n"
            "    y = np.load(o); y.flat[0] *= 1 + 1e-4; np.save(o, y)\n")
    with tempfile.TemporaryDirectory() as d:
        fp = os.path.join(d, "fake_infer.py")
        with open(fp, "w") as f_:
            f_.write(fake)
        cmd = (f"{shlex.quote(py)} {shlex.quote(fp)} --ort "
               f"{shlex.quote(os.path.join(HERE, 'ort_run.py'))} --model {{model}} {{inputs}} "
               f"--out {{out}}")
        print("\nself-test 2: a fake importer that says 'unsupported' for test_relu (exit 3), "
              "crashes on test_add_bcast (exit 1), perturbs one element of "
              "test_basic_conv_with_padding by 1e-4 relative")
        res2, counts2 = run_all(tests, ops, cmd, rtol, atol, 120, jobs, verbose=False)
        print_table(ops, counts2)
        p2, f2, s2 = summary(res2)
        print(f"{p2} passed, {f2} failed, {s2} skipped")
    expect = {"test_relu": ("skipped", "unsupported by the importer: sqakd infer: Relu"),
              "test_add_bcast": ("failed", "exit 1: sqakd infer: crashed"),
              "test_basic_conv_with_padding": ("failed", "test_data_set_0: FAIL"),
              }
    ok2 = (p2, f2, s2) == (p - 3, 2, s + 1)
    for name, (st, prefix) in expect.items():
        got = res2.get(name, ("absent", ""))
        if got[0] != st or not got[1].startswith(prefix.replace("FAIL", "max abs")):
            ok2 = False
            print(f"self-test: {name}: got {got}, expected {st} '{prefix}...'")
    print(f"\nself-test {'passed' if ok1 and ok2 else 'FAILED'}")
    return 0 if ok1 and ok2 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--data", default=DEFAULT_DATA, help=f"node test root (default {DEFAULT_DATA})")
    ap.add_argument("--ops", help="comma-separated op types the importer claims")
    ap.add_argument("--cmd", help="command template with {model} {inputs} {out} [{dir}]")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--timeout", type=float, default=60, help="seconds per command (default 60)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quiet", action="store_true", help="no line per test in run mode")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    tests = load_tests(args.data)
    if args.self_test:
        return self_test(tests, args.rtol, args.atol, args.jobs)
    ops = [o for o in (args.ops or "").split(",") if o]
    known = {o for t in tests for o in t.ops}
    unknown = [o for o in ops if o not in known]
    if unknown:
        die(f"no node test contains op {unknown[0]!r} (op types are case-sensitive, e.g. Conv)")
    if not args.cmd:
        for t in tests:
            if not ops or set(t.ops) & set(ops):
                why = skip_reason(t)
                print(f"{t.name:60s} {','.join(t.ops)}" + (f"   [skip: {why}]" if why else ""))
        return 0
    if not ops:
        die("--cmd needs --ops")
    if "{model}" not in args.cmd or "{out}" not in args.cmd:
        die("--cmd must contain {model} and {out}")
    print(f"node tests from {args.data}; tolerance |got - ref| <= atol + rtol |ref| with "
          f"rtol {args.rtol:g}, atol {args.atol:g}")
    results, counts = run_all(tests, ops, args.cmd, args.rtol, args.atol, args.timeout,
                              args.jobs, verbose=not args.quiet)
    print_table(ops, counts)
    p, f, s = summary(results)
    print(f"{p} passed, {f} failed, {s} skipped")
    return 1 if f else 0


if __name__ == "__main__":
    sys.exit(main())
