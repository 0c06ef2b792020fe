"""A checkpoint's config.json and the dtype names every loader accepts (offline stage and server alike)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from presso.compression.checkpoint.errors import PressoInputError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def read_config(model_dir: Path) -> dict:
    """config.json of a model directory; PressoInputError naming the file when it is missing or invalid."""
    path = Path(model_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PressoInputError(f"{path}: not found (not a Hugging Face model directory)") from None
    except json.JSONDecodeError as exc:
        raise PressoInputError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
