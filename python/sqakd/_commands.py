"""The CLI's commands as functions: keyword arguments are the command's flags with Python names
(name_with_underscores -> --name-with-dashes; True -> a flag given, False/None -> left out;
lists -> comma-separated), checked against the command's own flag table (its --help), so an
unknown or misspelt keyword is a TypeError before anything runs. Data may be a SPEC string or
numpy arrays (images, or (images, labels)), which are written to a temporary directory as .npy
files and passed as the npy: spec."""
import difflib
import json
import os
import re
import shutil
import tempfile

from . import _lib
from ._lib import SqakdError

_FLAG_LINE = re.compile(r"^  (--[A-Za-z0-9][\w-]*)(?: ([A-Z]))?(?:\s|$)")
_specs = {}


def flags(command):
    """The flags `sqakd COMMAND` takes: {"--epochs": "N", "--quiet": None, ...} (the value's
    letter from --help: N integer, X number, S string; None for a flag without a value)."""
    if command not in _specs:
        status, out, err = _lib.run_captured([*command.split(), "--help"], echo_stdout=False,
                                             echo_stderr=False, check=False)
        spec = {}
        in_options = False
        for line in out.splitlines():
            if line.strip() == "options:":   # the flag table follows the usage text
                in_options = True
                continue
            m = _FLAG_LINE.match(line) if in_options else None
            if m and m.group(1) != "--help":
                spec[m.group(1)] = m.group(2)
        if status != 0 or not spec:
            raise SqakdError(_lib.error_line(err, command, status) if status else
                             f"sqakd {command}: no flags found in its --help", status or 2, command, err)
        _specs[command] = spec
    return _specs[command]


def _value(v):
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if isinstance(v, (list, tuple)):
        return ",".join(_value(x) for x in v)
    return str(v)


def to_argv(command, kwargs, func=None):
    """The flags of kwargs as argv words, checked against the command's flag table."""
    spec = flags(command)
    func = func or command
    argv = []
    for key, v in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if flag not in spec:
            names = [f[2:].replace("-", "_") for f in spec]
            near = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {near[0]}=?" if near else ""
            raise TypeError(f"sqakd.{func}() got an unexpected keyword argument '{key}' ('sqakd {command}' has no "
                            f"{flag}{hint} sqakd.flags('{command}') lists them)")
        if v is None:
            continue
        if spec[flag] is None:
            if not isinstance(v, bool):
                raise TypeError(f"sqakd.{func}(): {key} is a switch ({flag}): pass True or False, not {v!r}")
            if v:
                argv.append(flag)
        else:
            if isinstance(v, bool):
                raise TypeError(f"sqakd.{func}(): {key} ({flag}) takes a value, not {v!r}")
            argv += [flag, _value(v)]
    return argv


class _Data:
    """A data argument as a SPEC: strings pass through; arrays are saved as .npy files in a
    temporary directory that lives until the call returns."""

    def __init__(self, data):
        self.data = data
        self.dir = None
        self.is_arrays = False

    def __enter__(self):
        d = self.data
        if d is None or isinstance(d, (str, os.PathLike)):
            return d if d is None else os.fspath(d)
        import numpy as np
        if isinstance(d, tuple) and len(d) == 2:
            images, labels = d
        elif isinstance(d, np.ndarray):
            images, labels = d, None
        else:
            raise TypeError("data must be a SPEC string (fashion-mnist, cifar10:DIR, folder:DIR, npy:X.npy[,Y.npy], "
                            f"...), a numpy array of images, or a tuple (images, labels); got {type(d).__name__}")
        images = np.asarray(images)
        if images.dtype.kind == "f" and images.dtype != np.float32:
            images = images.astype(np.float32)
        self.dir = tempfile.mkdtemp(prefix="sqakd_data_")
        if "," in self.dir:
            raise ValueError(f"temporary directory {self.dir} holds a comma, which a data SPEC cannot: set TMPDIR")
        self.is_arrays = True
        x = os.path.join(self.dir, "images.npy")
        np.save(x, np.ascontiguousarray(images))
        if labels is None:
            return "npy:" + x
        y = os.path.join(self.dir, "labels.npy")
        np.save(y, np.ascontiguousarray(np.asarray(labels)))
        return f"npy:{x},{y}"

    def __exit__(self, *exc):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


class Run:
    """What train and distill leave: the run directory and what was printed."""

    def __init__(self, command, out, stdout, log):
        self.command = command
        self.out = out          # the run directory (None when it could not be told)
        self.stdout = stdout
        self.log = log          # what the run printed on stderr

    def _file(self, name):
        return None if self.out is None else os.path.join(self.out, name)

    @property
    def best(self):
        """best.safetensors of the run (the best epoch's checkpoint)."""
        return self._file("best.safetensors")

    @property
    def last(self):
        return self._file("last.safetensors")

    @property
    def metrics(self):
        """metrics.jsonl as a list of dicts, one per epoch."""
        p = self._file("metrics.jsonl")
        if p is None or not os.path.exists(p):
            return []
        with open(p) as f:
            return [json.loads(l) for l in f if l.strip()]

    def __repr__(self):
        return f"Run({self.command!r}, out={self.out!r})"


# without out=, the command chooses runs/<command>-<date>-<time>/ and says so in one line (printed
# even with quiet=True); its "done; ... in DIR/" line says it again
_CHOSEN = re.compile(r"^sqakd \w+: no --out given: this run goes to (.+)/$", re.M)
_DONE = re.compile(r"^sqakd \w+: done; .* in (.+)/$", re.M)


def _run_dir(kwargs, log):
    out = kwargs.get("out") or kwargs.get("resume")
    if out:
        return os.fspath(out)
    m = _CHOSEN.findall(log) or _DONE.findall(log)
    return m[-1] if m else None


def run(args, check=True, echo=True):
    """Runs a command line in-process, e.g. sqakd.run(["models"]) or sqakd.run("eval m.safetensors
    --data fashion-mnist".split()): (status, stdout, stderr). Raises SqakdError on a non-zero
    status when check."""
    if isinstance(args, str):
        raise TypeError("sqakd.run() takes a list of arguments, e.g. ['eval', 'model.safetensors', '--json']")
    from ._cli import with_job_executable
    args = with_job_executable([_value(a) for a in args])
    return _lib.run_captured(args, echo_stdout=echo, echo_stderr=echo, check=check)


def _train_like(command, func, data, kwargs):
    argv = to_argv(command, kwargs, func)   # checked before the data is written
    with _Data(data) as spec:
        if spec is not None:
            argv += ["--data", spec]
        _, out, err = _lib.run_captured([command, *argv])
    return Run(command, _run_dir(kwargs, err), out, err)


def train(data=None, **kwargs):
    """sqakd train: a full-precision model (a teacher) trained with labels.
    sqakd.train(data=(images, labels), model="smallcnn", epochs=5, out="runs/t") -> Run"""
    return _train_like("train", "train", data, kwargs)


def distill(teacher=None, data=None, **kwargs):
    """sqakd distill: a low-bit student from a teacher without labels (SQAKD).
    sqakd.distill("runs/t/best.safetensors", images, quantizer="ewgs", wbits=2, abits=2, out="runs/s") -> Run"""
    if teacher is not None:
        kwargs["teacher"] = teacher
    return _train_like("distill", "distill", data, kwargs)


def evaluate(model, data=None, **kwargs):
    """sqakd eval --json: {"top1": ..., "top5": ..., "per_class": [...], "agreement": ..., "kl": ..., "n": ...}
    (agreement and kl with teacher=...; top1/top5 None without labels). Arrays are evaluated as
    given (split "train": the npy: spec's only split)."""
    if "json" in kwargs:
        raise TypeError("sqakd.evaluate() always asks for JSON; leave json= out")
    argv = to_argv("eval", kwargs, "evaluate")
    data_arg = _Data(data)
    with data_arg as spec:
        if spec is not None:
            argv += ["--data", spec]
        if data_arg.is_arrays and "split" not in kwargs:
            argv += ["--split", "train"]
        _, out, _ = _lib.run_captured(["eval", _value(model), *argv, "--json"], echo_stdout=False)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if not lines:
        raise SqakdError(f"sqakd eval: no JSON result in its output: {out.strip()[:200]}", 1, "eval", "")
    res = json.loads(lines[-1])
    if data_arg.is_arrays:
        res["data"] = "numpy arrays"
    return res


def export(checkpoint, onnx=None, **kwargs):
    """sqakd export: the checkpoint as ONNX (plain, or QDQ for a quantized student), or with
    format="int", out=PATH as packed integer codes. Returns the path written."""
    if onnx is not None:
        kwargs["onnx"] = onnx
    argv = to_argv("export", kwargs, "export")
    _lib.run_captured(["export", _value(checkpoint), *argv], echo_stdout=False)
    return _value(kwargs.get("onnx") or kwargs.get("out"))


def import_onnx(path, out, **kwargs):
    """sqakd import: an ONNX model converted into an sqakd checkpoint at out (returned)."""
    kwargs["out"] = out
    argv = to_argv("import", kwargs, "import_onnx")
    _lib.run_captured(["import", _value(path), *argv])
    return _value(out)


def infer(model, x, **kwargs):
    """sqakd infer on a numpy array (N x C x H x W float32; pixels in [0, 1] for a checkpoint):
    the outputs as a numpy array. Model.load(path).forward(x) does the same without files."""
    import numpy as np
    for k in ("input", "out"):
        if k in kwargs:
            raise TypeError(f"sqakd.infer() writes and reads the tensors itself; leave {k}= out")
    argv = to_argv("infer", kwargs, "infer")
    d = tempfile.mkdtemp(prefix="sqakd_infer_")
    try:
        xi, yo = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(xi, np.ascontiguousarray(np.asarray(x, dtype=np.float32)))
        _lib.run_captured(["infer", _value(model), "--input", xi, "--out", yo, *argv])
        return np.load(yo)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def info(path, **kwargs):
    """sqakd info: the metadata, tensors and graph of a checkpoint or ONNX file, as text."""
    argv = to_argv("info", kwargs, "info")
    return _lib.run_captured(["info", _value(path), *argv], echo_stdout=False)[1]


def models():
    """sqakd models: the built-in architectures, as text."""
    return _lib.run_captured(["models"], echo_stdout=False)[1]


def sweep(**kwargs):
    """sqakd sweep: quantizers x bit-widths x seeds from one teacher (locally, or --slurm)."""
    if kwargs.get("slurm") and not kwargs.get("bin"):
        from ._cli import console_script
        kwargs["bin"] = console_script()   # the jobs' executable: not this Python (see _cli.with_job_executable)
        if not kwargs["bin"]:
            raise TypeError("sqakd.sweep(slurm=True) needs bin= (the sqakd executable the jobs run): no sqakd "
                            "console script was found")
    argv = to_argv("sweep", kwargs, "sweep")
    _, out, err = _lib.run_captured(["sweep", *argv])
    return Run("sweep", _value(kwargs["out"]) if kwargs.get("out") else None, out, err)


def report(directory, **kwargs):
    """sqakd report: a sweep's results (report.md, report.csv, the plot) in its directory."""
    argv = to_argv("report", kwargs, "report")
    return _lib.run_captured(["report", _value(directory), *argv])[1]


def version():
    """What `sqakd --version` says first: "sqakd X.Y.Z (git COMMIT)"."""
    return _lib.lib.sq_api_version_string().decode()


def backends():
    """The backends compiled into the library."""
    return _lib.lib.sq_api_backends().decode()
