"""`presso_kv.safetensors`: the KV-cache RVQ codebooks of a checkpoint (written offline, read by the server).

Tensors per layer i: `layers.{i}.k.codebooks` / `layers.{i}.v.codebooks` (S, C, G) fp32 and
`layers.{i}.k.perm` / `layers.{i}.v.perm` (D,) int64 channel orders. The safetensors metadata holds
`format_version` and the codec spec as JSON. No pickle: safetensors only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from presso.compression.checkpoint.errors import PressoInputError

KV_FILE = "presso_kv.safetensors"
KV_FORMAT_VERSION = 1
KEY_POSITIONS = ("post_rope", "pre_rope")  # as stored; a spec may also say "auto" until calibration resolves it


@dataclass(frozen=True, slots=True)
class RVQSpec:
    stages: int = 8
    entries: int = 256
    group: int = 32
    keys: str = "auto"  # where keys are coded: before RoPE (auto, on RoPE models: measured far better) or after
    # it (code-space scoring); calibrate_rvq resolves auto per model

    def validate(self) -> RVQSpec:
        if not 1 <= self.stages <= 32:
            raise PressoInputError(f"rvq stages must be in 1..32, got {self.stages}")
        if not 2 <= self.entries <= 65536:
            raise PressoInputError(f"rvq codebook must be in 2..65536 entries, got {self.entries}")
        if self.group < 1:
            raise PressoInputError(f"rvq group must be positive, got {self.group}")
        if self.keys not in (*KEY_POSITIONS, "auto"):
            raise PressoInputError(f"rvq keys must be auto, {', '.join(KEY_POSITIONS)}, got {self.keys!r}")
        return self

    def code_bytes(self) -> int:
        return 1 if self.entries <= 256 else 2

    def bytes_per_vector(self, head_dim: int) -> int:
        """Codes of one head vector plus its fp16 RMS."""
        return (head_dim // self.group) * self.stages * self.code_bytes() + 2


@dataclass(frozen=True, slots=True)
class LayerCodebooks:
    k_books: torch.Tensor  # (S, C, G) fp32
    k_perm: torch.Tensor  # (D,) int64
    v_books: torch.Tensor
    v_perm: torch.Tensor


def save_kv_codebooks(directory: Path, spec: RVQSpec, layers: list[LayerCodebooks], report: dict) -> Path:
    from safetensors.torch import save_file

    assert spec.keys in KEY_POSITIONS, "calibrate_rvq resolves keys=auto before anything is saved"
    tensors = {}
    for i, layer in enumerate(layers):
        tensors[f"layers.{i}.k.codebooks"] = layer.k_books.float().contiguous()
        tensors[f"layers.{i}.k.perm"] = layer.k_perm.long().contiguous()
        tensors[f"layers.{i}.v.codebooks"] = layer.v_books.float().contiguous()
        tensors[f"layers.{i}.v.perm"] = layer.v_perm.long().contiguous()
    meta = {"format_version": str(KV_FORMAT_VERSION), "codec": "rvq", "spec": json.dumps(asdict(spec)),
            "num_layers": str(len(layers)), "report": json.dumps(report)}
    path = Path(directory) / KV_FILE
    save_file(tensors, str(path), metadata=meta)
    return path


def load_kv_codebooks(directory: Path) -> tuple[RVQSpec, list[LayerCodebooks]]:
    from safetensors import safe_open

    path = Path(directory) / KV_FILE
    if not path.is_file():
        raise PressoInputError(f"{path}: not found (calibrate with `presso compress ... --kv rvq`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            version = meta.get("format_version")
            if version != str(KV_FORMAT_VERSION):
                raise PressoInputError(f"{path}: field format_version: unsupported value {version!r}")
            if meta.get("codec") != "rvq":
                raise PressoInputError(f"{path}: field codec: unsupported value {meta.get('codec')!r}")
            spec = RVQSpec(**json.loads(meta["spec"])).validate()
            layers = [LayerCodebooks(*(f.get_tensor(f"layers.{i}.{kv}.{name}")
                                       for kv, name in (("k", "codebooks"), ("k", "perm"),
                                                        ("v", "codebooks"), ("v", "perm"))))
                      for i in range(int(meta["num_layers"]))]
    except PressoInputError:
        raise
    except Exception as exc:  # truncated / corrupt file, missing tensor or metadata field
        raise PressoInputError(f"{path}: unreadable KV codebooks ({type(exc).__name__}: {exc})") from None
    return spec, layers
