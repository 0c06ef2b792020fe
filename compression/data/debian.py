"""Debian packages as data sources: one pinned .deb (name, version, sha256) downloaded and unpacked.

pin -> `apt-get download NAME=VERSION` into a work dir (the machine's configured Debian mirrors) ->
sha256 of the .deb checked against the pin -> `dpkg-deb -x` into a folder the caller reads files from.
A pin that the mirrors no longer carry (Debian replaces point-release versions) fails with one line
that names the pin to update (compression/data/sources.py).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError


@dataclass(frozen=True, slots=True)
class DebianPin:
    package: str
    version: str
    sha256: str  # of the .deb file
    license: str  # of the text we read from it (from the package's copyright file)


def _require_tools(what: str) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise PressoInputError(f"presso data pull {what} needs apt-get and dpkg-deb (a Debian-based machine)")


def _apt_download(spec: str, work_dir: Path) -> None:
    cmd = ["apt-get", "download", spec]
    result = subprocess.run(cmd, cwd=work_dir, capture_output=True, text=True)
    if result.returncode != 0:
        # A fresh container may have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        result = subprocess.run(cmd, cwd=work_dir, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PressoInputError(f"apt-get download {spec} failed: {last} (update the pin in "
                               "presso/compression/data/sources.py if Debian dropped this version)")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_deb(pin: DebianPin, work_dir: Path, what: str) -> Path:
    """Download the pinned .deb into work_dir, check its sha256 and unpack it -> the unpacked root."""
    _require_tools(what)
    _apt_download(f"{pin.package}={pin.version}", work_dir)
    debs = sorted(work_dir.glob(f"{pin.package}_*.deb"))
    if not debs:
        raise PressoInputError(f"apt-get download {pin.package}={pin.version} wrote no .deb")
    got = sha256_file(debs[-1])
    if got != pin.sha256:
        raise PressoInputError(f"{debs[-1].name}: sha256 {got} differs from the pinned {pin.sha256}")
    root = work_dir / f"x-{pin.package}"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    return root
