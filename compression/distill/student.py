"""Checkpoint dir -> trainable student: a transformers model whose compressed Linears dequantize on the fly.

Reads the safetensors files as written (nothing is re-packed here) and keeps them, so export.py can write
back the same tensors with only the trained values replaced. Formats:
  compressed-tensors pack-quantized  `m.weight_packed/_scale/_shape[/_zero_point][/_g_idx]` -> GroupQuantLinear
                                     (+ a `dense` sparsity_config: codes hold the zeros, so the mask is kept)
  compressed-tensors sparse-(24-)bitmask  `m.compressed/.bitmask/.shape[/.row_offsets]` -> MaskedLinear
  compressed-tensors dense sparsity  plain `m.weight` of the sparsity targets -> MaskedLinear (mask = w != 0)
  aqlm                               `m.codes/.codebooks/.scales` -> CodebookLinear
  dense (no quantization_config)     e.g. structured-pruned: the decoder blocks' nn.Linear weights train as is
Trainable: those modules' parameters plus every norm weight/bias; embeddings and lm_head stay frozen.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from presso.compression.calibration.layers import decoder_linears
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.distill.modules import CodebookLinear, GroupQuantLinear, MaskedLinear
from presso.compression.prune.bitmask import SPARSE_FORMATS


@dataclass(frozen=True, slots=True)
class CheckpointTensors:
    tensors: dict[str, torch.Tensor]  # every tensor of every file, as stored
    files: dict[str, list[str]]  # file name -> its tensor names, in file order
    metadata: dict[str, dict[str, str] | None]  # file name -> safetensors metadata


@dataclass(frozen=True, slots=True)
class Student:
    model: torch.nn.Module
    source: CheckpointTensors
    kind: str  # "pack-quantized" | "aqlm" | "sparse-bitmask" | "sparse-24-bitmask" | "dense-sparse" | "dense"
    sparse_format: str | None  # the compressed-tensors sparsity format, if any
    modules: dict[str, torch.nn.Module]  # module name -> GroupQuantLinear / CodebookLinear / MaskedLinear

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}


def read_tensors(model_dir: Path) -> CheckpointTensors:
    tensors, files, metadata = {}, {}, {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            metadata[path.name] = fh.metadata()
            files[path.name] = list(fh.keys())
            tensors.update({k: fh.get_tensor(k) for k in fh.keys()})
    if not files:
        raise PressoInputError(f"no .safetensors files in {model_dir}")
    return CheckpointTensors(tensors, files, metadata)


def _matches(name: str, targets: list[str]) -> bool:
    return any(t == name or t == "Linear" or (t.startswith("re:") and re.fullmatch(t[3:], name)) for t in targets)


def _weight_args(qc: dict, name: str, path: Path) -> dict:
    for group in (qc.get("config_groups") or {}).values():
        if _matches(name, group.get("targets") or []) and group.get("weights"):
            return group["weights"]
    raise PressoInputError(f"{path}: quantization_config has no config_groups entry targeting {name}")


def _pack_quantized(t: dict, name: str, qc: dict, path: Path) -> GroupQuantLinear:
    from compressed_tensors.compressors.pack_quantized import unpack_from_int32

    args = _weight_args(qc, name, path)
    bits, shape = int(args["num_bits"]), torch.Size(t[f"{name}.weight_shape"].tolist())
    if args.get("type", "int") != "int" or args.get("strategy") not in ("group", "channel"):
        raise PressoInputError(f"{path}: {name}: only int group/channel weights can be distilled, got {args}")
    codes = unpack_from_int32(t[f"{name}.weight_packed"], bits, shape)  # (out, in) int8
    scale = t[f"{name}.weight_scale"]  # (out, G)
    zero = t.get(f"{name}.weight_zero_point")
    if zero is not None:  # stored packed along rows: (ceil(out*bits/32), G) int32
        zero = unpack_from_int32(zero, bits, scale.shape, packed_dim=0)
    g_idx = t.get(f"{name}.weight_g_idx")
    return GroupQuantLinear(codes, scale, zero, bits, g_idx, t.get(f"{name}.bias"))


def _bitmask(t: dict, name: str) -> MaskedLinear:
    from compressed_tensors.utils.helpers import unpack_bitmasks

    shape = [int(s) for s in t[f"{name}.shape"].reshape(-1).tolist()]
    mask = unpack_bitmasks(t[f"{name}.bitmask"], shape)  # (out, in) bool
    weight = torch.zeros(shape, dtype=torch.float32)
    weight[mask] = t[f"{name}.compressed"].float().reshape(-1)  # kept values, row-major
    return MaskedLinear(weight, mask, t.get(f"{name}.bias"))


def _aqlm(t: dict, name: str) -> CodebookLinear:
    return CodebookLinear(t[f"{name}.codes"], t[f"{name}.codebooks"], t[f"{name}.scales"], t.get(f"{name}.bias"))


def _plan(config: dict, t: dict, path: Path) -> tuple[str, str | None, dict]:
    """-> (kind, sparsity format, {module name: builder()})."""
    qc = config.get("quantization_config") or {}
    method = qc.get("quant_method")
    if method == "aqlm":
        if qc.get("out_group_size", 1) != 1:
            raise PressoInputError(f"{path}: out_group_size {qc.get('out_group_size')} is not supported (1)")
        names = [k.removesuffix(".codes") for k in t if k.endswith(".codes")]
        return "aqlm", None, {n: (lambda n=n: _aqlm(t, n)) for n in names}
    if method is None:  # dense (e.g. structured-pruned: fewer heads/channels): its Linear weights train as is
        return "dense", None, {}
    if method != "compressed-tensors":
        raise PressoInputError(f"{path}: quant_method {method!r}: distill reads dense, compressed-tensors "
                               "(pack-quantized / sparse) or aqlm checkpoints")
    sparse = qc.get("sparsity_config") or {}
    sparse_fmt = sparse.get("format")
    quantized = [k.removesuffix(".weight_packed") for k in t if k.endswith(".weight_packed")]
    if quantized:
        if qc.get("format") != "pack-quantized":
            raise PressoInputError(f"{path}: format {qc.get('format')!r}: only pack-quantized can be distilled")
        return "pack-quantized", sparse_fmt, {n: (lambda n=n: _pack_quantized(t, n, qc, path)) for n in quantized}
    if sparse_fmt in SPARSE_FORMATS:
        names = [k.removesuffix(".bitmask") for k in t if k.endswith(".bitmask")]
        return sparse_fmt, sparse_fmt, {n: (lambda n=n: _bitmask(t, n)) for n in names}
    if sparse_fmt == "dense":
        targets = sparse.get("targets") or []
        names = [k.removesuffix(".weight") for k in t if k.endswith(".weight") and _matches(k[:-7], targets)]
        return "dense-sparse", "dense", {
            n: (lambda n=n: MaskedLinear(t[f"{n}.weight"], t[f"{n}.weight"] != 0, t.get(f"{n}.bias"))) for n in names}
    raise PressoInputError(f"{path}: no quantized or sparse tensors found to distill")


def _is_norm(module: torch.nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def load_student(model_dir: Path) -> Student:
    from transformers import AutoConfig, AutoModelForCausalLM

    path = model_dir / "config.json"
    config_dict = json.loads(path.read_text())
    source = read_tensors(model_dir)
    kind, sparse_fmt, builders = _plan(config_dict, source.tensors, path)
    config = AutoConfig.from_pretrained(model_dir)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # presso builds the layers itself
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    modules, frozen = {}, []
    for name, build in builders.items():
        old = model.get_submodule(name)
        if isinstance(old, torch.nn.Embedding) and kind == "pack-quantized":  # quantized embedding: frozen
            with torch.no_grad():
                old.weight.copy_(build().weight())  # (V, hidden) dequantized; its stored tensors stay as read
            frozen.append(name)
            continue
        if not isinstance(old, torch.nn.Linear):
            raise PressoInputError(f"{model_dir}: {name} is not a linear layer of {config.model_type}")
        modules[name] = build()
        model.set_submodule(name, modules[name])
    owned = tuple(f"{n}." for n in [*modules, *frozen])
    plain = {k: v for k, v in source.tensors.items() if not k.startswith(owned)}
    missing, unexpected = model.load_state_dict(plain, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    missing = [k for k in missing if not k.startswith(owned) and k not in tied]
    if missing or unexpected:
        raise PressoInputError(f"{model_dir}: tensors missing {missing[:3]} / unexpected {unexpected[:3]}")
    model.tie_weights()
    for p in model.parameters():
        p.requires_grad_(False)
    decoder = set(decoder_linears(model)) if kind == "dense" else set()
    for name, module in model.named_modules():
        dense_linear = name in decoder
        if name in modules or _is_norm(module) or dense_linear:
            for p in module.parameters(recurse=False):
                p.requires_grad_(True)
        # pruned entries of a sparse asymmetric layer sit at q == zero: moving the zero would revive them
        if isinstance(module, GroupQuantLinear) and module.zero is not None and sparse_fmt:
            module.zero.requires_grad_(False)
    return Student(model.float(), source, kind, sparse_fmt, modules)
