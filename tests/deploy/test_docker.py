"""Docker cannot run on this machine, so the Dockerfiles are checked statically: every COPY/ADD source
exists and survives the .dockerignore, every command they run exists (console scripts, pip extras, the
pinned torch and the embedded model's carrier package), and the entrypoint script, run with a stand-in
`presso`, issues command lines that presso's own argument parser accepts.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python >= 3.11")

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cuda"]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def copies(path: Path) -> list[tuple[list[str], str]]:
    out = []
    for word, rest in instructions(path):
        if word in ("COPY", "ADD"):
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            out.append((args[:-1], args[-1]))
    return out


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_are_not_ignored(path: Path):
    ignore = (path.parent / f"{path.name}.dockerignore").read_text().splitlines()
    reincluded = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the ignore file should start from nothing and re-include what is copied"
    for sources, _ in copies(path):
        for src in sources:
            assert (REPO / src).exists(), f"{path.name}: COPY source {src} is missing"
            assert src.rstrip("/") in reincluded, f"{path.name}: {src} is excluded by the .dockerignore"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_commands_and_packages_exist(path: Path):
    text = " ".join(rest for _, rest in instructions(path))
    project = pyproject()
    for extras in re.findall(r'"\.\[([a-z,]+)\]"', text):
        for extra in extras.split(","):
            assert extra in project["project"]["optional-dependencies"], f"{path.name}: no extra {extra!r}"
    from presso.compression.models.registry import EMBEDDED_MODELS

    carriers = {m.pip_requirement for m in EMBEDDED_MODELS.values()}
    assert set(re.findall(r"llm-[a-z0-9]+==[0-9.]+", text)) <= carriers and carriers & set(text.split())
    locked_torch = re.search(r"^torch==(\S+?)(\+cpu)? ", (REPO / "locks/torch-cpu.txt").read_text(), re.M)[1]
    assert f"TORCH_VERSION={locked_torch}" in text, "the image's torch differs from locks/torch-cpu.txt"
    # every locked install checks hashes and resolves nothing
    locked = re.findall(r"pip install ([^&]*?-r locks/[^&]*)", text)
    assert locked and all("--require-hashes" in cmd and "--no-deps" in cmd for cmd in locked), locked
    assert "-r locks/serve.txt" in text and "--no-build-isolation ." in text
    if path.name == "Dockerfile":
        assert "-r locks/torch-cpu.txt" in text
    destinations = {dst for _, dst in copies(path)}
    entry = next(rest for word, rest in instructions(path) if word == "ENTRYPOINT")
    assert f"/usr/local/bin/{shlex.split(entry.strip('[]').replace(',', ' '))[0]}" in destinations
    assert "presso" in project["project"]["scripts"] and "presso-loadtest" in project["project"]["scripts"]
    health = next(rest for word, rest in instructions(path) if word == "HEALTHCHECK")
    assert "/health" in health and '"/health"' in (REPO / "server/api/app.py").read_text()
    assert any(w == "USER" and r != "root" for w, r in instructions(path)), "the image must not run as root"
    assert ("VOLUME", '["/models"]') in instructions(path)


def test_entrypoint_is_an_executable_posix_script():
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)]).returncode == 0


@pytest.fixture
def fake_presso(tmp_path) -> tuple[Path, dict]:
    """A stand-in `presso` that logs its argv; `pull` prints a dir, `compress` creates --out."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "presso"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/calls
case "$1" in
  pull) echo {tmp_path}/pulled ;;
  compress) while [ "$#" -gt 0 ]; do [ "$1" = --out ] && mkdir -p "$2" && touch "$2/config.json"; shift; done ;;
esac
""")
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PRESSO_MODEL_DIR": str(tmp_path / "m" / "served")}
    (tmp_path / "m").mkdir()
    return tmp_path, env


def test_entrypoint_compresses_once_then_serves(fake_presso):
    from presso.server.cli import build_parser

    tmp, env = fake_presso
    for _ in range(2):
        done = subprocess.run(["sh", str(ENTRYPOINT), "compress-once"], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert "nothing to compress" in done.stdout
    done = subprocess.run(["sh", str(ENTRYPOINT), "serve", "--max-num-seqs", "8"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls = [shlex.split(line) for line in (tmp / "calls").read_text().splitlines()]
    assert [c[0] for c in calls] == ["pull", "compress", "serve"], calls
    assert calls[1][calls[1].index("--recipe") + 1] == "w8" and calls[1][calls[1].index("--model") + 1] == f"{tmp}/pulled"
    assert calls[2][:7] == ["serve", "--model", env["PRESSO_MODEL_DIR"], "--host", "0.0.0.0", "--port", "8000"]
    for call in calls:
        build_parser().parse_args(call)  # exits (status 2) on any flag presso does not have
    assert sorted(p.name for p in (tmp / "m").iterdir()) == ["served"], "the temp dir was not renamed"


def test_copied_files_build_the_wheel_the_image_installs(tmp_path):
    """Only what the Dockerfile COPYs (to its WORKDIR) goes into the build: it must give both packages."""
    context = tmp_path / "ctx"
    for sources, dst in copies(DOCKERFILES[0]):
        if dst.startswith("/"):
            continue  # the entrypoint goes to /usr/local/bin, outside the build
        for src in sources:
            target = context / dst / (Path(src).name if dst.endswith("/") else "")
            if (REPO / src).is_dir():
                shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / src, target)
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "w")]
    done = subprocess.run(cmd, cwd=context, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = zipfile.ZipFile(next((tmp_path / "w").glob("presso-*.whl")))
    tops = {name.split("/")[0] + ("/" + name.split("/")[1] if name.startswith("presso/") else "") for name in wheel.namelist()}
    assert {"presso/server", "presso/kernels", "presso/compression", "loadtest"} <= tops, tops
    assert not {"server", "kernels", "compression"} & tops
    entry_points = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    scripts = wheel.read(entry_points).decode()
    assert "presso = presso.server.cli:main" in scripts and "presso-loadtest = loadtest.cli:main" in scripts
