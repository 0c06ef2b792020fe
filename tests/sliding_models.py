"""Tiny random models with sliding-window layers, built from transformers' own config classes (no download):
Gemma 2 (alternating sliding/global, soft-capping), Gemma 3 text (q/k norms, local/global RoPE bases, linear
RoPE scaling on global layers), Mistral (every layer sliding). Window WINDOW tokens, so prompts of a few
dozen tokens already run past it. Gemma's RMSNorm weights are randomised (transformers initialises them to
zero, i.e. identity), so the (1 + weight) convention is exercised. Heads are untied for greedy tests (a random
tied head, fed sqrt(hidden)-scaled embeddings, mostly repeats the last token); `gemma3-tied` covers Gemma's
default tied head at the logits level."""

from __future__ import annotations

from pathlib import Path

WINDOW = 24
FAMILIES = ("gemma2", "gemma3", "mistral")


def _config(family: str, vocab: int, tok, window: int, max_positions: int = 512):
    from transformers import Gemma2Config, Gemma3TextConfig, MistralConfig

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=max_positions, initializer_range=0.3,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                  sliding_window=window)
    if family == "gemma2":
        return Gemma2Config(**common, num_hidden_layers=4, head_dim=32, query_pre_attn_scalar=24,
                            attn_logit_softcapping=8.0, final_logit_softcapping=12.0, tie_word_embeddings=False)
    if family in ("gemma3", "gemma3-tied"):
        rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1_000_000.0}}
        return Gemma3TextConfig(**common, num_hidden_layers=4, head_dim=32, query_pre_attn_scalar=32,
                                layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                             "sliding_attention"], rope_parameters=rope,
                                tie_word_embeddings=family == "gemma3-tied")
    if family in ("mistral", "mistral-full"):
        cfg = MistralConfig(**{**common, "sliding_window": window if family == "mistral" else None},
                            num_hidden_layers=2, tie_word_embeddings=False, rope_theta=10_000.0)
        return cfg
    raise ValueError(family)


def build_sliding_model(out: Path, family: str, seed: int = 0, window: int = WINDOW,
                        max_positions: int = 512) -> Path:
    """Save a random `family` model (gemma2, gemma3, gemma3-tied, mistral, or mistral-full: the same weights
    with no window) and the tiny tokenizer in `out`."""
    import torch
    from conftest import build_tokenizer
    from transformers import AutoModelForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(family, len(tok), tok, window, max_positions), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and family.startswith("gemma"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    model.save_pretrained(out, safe_serialization=True)
    return out
