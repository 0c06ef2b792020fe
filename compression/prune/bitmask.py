"""Write pruned Linears in compressed-tensors' sparse layouts, and record sparsity in quantization_config.

compressed-tensors 0.20 keeps the sparsity config classes but no longer ships the sparse compressors, so
the tensors are written here in the legacy layout, keyed by module name m (as the library last wrote it):
  sparse-bitmask:     m.shape (2,) int64, m.compressed (nnz,) kept values row-major, m.bitmask
                      (out, ceil(in/8)) uint8 (numpy.packbits, little bit order), m.row_offsets (out,) int64
  sparse-24-bitmask:  m.shape (2, 1) int64, m.compressed (out, in/2), m.bitmask as above
  dense:              m.weight as usual (zeros in place; loadable by transformers)
The bitmask is the pruning step's keep-mask (a kept weight that happens to be 0 is still stored).
`sparsity_config` = {format, global_sparsity, sparsity_structure, targets (exact module names), ignore}.
Who loads what (transformers 5.24 + compressed-tensors 0.20.1, measured): `dense` and pack-quantized +
sparsity_config load in transformers; `sparse-bitmask`/`sparse-24-bitmask` do NOT (transformers reports
the weights missing and initialises them randomly), so presso eval reads them itself (prune/loader.py)
and the presso engine decompresses them at load (server/layers/linear.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

SPARSE_FORMATS = ("sparse-bitmask", "sparse-24-bitmask")


def choose_format(layers, requested: str) -> str:
    """requested "dense" | "bitmask" -> compressed-tensors sparsity format for these pruned layers."""
    if requested == "dense":
        return "dense"
    pruned = [q for q in layers if q.mask is not None]
    return "sparse-24-bitmask" if all(q.prune_plan.sparsity.label == "2:4" for q in pruned) else "sparse-bitmask"


def compress_weight(name: str, w: torch.Tensor, keep: torch.Tensor, fmt: str) -> dict[str, torch.Tensor]:
    """w (out, in), keep (out, in) bool -> the module's tensors in `fmt`'s layout."""
    from compressed_tensors.utils.helpers import pack_bitmasks

    rows, cols = w.shape
    values = w[keep]  # (nnz,) row-major
    out = {f"{name}.bitmask": pack_bitmasks(keep.cpu())}
    if fmt == "sparse-24-bitmask":
        out[f"{name}.shape"] = torch.tensor([rows, cols]).reshape(-1, 1)
        out[f"{name}.compressed"] = values.reshape(rows, cols // 2)
    else:
        counts = keep.sum(1)  # (out,)
        out[f"{name}.shape"] = torch.tensor([rows, cols])
        out[f"{name}.compressed"] = values
        out[f"{name}.row_offsets"] = torch.cumsum(counts, 0) - counts
    return out


def sparsity_config(layers, fmt: str) -> dict:
    """The `sparsity_config` block, validated by compressed-tensors' own config class."""
    from compressed_tensors.config import SparsityCompressionConfig

    pruned = [q for q in layers if q.mask is not None]
    zeros = sum(int((~q.mask).sum()) for q in pruned)
    numel = sum(q.mask.numel() for q in pruned)
    structures = {q.prune_plan.sparsity.structure for q in pruned}
    config = SparsityCompressionConfig.load_from_registry(
        fmt, global_sparsity=zeros / max(numel, 1), targets=[q.plan.name for q in pruned], ignore=[],
        sparsity_structure=structures.pop() if len(structures) == 1 else "unstructured",
    )
    return config.model_dump(exclude={"registry_requires_subclass"})


def write_sparse_tensors(out: Path, layers, fmt: str) -> None:
    """Rewrite the safetensors files save_pretrained wrote: each pruned m.weight -> `fmt`'s tensors."""
    pruned = {f"{q.plan.name}.weight": q for q in layers if q.mask is not None}
    renamed: dict[str, tuple[list[str], str]] = {}  # old key -> (new keys, file)
    for path in sorted(out.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata()
        tensors = load_file(path)
        hits = [k for k in tensors if k in pruned]
        for key in hits:
            new = compress_weight(key.removesuffix(".weight"), tensors.pop(key), pruned[key].mask, fmt)
            tensors.update(new)
            renamed[key] = (list(new), path.name)
        if hits:
            save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    missing = set(pruned) - set(renamed)
    assert not missing, f"pruned weights not found in the saved files: {sorted(missing)[:3]}"
    index = out / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        for key, (new, file) in renamed.items():
            data["weight_map"].pop(key, None)
            data["weight_map"].update(dict.fromkeys(new, file))
        index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def add_sparsity_config(config_path: Path, block: dict, standalone: bool) -> None:
    """Put `block` into config.json's quantization_config (creating a compressed-tensors one if needed)."""
    import compressed_tensors

    config = json.loads(config_path.read_text())
    if standalone:  # pruned only: no quantization groups
        config["quantization_config"] = {
            "quant_method": "compressed-tensors", "version": compressed_tensors.__version__,
            "format": block["format"], "quantization_status": "compressed", "config_groups": {}, "ignore": [],
        }
    config["quantization_config"]["sparsity_config"] = block
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
