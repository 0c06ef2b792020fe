"""Find a causal LM's decoder layers and the Linears inside them, for every transformers family.

model -> (qualified name, ModuleList) of its decoder layers: the text decoder transformers itself reports
(`get_decoder()`, which also unwraps multimodal models such as Gemma 3's language model), else the first
ModuleList as long as the text config's layer count (GPT-2's `transformer.h`). Inside a layer, Linears are
found by type, not by name: Phi-3's fused `qkv_proj`/`gate_up_proj`, Gemma's and Qwen3's projections and
Llama's all come out the same way. Shared by sequential calibration, pruning, KV codebooks, distillation
and AQLM.
"""

from __future__ import annotations

import torch

from presso.compression.checkpoint.errors import PressoInputError


def num_layers(model: torch.nn.Module) -> int | None:
    """The text decoder's layer count from the config (multimodal configs nest it in text_config)."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for cfg in (text, config):
        count = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
        if count:
            return int(count)
    return None


def _qualified_name(model: torch.nn.Module, target: torch.nn.Module) -> str | None:
    return next((name for name, module in model.named_modules() if module is target), None)


def decoder_layers(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList]:
    """-> (qualified name, e.g. `model.layers`, and the ModuleList) of the model's decoder layers."""
    count = num_layers(model)
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    layers = getattr(decoder, "layers", None)
    if isinstance(layers, torch.nn.ModuleList) and (count is None or len(layers) == count):
        name = _qualified_name(model, layers)
        if name is not None:
            return name, layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, module
    raise PressoInputError(f"cannot find the {count} decoder layers of {type(model).__name__} "
                           f"(model_type {getattr(model.config, 'model_type', None)!r})")


def layer_linears(layer: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """Name relative to the layer -> every nn.Linear inside it (subclasses included), in module order."""
    return {name: m for name, m in layer.named_modules() if isinstance(m, torch.nn.Linear)}


def decoder_linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """Qualified name -> every Linear inside the decoder layers (not the embeddings or the output head)."""
    prefix, layers = decoder_layers(model)
    return {f"{prefix}.{i}.{name}": m for i, layer in enumerate(layers) for name, m in layer_linears(layer).items()}
