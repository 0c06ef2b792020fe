"""The generic model path: any transformers causal LM presso has no native class for, on presso's paged KV.

transformers' own modeling code runs the model (built by AutoModelForCausalLM from the checkpoint's
config) with attention registered as ATTN_NAME (generic_attention.py), so the engine feeds it exactly what a
native model gets: the flattened token batch of one step (input_ids (T,), positions (T,)), the PagedBatch
and the KV cache. Continuous batching, chunked prefill, preemption and the non-pre-RoPE KV codecs work
unchanged. Slower than native (transformers' per-layer Python, no merged q/k/v or gate/up matmuls);
the engine logs it and exports `presso_model_info{model_impl="generic"}`.

Weights: a dense checkpoint loads with from_pretrained (transformers' key renames and weight tying).
A quantized one (compressed-tensors or AQLM) is built from its config and every nn.Linear the checkpoint
stores is replaced by presso's linear method for its codec (make_linear), the packed weights kept packed.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
from torch import nn

from presso.kernels.attention.types import PagedBatch
from presso.server.kv.cache import KVCache
from presso.server.layers.linear import LinearMethod, make_linear
from presso.server.layers.quant_config import QuantConfig
from presso.server.models.base import CausalLM
from presso.server.models.generic_attention import ATTN_NAME, StepContext, register, step_context
from presso.server.models.weights import WeightSource

log = logging.getLogger(__name__)


class GenericCausalLM(CausalLM):
    impl = "generic"

    def __init__(self, hf: nn.Module, cfg: dict, dtype: torch.dtype):
        super().__init__(cfg, dtype)
        self.hf = hf  # a transformers *ForCausalLM with attn_implementation=ATTN_NAME
        self.base = hf.base_model  # its decoder stack (LlamaModel, GPTNeoXModel, ...): ids -> hidden states
        assert self.base is not hf, "a causal LM wraps a base model under base_model_prefix"
        text = hf.config.get_text_config()
        heads = text.num_attention_heads
        self.num_layers = text.num_hidden_layers
        self.num_kv_heads = getattr(text, "num_key_value_heads", None) or heads
        self.head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        self.max_context = sliding_window(text)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, batch: PagedBatch,
                kv: KVCache) -> torch.Tensor:
        """input_ids, positions (T,) -> hidden states (T, hidden), the step's K/V written to `kv`."""
        with step_context(StepContext(batch, kv, self.num_kv_heads, self.head_dim)):
            out = self.base(input_ids=input_ids[None], position_ids=positions[None], use_cache=False)
        return out[0][0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (N, hidden) -> (N, V) fp32 through the causal LM's own head code (its logit scaling or
        soft-capping included): its forward runs with the base model answering `hidden` as its output."""
        from transformers.modeling_outputs import BaseModelOutputWithPast

        with _replaced_forward(self.base, lambda *a, **k: BaseModelOutputWithPast(last_hidden_state=hidden[None])):
            out = self.hf(inputs_embeds=hidden[None], use_cache=False)
        return out.logits[0].float()

    def head_weight(self) -> torch.Tensor | None:
        return None  # no RTN head: the model's head code may scale its logits (lm_head_quant is a no-op here)


def sliding_window(text_config) -> int | None:
    """The window transformers' code would slide attention over, if any. Full attention over the paged cache
    equals it while contexts fit in the window, so the engine caps max_model_len there (attention also
    refuses longer contexts: generic_attention._check_window)."""
    window = getattr(text_config, "sliding_window", None)
    types = getattr(text_config, "layer_types", None)
    if not window or not getattr(text_config, "use_sliding_window", True):
        return None
    if types is not None and "sliding_attention" not in types:
        return None
    return int(window)


@contextlib.contextmanager
def _replaced_forward(module: nn.Module, forward):
    module.forward = forward  # an instance attribute shadows the class's forward for this call only
    try:
        yield
    finally:
        del module.forward


def load_generic(model_dir: Path, cfg: dict, dtype: torch.dtype, device: str) -> tuple[GenericCausalLM, WeightSource]:
    """The checkpoint on transformers' modeling code with presso's paged attention (ValueError if it cannot)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = cfg.get("model_type")
    try:
        hf_config = AutoConfig.from_pretrained(model_dir)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"config.json model_type {kind!r}: transformers does not know it "
                         f"({str(exc).splitlines()[0]})") from None
    if getattr(hf_config, "is_encoder_decoder", False):
        raise ValueError(f"config.json model_type {kind!r} is an encoder-decoder model; presso serves "
                         "decoder-only causal LMs")
    softcap = getattr(hf_config.get_text_config(), "attn_logit_softcapping", None)
    if softcap:
        raise ValueError(f"config.json model_type {kind!r}: attention logit soft-capping ({softcap}) is not "
                         "supported on the generic path")
    register()
    source = WeightSource(model_dir, device)
    qc = QuantConfig(cfg.get("quantization_config"))
    try:
        if qc.quantized:
            hf = _build_quantized(hf_config, qc, source, dtype)
        else:
            hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation=ATTN_NAME)
    except ValueError as exc:
        if "Unrecognized configuration class" not in str(exc):
            raise
        raise ValueError(f"config.json model_type {kind!r} has no causal LM in transformers "
                         "(AutoModelForCausalLM)") from None
    log.warning("model_type %r runs on the generic path (transformers' modeling code with presso's paged "
                "attention): slower than a native presso model", kind)
    model = GenericCausalLM(hf.to(device).eval(), cfg, dtype)
    if model.max_context:
        log.warning("generic path: contexts capped at the model's %d-token sliding window", model.max_context)
    return model, source


def _build_quantized(hf_config, qc: QuantConfig, source: WeightSource, dtype: torch.dtype) -> nn.Module:
    """From the config; every nn.Linear stored in the checkpoint becomes presso's method for its codec,
    every other parameter is read by its checkpoint name (a head absent from the checkpoint stays tied)."""
    from transformers import AutoModelForCausalLM

    if hasattr(hf_config, "quantization_config"):
        del hf_config.quantization_config  # presso reads it (qc); transformers must not quantize again
    hf = AutoModelForCausalLM.from_config(hf_config, dtype=dtype, attn_implementation=ATTN_NAME)
    for name, mod in list(hf.named_modules()):
        spec = qc.spec_for(name)
        if type(mod) is not nn.Linear or (spec.codec == "dense" and not source.has(f"{name}.weight")):
            continue  # not a Linear, or a dense one the checkpoint lacks (a tied head)
        linear = make_linear([name], mod.in_features, [mod.out_features], mod.bias is not None, spec, dtype)
        linear.load(source)
        linear.finalize()
        parent, _, attr = name.rpartition(".")
        setattr(hf.get_submodule(parent), attr, linear)
    swapped = {id(p) for m in hf.modules() if isinstance(m, LinearMethod) for p in m.parameters()}
    for name, param in hf.named_parameters():
        if id(param) not in swapped:
            param.data = source.get(name).to(dtype).contiguous()
    return hf
