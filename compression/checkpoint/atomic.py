"""Write a checkpoint directory all-or-nothing: build it in a hidden temp dir, then rename it.

An exception or interrupt inside the block removes the temp dir, so a failed run leaves no checkpoint;
a killed process leaves at most a hidden `.NAME.tmp-*` sibling, never a half-written NAME.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError


def check_output_dir(target: Path) -> Path:
    target = Path(target).expanduser()
    if target.exists():
        raise PressoInputError(f"output directory already exists: {target} (choose a new --out)")
    return target


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    target = check_output_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        check_output_dir(target)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def replacing_directory(target: Path) -> Iterator[Path]:
    """Like atomic_directory, but an existing `target` (a dataset pulled before) is replaced by the new one."""
    target = Path(target).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
