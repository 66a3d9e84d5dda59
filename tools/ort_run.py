#!/usr/bin/python3
"""ort_run.py: runs an ONNX model in onnxruntime, or compares two arrays; the reference side of
sqakd's ONNX importer tests (issue 18).

Run mode:
    ort_run.py MODEL.onnx --input X.npy [--input Y.pb ...] --out OUT.npy [--out OUT2.npy ...]
  feeds the inputs to the graph's inputs in their order (initializers excluded), .npy files or
  ONNX TensorProto .pb files (as in ONNX's backend test data), dtype as stored; runs on
  CPUExecutionProvider with ORT's default graph optimisations; the k-th --out receives the k-th
  graph output (outputs without an --out are not written). On any failure: one line on stderr
  starting "ort_run:", exit 2, no output file left behind.

Compare mode:
    ort_run.py --compare GOT.npy REF.npy [--rtol 1e-5] [--atol 1e-6]
  prints max abs error, max relative error (|got - ref| / |ref| over elements with ref != 0), the
  error relative to the reference's scale (max abs err / max |ref|) and, for arrays of rank >= 2,
  argmax agreement along the last axis; passes when |got - ref| <= atol + rtol |ref| everywhere
  (numpy.allclose with REF as the reference). Exit 0 within tolerance, 1 outside it or on a shape
  mismatch, 2 when a file cannot be read. Either file may be .npy or .pb."""
import argparse
import os
import sys


def fail(msg, code=2):
    print(f"ort_run: {msg}", file=sys.stderr)
    sys.exit(code)


def load_array(path):
    """.npy (numpy) or .pb (onnx TensorProto) -> numpy array"""
    import numpy as np
    if path.endswith(".pb"):
        import onnx
        from onnx import numpy_helper
        t = onnx.TensorProto()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        return numpy_helper.to_array(t)
    return np.load(path, allow_pickle=False)


def compare(got, ref, rtol, atol):
    """(ok, one-line summary) for got vs reference ref"""
    import numpy as np
    if got.shape != ref.shape:
        return False, f"shape mismatch: {got.shape} vs reference {ref.shape}"
    if got.size == 0:
        return True, f"empty arrays of shape {got.shape}"
    if got.dtype.kind not in "fc" or ref.dtype.kind not in "fc":
        ok = bool(np.array_equal(got, ref))
        nbad = int((got != ref).sum())
        return ok, f"{got.dtype} vs {ref.dtype}: {nbad} of {got.size} elements differ (exact)"
    g, r = got.astype(np.float64), ref.astype(np.float64)
    agree = g.argmax(-1) == r.argmax(-1) if got.ndim >= 2 and got.shape[-1] > 1 else None
    # equal elements (infinities included) and NaN where the reference has NaN count as exact;
    # any other NaN or infinity in the difference is out of tolerance
    with np.errstate(invalid="ignore"):
        d = np.where((g == r) | (np.isnan(g) & np.isnan(r)), 0.0, np.abs(g - r))
    d = np.where(np.isnan(d), np.inf, d)
    r = np.where(np.isfinite(r), r, 0.0)
    nz = np.abs(r) > 0
    max_rel = float((d[nz] / np.abs(r[nz])).max()) if nz.any() else 0.0
    scale = float(np.abs(r).max())
    bad = ~(d <= atol + rtol * np.abs(r))
    msg = (f"max abs {float(d.max()):.3e}  max rel {max_rel:.3e}  "
           f"abs/max|ref| {float(d.max()) / scale if scale > 0 else 0.0:.3e}  "
           f"out of tol {int(bad.sum())}/{got.size} (rtol {rtol:g}, atol {atol:g})")
    if agree is not None:
        msg += f"  argmax {int(agree.sum())}/{agree.size}"
    return not bad.any(), msg


def run(model, inputs, outs):
    import numpy as np
    try:
        import onnxruntime as ort
    except ImportError:
        fail("onnxruntime missing: run `make deps-py` (tools/install_py_deps.sh)")
    try:
        arrays = [load_array(p) for p in inputs]
    except Exception as e:   # noqa: BLE001 - any unreadable input is one error line
        fail(f"cannot read input: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    try:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        names = [i.name for i in s.get_inputs()]
        if len(names) != len(arrays):
            fail(f"{model}: graph has {len(names)} inputs ({', '.join(names)}), "
                 f"{len(arrays)} given")
        res = s.run(None, dict(zip(names, arrays)))
    except SystemExit:
        raise
    except Exception as e:   # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        fail(f"{model}: {first}")
    if len(outs) > len(res):
        fail(f"{model}: {len(outs)} --out given, graph has {len(res)} outputs")
    written = []
    try:
        for path, a in zip(outs, res):
            np.save(path, np.asarray(a))
            written.append(path if path.endswith(".npy") else path + ".npy")
    except Exception as e:   # noqa: BLE001
        for p in written:
            os.unlink(p)
        fail(f"cannot write {path}: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("model", nargs="?", help="ONNX model (run mode)")
    ap.add_argument("--input", action="append", default=[], metavar="X.npy|X.pb",
                    help="graph input, in graph-input order (repeat)")
    ap.add_argument("--out", action="append", default=[], metavar="OUT.npy",
                    help="file for the k-th graph output (repeat)")
    ap.add_argument("--compare", nargs=2, metavar=("GOT", "REF"), help="compare mode")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-6)
    args = ap.parse_args()
    if args.compare:
        if args.model or args.input or args.out:
            fail("--compare takes no model, --input or --out")
        try:
            got, ref = (load_array(p) for p in args.compare)
        except Exception as e:   # noqa: BLE001
            fail(f"cannot read: {e}")
        ok, msg = compare(got, ref, args.rtol, args.atol)
        print(("ok    " if ok else "FAIL  ") + msg)
        return 0 if ok else 1
    if not args.model:
        fail("a model (run mode) or --compare GOT REF is required")
    if not args.out:
        fail("at least one --out is required")
    run(args.model, args.input, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
