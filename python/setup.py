"""Build of the sqakd Python package: runs the repository's Makefile (`make lib-so`) for
libsqakd.so and ships it inside the package, which loads it with ctypes.

Knobs (environment of the build, not of the library):
  SQAKD_BUILD      the Makefile's BUILD directory (default: <repository>/build)
  SQAKD_CUDA=0     build the library without the CUDA backend even where nvcc is found
  SQAKD_MAKE_JOBS  parallel make jobs (default: the CPUs this process may use)
"""
import os
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _version():
    with open(os.path.join(ROOT, "VERSION")) as f:
        return f.read().strip()


_BUILD = os.environ.get("SQAKD_BUILD") or os.path.join(ROOT, "build")


def _egg_base():
    d = os.path.join(_BUILD, "python-setuptools")
    os.makedirs(d, exist_ok=True)
    return d


def _make_args():
    if not os.path.isfile(os.path.join(ROOT, "Makefile")):
        raise SystemExit("sqakd: build the package from a checkout of the repository (python/ beside the Makefile)")
    args = ["make", "-C", ROOT, "--no-print-directory", "BUILD=" + _BUILD]
    if os.environ.get("SQAKD_CUDA") == "0":
        args.append("CUDA=0")
    return args


def build_library():
    """Builds libsqakd.so (nothing when it is up to date) and returns its path."""
    args = _make_args()
    jobs = os.environ.get("SQAKD_MAKE_JOBS") or str(len(os.sched_getaffinity(0)))
    subprocess.run(args + ["-j" + jobs, "lib-so"], check=True)
    out = subprocess.run(args + ["-s", "lib-so-path"], check=True, capture_output=True, text=True).stdout
    path = out.strip().splitlines()[-1]
    if not os.path.isfile(path):
        raise SystemExit("sqakd: make lib-so did not produce " + path)
    return path


class BuildPyWithLibrary(build_py):
    """build_py, plus libsqakd.so copied into the package."""

    def run(self):
        super().run()
        lib = build_library()
        dst = os.path.join(self.build_lib, "sqakd")
        os.makedirs(dst, exist_ok=True)
        shutil.copy2(lib, os.path.join(dst, "libsqakd.so"))


class BinaryDistribution(Distribution):
    """The package holds a native library: built and installed as platform-specific."""

    def has_ext_modules(self):
        return True


cmdclass = {"build_py": BuildPyWithLibrary}
try:  # tagged for this platform, any Python 3 (ctypes, no extension module)
    from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        def get_tag(self):
            return "py3", "none", super().get_tag()[2]

    cmdclass["bdist_wheel"] = PlatformWheel
except ImportError:
    pass

setup(
    version=_version(),
    packages=["sqakd"],
    cmdclass=cmdclass,
    distclass=BinaryDistribution,
    # setuptools' scratch files go under the repository's build directory, not into python/
    options={"build": {"build_base": os.path.join(_BUILD, "python-setuptools")},
             "egg_info": {"egg_base": _egg_base()}},
)
