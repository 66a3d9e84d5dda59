"""The `sqakd` console entry point (and `python -m sqakd`): the same command line as the
executable, run in-process by the library (sq_cli_main)."""
import signal
import sys


def main(argv=None):
    from . import _lib
    args = list(sys.argv[1:] if argv is None else argv)
    # as the executable: Ctrl-C stops the command, a closed pipe ends it quietly
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return _lib.run_inprocess(args)


if __name__ == "__main__":
    sys.exit(main())
