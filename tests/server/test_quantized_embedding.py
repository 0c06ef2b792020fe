"""Quantized (tied) embeddings: `presso compress` with an `embeddings:` block writes a packed
model.embed_tokens and no lm_head copy; presso's engine and the eval loader (transformers) both give the
logits of the dequantized reference, built here independently with presso's grid on the fp32 model."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from presso.compression.eval.loader import load_model
from presso.compression.methods.grid import GridSpec, dequantize, rtn_quantize
from presso.compression.quantize import CompressOptions, compress
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore

PROMPT = list(range(3, 60))
CASES = {"int8-channel": (8, None), "int4-g32": (4, 32)}


def _rtn(w: torch.Tensor, bits: int, group: int | None) -> torch.Tensor:
    spec = GridSpec(bits, group, True)
    codes, scale, zero = rtn_quantize(w.float(), spec)
    return dequantize(codes, scale, zero, spec)


def reference_logits(base_dir, bits: int, group: int | None) -> torch.Tensor:
    """fp32 model with the embedding (and so the tied head) and every decoder Linear RTN-dequantized."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.copy_(_rtn(emb, bits, group))
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and name != "lm_head":
                m.weight.copy_(_rtn(m.weight, 4, 32))
        return model(torch.tensor([PROMPT])).logits[0]


def presso_logits(model_dir, dtype: str = "float32") -> torch.Tensor:
    return EngineCore(EngineConfig(model=model_dir, dtype=dtype, kv_cache_memory="8MiB")).prompt_logits(PROMPT)


def sqnr_db(ref: torch.Tensor, x: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - x).pow(2).sum()))


@pytest.fixture(scope="module")
def emb_dirs(tmp_path_factory, tiny_llama_dir) -> dict[str, object]:
    out = {}
    for case, (bits, group) in CASES.items():
        root = tmp_path_factory.mktemp(case)
        recipe = root / "recipe.yaml"
        g = "channel" if group is None else group
        recipe.write_text(f"embeddings: {{bits: {bits}, group_size: {g}}}\n"
                          "steps:\n  - {method: rtn, bits: 4, group_size: 32}\n")
        report = compress(CompressOptions(tiny_llama_dir, str(recipe), root / "out", progress=False))
        out[case] = (root / "out", report)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpoint_holds_packed_embedding_and_no_head(case, emb_dirs, tiny_llama_dir):
    model_dir, report = emb_dirs[case]
    bits, group = CASES[case]
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        packed = f.get_slice("model.embed_tokens.weight_packed").get_shape()
    assert "lm_head.weight" not in keys and "model.embed_tokens.weight" not in keys
    vocab, hidden = 384, 64
    assert packed == [vocab, hidden * bits // 32]
    groups = 1 if group is None else hidden // group
    expected = vocab * hidden * bits // 8 + 4 * vocab * groups + 2 * 8  # codes + fp32 scales + shape
    assert report["embeddings"]["bytes"] == expected
    assert report["embeddings"]["bytes"] * 32 / bits < report["embeddings"]["fp32_bytes"] * 1.5


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_and_eval_loader_match_dequantized_reference(case, emb_dirs, tiny_llama_dir):
    model_dir, _ = emb_dirs[case]
    ref = reference_logits(tiny_llama_dir, *CASES[case])
    engine = presso_logits(model_dir)
    assert sqnr_db(ref, engine) >= 80.0, sqnr_db(ref, engine)
    with torch.inference_mode():
        loaded = load_model(model_dir)(torch.tensor([PROMPT])).logits[0]
    assert sqnr_db(ref, loaded) >= 80.0, sqnr_db(ref, loaded)


def test_quantized_embedding_changes_logits_and_only_rows_are_dequantized(emb_dirs, tiny_llama_dir):
    model_dir, _ = emb_dirs["int4-g32"]
    dense = reference_logits(tiny_llama_dir, 8, None)
    assert sqnr_db(dense, reference_logits(tiny_llama_dir, 4, 32)) < 60.0  # int4 is a real change
    core = EngineCore(EngineConfig(model=model_dir, dtype="float32", kv_cache_memory="8MiB"))
    qembed = core.model.qembed
    assert qembed is not None and core.model.embed.numel() == 0  # no dense table kept
    ids = torch.tensor([5, 7, 5])
    full = _rtn(load_model(tiny_llama_dir).get_input_embeddings().weight.detach(), 4, 32)
    assert torch.equal(qembed.lookup(ids), full[ids])
