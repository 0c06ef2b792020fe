"""Repository rules no unit test would otherwise catch: import names, import contracts, file sizes."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "kernels", "compression")


@pytest.mark.parametrize("name", PACKAGES)
def test_no_top_level_module(name, tmp_path):
    for cwd in (tmp_path, ROOT):  # from anywhere, and from the repo root where the folder is visible
        result = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=cwd, capture_output=True, text=True)
        assert result.returncode != 0, f"`import {name}` succeeded in {cwd}"


def _python_files():
    return [p for pkg in (*PACKAGES, "tests", "loadtest") if (ROOT / pkg).exists()
            for p in (ROOT / pkg).rglob("*.py")]


def test_no_file_over_400_lines():
    big = {str(p.relative_to(ROOT)): n for p in _python_files() if (n := len(p.read_text().splitlines())) > 400}
    assert not big, big


def test_every_module_has_a_docstring():
    missing = [str(p.relative_to(ROOT)) for p in _python_files()
               if p.parent.name != "tests" or p.name != "__init__.py"
               if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, missing


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed in this environment"
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
