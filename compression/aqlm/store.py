"""Per-layer resume store: each finished decoder layer's AQLM tensors + stats in `<out>.partial/`.

`meta.json` pins what the partial results were computed from (model, scheme, calibration); a rerun with
the same settings skips finished layers, different settings are refused. Files are written to a temp
name and renamed, so a crash never leaves a half-written layer. Safetensors only (no pickle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from presso.compression.aqlm.layer import QuantizedLayer
from presso.compression.checkpoint.errors import PressoInputError

TENSORS = ("codes", "codebooks", "scales")


class LayerStore:
    def __init__(self, root: Path, meta: dict) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        meta_path = root / "meta.json"
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old != meta:
                raise PressoInputError(
                    f"{root} holds a partial run with other settings ({meta_path}); delete it or use the same settings"
                )
        else:
            self._write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True))

    def _write_text(self, path: Path, text: str) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def done(self) -> int:
        return sum(1 for _ in self.root.glob("layer_*.json"))

    def save(self, index: int, layers: dict[str, QuantizedLayer], stats: dict[str, dict]) -> None:
        tensors = {f"{name}.{t}": getattr(q, t).contiguous() for name, q in layers.items() for t in TENSORS}
        path = self.root / f"layer_{index:03d}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        os.replace(tmp, path)
        self._write_text(self.root / f"layer_{index:03d}.json", json.dumps(stats, indent=1))  # written last

    def load(self, index: int) -> tuple[dict[str, dict], dict[str, dict]] | None:
        """-> ({linear name: {codes, codebooks, scales}}, {linear name: stats}) or None if not done."""
        stats_path = self.root / f"layer_{index:03d}.json"
        if not stats_path.exists():
            return None
        flat = load_file(str(self.root / f"layer_{index:03d}.safetensors"))
        tensors: dict[str, dict] = {}
        for key, value in flat.items():
            name, _, kind = key.rpartition(".")
            tensors.setdefault(name, {})[kind] = value
        return tensors, json.loads(stats_path.read_text())
