"""Quantize the input embedding (round to nearest) and store it in the compressed-tensors layout.

embedding (V, hidden) fp32 -> grid.rtn_quantize (per row or per row group along hidden) -> its weight
replaced by the dequantized values (a tied output head shares the Parameter, so it sees them too) -> one
more QuantizedLayer for export.py, which packs it as `model.embed_tokens.weight_packed/_scale/_shape`
(compressed-tensors targets Embedding modules like Linears).

Measured with compressed-tensors 0.20.1 + transformers 5.24: after packing, transformers writes the tied
head as a separate fp32 `lm_head.weight` (the tie is lost) and cannot load a packed Embedding in its
default compressed mode (it re-initialises `embed_tokens.weight`, which no longer exists). It does load
it with `quantization_config.dequantize: true` and, once `lm_head.weight` is dropped from the files, ties
the head to the dequantized embedding again. `finish_tied_embedding` does both. presso's engine reads the
packed tensor directly (server/layers/embedding.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from presso.compression.calibration.sequential import QuantizedLayer, sqnr_db
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.methods.grid import GridSpec, rtn_quantize, to_weight
from presso.compression.methods.rtn import RtnParams
from presso.compression.recipes.embeddings import EmbeddingQuant
from presso.compression.recipes.resolve import LayerPlan

HEAD = "lm_head.weight"


@torch.no_grad()
def quantize_embedding(model: torch.nn.Module, spec: EmbeddingQuant) -> QuantizedLayer:
    emb = model.get_input_embeddings()
    name = next(n for n, m in model.named_modules() if m is emb)
    if name != "model.embed_tokens":  # presso's engine reads packed embeddings for the Llama family only
        raise PressoInputError(f"recipe embeddings: only Llama-family models (model.embed_tokens) are supported, "
                               f"not {name}")
    hidden = emb.weight.shape[1]
    group = None if spec.group_size == "channel" else spec.group_size
    if group is not None and hidden % group:
        raise PressoInputError(f"recipe embeddings.group_size: {group} does not divide the hidden size {hidden}")
    grid = GridSpec(spec.bits, group, spec.symmetric)
    w = emb.weight.detach().float()  # (V, hidden)
    codes, scale, zero = rtn_quantize(w, grid)
    qw = to_weight(codes, scale, zero, grid)
    w_hat = qw.dequantize()  # (V, hidden) fp32
    sqnr = sqnr_db(float(w.pow(2).sum()), float((w - w_hat).pow(2).sum()))
    emb.weight.copy_(w_hat.to(emb.weight.dtype))
    return QuantizedLayer(LayerPlan(name, -1, "rtn", grid, RtnParams(), None), qw, sqnr, None, 0)


def finish_tied_embedding(out: Path, tied: bool) -> None:
    """After export: drop the tied head's fp32 copy from the weight files (when tied) and set
    `quantization_config.dequantize` so transformers can load the packed Embedding."""
    if tied:
        index = out / "model.safetensors.index.json"
        files = sorted(out.glob("*.safetensors"))
        for path in files:
            with safe_open(str(path), framework="pt") as f:
                if HEAD not in f.keys():
                    continue
                metadata = f.metadata()
                tensors = {k: f.get_tensor(k).clone() for k in f.keys() if k != HEAD}  # off the mmap
            mode = path.stat().st_mode
            save_file(tensors, str(path), metadata=metadata)
            path.chmod(mode)
        if index.is_file():
            data = json.loads(index.read_text())
            data["weight_map"].pop(HEAD, None)
            index.write_text(json.dumps(data, indent=2) + "\n")
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"]["dequantize"] = True
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def embedding_report(out: Path, q: QuantizedLayer, sizes: dict[str, int]) -> dict:
    """sizes: tensor name -> bytes in the written files (safetensors_check.tensor_bytes)."""
    name, spec = q.plan.name, q.plan.spec
    nbytes = sum(v for k, v in sizes.items() if k.startswith(f"{name}.weight"))
    return {"name": name, "bits": spec.bits, "group_size": spec.group_size or "channel",
            "symmetric": spec.symmetric, "bytes": nbytes, "fp32_bytes": 4 * q.weight.out_features * q.weight.in_features,
            "bits_per_weight": 8.0 * nbytes / (q.weight.out_features * q.weight.in_features), "weight_sqnr_db": q.weight_sqnr_db}
