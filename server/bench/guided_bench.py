"""`presso bench guided`: what structured outputs cost per token, measured in the engine itself.

The same greedy workload twice per repetition, alternating: unconstrained, then every request under a
JSON schema whose string field never closes (so the grammar masks every one of the N tokens). Reports
decode tok/s both ways and the time the grammar engine took (mask + advance) per generated token, as a
share of the unconstrained step time per token.
"""

from __future__ import annotations

import json
import time

import torch

from presso.compression.checkpoint import PressoInputError
from presso.server.bench.engine_bench import _prompts
from presso.server.engine.args import engine_kwargs
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore
from presso.server.engine.types import SamplingParams

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def _run(core: EngineCore, batch: int, args, guided: bool, seed: int) -> tuple[float, int, float]:
    """(seconds, generated tokens, grammar seconds) of one batch."""
    guide = ("json_schema", json.dumps(SCHEMA)) if guided else None
    params = SamplingParams(max_tokens=args.tokens, temperature=0.0, ignore_eos=True, guide=guide)
    for i, p in enumerate(_prompts(batch, args.prompt_len, core.vocab_size, seed)):
        core.add_request(f"guided-{seed}-{guided}-{i}", p, params)
    before, start, generated = core.guided.seconds, time.perf_counter(), 0
    while core.has_work():
        generated += sum(len(d.new_token_ids) for d in core.step())
    return time.perf_counter() - start, generated, core.guided.seconds - before


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    core = EngineCore(EngineConfig(model=args.model, **engine_kwargs(args), enable_prefix_caching=False,
                                   max_num_seqs=max(int(b) for b in args.batches.split(","))))
    _run(core, 1, args, True, seed=99)  # warm-up, compiles the grammar
    rows = []
    for b in (int(x) for x in args.batches.split(",")):
        plain, guided, grammar, tokens = [], [], [], 0
        for rep in range(args.repeats):
            t, n, _ = _run(core, b, args, False, seed=rep)
            plain.append(t / n)
            t, n, g = _run(core, b, args, True, seed=rep)
            guided.append(t / n)
            grammar.append(g / n)
            tokens = n
        step = min(plain)
        rows.append({"batch": b, "tokens": tokens, "plain_tok_s": 1 / step, "guided_tok_s": 1 / min(guided),
                     "grammar_ms_per_token": 1e3 * min(grammar), "grammar_share_of_step": min(grammar) / step})
    return {"model": str(args.model), "threads": torch.get_num_threads(), "schema": SCHEMA, "rows": rows}


def command(args) -> int:
    try:
        result = run(args)
    except ValueError as exc:
        raise PressoInputError(str(exc)) from None
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['model']}, {result['threads']} threads; JSON schema {json.dumps(result['schema'])}")
    print(f"{'batch':>5} {'plain tok/s':>12} {'guided tok/s':>13} {'grammar ms/token':>17} {'share of step':>14}")
    for r in result["rows"]:
        print(f"{r['batch']:>5} {r['plain_tok_s']:>12.1f} {r['guided_tok_s']:>13.1f} "
              f"{r['grammar_ms_per_token']:>17.3f} {100 * r['grammar_share_of_step']:>13.1f}%")
    return 0
