"""EngineConfig.compile: decode-only steps through torch.compile give eager's greedy tokens (tiny Llama)."""

from __future__ import annotations

import pytest
import torch

from presso.server.engine import LLM, SamplingParams

pytestmark = pytest.mark.slow  # Inductor compiles two graphs (batch 1, batch > 1): minutes on a loaded CPU


def _prompts(vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(3)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in (7, 20, 13)]


def _run(model_dir, **kwargs) -> dict[bool, tuple]:
    outs = {}
    for compiled in (False, True):
        llm = LLM(model_dir, block_size=4, max_num_seqs=4, enable_prefix_caching=False, compile=compiled, **kwargs)
        assert (llm.engine.runner.compiled is not None) == compiled
        params = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)
        prompts = _prompts(len(llm.tokenizer))
        batch = [o.token_ids for o in llm.generate(prompts, params)]  # decode steps of 3, 2, then 1 rows
        single = llm.generate(prompts[:1], params)[0].token_ids  # batch-1 decodes only
        if compiled:
            assert not llm.engine.runner.compiled.failed  # the compiled graph ran, not the eager fallback
        outs[compiled] = (batch, single)
    return outs


def test_compiled_decode_matches_eager_greedy_fp32(parity_llama_dir):
    outs = _run(parity_llama_dir, dtype="float32")
    assert outs[True] == outs[False]


@pytest.mark.parametrize("codec", ["int4", "int8"])
def test_compiled_decode_packed_bf16(codec, quantized_dirs):
    """Packed int4/int8 weights in bf16: fused kernels round once where eager rounds per op, so a random
    tiny model's near-tie logits can flip a later greedy token (seen: one of 3 sequences at token 8);
    every sequence's first tokens, and the batch-1 run's, must agree."""
    outs = _run(quantized_dirs[codec])
    (batch_c, single_c), (batch_e, single_e) = outs[True], outs[False]
    assert [t[:4] for t in batch_c] == [t[:4] for t in batch_e]
    assert single_c[:4] == single_e[:4]
