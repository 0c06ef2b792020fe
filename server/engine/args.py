"""Engine flags, declared once and generated from EngineConfig's fields (vLLM's EngineArgs pattern).

Every command that builds an engine (`serve`, `bench engine`, `bench kv`, `eval --kv-cache`) adds the
flags it exposes with `add_engine_args(parser, names, **defaults)`, and turns parsed args into config
keywords with `engine_kwargs(args)`: a flag's name, type, choices, help and default live here and in
EngineConfig only. Imports no torch, so building the CLI parser stays cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable

from presso.server.engine.config import DTYPE_NAMES, KERNEL_BACKENDS, LM_HEAD_QUANT, MODEL_IMPLS, EngineConfig


@dataclasses.dataclass(frozen=True, slots=True)
class Flag:
    help: str
    type: Callable[[str], object] = str
    choices: tuple[str, ...] | None = None
    flag: str | None = None  # default: --field-name
    metavar: str = "N"


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none") else int(text)


FLAGS: dict[str, Flag] = {
    "dtype": Flag("activation dtype (auto: bf16 for quantized checkpoints, else the checkpoint's)",
                  choices=DTYPE_NAMES),
    "device": Flag("where weights, KV pages and every step run: cpu, cuda or cuda:N", metavar="DEVICE"),
    "kernel_backend": Flag("force one kernel backend for every op (default: by device; triton on CPU "
                           "tensors needs TRITON_INTERPRET=1)", choices=KERNEL_BACKENDS),
    "kv_cache_dtype": Flag("KV cache codec: auto, bf16, fp16, fp32, int8, kivi2, rvq", flag="--kv-cache",
                           metavar="CODEC"),
    "kv_cache_memory": Flag("KV budget: bytes (2GiB, 512MiB) or a fraction of free memory", metavar="BYTES"),
    "kv_window": Flag("compressed KV codecs: keep each sequence's last N tokens exact too (bf16; disables "
                      "prefix caching)", type=int),
    "lm_head_quant": Flag("output head RTN at load (auto: int8 for quantized checkpoints)", choices=LM_HEAD_QUANT),
    "max_num_seqs": Flag("sequences batched at once", type=int),
    "max_num_batched_tokens": Flag("tokens per engine step (chunked prefill budget)", type=int),
    "max_model_len": Flag("context limit (default: the model's)", type=_optional_int),
    "block_size": Flag("tokens per KV cache block", type=int),
    "model_impl": Flag("model code: native (presso's layers), transformers (transformers' modeling code on "
                       "presso's paged KV: any causal LM, slower), auto (native when presso has the family)",
                       choices=MODEL_IMPLS),
    "compile": Flag("CPU: run decode-only steps through torch.compile (its graphs are compiled at start-up: "
                    "minutes on a small CPU, faster once Inductor's cache holds them)", type=bool),
    "engine_process": Flag("serving: schedule and run the model in a separate engine-core process (the API "
                           "process tokenizes, detokenizes and streams)", type=bool),
}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(EngineConfig)}


def add_engine_args(parser: argparse.ArgumentParser, names: Iterable[str], **defaults) -> None:
    """Add the flags of these EngineConfig fields; `defaults` overrides a field's default for this command."""
    for name in names:
        spec = FLAGS[name]
        default = defaults.get(name, _DEFAULTS[name])
        flag = spec.flag or "--" + name.replace("_", "-")
        helptext = spec.help if default is None else f"{spec.help} (default: {default})"
        if spec.type is bool:  # --name / --no-name
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=helptext)
            continue
        parser.add_argument(flag, dest=name, type=spec.type, default=default, choices=spec.choices,
                            metavar=None if spec.choices else spec.metavar, help=helptext)


def engine_kwargs(args: argparse.Namespace) -> dict:
    """EngineConfig keywords of every engine flag the command added."""
    return {name: getattr(args, name) for name in FLAGS if hasattr(args, name)}
