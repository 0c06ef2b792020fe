"""Load any checkpoint presso writes for evaluation, picked by `quantization_config.quant_method`.

Dense HF dirs and compressed-tensors checkpoints load through transformers (which decompresses
compressed-tensors itself), except those marked `dequantize` (ct_dequantize.py: one scheme per group); further formats register a loader here by name. Before any loader runs,
corrupt or truncated safetensors files and presso.json files of an unknown format_version are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from presso.compression.checkpoint.config import DTYPES, read_config
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.presso_files import PRESSO_JSON, read_presso_file
from presso.compression.checkpoint.safetensors_check import check_checkpoint_files

Loader = Callable[[Path, torch.dtype], torch.nn.Module]
_LOADERS: dict[str, Loader] = {}

def register_loader(quant_method: str) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        _LOADERS[quant_method] = fn
        return fn

    return wrap


def quant_method(config: dict) -> str:
    qc = config.get("quantization_config") or {}
    return str(qc.get("quant_method", "dense"))


def load_model(model_dir: Path, dtype: str = "float32") -> torch.nn.Module:
    if dtype not in DTYPES:
        raise PressoInputError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    method = quant_method(read_config(model_dir))
    if (model_dir / PRESSO_JSON).is_file():
        read_presso_file(model_dir / PRESSO_JSON)
    check_checkpoint_files(model_dir)
    loader = _LOADERS.get(method, _load_transformers)
    if _per_group_dequantize(read_config(model_dir)):
        from presso.compression.eval.ct_dequantize import load_dequantized as loader
    model = loader(model_dir, DTYPES[dtype])
    return model.eval()


def _per_group_dequantize(config: dict) -> bool:
    """Dense-sparsity compressed-tensors checkpoints marked `dequantize` (asymmetric, packed embeddings):
    transformers would decompress them with a single config group's scheme (see ct_dequantize.py)."""
    qc = config.get("quantization_config") or {}
    sparse = (qc.get("sparsity_config") or {}).get("format")
    return qc.get("quant_method") == "compressed-tensors" and bool(qc.get("dequantize")) and sparse in (None, "dense")


def _load_transformers(model_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PressoInputError(f"cannot load model from {model_dir}: {first}") from None


def load_tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PressoInputError(f"cannot load tokenizer from {model_dir}: {first}") from None


# Formats with their own loader register here on import (kept last: they import register_loader).
from presso.compression.aqlm import loader as _aqlm_loader  # noqa: E402,F401  quant_method "aqlm"
from presso.compression.prune import loader as _sparse_loader  # noqa: E402,F401  "compressed-tensors" (bitmask)
