"""Load a compressed-tensors pack-quantized checkpoint dequantized, one config group per module.

Why not transformers: with `quantization_config.dequantize: true` (needed for asymmetric zero points and
for packed Embeddings, see compression/quantize/embedding.py) transformers 5.24 decompresses every module
with ONE config group's scheme (integrations/compressed_tensors.get_dense_scheme), so a checkpoint whose
embedding (or any layer) uses another grid than the Linears fails to load. Here: model from its config
(no quantization) -> each module holding `weight_packed` is matched to its own config group with
compressed-tensors' matcher and decompressed by compressed-tensors' own compressor -> the remaining dense
tensors as they are -> tied weights re-tied (a tied head shares the dequantized embedding).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from presso.compression.checkpoint.errors import PressoInputError

PACKED = ".weight_packed"


def _tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        if path.name.startswith("presso"):
            continue
        with safe_open(str(path), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})
    return out


def load_dequantized(model_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils import is_match
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    qc = QuantizationConfig.model_validate(config.quantization_config)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = _tensors(model_dir)
    packed = [k[: -len(PACKED)] for k in state if k.endswith(PACKED)]  # module names
    quant_keys = tuple(f"{name}.weight_" for name in packed)
    dense = {k: v for k, v in state.items() if not k.startswith(quant_keys)}
    for name in packed:
        module = model.get_submodule(name)
        schemes = [g for g in qc.config_groups.values() if is_match(name, module, g.targets, qc.ignore or ())]
        if not schemes:
            raise PressoInputError(f"{model_dir}/config.json: quantization_config matches no group for {name}")
        local = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".weight_")}
        compressor = BaseCompressor.get_value_from_registry(schemes[0].format or qc.format)
        dense[f"{name}.weight"] = compressor.decompress(local, schemes[0])["weight"]
    missing, unexpected = model.load_state_dict(dense, strict=False)
    if unexpected or any(not k.endswith("lm_head.weight") for k in missing):
        raise PressoInputError(f"cannot load {model_dir}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    return model.to(dtype)
