"""The sqakd Python package (make test-py): commands from Python with numpy data, a label-free
distillation, evaluation numbers, ONNX export, Model.forward against `sqakd infer`, the CLI's
error lines as exceptions, keyword checking, repeated calls in one process, the console entry
point."""
import fcntl
import os
import subprocess
import sys

import numpy as np
import pytest

import sqakd
from conftest import make_arrays


def read_version():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "VERSION")) as f:
        return f.read().strip()


# ---------------------------------------------------------------- training and distillation

def test_train_on_numpy_arrays_writes_a_run(teacher):
    assert os.path.isfile(teacher.best) and os.path.isfile(teacher.last)
    m = teacher.metrics
    assert [e["epoch"] for e in m] == [1, 2]
    assert all(np.isfinite(e["train_loss"]) for e in m)
    assert m[-1]["train_loss"] < m[0]["train_loss"]
    meta = sqakd.Model.load(teacher.best, device="cpu").meta
    assert meta["arch"] == "smallcnn" and meta["quantizer"] == "none" and meta["dataset"] == "npy"


def test_label_free_distill_of_a_few_steps(student):
    assert "no labels are used for training" in student.log
    assert os.path.isfile(student.best)
    (e,) = student.metrics
    assert e["epoch"] == 1 and "agreement" in e and 0 <= e["agreement"] <= 100
    meta = sqakd.Model.load(student.best, device="cpu").meta
    assert (meta["quantizer"], meta["wbits"], meta["abits"], meta["role"]) == ("ewgs", 2, 2, "student")


def test_evaluate_returns_the_numbers(arrays, teacher, student):
    x, y = arrays
    r = sqakd.evaluate(student.best, (x, y), teacher=teacher.best, device="cpu")
    assert r["n"] == len(x)
    assert 0 <= r["top1"] <= 100 and r["top1"] <= r["top5"] <= 100
    assert len(r["per_class"]) == 3
    assert 0 <= r["agreement"] <= 100 and r["kl"] >= 0
    assert (r["quantizer"], r["wbits"], r["abits"]) == ("ewgs", 2, 2)
    # top-1 is what the student's own logits say
    pred = sqakd.Model.load(student.best, device="cpu").predict(x)
    assert abs(r["top1"] - 100.0 * np.mean(pred == y)) < 1e-3
    # without labels: no accuracy, the agreement still
    r = sqakd.evaluate(student.best, x, teacher=teacher.best, device="cpu")
    assert r["top1"] is None and 0 <= r["agreement"] <= 100


def test_teacher_learned_the_pattern(teacher):
    x, y = make_arrays(96, 7)   # images it did not see
    r = sqakd.evaluate(teacher.best, (x, y), device="cpu")
    assert r["top1"] > 60, r


def test_resume_and_repeated_calls_in_one_process(arrays, teacher, workdir):
    # arrays saved by the caller (a run on arrays passed directly records a temporary path,
    # which is gone when a resume would read it)
    x, _ = arrays
    np.save(workdir / "x.npy", x)
    data = f"npy:{workdir / 'x.npy'}"
    out = workdir / "again"
    s = sqakd.distill(teacher.best, data, wbits=4, abits=4, epochs=1, max_steps=2, batch=32, threads=2, quiet=True,
                      out=out)
    # the finished run's directory is not held by this process any more: another run could lock it
    with open(out / ".sqakd.lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(f, fcntl.LOCK_UN)
    r = sqakd.distill(resume=out, epochs=2, quiet=True)
    assert r.out == os.fspath(out)
    assert [e["epoch"] for e in s.metrics] == [1, 2]
    # the same flags again, and a third run into another directory: nothing left over from before
    s2 = sqakd.distill(teacher.best, x, wbits=4, abits=4, epochs=1, max_steps=2, batch=32, threads=2, quiet=True,
                       out=workdir / "again2")
    assert len(s2.metrics) == 1


# ---------------------------------------------------------------- inference

def test_model_forward_equals_sqakd_infer(tmp_path, teacher, student, cli):
    rng = np.random.default_rng(3)
    x = rng.random((37, 1, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for ckpt in (teacher.best, student.best):
        subprocess.run([cli, "infer", ckpt, "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"),
                        "--batch", "16", "--device", "cpu", "--threads", "2"], check=True, capture_output=True)
        want = np.load(tmp_path / "y.npy")
        with sqakd.Model.load(ckpt, device="cpu", batch=16, threads=2) as m:
            got = m.forward(x)
            assert got.shape == (37, 3) and got.dtype == np.float32
            np.testing.assert_array_equal(got, want)
            # uint8 pixels are divided by 255; one C x H x W sample gives 1 x classes
            u = (x * 255).round().astype(np.uint8)
            np.testing.assert_allclose(m.forward(u), m.forward(u.astype(np.float32) / 255), rtol=0, atol=0)
            np.testing.assert_allclose(m(x[5]), got[5:6], rtol=1e-5, atol=1e-5)   # another batch size
        # the in-process sqakd.infer: the same numbers
        np.testing.assert_array_equal(sqakd.infer(ckpt, x, batch=16, device="cpu"), want)


def test_export_onnx_round_trip(tmp_path, teacher, student):
    path = sqakd.export(teacher.best, onnx=tmp_path / "t.onnx")
    assert path == os.fspath(tmp_path / "t.onnx") and os.path.getsize(path) > 1000
    x = np.random.default_rng(4).random((8, 1, 16, 16), dtype=np.float32)
    ref = sqakd.Model.load(teacher.best, device="cpu").forward(x)
    got = sqakd.Model.load(path, device="cpu").forward(x)   # the graph's own normalisation, lifted
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
    # the student as QDQ ONNX, checked by onnxruntime where it is installed (make deps-py)
    q = sqakd.export(student.best, onnx=tmp_path / "s.onnx")
    assert os.path.getsize(q) > 1000
    try:
        import onnxruntime as ort
    except ImportError:
        pytest.skip("onnxruntime not installed: the QDQ export is not run")
    sess = ort.InferenceSession(q, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(6).random((64, 1, 16, 16), dtype=np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    ref = sqakd.Model.load(student.best, device="cpu").forward(x)
    assert np.mean(got.argmax(1) == ref.argmax(1)) >= 0.95
    np.testing.assert_allclose(got, ref, rtol=1e-2, atol=1e-2 * float(np.abs(ref).max()))


# ---------------------------------------------------------------- errors

def test_errors_carry_the_cli_line(tmp_path, cli, arrays):
    missing = str(tmp_path / "missing.safetensors")
    with pytest.raises(sqakd.SqakdError) as e:
        sqakd.evaluate(missing, data="fashion-mnist")
    p = subprocess.run([cli, "eval", missing, "--data", "fashion-mnist", "--json"], capture_output=True, text=True)
    assert p.returncode == e.value.status == 2
    assert str(e.value) == p.stderr.strip().splitlines()[-1]
    assert str(e.value).startswith("sqakd eval: ") and "missing.safetensors" in str(e.value)
    assert isinstance(e.value, RuntimeError)
    # bad arrays: the npy: reader's one line
    x, y = arrays
    bad = x.astype(np.float32) / 255
    bad[3, 0, 2, 2] = np.nan
    with pytest.raises(sqakd.SqakdError, match=r"^sqakd train: .*pixel \d+ \(image 3\) is nan"):
        sqakd.train(data=(bad, y), model="smallcnn", epochs=1, out=tmp_path / "nan")
    with pytest.raises(sqakd.SqakdError, match="labels of shape"):
        sqakd.train(data=(x, y[:-1]), model="smallcnn", epochs=1, out=tmp_path / "short")
    assert not (tmp_path / "nan").exists() and not (tmp_path / "short").exists()
    with pytest.raises(sqakd.SqakdError, match="missing.safetensors"):
        sqakd.Model.load(missing)
    with pytest.raises(sqakd.SqakdError, match="unknown command"):
        sqakd.run(["nope"])


def test_keywords_are_checked(arrays, teacher):
    x, y = arrays
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'epoch'.*did you mean epochs"):
        sqakd.train(data=(x, y), model="smallcnn", epoch=1)
    with pytest.raises(TypeError, match="quant_first_last is a switch"):
        sqakd.distill(teacher.best, x, quant_first_last=1)
    with pytest.raises(TypeError, match="takes a value"):
        sqakd.distill(teacher.best, x, wbits=True)
    with pytest.raises(TypeError, match="data must be"):
        sqakd.train(data=[1, 2, 3], model="smallcnn")
    with pytest.raises(ValueError, match="this model takes N x 1 x 16 x 16"):
        sqakd.Model.load(teacher.best, device="cpu").forward(np.zeros((2, 3, 16, 16), np.float32))


def test_device_cuda_works_or_says_why(teacher):
    try:
        m = sqakd.Model.load(teacher.best, device="cuda")
    except sqakd.SqakdError as e:
        assert "GPU" in str(e) or "CUDA" in str(e), str(e)
        pytest.skip(f"no usable GPU (the refusal names it): {e}")   # visible, never a silent pass
    x = np.random.default_rng(5).random((4, 1, 16, 16), dtype=np.float32)
    ref = sqakd.Model.load(teacher.best, device="cpu").forward(x)
    np.testing.assert_allclose(m.forward(x), ref, rtol=1e-3, atol=1e-3)
    assert m.device == "cuda"


# ---------------------------------------------------------------- the console entry point

def console():
    exe = os.path.join(os.path.dirname(sys.executable), "sqakd")
    if not os.path.exists(exe):
        pytest.skip("the package is not installed with its console script (pip install ./python)")
    return exe


def test_slurm_jobs_run_the_console_script_not_python(tmp_path, teacher):
    exe = console()
    # in-process, /proc/self/exe is this Python: the job scripts must name the console script
    sqakd.sweep(teacher=teacher.best, data="fashion-mnist", quantizers="ewgs", bits=[2], epochs=1, slurm=True,
                dry_run=True, out=tmp_path / "sw")
    p = subprocess.run([exe, "sweep", "--teacher", teacher.best, "--data", "fashion-mnist", "--quantizers", "lsq",
                        "--bits", "4", "--epochs", "1", "--slurm", "--dry-run", "--out", str(tmp_path / "sw2")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for d in ("sw", "sw2"):
        text = (tmp_path / d / "sweep.sbatch").read_text()
        assert f"exec '{exe}' sweep --config" in text, text

def test_console_entry_point():
    exe = console()
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert p.returncode == 0
    assert p.stdout.startswith(f"sqakd {read_version()} (git ") and "backends: cpu" in p.stdout
    assert sqakd.version() in p.stdout and sqakd.__version__ == read_version()
    p = subprocess.run([sys.executable, "-m", "sqakd", "models"], capture_output=True, text=True)
    assert p.returncode == 0 and "smallcnn" in p.stdout
    p = subprocess.run([exe, "eval", "/nonexistent.safetensors"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("sqakd eval: ")


def test_run_without_out_goes_to_a_dated_directory(arrays, teacher, tmp_path, monkeypatch):
    # the command chooses runs/distill-<date>-<time>/ under the working directory and says so,
    # even with quiet=True; Run.out is that directory
    monkeypatch.chdir(tmp_path)
    x, _ = arrays
    s = sqakd.distill(teacher.best, x, wbits=2, abits=2, epochs=1, max_steps=1, batch=32, threads=2, quiet=True)
    assert s.out is not None and s.out.startswith("runs/distill-"), s.log
    assert os.path.isfile(tmp_path / s.out / "last.safetensors")
