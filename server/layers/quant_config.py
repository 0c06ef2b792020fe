"""Read a checkpoint's `quantization_config` and say which linear codec each module uses.

Accepted: no quantization_config (every linear `dense`); compressed-tensors (`pack-quantized` ->
`int2`..`int8`, `sparse-bitmask`, `sparse-24-bitmask`, `dense` for ignored modules); `aqlm`.
Anything else is refused with a ValueError naming the field. The result feeds make_linear().
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INT_CODECS = tuple(f"int{b}" for b in range(2, 9))
ACCEPTED_CODECS = frozenset({"dense", *INT_CODECS, "sparse-bitmask", "sparse-24-bitmask", "aqlm"})


@dataclass(frozen=True, slots=True)
class LinearSpec:
    """How one linear layer's weight is stored on disk."""

    codec: str = "dense"
    num_bits: int = 16
    group_size: int | None = None
    symmetric: bool = True
    extra: tuple[tuple[str, int], ...] = ()  # codec-specific ints (AQLM: codebooks, codebook bits, groups)


def _matches(name: str, class_name: str, targets) -> bool:
    for t in targets:
        if t.startswith("re:"):
            if re.match(t[3:], name):
                return True
        elif t == class_name or t == name or name.endswith("." + t):
            return True
    return False


class QuantConfig:
    """Module name -> LinearSpec for one checkpoint."""

    def __init__(self, raw: dict | None):
        self.raw = raw or {}
        self.method = self.raw.get("quant_method")
        if self.method not in (None, "compressed-tensors", "aqlm"):
            raise ValueError(f"quantization_config.quant_method {self.method!r} is not supported "
                             "(expected compressed-tensors or aqlm)")
        self.groups = []
        if self.method == "compressed-tensors":
            self._read_compressed_tensors()

    def _read_compressed_tensors(self) -> None:
        fmt = self.raw.get("format")
        for name, group in (self.raw.get("config_groups") or {}).items():
            w = group.get("weights")
            if w is None:
                continue
            if w.get("type", "int") != "int" or group.get("input_activations"):
                raise ValueError(f"quantization_config.config_groups.{name}: only int weight-only quantization "
                                 "is supported")
            if (group.get("format") or fmt) != "pack-quantized":
                raise ValueError(f"quantization_config.config_groups.{name}.format must be pack-quantized")
            bits = int(w["num_bits"])
            if f"int{bits}" not in INT_CODECS:
                raise ValueError(f"quantization_config.config_groups.{name}.weights.num_bits {bits} unsupported")
            strategy = w.get("strategy") or ("group" if w.get("group_size") else "channel")
            if strategy not in ("group", "channel"):
                raise ValueError(f"quantization_config.config_groups.{name}.weights.strategy {strategy!r} "
                                 "unsupported (group or channel)")
            spec = LinearSpec(f"int{bits}", bits, w.get("group_size") if strategy == "group" else None,
                              bool(w.get("symmetric", True)))
            self.groups.append((tuple(group.get("targets") or ()), spec))
        sparsity = self.raw.get("sparsity_config") or {}
        self.sparse_format = sparsity.get("format") if sparsity else None
        if self.sparse_format not in (None, "dense", "sparse-bitmask", "sparse-24-bitmask"):
            raise ValueError(f"quantization_config.sparsity_config.format {self.sparse_format!r} unsupported")
        self.sparse_targets = tuple(sparsity.get("targets") or ())
        self.sparse_ignore = tuple(sparsity.get("ignore") or ())

    def spec_for(self, module_name: str, class_name: str = "Linear") -> LinearSpec:
        if self.method is None:
            return LinearSpec()
        if self.method == "aqlm":
            keep = self.raw.get("linear_weights_not_to_quantize") or []
            if any(module_name == k or module_name + ".weight" == k for k in keep):
                return LinearSpec()
            extra = tuple((k, int(self.raw[k])) for k in ("in_group_size", "out_group_size", "num_codebooks",
                                                          "nbits_per_codebook") if k in self.raw)
            return LinearSpec("aqlm", extra=extra)
        if _matches(module_name, class_name, self.raw.get("ignore") or ()):
            return self._sparse_or_dense(module_name, class_name)
        for targets, spec in self.groups:
            if _matches(module_name, class_name, targets):
                return spec
        return self._sparse_or_dense(module_name, class_name)

    def _sparse_or_dense(self, module_name: str, class_name: str) -> LinearSpec:
        if (self.sparse_format in ("sparse-bitmask", "sparse-24-bitmask")
                and _matches(module_name, class_name, self.sparse_targets)
                and not _matches(module_name, class_name, self.sparse_ignore)):
            return LinearSpec(self.sparse_format)
        return LinearSpec()

    @property
    def quantized(self) -> bool:
        return self.method is not None
