"""libsqakd.so through ctypes (include/sqakd/api.h), the exception type, and running one command
line in-process with its output captured."""
import ctypes
import os
import re
import sys
import tempfile
import threading

API_VERSION = 1  # SQ_API_VERSION of include/sqakd/api.h

_HERE = os.path.dirname(os.path.abspath(__file__))

# one call into the library at a time (run directories, the backend and the redirected output
# descriptors are process-wide); re-entrant for the progress pump's own writes
LOCK = threading.RLock()


class SqakdError(RuntimeError):
    """A command failed. str(e) is the CLI's one error line ("sqakd CMD: message"); e.status is its
    exit status (2: bad input, 1: the run failed, 3: unsupported ONNX); e.log what it printed on
    stderr."""

    def __init__(self, message, status=2, command=None, log=""):
        super().__init__(message)
        self.status = status
        self.command = command
        self.log = log


def _load():
    # SQAKD_LIBRARY: a library built elsewhere (development: make lib-so, then point here)
    path = os.environ.get("SQAKD_LIBRARY") or os.path.join(_HERE, "libsqakd.so")
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"sqakd: cannot load {path}: {e} (install the package with pip, which builds it, "
                          "or set SQAKD_LIBRARY to a libsqakd.so from 'make lib-so')") from None
    c_int, c_char_p, c_void_p = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
    fp = ctypes.POINTER(ctypes.c_float)
    ip = ctypes.POINTER(ctypes.c_int)
    sig = {
        "sq_api_version": (c_int, []),
        "sq_api_version_string": (c_char_p, []),
        "sq_api_backends": (c_char_p, []),
        "sq_api_run": (c_int, [c_int, ctypes.POINTER(c_char_p)]),
        "sq_api_last_error": (c_char_p, []),
        "sq_api_model_open": (c_void_p, [c_char_p, c_char_p, c_int, c_int, c_int, c_int, c_int]),
        "sq_api_model_shape": (None, [c_void_p, ip, ip, ip, ip]),
        "sq_api_model_describe": (c_char_p, [c_void_p]),
        "sq_api_model_forward": (c_int, [c_void_p, fp, ctypes.c_longlong, fp]),
        "sq_api_model_close": (None, [c_void_p]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    got = lib.sq_api_version()
    if got != API_VERSION:
        raise ImportError(f"sqakd: {path} has C API version {got}, this package needs {API_VERSION}: reinstall it")
    return lib, path


lib, LIBRARY_PATH = _load()


def last_error():
    return (lib.sq_api_last_error() or b"").decode("utf-8", "replace")


def _argv(args):
    enc = [a.encode() if isinstance(a, str) else bytes(a) for a in args]
    arr = (ctypes.c_char_p * (len(enc) + 1))(*enc, None)
    return len(enc), arr


def run_inprocess(args):
    """sq_api_run on ["sqakd", *args] with stdout and stderr left as they are (the console entry
    point): the exit status."""
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
    n, arr = _argv(["sqakd", *args])
    with LOCK:
        return lib.sq_api_run(n, arr)


class _Capture:
    """Redirects file descriptors 1 and 2 around a call into the library. stdout goes to a
    temporary file (read back afterwards); stderr goes through a pipe that a thread drains as it
    comes, keeping the text and, with echo, passing it on at once to where this process's stderr
    goes (sys.stderr in a notebook or under pytest), so progress lines show while a run lasts."""

    def __init__(self, echo):
        self.echo = echo
        self.stdout = ""
        self.stderr = ""
        self._chunks = []

    def __enter__(self):
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:
                pass
        self._py_err = sys.stderr
        try:
            self._err_is_fd2 = self._py_err is not None and self._py_err.fileno() == 2
        except Exception:
            self._err_is_fd2 = False
        self._saved_out = os.dup(1)
        self._saved_err = os.dup(2)
        self._out = tempfile.TemporaryFile()
        r, w = os.pipe()
        os.dup2(self._out.fileno(), 1)
        os.dup2(w, 2)
        os.close(w)
        self._thread = threading.Thread(target=self._pump, args=(r,), daemon=True)
        self._thread.start()
        return self

    def _emit(self, data):
        try:
            if self._err_is_fd2:
                os.write(self._saved_err, data)   # fd 2 itself is the pipe now
            elif self._py_err is not None:
                self._py_err.write(data.decode("utf-8", "replace"))
                self._py_err.flush()
        except Exception:
            pass

    def _pump(self, r):
        while True:
            try:
                data = os.read(r, 65536)
            except InterruptedError:
                continue
            if not data:
                break
            self._chunks.append(data)
            if self.echo:
                self._emit(data)
        os.close(r)

    def __exit__(self, *exc):
        os.dup2(self._saved_out, 1)
        os.dup2(self._saved_err, 2)   # closes the pipe's write end: the pump sees its end
        self._thread.join()
        os.close(self._saved_out)
        os.close(self._saved_err)
        self._out.seek(0)
        self.stdout = self._out.read().decode("utf-8", "replace")
        self._out.close()
        self.stderr = b"".join(self._chunks).decode("utf-8", "replace")
        return False


_ERROR_LINE = re.compile(r"^sqakd(?: [A-Za-z][\w-]*)?: ")


def error_line(stderr, command, status):
    """The CLI's error line: the last line of stderr that starts with "sqakd" (the command prints
    its failure last)."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    for l in reversed(lines):
        if _ERROR_LINE.match(l):
            return l
    if lines:
        return lines[-1]
    return f"sqakd {command}: failed with exit status {status}"


def run_captured(args, echo_stdout=True, echo_stderr=True, check=True):
    """Runs ["sqakd", *args] in-process: (status, stdout, stderr). stdout is passed on to
    sys.stdout afterwards when echo_stdout; stderr as it comes when echo_stderr. A non-zero status
    raises SqakdError with the CLI's error line when check."""
    n, arr = _argv(["sqakd", *args])
    with LOCK:
        cap = _Capture(echo_stderr)
        with cap:
            status = lib.sq_api_run(n, arr)
    if echo_stdout and cap.stdout:
        sys.stdout.write(cap.stdout)
        sys.stdout.flush()
    if check and status != 0:
        cmd = args[0] if args else ""
        raise SqakdError(error_line(cap.stderr, cmd, status), status, cmd, cap.stderr)
    return status, cap.stdout, cap.stderr
