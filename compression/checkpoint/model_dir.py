"""Resolve a user's model argument to a local Hugging Face-style directory.

Accepted everywhere a model is expected: a local directory with config.json, the name of an embedded
model already pulled (`smollm2-135m`), or a hub id (`org/name`) where a hub is reachable.
"""

from __future__ import annotations

import re
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.kernels import envs

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def models_root() -> Path:
    return envs.presso_home() / "models"


def check_model_dir(path: Path) -> Path:
    """Return `path` if it is a model directory, else raise a one-line PressoInputError."""
    if not path.exists():
        raise PressoInputError(f"model directory not found: {path}")
    if not path.is_dir():
        raise PressoInputError(f"model path is not a directory: {path}")
    if not (path / "config.json").is_file():
        raise PressoInputError(f"not a model directory (no config.json): {path}")
    return path


def resolve_model_dir(spec: str | Path) -> Path:
    """Map a model spec (dir, embedded name, hub id) to an existing local model directory."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists() or text.startswith((".", "/", "~")) or not text:
        return check_model_dir(path)
    pulled = models_root() / text
    if (pulled / "config.json").is_file():
        return pulled
    if _HUB_ID.match(text):
        return check_model_dir(_download_from_hub(text))
    raise PressoInputError(
        f"model not found: {text!r} is neither a directory, a pulled model (presso pull {text}), nor a hub id"
    )


def _download_from_hub(repo_id: str) -> Path:
    if envs.hub_offline():
        raise PressoInputError(f"model {repo_id!r} is not local and HF_HUB_OFFLINE=1 forbids the hub")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
        )
    except Exception as exc:  # any hub/network failure becomes one user-facing line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PressoInputError(f"cannot download {repo_id!r} from the Hugging Face hub: {first}") from None
    return Path(local)
