"""Repository rules no unit test would otherwise catch: import names, import contracts, file sizes."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "kernels", "compression")


@pytest.mark.parametrize("name", PACKAGES)
def test_repo_folder_never_shadows_an_installed_package(name, tmp_path):
    """From the repo root (cwd first on sys.path) an installed package of the folder's name still wins."""
    other = tmp_path / "site" / name
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("OTHER = True\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    code = f"import {name}; assert getattr({name}, 'OTHER', False), {name}"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_repo_root_imports_hf_kernels_and_ours():
    """HF's PyPI `kernels` (a transformers dependency) is `kernels`; presso's is `presso.kernels`."""
    code = ("import kernels, presso.kernels.registry, presso.kernels, pathlib; "
            "print(pathlib.Path(kernels.__file__).resolve()); print(list(presso.kernels.__path__)[0])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    hf, ours = result.stdout.split()
    assert "site-packages" in hf and not hf.startswith(str(ROOT / "kernels"))
    assert Path(ours).resolve() == ROOT / "kernels"


@pytest.mark.slow  # imports transformers' model code from scratch in a subprocess
def test_transformers_loads_a_model_from_the_repo_root(tmp_path):
    """transformers imports `kernels` while loading; from the repo root it must get HF's package."""
    code = f"""
import torch
from transformers import AutoModelForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig
cfg = Gemma3TextConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=8)
torch.manual_seed(0)
Gemma3ForCausalLM(cfg).save_pretrained({str(tmp_path)!r})
model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r})
print(type(model).__name__, model(torch.tensor([[1, 2, 3]])).logits.shape)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Gemma3ForCausalLM torch.Size([1, 3, 128])" in result.stdout


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
