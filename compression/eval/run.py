"""`presso eval`: model dir + text spec -> perplexity and size metrics (one frozen result).

By default windows are scored by the model loaded through transformers/presso loaders. A caller may
inject a `WindowScorer` instead: the server's CLI does, to score through its paged (compressed) KV
cache (`presso eval --kv-cache rvq`), without this package importing the server.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data.texts import load_text
from presso.compression.eval import loader, stats
from presso.compression.eval.perplexity import perplexity_from_nll, spread_windows, token_windows, window_nll


class WindowScorer(Protocol):
    kv_cache: str

    def __call__(self, window: torch.Tensor) -> float:
        """Summed next-token NLL of a (1, L) int64 window."""

    def num_parameters(self) -> int: ...


@dataclass(frozen=True, slots=True)
class EvalReport:
    model: str
    text: str
    perplexity: float
    tokens_scored: int
    windows: int
    ctx: int
    dtype: str
    weight_bytes_on_disk: int
    parameters: int
    bits_per_weight: float
    seconds: float
    kv_cache: str | None = None  # None: plain forward passes; else the paged-cache codec scored through

    def to_dict(self) -> dict:
        return asdict(self)


def tokenize_text(tokenizer, text: str) -> torch.Tensor:
    """Tokenize the whole text once, without special tokens (the GPTQ protocol). -> (N,) int64."""
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def model_nll(model: torch.nn.Module):
    """A loaded causal LM as a WindowScorer-like callable: (1, L) int64 -> summed NLL."""
    return lambda w: float(window_nll(model(input_ids=w).logits, w).sum())


def evaluate(
    model_dir: Path,
    text_spec: str,
    ctx: int = 1024,
    max_tokens: int | None = None,
    dtype: str = "float32",
    progress: bool = True,
    scorer: WindowScorer | None = None,
    windows: int | None = None,
) -> EvalReport:
    """windows=None: the text's first max_tokens cut into ctx windows; windows=W: W windows spread evenly
    over the whole text (the suite's protocol, eval/suite.py)."""
    if ctx < 2:
        raise PressoInputError(f"--ctx must be at least 2, got {ctx}")
    text = load_text(text_spec)
    start = time.perf_counter()
    config = loader.read_config(model_dir)
    limit = config.get("max_position_embeddings") or config.get("n_positions")
    if limit and ctx > limit:
        raise PressoInputError(f"--ctx {ctx} exceeds the model's max_position_embeddings ({limit})")
    tokenizer = loader.load_tokenizer(model_dir)
    if windows is None:
        cut = token_windows(tokenize_text(tokenizer, text), ctx, max_tokens)
    else:
        cut = spread_windows(tokenizer, text, ctx, windows)
    if scorer is None:
        model = loader.load_model(model_dir, dtype)
        result = perplexity_from_nll(model_nll(model), cut, progress=progress)
        params = stats.parameter_count(model)
    else:
        result = perplexity_from_nll(scorer, cut, progress=progress)
        params = scorer.num_parameters()
    disk = stats.weight_bytes_on_disk(model_dir)
    return EvalReport(
        model=str(model_dir),
        text=text_spec,
        perplexity=result.perplexity,
        tokens_scored=result.tokens_scored,
        windows=result.windows,
        ctx=result.ctx,
        dtype=dtype,
        weight_bytes_on_disk=disk,
        parameters=params,
        bits_per_weight=stats.bits_per_weight(disk, params),
        seconds=time.perf_counter() - start,
        kv_cache=None if scorer is None else scorer.kv_cache,
    )
