"""RoPE cos/sin table (server/layers/rotary.py) against transformers' own rotary embedding.

The table is filled once per position and doubles on demand; a gathered row must equal what
transformers computes for that position alone, bit for bit in fp32, for every supported scaling kind,
across a growth of the table and in any position order.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from presso.server.layers.rotary import Rotary, apply_rotary

HEAD_DIM = 64
SCALINGS = [None, {"rope_type": "linear", "factor": 4.0},
            {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
             "original_max_position_embeddings": 1024}]


@pytest.mark.parametrize("scaling", SCALINGS, ids=["default", "linear", "llama3"])
def test_table_rows_equal_transformers(scaling):
    cfg = {"hidden_size": 4 * HEAD_DIM, "num_attention_heads": 4, "rope_theta": 10000.0,
           "max_position_embeddings": 8192, **({"rope_scaling": scaling} if scaling else {})}
    rotary = Rotary(cfg, HEAD_DIM)
    ref = LlamaRotaryEmbedding(LlamaConfig(**cfg))
    x = torch.randn(1, 4, 1, HEAD_DIM)
    first = torch.tensor([5, 0, 1023, 7])  # inside the first table
    later = torch.tensor([3000, 2, 1024, 4095, 17])  # grows it, mixed with old positions
    for positions in (first, later):
        cos_ref, sin_ref = ref(x, positions[None, :])  # (1, T, D)
        cos, sin = rotary.cos_sin(positions, torch.float32)  # (T, 1, D), sin signed
        assert torch.equal(cos[:, 0], cos_ref[0])
        half = HEAD_DIM // 2
        assert torch.equal(sin[:, 0, half:], sin_ref[0, :, half:])
        assert torch.equal(sin[:, 0, :half], -sin_ref[0, :, :half])
    assert rotary._table[0].shape[0] == 4096
    q = torch.randn(len(later), 3, HEAD_DIM)
    cos_ref, sin_ref = ref(x, later[None, :])
    rotated_ref = q * cos_ref[0, :, None] + torch.cat((-q[..., half:], q[..., :half]), -1) * sin_ref[0, :, None]
    assert torch.equal(apply_rotary(q, *rotary.cos_sin(later, torch.float32)), rotated_ref)


@pytest.mark.parametrize("rope_type", ["longrope", "su"])
def test_longrope_rows_equal_transformers_per_position(rope_type):
    """Phi-3 longrope with partial rotary 0.75: each position's row equals transformers' rotary embedding for
    a call ending at that position (short factors below original_max_position_embeddings, long from it)."""
    from transformers import Phi3Config
    from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

    half = int(HEAD_DIM * 0.75) // 2
    scaling = {"rope_type": rope_type, "short_factor": [1.0 + 0.05 * i for i in range(half)],
               "long_factor": [1.5 + 0.5 * i for i in range(half)], "partial_rotary_factor": 0.75}
    cfg = {"model_type": "phi3", "hidden_size": 4 * HEAD_DIM, "num_attention_heads": 4, "rope_theta": 10000.0,
           "max_position_embeddings": 4096, "original_max_position_embeddings": 1024, "rope_scaling": scaling}
    rotary = Rotary(cfg, HEAD_DIM)
    hf_params = {**scaling, "rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 1024}
    ref = Phi3RotaryEmbedding(Phi3Config(**{k: v for k, v in cfg.items() if k not in ("model_type", "rope_scaling")},
                                         rope_parameters=hf_params))
    x = torch.randn(1, 4, 1, HEAD_DIM)
    for pos in (0, 5, 1023, 1024, 3000, 7):
        cos_ref, sin_ref = ref(x, torch.tensor([[pos]]))  # (1, 1, 0.75 D)
        cos, sin = rotary.cos_sin(torch.tensor([pos]), torch.float32)  # (1, 1, 0.75 D)
        assert cos.shape[-1] == int(HEAD_DIM * 0.75)
        torch.testing.assert_close(cos[:, 0], cos_ref[0], rtol=0, atol=1e-6)
        signed = torch.cat((-sin_ref[0, :, :half], sin_ref[0, :, half:]), dim=-1)  # the table negates half 1
        torch.testing.assert_close(sin[:, 0], signed, rtol=0, atol=1e-6)
    q = torch.randn(3, 2, HEAD_DIM)
    out = apply_rotary(q, *rotary.cos_sin(torch.tensor([1, 2, 2000]), torch.float32))
    assert torch.equal(out[..., int(HEAD_DIM * 0.75):], q[..., int(HEAD_DIM * 0.75):])  # the pass-through dims
