"""Student -> the checkpoint's own tensors with the trained values written back, same names/shapes/dtypes.

Only these tensors change (each cast back to its stored dtype); packed codes, AQLM codes, bitmasks,
shapes and embeddings are copied as read, so the checkpoint keeps its format and its size:
  pack-quantized  m.weight_scale; m.weight_zero_point (rounded, clamped, re-packed along rows)
  aqlm            m.codebooks, m.scales
  sparse bitmask  m.compressed = kept values of the trained weight, row-major, in the stored layout
  dense sparse    m.weight = trained weight * frozen mask
  any format      norm weights (and biases) by their state_dict name
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from presso.compression.distill.modules import CodebookLinear, GroupQuantLinear, MaskedLinear
from presso.compression.distill.student import Student


def _module_tensors(name: str, module: torch.nn.Module, stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(module, GroupQuantLinear):
        out = {f"{name}.weight_scale": module.scale.detach()}
        if module.zero is not None:
            from compressed_tensors.compressors.pack_quantized import pack_to_int32

            zero = module.rounded_zero().to(torch.int8)  # (out, G)
            out[f"{name}.weight_zero_point"] = pack_to_int32(zero, module.bits, packed_dim=0)
        return out
    if isinstance(module, CodebookLinear):
        return {f"{name}.codebooks": module.codebooks.detach(), f"{name}.scales": module.scales.detach()}
    assert isinstance(module, MaskedLinear), type(module)
    w = module.masked_weight().detach()  # (out, in)
    if f"{name}.compressed" in stored:
        return {f"{name}.compressed": w[module.mask].reshape(stored[f"{name}.compressed"].shape)}
    return {f"{name}.weight": w}


def trained_tensors(student: Student) -> dict[str, torch.Tensor]:
    """All tensors of the source checkpoint, trained ones replaced; raises if any name/shape/dtype differs."""
    stored = student.source.tensors
    new: dict[str, torch.Tensor] = {}
    for name, module in student.modules.items():
        new.update(_module_tensors(name, module, stored))
    for name, param in student.model.named_parameters():
        if param.requires_grad and name in stored:
            new[name] = param.detach()
    unknown = set(new) - set(stored)
    assert not unknown, f"trained tensors not in the checkpoint: {sorted(unknown)[:3]}"
    out = dict(stored)
    for key, value in new.items():
        assert value.shape == stored[key].shape, (key, value.shape, stored[key].shape)
        out[key] = value.to(stored[key].dtype).contiguous()
    return out


def write_tensors(student: Student, tensors: dict[str, torch.Tensor], out_dir: Path) -> list[Path]:
    """Write `tensors` into the same file names, key order and metadata as the source checkpoint."""
    paths = []
    for file, keys in student.source.files.items():
        path = Path(out_dir) / file
        save_file({k: tensors[k] for k in keys}, str(path), metadata=student.source.metadata[file])
        paths.append(path)
    return paths
