#!/usr/bin/python3
"""torch_twin_test.py: the PyTorch round trips of issue 19, run by `make test-torch` (part of
`make test`):
  1. every quantizer of tools/torch_quant.py (forward, input and parameter gradients) against the
     golden values the C quantizers are tested against (tests/data/quant_golden.bin);
  2. a smallcnn teacher trained a few steps on 1,024 Fashion-MNIST images, students distilled a few
     label-free steps from it (ewgs, pact, lsq, dorefa at W4A4, W2A2 and W1A1; ewgs, lsq and dorefa
     at W8A8 (pact's weights are dorefa's); all four at W3A3 with --quant-first-last and EWGS
     deltas), each evaluated by `sqakd eval --dump-logits` on 128
     test images and by its PyTorch twin (load_checkpoint.load_torch_model) on the same images
     normalised from its metadata: max |error| <= 1e-4 max |logit| and the same predictions,
     and bit-equal logits on a CPU with AVX2/FMA (where the twin emulates sqakd's arithmetic);
     the --into-torch command line on one of them (--input / --out);
  3. the teacher through PyTorch and back (--into-torch --save, then --from-torch with the
     normalisation carried in the .pt, from --like CKPT, from --dataset) evaluates to the same
     logits; a state_dict without normalisation is refused;
  4. refusals (non-zero exit, one line naming the tensors): a student whose metadata lost its
     quantizer (its quantizer tensors would be dropped: what --into-torch did before), a student
     missing a tensor, an extra tensor, an imported ONNX graph.
Prints one line per check and the logit errors per quantizer and bit-width; ends with
"N passed, M failed" and exits 1 when anything failed. Skips (exit 0, with the reason) only when
torch or numpy cannot be imported. Environment: SQAKD_BIN (default build/sqakd), TORCH_TEST_DIR
(default build/torch)."""
import gzip
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import numpy as np
    import torch
except ImportError as e:
    print(f"torch twin: SKIPPED: {sys.executable} cannot import torch / numpy ({e}); make deps-py "
          f"installs Debian's")
    sys.exit(0)
sys.path.insert(0, HERE)
import load_checkpoint as L  # noqa: E402
import torch_quant as TQ  # noqa: E402

BIN = os.path.abspath(os.environ.get("SQAKD_BIN", "build/sqakd"))
OUT = os.environ.get("TORCH_TEST_DIR", "build/torch")
PY = sys.executable
FM = "/usr/share/datasets/fashion-mnist"
NTRAIN, NTEST = 1024, 128
passed, failed = 0, 0


def ok(msg):
    global passed
    passed += 1
    print(f"  ok    {msg}", flush=True)


def bad(msg):
    global failed
    failed += 1
    print(f"  FAIL  {msg}", flush=True)


def run(*args, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args[:3]))} ... exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return r


def make_data(d):
    """Fashion-MNIST's first NTRAIN train and NTEST test images as IDX files (the Debian package),
    else noise with labels from a fixed rule (enough for the round trips)"""
    os.makedirs(d, exist_ok=True)
    src = "Fashion-MNIST"
    for name, n in (("train", NTRAIN), ("t10k", NTEST)):
        ip, lp = f"{FM}/{name}-images-idx3-ubyte.gz", f"{FM}/{name}-labels-idx1-ubyte.gz"
        if os.path.exists(ip) and os.path.exists(lp):
            im = np.frombuffer(gzip.open(ip).read()[16:16 + n * 784], np.uint8)
            lb = np.frombuffer(gzip.open(lp).read()[8:8 + n], np.uint8)
        else:
            src = "noise"
            rng = np.random.default_rng(7 if name == "train" else 8)
            im = rng.integers(0, 256, n * 784, dtype=np.uint8)
            lb = (im.reshape(n, 784)[:, :392].mean(1) > 127.5).astype(np.uint8)
        with open(f"{d}/{name}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + im.tobytes())
        with open(f"{d}/{name}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + lb.tobytes())
    return src, im.reshape(NTEST, 1, 28, 28)


def sqakd_logits(ckpt, data, tag):
    dst = f"{OUT}/{tag}.sqakd.npy"
    r = run(BIN, "eval", ckpt, "--data", data, "--device", "cpu", "--dump-logits", dst, "--json")
    import json
    return np.load(dst), json.loads(r.stdout.strip().splitlines()[-1])


def twin_logits(ckpt, images):
    model, meta = L.load_torch_model(ckpt)
    with torch.no_grad():
        return model(torch.from_numpy(L.normalize(images, meta))).numpy()


def compare(ref, got):
    scale = float(np.abs(ref).max())
    err = float(np.abs(got - ref).max())
    agree = float(np.mean(got.argmax(1) == ref.argmax(1))) * 100
    exact = float(np.mean(got == ref)) * 100
    return err, err / scale if scale > 0 else float("inf"), agree, exact


class _Result:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err


def lc(*args):
    """tools/load_checkpoint.py's command line, in this process (main(argv), its exit code, what it
    printed): the same code as the script without another torch import"""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = L.main([str(a) for a in args])
        except SystemExit as e:
            rc = e.code
    return _Result(rc, out.getvalue(), err.getvalue())


def refuses(args, want, what):
    r = lc(*args) if args[0] != PY else run(*args, check=False)
    line = r.stderr.strip()
    if r.returncode != 0 and len(line.splitlines()) == 1 and all(w in line for w in want):
        ok(f"{what}: exit {r.returncode}: {line[:300]}")
    else:
        bad(f"{what}: exit {r.returncode}, stderr {line[:300]!r}, want non-zero and one line "
            f"naming {want}")


def edited(src, dst, drop=(), add=None, meta=None):
    t, m = L.load(src)
    for k in drop:
        del t[k]
    t.update(add or {})
    m.update(meta or {})
    L.save(dst, t, m)
    return dst


def main():
    if not os.access(BIN, os.X_OK):
        print(f"torch twin: {BIN} is not built")
        return 2
    os.makedirs(OUT, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    # where sqakd's CPU backend runs its AVX2/FMA convolution the twin claims bit-equal logits (and
    # that is asserted: float-rounding differences the tolerance would let through, e.g. PyTorch's
    # own BatchNorm, are 1e-5 of the logits here); elsewhere max |err| <= 1e-4 max |logit|
    bit_exact = TQ.cpu_has_igemm()
    print(f"== torch {torch.__version__}; sqakd's integer convolution emulated: {TQ.cpu_has_qconv()} "
          f"(AVX-512 VNNI); its FMA convolution: {bit_exact} (AVX2/FMA): students' logits must be "
          f"{'bit-equal' if bit_exact else 'within 1e-4 of the largest logit'}")

    # ---- 1. the quantizers against the C code's golden values
    n, fails = TQ.check_golden(os.path.join(HERE, "..", "tests", "data", "quant_golden.bin"))
    (ok if not fails else bad)(f"{n} golden quantizer cases (forward, input and parameter gradients; "
                               f"ewgs, pact, lsq, dorefa, 1-8 bits, weights and activations)"
                               + (f": {fails[:3]}" if fails else ""))

    # ---- 2. students: sqakd eval --dump-logits against the PyTorch twin
    src, images = make_data(f"{OUT}/fm")
    data = f"fashion-mnist:{OUT}/fm"
    teacher = f"{OUT}/teacher/last.safetensors"
    run(BIN, "train", "--model", "smallcnn", "--data", data, "--epochs", 1, "--max-steps", 8,
        "--batch", 64, "--device", "cpu", "--out", f"{OUT}/teacher", "--overwrite", "--quiet")
    common = ["--teacher", teacher, "--data", data, "--epochs", 1, "--max-steps", 2, "--batch", 32,
              "--device", "cpu", "--quiet", "--overwrite"]
    students = [f"{q}:{b}" for b in (4, 2, 1) for q in TQ.KINDS] + ["ewgs:8", "lsq:8", "dorefa:8"]
    run(BIN, "distill", *common, "--students", ",".join(students), "--out", f"{OUT}/st")
    fl = ",".join(f"{q}:3" for q in TQ.KINDS)
    run(BIN, "distill", *common, "--students", fl, "--quant-first-last", "--delta-w", 0.2,
        "--delta-a", 0.1, "--out", f"{OUT}/fl")
    rows = []
    cases = [(s, f"{OUT}/st/{s.split(':')[0]}_w{s.split(':')[1]}a{s.split(':')[1]}", "") for s in students]
    cases += [(f"{q}:3", f"{OUT}/fl/{q}_w3a3", " first/last") for q in TQ.KINDS]
    for spec, d, extra in cases:
        ckpt = f"{d}/last.safetensors"
        q, b = spec.split(":")
        tag = f"{q} W{b}A{b}{extra}"
        try:
            ref, _ = sqakd_logits(ckpt, data, os.path.basename(d) + ("_fl" if extra else ""))
            got = twin_logits(ckpt, images)
        except (RuntimeError, L.Refusal, OSError) as e:
            bad(f"{tag}: {e}")
            continue
        err, rel, agree, exact = compare(ref, got)
        rows.append((tag, err, rel, agree, exact))
        msg = (f"{tag}: twin vs sqakd eval on {len(ref)} images: max |err| {err:.3g}, relative "
               f"{rel:.3g}, predictions {agree:.2f}% identical, {exact:.1f}% of logits bit-equal")
        (ok if rel <= 1e-4 and agree == 100.0 and (exact == 100.0 or not bit_exact) else bad)(msg)
    print("\n  | quantizer | bits | max abs err | max rel err | same prediction | bit-equal logits |")
    print("  | --- | --- | --- | --- | --- | --- |")
    for tag, err, rel, agree, exact in rows:
        q, rest = tag.split(" ", 1)
        print(f"  | {q} | {rest} | {err:.3g} | {rel:.3g} | {agree:.2f}% | {exact:.1f}% |")
    print()

    # the twin trains: sqakd's initialisation from one batch, then a train-mode step gives finite
    # gradients to every parameter and non-zero ones to the quantizers' (ewgs, lsq)
    _, tmeta = L.load(teacher)
    x = torch.from_numpy(L.normalize(images[:16], tmeta))
    for q in TQ.KINDS:
        model, _ = L.load_torch_model(teacher)
        TQ.quantize_model(model, "smallcnn", q, 4, 4)
        TQ.quant_init(model, x)
        model.train()
        F_ = torch.nn.functional
        F_.kl_div(F_.log_softmax(model(x), 1), F_.softmax(model(x).detach() * 0.5, 1),
                  reduction="batchmean").backward()
        mp, qp = TQ.split_params(model)
        finite = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in mp + qp)
        moved = q not in ("ewgs", "lsq") or all(float(p.grad.abs().sum()) > 0 for p in qp)
        (ok if finite and moved else bad)(f"{q} W4A4 twin in train mode: quant_init, one backward: "
                                          f"{len(mp)} model and {len(qp)} quantizer parameters, "
                                          f"gradients {'finite' if finite else 'NOT finite'}"
                                          f"{', quantizer gradients non-zero' if q in ('ewgs', 'lsq') and moved else ''}")

    # the command line: --into-torch --input/--out on one student
    ck = f"{OUT}/st/lsq_w4a4/last.safetensors"
    _, meta = L.load(ck)
    np.save(f"{OUT}/x.npy", L.normalize(images, meta))
    r = run(PY, f"{HERE}/load_checkpoint.py", "--into-torch", ck, "--input", f"{OUT}/x.npy", "--out",
            f"{OUT}/lsq_cli.npy", check=False)
    ref = np.load(f"{OUT}/lsq_w4a4.sqakd.npy")
    if r.returncode == 0 and os.path.exists(f"{OUT}/lsq_cli.npy") and \
            compare(ref, np.load(f"{OUT}/lsq_cli.npy"))[1] <= 1e-4:
        ok(f"--into-torch {ck} --input --out: {r.stdout.strip().splitlines()[0]}")
    else:
        bad(f"--into-torch --input --out: exit {r.returncode}: {r.stderr.strip()[:300]}")

    # ---- 3. the teacher through PyTorch and back
    t_ref, t_eval = sqakd_logits(teacher, data, "teacher")
    pt = f"{OUT}/teacher.pt"
    r = lc("--into-torch", teacher, "--save", pt)
    if r.returncode != 0:
        bad(f"--into-torch {teacher} --save: exit {r.returncode}: {r.stderr.strip()[:300]}")
    model, _ = L.load_torch_model(teacher)
    plain = f"{OUT}/teacher_state_dict.pt"
    torch.save(model.state_dict(), plain)
    trips = [("the .pt's own sqakd_meta", [pt]),
             ("--like the teacher", [plain, "--like", teacher]),
             ("--dataset fashion-mnist", [plain, "--arch", "smallcnn", "--dataset", "fashion-mnist"])]
    for i, (how, args) in enumerate(trips):
        back = f"{OUT}/teacher_back{i}.safetensors"
        r = (run(PY, f"{HERE}/load_checkpoint.py", "--from-torch", args[0], back, *args[1:], check=False)
             if i == 0 else lc("--from-torch", args[0], back, *args[1:]))
        if r.returncode != 0:
            bad(f"teacher -> torch -> sqakd ({how}): exit {r.returncode}: {r.stderr.strip()[:300]}")
            continue
        try:
            got, ev = sqakd_logits(back, data, f"teacher_back{i}")
        except RuntimeError as e:
            bad(f"teacher -> torch -> sqakd ({how}): {e}")
            continue
        same = got.shape == t_ref.shape and np.array_equal(got, t_ref)
        top1 = f"top-1 {ev.get('top1')}% (teacher {t_eval.get('top1')}%)"
        (ok if same and ev.get("top1") == t_eval.get("top1") else bad)(
            f"teacher -> torch -> sqakd, normalisation from {how}: {top1}, logits "
            f"{'identical' if same else 'DIFFER'}")
    refuses(["--from-torch", plain, f"{OUT}/no_norm.safetensors",
             "--arch", "smallcnn", "--classes", 10, "--input-shape", "1,28,28"],
            ["normalisation", "--like", "--dataset", "--mean"], "--from-torch without normalisation")
    if os.path.exists(f"{OUT}/no_norm.safetensors"):
        bad("--from-torch without normalisation left a file behind")

    # ---- 4. refusals of --into-torch
    st = f"{OUT}/st/ewgs_w4a4/last.safetensors"
    lt = ["--into-torch"]
    qnames = [f"conv{i}.{p}" for i in (2, 3) for p in ("lW", "uW", "lA", "uA", "output_scale")]
    refuses([PY, f"{HERE}/load_checkpoint.py"] + lt + [edited(st, f"{OUT}/as_fp.safetensors", meta={"quantizer": "none", "wbits": "32",
                                                                 "abits": "32"})],
            ["dropped", "14 tensor"] + qnames, "a student read as full precision (what --into-torch did "
            "before: its 14 quantizer tensors dropped)")
    refuses(lt + [edited(f"{OUT}/st/lsq_w2a2/last.safetensors", f"{OUT}/missing.safetensors",
                         drop=["conv3.sA"])], ["unset", "conv3.sA"], "a student missing conv3.sA")
    refuses(lt + [edited(f"{OUT}/st/pact_w4a4/last.safetensors", f"{OUT}/extra.safetensors",
                         add={"conv2.sW": np.array(0.1, np.float32)})],
            ["dropped", "conv2.sW"], "a pact student with an lsq tensor")
    onnx = f"{OUT}/teacher.onnx"
    r = run(BIN, "export", teacher, "--onnx", onnx, check=False)
    if r.returncode == 0 and run(BIN, "import", onnx, "--out", f"{OUT}/graph.safetensors",
                                 check=False).returncode == 0:
        refuses(lt + [f"{OUT}/graph.safetensors"], ["graph", "ONNX"], "an imported ONNX graph (arch 'graph')")
    else:
        bad(f"could not make an imported graph checkpoint: {r.stderr.strip()[:200]}")

    print(f"torch twin ({src} data): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as e:
        print(f"  FAIL  {e}")
        print(f"torch twin: {passed} passed, {failed + 1} failed")
        sys.exit(1)
