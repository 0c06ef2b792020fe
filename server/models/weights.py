"""Read a checkpoint's tensors from its safetensors files (memory-mapped, nothing loaded up front).

A model asks for tensors by full name; `WeightSource` finds the shard (single file or
model.safetensors.index.json) and returns a tensor backed by the mmap (on CPU) or copied to the
engine's device. No pickle is ever read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open


class WeightSource:
    def __init__(self, model_dir: Path, device: str = "cpu"):
        self.model_dir = Path(model_dir)
        index = self.model_dir / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        else:
            files = sorted(p.name for p in self.model_dir.glob("*.safetensors") if not p.name.startswith("presso"))
            if not files:
                raise ValueError(f"no *.safetensors weights in {self.model_dir}")
            weight_map = None
        self._handles = {f: safe_open(str(self.model_dir / f), framework="pt", device=str(device)) for f in files}
        if weight_map is None:
            weight_map = {k: f for f, h in self._handles.items() for k in h.keys()}
        self.weight_map: dict[str, str] = weight_map
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.weight_map

    def get(self, name: str) -> torch.Tensor:
        if name not in self.weight_map:
            raise ValueError(f"checkpoint {self.model_dir} has no tensor {name!r}")
        self.used.add(name)
        return self._handles[self.weight_map[name]].get_tensor(name)

    def nbytes(self) -> int:
        """Bytes of every tensor in the checkpoint (on-disk weight size)."""
        total = 0
        for name, f in self.weight_map.items():
            sl = self._handles[f].get_slice(name)
            total += _numel(sl.get_shape()) * _dtype_bytes(sl.get_dtype())
        return total


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _dtype_bytes(name: str) -> int:
    return {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "BF16": 2, "F16": 2, "I16": 2, "U8": 1, "I8": 1,
            "BOOL": 1}.get(name, 4)
