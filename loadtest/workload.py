"""Workload: the stream of requests a run sends, each a prompt of N words and a max_tokens budget.

Prompts are windows of a text file (e.g. an Austen novel, read once) at random offsets, or synthetic
sentences from a fixed word list; lengths come from the config's distributions. Seeded, so two runs
with the same seed (against two servers) send identical requests.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loadtest.config import LoadtestInputError, RunConfig

_SYNTHETIC_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have "
    "an had they you were their one all we can her has there been if more when will would who so no time "
    "house letter morning evening garden sister brother father mother friend walk dinner ball visit town"
).split()


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    prompt: str
    max_tokens: int


class PromptSource:
    """Words to cut prompts from: a text file's words, or a synthetic word list."""

    def __init__(self, path: str | None):
        self.path = path
        if path is None:
            self.words = list(_SYNTHETIC_WORDS)
            return
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise LoadtestInputError(f"--prompt-file {path}: {exc.strerror or exc}") from None
        self.words = text.split()
        if len(self.words) < 16:
            raise LoadtestInputError(f"--prompt-file {path}: needs at least 16 words, has {len(self.words)}")

    def prompt(self, rng: random.Random, n_words: int) -> str:
        if self.path is None:
            return " ".join(rng.choice(self.words) for _ in range(n_words))
        if n_words >= len(self.words):
            reps = n_words // len(self.words) + 1
            return " ".join((self.words * reps)[:n_words])
        start = rng.randrange(len(self.words) - n_words)
        return " ".join(self.words[start:start + n_words])


def jobs(config: RunConfig) -> Iterator[Job]:
    """An endless, seeded sequence of jobs; the runner decides how many to take."""
    rng = random.Random(config.seed)
    source = PromptSource(config.prompt_file)
    index = 0
    while True:
        n_words = config.prompt_len.sample(rng)
        max_tokens = config.output_len.sample(rng)
        yield Job(index, source.prompt(rng, n_words), max_tokens)
        index += 1
