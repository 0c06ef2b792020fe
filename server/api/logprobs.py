"""Shape engine TokenLogprobs into OpenAI's two logprob formats.

Completions: parallel lists `tokens`, `token_logprobs`, `top_logprobs` (dict per position), `text_offset`.
Chat: `content`: a list of {token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}.
"""

from __future__ import annotations


def token_text(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id])


class CompletionLogprobs:
    """Accumulates the completions-format logprobs of one choice across streamed deltas."""

    def __init__(self, tokenizer, offset: int = 0):
        self.tokenizer = tokenizer
        self.offset = offset

    def block(self, entries, token_ids) -> dict:
        """Format entries (TokenLogprob or None for the first prompt token) for `token_ids`."""
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for tid, entry in zip(token_ids, entries, strict=True):
            text = token_text(self.tokenizer, tid)
            out["tokens"].append(text)
            out["text_offset"].append(self.offset)
            self.offset += len(text)
            if entry is None:
                out["token_logprobs"].append(None)
                out["top_logprobs"].append(None)
                continue
            out["token_logprobs"].append(entry.logprob)
            out["top_logprobs"].append({token_text(self.tokenizer, t): lp for t, lp in entry.top} or None)
        return out

    @staticmethod
    def merge(a: dict | None, b: dict) -> dict:
        if a is None:
            return b
        return {k: a[k] + b[k] for k in a}


def chat_logprobs(tokenizer, entries, token_ids) -> list[dict]:
    content = []
    for tid, entry in zip(token_ids, entries, strict=True):
        text = token_text(tokenizer, tid)
        content.append({
            "token": text,
            "logprob": entry.logprob,
            "bytes": list(text.encode("utf-8")),
            "top_logprobs": [
                {"token": (t := token_text(tokenizer, k)), "logprob": lp, "bytes": list(t.encode("utf-8"))}
                for k, lp in entry.top
            ],
        })
    return content
