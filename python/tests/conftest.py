"""Fixtures of the sqakd package's tests: small synthetic image arrays, a teacher trained on them
and a label-free student distilled from it (once per session), and the sqakd executable to
compare with ($SQAKD_BIN, else the installed console script)."""
import os
import shutil
import sys

import numpy as np
import pytest

import sqakd


def make_arrays(n, seed):
    """n labelled 1x16x16 uint8 images of 3 classes: class k brightens a band of rows (where it
    lies varies), over noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 90, (n, 1, 16, 16)).astype(np.uint8)
    for i in range(n):
        r0 = int(y[i]) * 5 + int(rng.integers(0, 2))
        x[i, 0, r0:r0 + 4, :] += 120
    return x, y


@pytest.fixture(scope="session")
def arrays():
    return make_arrays(192, 1)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("sqakd_py")


@pytest.fixture(scope="session")
def teacher(arrays, workdir):
    """A full-precision smallcnn trained with labels on the arrays: the Run."""
    x, y = arrays
    return sqakd.train(data=(x, y), model="smallcnn", epochs=2, batch=32, lr=0.05, threads=2, quiet=True,
                       out=workdir / "teacher")


@pytest.fixture(scope="session")
def student(arrays, teacher, workdir):
    """An ewgs W2A2 student distilled from the teacher on the images alone (no labels): the Run."""
    x, _ = arrays
    return sqakd.distill(teacher.best, x, quantizer="ewgs", wbits=2, abits=2, epochs=1, batch=32, threads=2,
                         out=workdir / "student")


@pytest.fixture(scope="session")
def cli():
    """The sqakd executable: $SQAKD_BIN (the one `make` built), else the console script beside
    this Python."""
    exe = os.environ.get("SQAKD_BIN") or shutil.which("sqakd", path=os.path.dirname(sys.executable))
    if not exe:
        pytest.skip("no sqakd executable (set SQAKD_BIN)")
    return exe
