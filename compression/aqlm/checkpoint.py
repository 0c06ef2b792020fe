"""Write an AQLM-quantized model as a checkpoint in AQLM's Hugging Face layout (+ presso files).

model (nn.Linears inside decoder layers replaced by AQLMLinear) -> `<out>/`:
  model.safetensors  `<linear>.codes` / `.codebooks` / `.scales` (+ `.bias`) for quantized linears, plain
                     weights for the rest (embeddings, norms; a tied lm_head is not stored twice)
  config.json        the model config + quantization_config {quant_method: aqlm, ...}
  presso.json        format_version 1: method, scheme, optimisation settings, calibration
  report.json        bits per weight, bytes vs fp32, per-layer SQNR, perplexity before/after, wall time
  tokenizer files    copied from the source directory.
Everything is written into a temp directory beside `<out>`, which is renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from presso.compression.aqlm.config import AQLMConfig
from presso.compression.aqlm.module import AQLMLinear
from presso.compression.checkpoint.errors import PressoInputError

PRESSO_FORMAT_VERSION = 1
_SKIP = {"config.json", "presso.json", "report.json"}


def check_output_dir(out: Path) -> None:
    """Refuse to overwrite a non-empty directory (checked before any work starts)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PressoInputError(f"output directory exists and is not empty: {out}")


def not_quantized_linears(model: torch.nn.Module) -> list[str]:
    """Weight names of the nn.Linears left dense (lm_head), as AQLM's linear_weights_not_to_quantize."""
    return [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return state


def write_checkpoint(
    model: torch.nn.Module, source: Path, out: Path, cfg: AQLMConfig, presso_meta: dict, report: dict
) -> Path:
    check_output_dir(out)
    if not any(isinstance(m, AQLMLinear) for m in model.modules()):
        raise ValueError("the model has no AQLMLinear layers: quantize it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_file(model_tensors(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config["quantization_config"] = cfg.hf_quantization_config(not_quantized_linears(model))
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        for path in source.iterdir():
            if path.is_file() and path.name not in _SKIP and not path.name.endswith((".safetensors", ".bin")):
                shutil.copy2(path, tmp / path.name)
        meta = {"format_version": PRESSO_FORMAT_VERSION, **presso_meta}
        (tmp / "presso.json").write_text(json.dumps(meta, indent=2))
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
