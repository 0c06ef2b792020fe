"""presso eval's loader for compressed-tensors checkpoints (quant_method "compressed-tensors").

Sparse bitmask layouts (`sparse-bitmask`, `sparse-24-bitmask`; see bitmask.py) are decompressed here:
safetensors -> dense (out, in) weights through presso.kernels' `sparse_decompress` -> a model built from
config.json (quantization_config dropped) -> load_state_dict (tied weights re-tied). Both key layouts are
read: `m.compressed` (compressed-tensors' last writer, ours) and `m.weight.compressed` (older releases).
Every other compressed-tensors checkpoint (pack-quantized, with or without a `dense` sparsity_config)
goes to transformers unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.eval import loader
from presso.compression.prune.bitmask import SPARSE_FORMATS
from presso.kernels import registry as kernels


def sparse_format(config: dict) -> str | None:
    return ((config.get("quantization_config") or {}).get("sparsity_config") or {}).get("format")


def dense_state(model_dir: Path) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint with every bitmask-compressed module turned back into `m.weight`."""
    import presso.kernels.sparse  # noqa: F401  registers sparse_decompress

    decompress = kernels.get("sparse_decompress")
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(path))
    for key in [k for k in tensors if k.endswith(".bitmask")]:
        base = key.removesuffix(".bitmask")
        shape = tuple(int(s) for s in tensors.pop(f"{base}.shape").reshape(-1).tolist())
        tensors.pop(f"{base}.row_offsets", None)
        weight = decompress(tensors.pop(f"{base}.compressed"), tensors.pop(key), shape)  # (out, in)
        tensors[base if base.endswith(".weight") else f"{base}.weight"] = weight
    return tensors


@loader.register_loader("compressed-tensors")
def load_compressed_tensors(model_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    if sparse_format(loader.read_config(model_dir)) not in SPARSE_FORMATS:
        return loader._load_transformers(model_dir, dtype)
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(dense_state(model_dir), strict=False)
    model.tie_weights()
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        bad = sorted(unexpected or set(missing) - tied)[0]
        raise PressoInputError(f"cannot load model from {model_dir}: tensor {bad!r} "
                               f"{'unexpected' if unexpected else 'missing'} in the sparse checkpoint")
    return model.to(dtype)
