#!/usr/bin/env python3
"""tb_readback.py: sqakd's TensorBoard event files read back by the tensorboard package
(`make test-tb`; usage: tb_readback.py SQAKD_BIN).

Runs, on a small synthetic IDX data set (96 labelled 1x8x8 images, 3 classes):
  1. train --tensorboard for 1 epoch, then --resume to 2 epochs; before the resume, an event of
     an epoch that was never committed is appended to the first session's file, as a run killed
     between its TensorBoard flush and its commit would leave it;
  2. distill --students ewgs:w2a2,lsq:4 --tensorboard for 2 epochs (OUT/tensorboard/<student>/);
  3. distill without --tensorboard for 1 epoch, resumed with --tensorboard to 2 epochs.
Each run's events are loaded with TensorBoard's EventAccumulator and checked: file version 2;
every number of every metrics.jsonl line (except "step") is the scalar metrics/<key> at that
line's step, equal to the float32 of the JSON value; train/loss has one value per read-back
window (--log-every) at increasing steps; the uncommitted event of run 1 is dropped by TensorBoard
(the resumed session's SessionLog START). Exit 0 when all hold, 1 otherwise; exits 0 with a
printed reason when the tensorboard package is not installed.
"""
import json
import logging
import os
import random
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
except Exception as e:  # noqa: BLE001 (any import failure means: not installed here)
    print(f"test-tb: skipped: the tensorboard Python package cannot be imported ({e}); "
          "'make deps-py' installs it from PyPI")
    sys.exit(0)

logging.getLogger("tensorboard").setLevel(logging.ERROR)   # its note on the purge the test checks itself
BIN = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SQAKD_BIN", "build/sqakd")
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def sqakd(*args):
    r = subprocess.run([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        print(r.stdout)
        sys.exit(f"test-tb: sqakd {' '.join(args)} exited {r.returncode}")


def write_idx(img, lab, n=96, side=8, classes=3):
    rnd = random.Random(5)
    with open(img, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, side, side))
        for i in range(n):
            f.write(bytes((160 if p % 3 == i % 3 else 40) + rnd.randrange(64) for p in range(side * side)))
    with open(lab, "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        f.write(bytes(i % classes for i in range(n)))


def load(tb_dir):
    acc = ea.EventAccumulator(tb_dir, size_guidance={ea.SCALARS: 0})
    acc.Reload()
    return acc


def check_run(name, run_dir, tb_dir, first_epoch=1, windows=None):
    acc = load(tb_dir)
    check(acc.file_version == 2.0, f"{name}: file version {acc.file_version}")
    tags = set(acc.Tags()["scalars"])
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    nvals = 0
    for line in lines:
        for key, v in line.items():
            if key == "step" or not isinstance(v, (int, float)):
                continue
            tag = "metrics/" + key
            events = [e for e in acc.Scalars(tag)] if tag in tags else []
            at = [e.value for e in events if e.step == line["step"]]
            if line["epoch"] < first_epoch:
                check(not at, f"{name}: {tag} at step {line['step']} of epoch {line['epoch']}, written without --tensorboard?")
                continue
            check(len(at) == 1, f"{name}: {tag}: {len(at)} values at step {line['step']}")
            if at:
                check(at[0] == float(np.float32(v)), f"{name}: {tag} at step {line['step']}: {at[0]!r} != {v!r}")
                nvals += 1
    loss = acc.Scalars("train/loss") if "train/loss" in tags else []
    steps = [e.step for e in loss]
    check(steps == sorted(set(steps)), f"{name}: train/loss steps not increasing: {steps}")
    check(all(np.isfinite(e.value) and e.value > 0 for e in loss), f"{name}: train/loss values {[e.value for e in loss]}")
    if windows is not None:
        check(steps == windows, f"{name}: train/loss at steps {steps}, want {windows}")
    print(f"test-tb: {name}: {nvals} metrics.jsonl values over {len(lines)} epochs equal TensorBoard's scalars; "
          f"train/loss at steps {steps}")
    return acc


def event_files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("events.out.tfevents."))


def main():
    with tempfile.TemporaryDirectory(prefix="sqakd_tb_") as tmp:
        img, lab = os.path.join(tmp, "img.idx"), os.path.join(tmp, "lab.idx")
        write_idx(img, lab)
        data = f"idx:{img},{lab}"
        common = ["--batch", "16", "--threads", "1", "--holdout", "0.25", "--quiet"]
        # 1. train, then resume; 72 training images / 16 = 4 steps an epoch
        t = os.path.join(tmp, "teacher")
        sqakd("train", "--model", "smallcnn", "--data", data, "--epochs", "1", "--log-every", "2", "--tensorboard",
              "--out", t, *common)
        files = event_files(os.path.join(t, "tensorboard"))
        check(len(files) == 1, f"train: {len(files)} event files after one session")
        # an event of step 5 (epoch 2, never committed) as a killed session would leave it
        ev = event_pb2.Event(wall_time=1.0, step=5,
                             summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="train/loss",
                                                                                          simple_value=999.0)]))
        with open(files[0], "ab") as f:
            RecordWriter(f).write(ev.SerializeToString())
        check(any(e.step == 5 for e in load(os.path.join(t, "tensorboard")).Scalars("train/loss")),
              "the planted event is not read")
        sqakd("train", "--resume", t, "--epochs", "2", "--log-every", "2", "--quiet")
        check(len(event_files(os.path.join(t, "tensorboard"))) == 2, "train: one new event file per resumed session")
        acc = check_run("train + resume", t, os.path.join(t, "tensorboard"), windows=[1, 3, 4, 6, 8])
        check(all(e.value != 999.0 for e in acc.Scalars("train/loss")),
              "the uncommitted event survived the resumed session's SessionLog START")
        # 2. two students from one teacher pass, each its own TensorBoard run
        s = os.path.join(tmp, "students")
        sqakd("distill", "--teacher", os.path.join(t, "best.safetensors"), "--data", f"idx:{img}", "--students",
              "ewgs:w2a2,lsq:4", "--epochs", "2", "--log-every", "3", "--tensorboard", "--out", s, *common)
        runs = sorted(os.listdir(os.path.join(s, "tensorboard")))
        check(runs == ["ewgs_w2a2", "lsq_w4a4"], f"distill --students: TensorBoard runs {runs}")
        for r in runs:
            check_run(f"distill --students {r}", os.path.join(s, r), os.path.join(s, "tensorboard", r),
                      windows=[1, 4, 7, 8])
        # 3. TensorBoard turned on when resuming
        d = os.path.join(tmp, "late")
        sqakd("distill", "--teacher", os.path.join(t, "best.safetensors"), "--data", f"idx:{img}", "--quantizer",
              "ewgs", "--wbits", "2", "--abits", "2", "--epochs", "1", "--out", d, *common)
        check(not os.path.exists(os.path.join(d, "tensorboard")), "distill without --tensorboard wrote events")
        sqakd("distill", "--resume", d, "--epochs", "2", "--tensorboard", "--log-every", "2", "--quiet")
        check_run("distill, --tensorboard from the resume on", d, os.path.join(d, "tensorboard"), first_epoch=2,
                  windows=[6, 8])
    if failures:
        print(f"test-tb: {len(failures)} failures")
        return 1
    print("test-tb: all event files read back by tensorboard", getattr(sys.modules.get("tensorboard"), "__version__", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
