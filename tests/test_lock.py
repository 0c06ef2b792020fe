"""The lock files (locks/) against pyproject.toml's ranges and against the venv `make` built.

`make lock` writes locks/ with uv; these tests fail when someone edits pyproject.toml without
re-locking, when a pin lost its hash, or when the make venv drifted from the lock.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _load_pins():
    spec = importlib.util.spec_from_file_location("lock_pins", ROOT / "locks" / "pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pins = _load_pins()


def _requirements(extras: list[str]) -> list[Requirement]:
    """pyproject's own requirements for the given extras, self-references (presso[...]) expanded."""
    project = PYPROJECT["project"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            req = Requirement(text)
            if req.name == "presso":
                todo += sorted(req.extras)
            else:
                out.append(req)
    return out


def _assert_satisfied(requirements: list[Requirement], locked: dict[str, str], lock_name: str):
    problems = []
    for req in requirements:
        version = locked.get(pins.normalize(req.name))
        if version is None:
            problems.append(f"{req.name}: not in {lock_name}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}: {lock_name} pins {version}, pyproject wants {req.specifier}")
    assert not problems, "pyproject.toml and locks/ disagree (run `make lock`): " + "; ".join(problems)


def test_dev_lock_satisfies_pyproject():
    locked = {**pins.read_pins(ROOT / "locks/dev.txt"), **pins.read_pins(ROOT / "locks/torch-cpu.txt")}
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    _assert_satisfied(_requirements(["dev"]) + build, locked, "dev.txt/torch-cpu.txt")


def test_serve_lock_satisfies_pyproject_and_matches_dev():
    serve = pins.read_pins(ROOT / "locks/serve.txt")
    locked = {**serve, **pins.read_pins(ROOT / "locks/torch-cpu.txt")}
    build = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    _assert_satisfied(_requirements(["server", "compress"]) + build, locked, "serve.txt")
    dev = pins.read_pins(ROOT / "locks/dev.txt")
    differ = {name: (v, dev.get(name)) for name, v in serve.items() if dev.get(name) != v}
    assert not differ, f"serve.txt must pin dev.txt's versions: {differ}"
    assert "torch" not in serve and "torch" not in dev, "torch lives in locks/torch-cpu.txt alone"


def test_gpu_lock_satisfies_pyproject():
    gpu = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["gpu"]]
    _assert_satisfied(gpu, pins.read_pins(ROOT / "locks/gpu.txt"), "gpu.txt")


def test_torch_lock_is_the_cpu_wheel_alone():
    assert list(pins.read_pins(ROOT / "locks/torch-cpu.txt")) == ["torch"]
    assert pins.read_pins(ROOT / "locks/torch-cpu.txt")["torch"].endswith("+cpu")


def test_embedded_model_pin_matches_registry():
    from presso.compression.models.registry import EMBEDDED_MODELS

    locked = pins.read_pins(ROOT / "locks/embedded.txt")
    for entry in EMBEDDED_MODELS.values():
        req = Requirement(entry.pip_requirement)
        assert locked.get(pins.normalize(req.name)) == str(req.specifier).removeprefix("==")


def test_unhashed_pin_is_rejected(tmp_path):
    lock = tmp_path / "x.txt"
    lock.write_text("a==1 \\\n    --hash=sha256:00\nb==2\n    # via a\n")
    with pytest.raises(ValueError, match="b"):
        pins.read_pins(lock)


@pytest.mark.skipif(Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
                    reason="checks the venv `make` builds from the lock (this is another environment)")
def test_make_venv_equals_the_lock():
    changes = pins.diff(pins.make_pins(), pins.installed())
    assert not changes, "the venv differs from locks/ (rebuild it: rm -rf .venv && make venv): " + "; ".join(changes)


def test_no_pin_is_loose_in_the_makefile():
    """Every pip install in the Makefile's set-up path reads a lock with --require-hashes."""
    makefile = (ROOT / "Makefile").read_text()
    setup = makefile[makefile.index("$(DEPS):"):makefile.index("venv: $(STAMP)")]
    installs = [line for line in setup.splitlines() if "pip install" in line or "$(PIP_LOCKED)" in line]
    assert installs and all(re.search(r"PIP_LOCKED|--no-deps --no-build-isolation -e \.", i) for i in installs)
