"""Write quantized Linears as a compressed-tensors `pack-quantized` checkpoint, through the library.

QuantizedLayer list -> QuantizationConfig (one config group per distinct grid, targets = exact module
names) -> apply_quantization_config -> weight_scale / weight_zero_point set from our grids (the weights
already hold the dequantized values) -> ModelCompressor(...pack-quantized).compress_model -> a check that
the packed codes unpack to exactly our codes -> save_pretrained + update_config. The result loads with
plain `transformers.AutoModelForCausalLM.from_pretrained`.

Pruned Linears (QuantizedLayer.mask): quantized ones keep their zeros as codes == zero point (a symmetric
grid's code 0), recorded by a `sparsity_config` of format `dense`; a checkpoint with pruning only is
written by presso.compression.prune.bitmask (`sparse-bitmask` / `sparse-24-bitmask`, or `dense`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from presso.compression.calibration.sequential import QuantizedLayer
from presso.compression.methods.grid import GridSpec


def _args(spec: GridSpec):
    from compressed_tensors.quantization import QuantizationArgs

    strategy = "channel" if spec.group_size is None else "group"
    scale_dtype = torch.float16 if spec.scale_dtype == "float16" else None  # None: the model's dtype
    return QuantizationArgs(num_bits=spec.bits, type="int", symmetric=spec.symmetric, strategy=strategy,
                            group_size=spec.group_size, scale_dtype=scale_dtype)


def quantization_config(layers: list[QuantizedLayer]):
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme

    groups: dict[GridSpec, list[str]] = {}
    for q in layers:
        groups.setdefault(q.plan.spec, []).append(q.plan.name)
    schemes = {f"group_{i}": QuantizationScheme(targets=names, weights=_args(spec))
               for i, (spec, names) in enumerate(groups.items())}
    return QuantizationConfig(config_groups=schemes, ignore=[], quantization_status="frozen")


def unpack_codes(module: torch.nn.Module, spec: GridSpec) -> torch.Tensor:
    """The int8 codes (out, in) a compressed module holds (compressed-tensors' own unpacker)."""
    from compressed_tensors.compressors.pack_quantized import unpack_from_int32

    shape = torch.Size(module.weight_shape.tolist())
    return unpack_from_int32(module.weight_packed.data, spec.bits, shape)


@torch.no_grad()
def export_compressed(model: torch.nn.Module, layers: list[QuantizedLayer], out: Path,
                      sparse_format: str = "bitmask") -> str:
    """-> the checkpoint format written, e.g. "compressed-tensors/pack-quantized". `sparse_format`
    ("bitmask" | "dense") applies to checkpoints with pruning only."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import apply_quantization_config

    from presso.compression.prune import bitmask

    pruned_layers = layers
    layers = [q for q in layers if q.weight is not None]
    if not layers:  # pruning only
        fmt = bitmask.choose_format(pruned_layers, sparse_format)
        model.save_pretrained(out)
        if fmt != "dense":
            bitmask.write_sparse_tensors(out, pruned_layers, fmt)
        bitmask.add_sparsity_config(out / "config.json", bitmask.sparsity_config(pruned_layers, fmt), True)
        return f"compressed-tensors/{fmt}"
    modules = dict(model.named_modules())
    apply_quantization_config(model, quantization_config(layers), show_progress=False)
    for q in layers:
        module, qw = modules[q.plan.name], q.weight
        assert torch.equal(module.weight.data.float(), qw.dequantize()), q.plan.name
        if q.plan.spec.scale_dtype == "float16":  # compressed-tensors 0.20 sizes int scales by the weight dtype
            module.weight_scale = torch.nn.Parameter(torch.empty_like(qw.scale, dtype=torch.float16),
                                                     requires_grad=False)
        module.weight_scale.data.copy_(qw.scale.to(module.weight_scale.dtype))
        if not q.plan.spec.symmetric:
            module.weight_zero_point.data.copy_(qw.zero.to(module.weight_zero_point.dtype))
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    compressor.compress_model(model)
    for q in layers:
        if not torch.equal(unpack_codes(modules[q.plan.name], q.plan.spec), q.weight.codes):
            raise RuntimeError(f"pack-quantized codes of {q.plan.name} differ from the quantizer's")
    model.save_pretrained(out)
    compressor.update_config(str(out))
    if any(not q.plan.spec.symmetric for q in layers):
        _dequantize_on_load(out / "config.json")
    if any(q.mask is not None for q in pruned_layers):
        bitmask.add_sparsity_config(out / "config.json", bitmask.sparsity_config(pruned_layers, "dense"), False)
    return "compressed-tensors/pack-quantized"


def _dequantize_on_load(config_path: Path) -> None:
    """Asymmetric checkpoints: ask transformers to dequantize while loading.

    compressed-tensors 0.20 lays out an unloaded module's zero point unpacked (out, G) while the file holds
    it packed (out*bits/32, G), so transformers' default (compressed) load path rejects the shapes; its
    `dequantize` path reads the file as written.
    """
    config = json.loads(config_path.read_text())
    config["quantization_config"]["dequantize"] = True
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
