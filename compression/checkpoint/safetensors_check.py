"""Reject corrupt or truncated safetensors files before anything tries to load them.

File layout: 8-byte little-endian header length n, n bytes of JSON header ({name: {dtype, shape,
data_offsets: [begin, end]}, "__metadata__": {...}}), then the data buffer. Checked: the header fits and
parses, every tensor's byte range matches its dtype x shape and lies inside the buffer, the buffer is
exactly covered; then the safetensors library itself opens the file. Errors name the file.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError

ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
              "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_HEADER = 100 * 1024 * 1024


def _header(path: Path, size: int) -> tuple[int, dict]:
    if size < 8:
        raise PressoInputError(f"corrupt safetensors file {path}: truncated ({size} bytes, no header)")
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > min(size - 8, MAX_HEADER):
            raise PressoInputError(
                f"corrupt safetensors file {path}: header length {length} exceeds the file ({size} bytes)"
            )
        raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PressoInputError(f"corrupt safetensors file {path}: header is not valid JSON") from None
    if not isinstance(header, dict):
        raise PressoInputError(f"corrupt safetensors file {path}: header is not a JSON object")
    return length, header


def check_safetensors(path: Path) -> None:
    path = Path(path)
    size = path.stat().st_size
    length, header = _header(path, size)
    data_bytes = size - 8 - length
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            expected = ITEM_BYTES[dtype] * math.prod(shape)
        except (KeyError, TypeError, ValueError):
            raise PressoInputError(f"corrupt safetensors file {path}: bad header entry for {name!r}") from None
        if not 0 <= begin <= end or end - begin != expected:
            raise PressoInputError(f"corrupt safetensors file {path}: tensor {name!r} has inconsistent offsets")
        if end > data_bytes:
            raise PressoInputError(
                f"corrupt safetensors file {path}: truncated (tensor {name!r} ends at byte {end} of the data, "
                f"which holds only {data_bytes})"
            )
        end_max = max(end_max, end)
    if end_max != data_bytes:
        raise PressoInputError(
            f"corrupt safetensors file {path}: {data_bytes - end_max} bytes after the last tensor"
        )
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except (SafetensorError, OSError) as exc:
        raise PressoInputError(f"corrupt safetensors file {path}: {exc}") from None


def check_checkpoint_files(directory: Path) -> None:
    """Check every *.safetensors file in a checkpoint directory."""
    for path in sorted(Path(directory).glob("*.safetensors")):
        check_safetensors(path)


def tensor_bytes(directory: Path) -> dict[str, int]:
    """Bytes of every tensor in a checkpoint directory's safetensors files, read from their headers."""
    out: dict[str, int] = {}
    for path in sorted(Path(directory).glob("*.safetensors")):
        _, header = _header(path, path.stat().st_size)
        for name, info in header.items():
            if name != "__metadata__":
                out[name] = info["data_offsets"][1] - info["data_offsets"][0]
    return out
