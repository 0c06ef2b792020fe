"""Write the weights of an `aqlm` recipe's model in AQLM's Hugging Face layout.

`presso compress` (compression/quantize/pipeline.py) calls `write_aqlm` inside its temp directory, after
the shared calibration ran the `aqlm` steps; it writes the tokenizer, presso.json and report.json itself.
model + the AQLMWeight of each quantized Linear -> nn.Linears swapped for AQLMLinear ->
  model.safetensors  `<linear>.codes` / `.codebooks` / `.scales` (+ `.bias`) for quantized linears, plain
                     weights for the rest (embeddings, norms, lm_head; a tied lm_head is not stored twice)
  config.json        the model config + quantization_config {quant_method: aqlm, ...}
  generation_config.json  when the model has one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from presso.compression.aqlm.layer import AQLMWeight
from presso.compression.aqlm.module import AQLMLinear
from presso.kernels.aqlm.reference import nbits_of

FORMAT = "aqlm"


def not_quantized_linears(model: torch.nn.Module) -> list[str]:
    """Weight names of the nn.Linears left dense (lm_head), as AQLM's linear_weights_not_to_quantize."""
    return [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def model_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return state


def hf_quantization_config(weights: list[AQLMWeight], not_quantized: list[str]) -> dict:
    """The `quantization_config` block; AQLM's layout has one scheme, so every weight must share it."""
    schemes = {(w.codebooks.shape[0], nbits_of(w.codebooks), w.codebooks.shape[2], w.codebooks.shape[3])
               for w in weights}
    assert len(schemes) == 1, f"one AQLM scheme per checkpoint, got {sorted(schemes)}"  # recipe-checked
    num_codebooks, nbits, out_group, in_group = schemes.pop()
    return {
        "quant_method": "aqlm",
        "in_group_size": in_group,
        "out_group_size": out_group,
        "num_codebooks": num_codebooks,
        "nbits_per_codebook": nbits,
        "linear_weights_not_to_quantize": sorted(not_quantized),
    }


@torch.no_grad()
def write_aqlm(model: torch.nn.Module, weights: dict[str, AQLMWeight], out: Path) -> str:
    """weights: module name -> AQLMWeight. Swaps the modules in `model` and writes into `out`. -> format."""
    for name, w in weights.items():
        old = model.get_submodule(name)
        model.set_submodule(name, AQLMLinear.from_tensors(w.codes, w.codebooks, w.scales, old.bias))
    save_file(model_tensors(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config["quantization_config"] = hf_quantization_config(list(weights.values()), not_quantized_linears(model))
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    return FORMAT
