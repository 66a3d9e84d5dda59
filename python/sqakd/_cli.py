"""The `sqakd` console entry point (and `python -m sqakd`): the same command line as the
executable, run in-process by the library (sq_cli_main)."""
import os
import shutil
import signal
import sys


def console_script():
    """The path of the installed `sqakd` console script (beside this Python, else on PATH), or
    None."""
    here = os.path.join(os.path.dirname(sys.executable), "sqakd")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("sqakd")


def with_job_executable(args):
    """`sweep --slurm` writes job scripts that run the executable it finds in /proc/self/exe,
    which in-process is the Python interpreter: unless --bin is given, the console script is
    named instead."""
    if args and args[0] == "sweep" and "--slurm" in args and not any(a == "--bin" or a.startswith("--bin=")
                                                                     for a in args):
        exe = console_script()
        if exe:
            return [*args, "--bin", exe]
    return args


def main(argv=None):
    from . import _lib
    args = with_job_executable(list(sys.argv[1:] if argv is None else argv))
    # as the executable: Ctrl-C stops the command, a closed pipe ends it quietly
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return _lib.run_inprocess(args)


if __name__ == "__main__":
    sys.exit(main())
