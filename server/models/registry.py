"""Pick and load the presso model class for a checkpoint directory (config.json `model_type`)."""

from __future__ import annotations

from pathlib import Path

import torch

from presso.compression.checkpoint.config import DTYPES, read_config
from presso.server.layers.quant_config import QuantConfig
from presso.server.models.base import CausalLM
from presso.server.models.families import LLAMA_LIKE
from presso.server.models.gpt2 import GPT2LMHeadModel
from presso.server.models.llama import LlamaForCausalLM
from presso.server.models.weights import WeightSource


def resolve_dtype(name: str, cfg: dict) -> torch.dtype:
    """'auto': bf16 for quantized checkpoints (the fast packed CPU matmuls need it), else the checkpoint's
    own dtype (fp16 becomes bf16 on CPU, where fp16 matmuls are slow)."""
    if name != "auto":
        if name not in DTYPES:
            raise ValueError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {name!r}")
        return DTYPES[name]
    if cfg.get("quantization_config"):
        return torch.bfloat16
    ckpt = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
    return torch.bfloat16 if ckpt == "float16" else DTYPES.get(ckpt, torch.float32)


def load_model(model_dir: Path, dtype: torch.dtype, device: str = "cpu") -> tuple[CausalLM, dict, WeightSource]:
    """The model on `device`; its kernels come from the caller's presso.kernels.registry.select()."""
    cfg = read_config(model_dir)
    qc = QuantConfig(cfg.get("quantization_config"))
    kind = cfg.get("model_type")
    source = WeightSource(model_dir, device)
    with torch.device(device):
        if kind in LLAMA_LIKE:
            model: CausalLM = LlamaForCausalLM(cfg, qc, dtype)
        elif kind == "gpt2":
            root = "transformer" if source.has("transformer.wte.weight") else ""
            model = GPT2LMHeadModel(cfg, qc, dtype, root)
        else:
            raise ValueError(f"config.json model_type {kind!r} is not supported "
                             f"(supported: {', '.join(LLAMA_LIKE + ('gpt2',))})")
        model.load(source)
    model.eval()
    return model, cfg, source
