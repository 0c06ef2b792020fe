"""Run configuration: what to send (prompt/output length distributions), how (fixed concurrency or
Poisson arrivals) and for how long (a request count, a time limit, or both).

The CLI parses user text into these frozen dataclasses; everything downstream (workload, runner,
report) reads them. Bad values raise LoadtestInputError, which the CLI turns into one line + exit 2.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

DIST_KINDS = ("fixed", "uniform", "normal")


class LoadtestInputError(ValueError):
    """A user-facing configuration error (bad flag value, unreadable file, malformed result JSON)."""


@dataclass(frozen=True, slots=True)
class LengthDist:
    """A positive integer length: fixed:N, uniform:LOW:HIGH (inclusive) or normal:MEAN:STD (clamped to >= 1)."""

    kind: str
    a: float
    b: float = 0.0

    @classmethod
    def parse(cls, text: str, what: str) -> LengthDist:
        parts = text.strip().split(":")
        kind, raw = parts[0].lower(), parts[1:]
        if kind.isdigit() and not raw:  # a bare number means fixed
            kind, raw = "fixed", [parts[0]]
        want = {"fixed": 1, "uniform": 2, "normal": 2}.get(kind)
        if want is None or len(raw) != want:
            raise LoadtestInputError(f"{what}: expected fixed:N, uniform:LOW:HIGH or normal:MEAN:STD, got {text!r}")
        try:
            values = [float(v) for v in raw]
        except ValueError:
            raise LoadtestInputError(f"{what}: {text!r} has a non-numeric value") from None
        dist = cls(kind, *values)
        dist.check(what)
        return dist

    def check(self, what: str) -> None:
        if self.kind == "fixed" and self.a < 1:
            raise LoadtestInputError(f"{what}: a fixed length must be >= 1, got {self.a:g}")
        if self.kind == "uniform" and not 1 <= self.a <= self.b:
            raise LoadtestInputError(f"{what}: uniform needs 1 <= LOW <= HIGH, got {self.a:g}:{self.b:g}")
        if self.kind == "normal" and (self.a < 1 or self.b < 0):
            raise LoadtestInputError(f"{what}: normal needs MEAN >= 1 and STD >= 0, got {self.a:g}:{self.b:g}")

    def sample(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return int(self.a)
        if self.kind == "uniform":
            return rng.randint(int(self.a), int(self.b))
        return max(1, round(rng.gauss(self.a, self.b)))

    def describe(self) -> str:
        return f"fixed:{self.a:g}" if self.kind == "fixed" else f"{self.kind}:{self.a:g}:{self.b:g}"


@dataclass(frozen=True, slots=True)
class RunConfig:
    base_url: str
    model: str | None = None  # None: ask GET /v1/models and use the first id
    api: str = "completions"  # or "chat"
    api_key: str | None = None
    mode: str = "concurrency"  # or "rate" (Poisson arrivals)
    concurrency: int = 1  # workers in concurrency mode; cap on requests in flight in rate mode
    rate: float | None = None  # requests per second (rate mode)
    max_requests: int | None = None
    duration_s: float | None = None
    prompt_len: LengthDist = LengthDist("fixed", 64)  # in words of the prompt text
    output_len: LengthDist = LengthDist("fixed", 64)  # max_tokens
    prompt_file: str | None = None  # None: synthetic prompts
    temperature: float = 0.0
    seed: int = 0
    timeout_s: float = 300.0
    extra_body: dict = field(default_factory=dict)  # vendor fields, e.g. {"ignore_eos": true} for vLLM

    def check(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise LoadtestInputError(f"--base-url must start with http:// or https://, got {self.base_url!r}")
        if self.api not in ("completions", "chat"):
            raise LoadtestInputError(f"--api must be completions or chat, got {self.api!r}")
        if self.mode not in ("concurrency", "rate"):
            raise LoadtestInputError(f"--mode must be concurrency or rate, got {self.mode!r}")
        if self.concurrency < 1:
            raise LoadtestInputError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.mode == "rate" and (self.rate is None or self.rate <= 0):
            raise LoadtestInputError("--mode rate needs --rate > 0 (requests per second)")
        if self.max_requests is None and self.duration_s is None:
            raise LoadtestInputError("bound the run with --max-requests, --duration or both")
        if self.max_requests is not None and self.max_requests < 1:
            raise LoadtestInputError(f"--max-requests must be >= 1, got {self.max_requests}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise LoadtestInputError(f"--duration must be > 0 seconds, got {self.duration_s:g}")
        if self.timeout_s <= 0:
            raise LoadtestInputError(f"--timeout must be > 0 seconds, got {self.timeout_s:g}")

    def describe(self) -> dict:
        """The parameters a report records, so two runs can be compared knowingly."""
        return {
            "base_url": self.base_url, "model": self.model, "api": self.api, "mode": self.mode,
            "concurrency": self.concurrency, "rate": self.rate, "max_requests": self.max_requests,
            "duration_s": self.duration_s, "prompt_len_words": self.prompt_len.describe(),
            "output_len_tokens": self.output_len.describe(), "prompt_file": self.prompt_file,
            "temperature": self.temperature, "seed": self.seed, "extra_body": self.extra_body,
        }
