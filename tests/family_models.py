"""Tiny random models of the families presso serves natively (Qwen3, Phi-3 with longrope and partial RoPE,
SmolLM3 with NoPE layers) and of those the compressor must handle too (Mistral, Gemma 2, Gemma 3 text and
multimodal), built from transformers' own config classes and saved with save_pretrained (no download).

Init std 0.3 (as the Llama parity model) gives peaked logits, so greedy parity is a meaningful check;
intermediate 192 and hidden 64 are divisible by the presets' group size 64.
"""

from __future__ import annotations

from pathlib import Path

from conftest import build_tokenizer

# Phi-3: RoPE switches from the short to the long factors here. The greedy-parity model keeps every sequence
# below it (transformers' generate() recomputes the whole cache with the long factors when a sequence crosses
# it; presso rotates by position, see server/layers/rotary.py); the crossing is checked on logits separately.
PHI3_ORIGINAL_MAX = 256
FAMILIES = ("qwen3", "phi3", "smollm3")  # served natively (tests/server/test_families.py)
COMPRESS_FAMILIES = (*FAMILIES, "mistral", "gemma2", "gemma3_text", "gemma3")


def family_config(family: str, vocab: int, bos: int, eos: int, original_max: int = PHI3_ORIGINAL_MAX):
    import transformers

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, initializer_range=0.3, tie_word_embeddings=False,
                  bos_token_id=bos, eos_token_id=eos, pad_token_id=None)
    if family == "qwen3":  # head_dim 32 from the config (not hidden / heads = 16)
        return transformers.Qwen3Config(**common, head_dim=32, max_position_embeddings=512,
                                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    if family == "phi3":  # Phi-4-mini style: partial rotary 0.75 with longrope short/long factors
        rotary_half = int(16 * 0.75) // 2
        return transformers.Phi3Config(
            **common, max_position_embeddings=4 * original_max, original_max_position_embeddings=original_max,
            sliding_window=None,
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
                             "short_factor": [1.0 + 0.1 * i for i in range(rotary_half)],
                             "long_factor": [2.0 + 0.7 * i for i in range(rotary_half)],
                             "original_max_position_embeddings": original_max},
        )
    if family == "smollm3":  # every 2nd layer without RoPE (layer 1 here)
        return transformers.SmolLM3Config(**common, max_position_embeddings=512, no_rope_layer_interval=2,
                                          rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    if family == "mistral":
        return transformers.MistralConfig(**common, max_position_embeddings=512, sliding_window=None)
    if family in ("gemma2", "gemma3_text"):  # one sliding-window (32) and one global layer
        cls = transformers.Gemma2Config if family == "gemma2" else transformers.Gemma3TextConfig
        return cls(**common, head_dim=16, max_position_embeddings=512, sliding_window=32,
                   layer_types=["sliding_attention", "full_attention"])
    if family == "gemma3":  # multimodal: a vision tower with as many layers as the text decoder
        text = family_config("gemma3_text", vocab, bos, eos).to_dict()
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      image_size=28, patch_size=14)
        return transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                         image_token_index=vocab - 1, boi_token_index=vocab - 2,
                                         eoi_token_index=vocab - 3)
    raise ValueError(f"unknown family {family!r}")


def build_family_model(out: Path, family: str, seed: int = 0, original_max: int = PHI3_ORIGINAL_MAX) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out)
    config = family_config(family, len(tok), tok.bos_token_id, tok.eos_token_id, original_max)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    return out
