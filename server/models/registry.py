"""Pick and load the presso model class for a checkpoint directory (config.json `model_type`)."""

from __future__ import annotations

from pathlib import Path

import torch

from presso.compression.checkpoint.config import DTYPES, read_config
from presso.server.layers.quant_config import QuantConfig
from presso.server.models.base import CausalLM
from presso.server.models.families import LLAMA_LIKE
from presso.server.models.gemma import GemmaForCausalLM
from presso.server.models.generic import load_generic
from presso.server.models.gpt2 import GPT2LMHeadModel
from presso.server.models.llama import LlamaForCausalLM
from presso.server.models.weights import WeightSource

GEMMA_FAMILY = ("gemma2", "gemma3_text")


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


def load_model(model_dir: Path, dtype: torch.dtype, device: str = "cpu",
               impl: str = "auto") -> tuple[CausalLM, dict, WeightSource]:
    """The model on `device`; its kernels come from the caller's presso.kernels.registry.select().
    `impl` (EngineConfig.model_impl): auto | native | transformers; with auto, families presso has no class
    for run on the generic path (models/generic.py), transformers forces it."""
    cfg = read_config(model_dir)
    qc = QuantConfig(cfg.get("quantization_config"))
    kind = cfg.get("model_type")
    if kind == "gemma3":
        raise ValueError("config.json model_type 'gemma3' is the multimodal Gemma 3, which is not supported; "
                         "serve a text-only checkpoint (model_type gemma3_text, Gemma3ForCausalLM)")
    if impl == "transformers":
        return _generic(model_dir, cfg, dtype, device)
    source = WeightSource(model_dir, device)
    with torch.device(device):
        if kind in LLAMA_LIKE:
            model: CausalLM = LlamaForCausalLM(cfg, qc, dtype)
        elif kind in GEMMA_FAMILY:
            model = GemmaForCausalLM(cfg, qc, dtype)
        elif kind == "gpt2":
            root = "transformer" if source.has("transformer.wte.weight") else ""
            model = GPT2LMHeadModel(cfg, qc, dtype, root)
        elif impl != "native":
            return _generic(model_dir, cfg, dtype, device)
        else:
            raise ValueError(f"config.json model_type {kind!r} is not supported "
                             f"(supported: {', '.join(LLAMA_LIKE + GEMMA_FAMILY + ('gpt2',))})")
        model.load(source)
    model.eval()
    return model, cfg, source


def _generic(model_dir: Path, cfg: dict, dtype: torch.dtype, device: str) -> tuple[CausalLM, dict, WeightSource]:
    model, source = load_generic(model_dir, cfg, dtype, device)
    return model, cfg, source
