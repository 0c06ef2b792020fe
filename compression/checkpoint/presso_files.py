"""presso's own checkpoint files, `presso.json` (provenance, recipe, versions) and `report.json`.

Both are JSON objects with an integer `format_version`; a reader refuses a missing or unknown version
with one line naming the file and the field. Non-finite floats (an exact layer's infinite SQNR) are
written as null so the files stay strict JSON.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError

PRESSO_JSON = "presso.json"
REPORT_JSON = "report.json"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = {PRESSO_JSON: {1}, REPORT_JSON: {1}}


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_presso_file(directory: Path, filename: str, payload: dict) -> Path:
    """Write `{"format_version": 1, **payload}` as `directory/filename`."""
    assert filename in SUPPORTED_VERSIONS, filename
    path = Path(directory) / filename
    body = {"format_version": FORMAT_VERSION, **_finite(payload)}
    path.write_text(json.dumps(body, indent=2, allow_nan=False) + "\n")
    return path


def read_presso_file(path: Path) -> dict:
    """Parse a presso.json / report.json, checking its `format_version`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PressoInputError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PressoInputError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PressoInputError(f"{path}: expected a JSON object")
    supported = SUPPORTED_VERSIONS.get(path.name, {FORMAT_VERSION})
    version = data.get("format_version")
    if version is None:
        raise PressoInputError(f"{path}: field format_version is missing")
    if not isinstance(version, int) or isinstance(version, bool) or version not in supported:
        raise PressoInputError(
            f"{path}: field format_version: unsupported value {version!r} "
            f"(this presso reads {', '.join(map(str, sorted(supported)))})"
        )
    return data


def library_versions() -> dict[str, str | None]:
    """Versions of the packages that wrote a checkpoint (recorded in presso.json)."""
    out: dict[str, str | None] = {}
    for name in ("presso", "torch", "transformers", "compressed-tensors", "safetensors"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
