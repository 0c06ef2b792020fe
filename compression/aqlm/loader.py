"""presso's own loader for `quant_method: aqlm` checkpoints (no `aqlm` package needed).

Registered into presso.compression.eval.loader, so `presso eval` reads AQLM checkpoints: the model is
built from config.json, every linear with a `<name>.codes` tensor becomes an AQLMLinear, the
safetensors are loaded strictly (only a tied lm_head may be absent) and the embeddings re-tied.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from presso.compression.aqlm.module import AQLMLinear
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.presso_files import PRESSO_JSON, read_presso_file
from presso.compression.eval.loader import register_loader


def _read_tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise PressoInputError(f"no .safetensors files in {model_dir}")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


@register_loader("aqlm")
def load_aqlm(model_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    if (model_dir / PRESSO_JSON).exists():
        read_presso_file(model_dir / PRESSO_JSON)  # refuses an unknown format_version
    config = AutoConfig.from_pretrained(model_dir)
    qc = dict(config.quantization_config)
    if qc.get("out_group_size", 1) != 1:
        raise PressoInputError(f"{model_dir}/config.json: out_group_size {qc.get('out_group_size')} is not supported (1)")
    del config.quantization_config  # presso swaps the layers itself; transformers must not look for `aqlm`
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = _read_tensors(model_dir)
    for key in [k for k in state if k.endswith(".codes")]:
        name = key[: -len(".codes")]
        old = model.get_submodule(name)
        if not isinstance(old, torch.nn.Linear):
            raise PressoInputError(f"{model_dir}: {key} does not belong to a linear layer")
        books = state[f"{name}.codebooks"]
        new = AQLMLinear(old.in_features, old.out_features, books.shape[0], books.shape[1].bit_length() - 1,
                         books.shape[3], bias=old.bias is not None)
        model.set_submodule(name, new)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = getattr(config, "tie_word_embeddings", False)
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise PressoInputError(f"{model_dir}: tensors missing {missing[:5]} / unexpected {unexpected[:5]}")
    if tied:
        model.tie_weights()
    return model
