"""Builds a native CPU kernel (a C file of this folder) with the system compiler on first use and loads it.

The shared library is cached as $PRESSO_HOME/native/<name>-<key>.so, the key hashing the source, the flags
and this CPU's feature flags (the code is built for this CPU: -march=native). It is compiled into a temp
file and renamed into place, so a concurrent process never loads a half-written library. It links
OpenMP by soname (libgomp.so.1): loaded after torch, it shares torch's runtime and thread pool instead of
starting a second one. No compiler, a failed build or PRESSO_NATIVE_KERNELS=0: None, logged once, and
the callers keep their torch paths.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch  # noqa: F401  (loaded first: its libgomp is the one the kernels bind to)

from presso.kernels import envs

log = logging.getLogger(__name__)

# -fassociative-math lets the dot products vectorize; no -ffinite-math-only: masked scores are -inf.
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fassociative-math", "-fno-signed-zeros",
         "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def _compile(source: Path, target: Path) -> None:
    compiler = shutil.which(envs.c_compiler())
    if compiler is None:
        raise OSError(f"no C compiler ({envs.c_compiler()!r} not on PATH)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([compiler, *FLAGS, str(source), "-o", tmp, "-lm"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(f"{compiler} failed: {proc.stderr.strip()[-800:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@cache
def library(name: str) -> ctypes.CDLL | None:
    """The loaded library built from `<name>.c`, or None when native kernels are off or cannot be built."""
    if not envs.native_kernels():
        return None
    source = Path(__file__).with_name(f"{name}.c")
    key = hashlib.sha256("\0".join([source.read_text(), *FLAGS, _cpu_flags()]).encode()).hexdigest()[:16]
    target = envs.presso_home() / "native" / f"{name}-{key}.so"
    try:
        if not target.exists():
            _compile(source, target)
        return ctypes.CDLL(str(target))
    except OSError as exc:
        log.warning("native kernel %s unavailable, using the torch path: %s", name, exc)
        return None
