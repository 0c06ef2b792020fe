"""Offline subcommands of the `presso` console script: pull, data, eval, compress, report, sweep (and
kv-calibrate, whose parser lives in kv_rvq/cli.py).

Each `add_<command>(subparsers)` adds one subcommand and returns its parser; presso.server.cli, the one
module that registers every command, calls them. Each handler takes the parsed args and returns an exit
status; PressoInputError is turned into one line + exit 2 by the entry point.
"""

from __future__ import annotations

import argparse
import json
import sys

from presso.compression.checkpoint.model_dir import resolve_model_dir
from presso.compression.data.corpora import CORPORA
from presso.compression.eval.suite import SUITE_WINDOWS
from presso.compression.kv_rvq.cli import register as add_kv_calibrate  # noqa: F401  re-exported for server.cli
from presso.compression.models.registry import DEFAULT_MODEL, EMBEDDED_MODELS


def _cmd_pull(args: argparse.Namespace) -> int:
    from presso.compression.models.pull import pull

    print(pull(args.name, dtype=args.dtype))
    return 0


def _cmd_data_pull(args: argparse.Namespace) -> int:
    from presso.compression.data.austen import pull_austen
    from presso.compression.data.corpora import CORPORA, pull_corpus

    for name in CORPORA if args.dataset == "all" else [args.dataset]:
        if name == "austen":
            print(pull_austen())  # the novels, one file each (austen:<novel>)
        print(pull_corpus(name))  # calib.txt, eval.txt, manifest.json
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from presso.compression.checkpoint.errors import PressoInputError
    from presso.compression.eval.run import evaluate

    scorer = args.make_scorer(args) if getattr(args, "make_scorer", None) else None
    if args.suite:
        return _eval_suite(args, scorer)
    if args.text is None:
        raise PressoInputError("presso eval needs --text SPEC or --suite")
    report = evaluate(
        resolve_model_dir(args.model),
        args.text,
        ctx=args.ctx,
        max_tokens=args.max_tokens,
        dtype=args.dtype,
        progress=not args.json and sys.stderr.isatty() or args.progress,
        scorer=scorer,
        windows=args.windows,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        for key, value in report.to_dict().items():
            print(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
    return 0


def _eval_suite(args: argparse.Namespace, scorer) -> int:
    from pathlib import Path

    from presso.compression.checkpoint.errors import PressoInputError
    from presso.compression.eval.suite_run import default_reference, evaluate_suite, render

    if args.text is not None or args.max_tokens is not None:
        raise PressoInputError("--suite scores every corpus's evaluation part: drop --text/--max-tokens")
    model = resolve_model_dir(args.model)
    reference = Path(args.reference).expanduser() if args.reference else default_reference(model)
    result = evaluate_suite(model, reference, args.windows or SUITE_WINDOWS, args.ctx, args.dtype,
                            progress=args.progress, scorer=scorer)
    print(json.dumps(result) if args.json else render(result))
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from pathlib import Path

    from presso.compression.quantize import CompressOptions, compress

    report = compress(CompressOptions(
        model_dir=resolve_model_dir(args.model), recipe=args.recipe, out=Path(args.out).expanduser(),
        calib=args.calib, calib_samples=args.calib_samples, calib_len=args.calib_len, calib_seed=args.calib_seed,
        report_samples=args.report_samples, eval_text=args.eval, eval_tokens=args.eval_tokens, eval_ctx=args.eval_ctx,
        batch_size=args.batch_size, progress=not args.json and sys.stderr.isatty() or args.progress,
        sparse_format=args.sparse_format,
        target_bits=args.target_bits, target_size=args.target_size, kv=args.kv,
    ))
    if str(report.get("format", "")).endswith("bitmask"):
        print(f"note: {args.out} uses {report['format']}, which presso loads; transformers with "
              "compressed-tensors 0.20 does not decompress it (use --sparse-format dense for transformers)",
              file=sys.stderr)
    summary = {
        "out": str(Path(args.out).expanduser()),
        "bits_per_weight": report["bits_per_weight"],
        "effective_bits_per_weight": report.get("effective_bits_per_weight"),
        "sparsity": report.get("sparsity"),
        "bytes": report["bytes"]["checkpoint_weights"],
        "perplexity": report["perplexity"],
        "wall_time_s": report["wall_time_s"],
    }
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from presso.compression.sweep import run_sweep

    result = run_sweep(resolve_model_dir(args.model), Path(args.grid), Path(args.out),
                       progress=sys.stderr.isatty() or args.progress, log=lambda line: print(line, flush=True))
    for path in result.files:
        print(f"wrote {path}")
    failed = [r.name for r in result.rows if r.status == "failed"]
    if failed:
        print(f"{len(failed)} of {len(result.rows)} points failed: {', '.join(failed)}", file=sys.stderr)
    return 2 if result.input_errors else 1 if result.other_errors else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from presso.compression.report import load_rows, plot_size_vs_ppl, render_table

    rows = load_rows([Path(d).expanduser() for d in args.dirs])
    print(render_table(rows))
    png = plot_size_vs_ppl(rows, Path(args.png).expanduser())
    print(f"wrote {png}" if png else "no perplexity in these reports (compress with --eval): no plot")
    return 0


def _cmd_bench_quality(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from presso.compression.checkpoint.errors import PressoInputError
    from presso.compression.quality.bench import QualityOptions, run_quality
    from presso.compression.quality.report import plot, render_markdown
    from presso.kernels import envs

    split = [x.strip() for x in args.presets.split(",") if x.strip()]
    types = [x.strip() for x in args.llama_types.split(",") if x.strip()]
    if not split and not types:
        raise PressoInputError("--presets and --llama-types are both empty: nothing to compare")
    opts = QualityOptions(
        model_dir=resolve_model_dir(args.model), presets=tuple(split), llama_types=tuple(types),
        work=Path(args.work).expanduser() if args.work else envs.presso_home() / "bench" / "quality",
        calib=args.calib, calib_samples=args.calib_samples, calib_len=args.calib_len, calib_seed=args.calib_seed,
        windows=args.windows, ctx=args.ctx, imatrix=not args.no_imatrix, progress=args.progress)
    rows = run_quality(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
    command = "presso bench quality " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    table = render_markdown(rows, opts, command)
    out = Path(args.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    png = plot(rows, out.with_suffix(".png"))
    out.write_text(f"# Quality: presso vs llama.cpp on the evaluation suite\n\n{table}\n![quality]({png.name})\n")
    print(table)
    print(f"wrote {out} and {png}")
    return 0


def register_bench(bench: argparse._SubParsersAction) -> None:
    """`presso bench quality` (mounted under the server's `presso bench`): never in CI, needs `make peers`."""
    q = bench.add_parser("quality", help="presso presets vs llama.cpp quants (same calibration) on the "
                                         "evaluation suite, one scorer: markdown + PNG")
    q.add_argument("--model", default="smollm2-135m", help="the dense model (dir or pulled name)")
    q.add_argument("--presets", default="w4g64,gptq-w4g64", help="comma list of presso presets / recipe files")
    q.add_argument("--llama-types", default="Q4_0,Q4_K_M,Q3_K_M", help="comma list of llama-quantize types")
    q.add_argument("--no-imatrix", action="store_true", help="llama.cpp without an importance matrix (control)")
    q.add_argument("--calib", default="mix", help="calibration for both tools (default: the mix)")
    q.add_argument("--calib-samples", type=int, default=128)
    q.add_argument("--calib-len", type=int, default=512)
    q.add_argument("--calib-seed", type=int, default=0)
    q.add_argument("--windows", type=int, default=SUITE_WINDOWS, help="suite windows per domain")
    q.add_argument("--ctx", type=int, default=1024, help="suite window length")
    q.add_argument("--work", default=None, help="cache of built models (default $PRESSO_HOME/bench/quality)")
    q.add_argument("--out", default="docs/results/quality.md", help="markdown (the PNG goes beside it)")
    q.add_argument("--progress", action="store_true")
    q.set_defaults(func=_cmd_bench_quality)


def add_pull(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("pull", help="install and convert an embedded model; prints its directory")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=sorted(EMBEDDED_MODELS))
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.set_defaults(func=_cmd_pull)
    return p


def add_data(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    d = sub.add_parser("data", help="real text datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    dp = dsub.add_parser("pull", help="download a corpus from Debian and split it into calib/eval parts "
                                      "(docs/data.md)")
    dp.add_argument("dataset", choices=[*CORPORA, "all"])
    dp.set_defaults(func=_cmd_data_pull)
    return d


def add_eval(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`presso eval`; the caller adds the engine flags of `--kv-cache` scoring and sets `make_scorer`."""
    e = sub.add_parser("eval", help="perplexity (GPTQ protocol) and size of a model directory",
                       description="Perplexity over non-overlapping windows of the text. With --kv-cache CODEC "
                                   "every window is scored teacher-forced through the serving engine's paged KV "
                                   "cache; without it, by plain forward passes.")
    e.add_argument("--model", required=True, help="model dir, embedded model name or hub id")
    e.add_argument("--text", default=None, help="file path, CORPUS:calib|eval, austen:<novel> or wikitext2[:split]")
    e.add_argument("--suite", action="store_true",
                   help=f"score every corpus's evaluation part ({', '.join(CORPORA)}; docs/data.md) and the Δ "
                        "against the dense model")
    e.add_argument("--reference", default=None,
                   help="--suite: the dense model for Δ (default: presso.json's source_model when present)")
    e.add_argument("--ctx", type=int, default=1024, help="window length in tokens (non-overlapping)")
    e.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens of the text")
    e.add_argument("--windows", type=int, default=None,
                   help=f"score N windows spread evenly over the whole text instead (--suite: {SUITE_WINDOWS})")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--progress", action="store_true", help="force the progress bar on")
    e.set_defaults(func=_cmd_eval)
    return e


def add_compress(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = sub.add_parser("compress", help="compress a model with a recipe (compressed-tensors or AQLM checkpoint)")
    c.add_argument("--model", required=True, help="model dir, embedded model name or hub id")
    c.add_argument("--recipe", required=True,
                   help="preset (w8, w4g64, gptq-w4g64, awq-w4g64, aqlm-2x8, ...) or YAML file")
    c.add_argument("--out", required=True, help="new checkpoint directory (must not exist)")
    c.add_argument("--calib", default="mix",
                   help="calibration text for gptq/awq/wanda/sparsegpt/mixed/--kv: `mix` (default: windows from every "
                        "corpus's calibration part, docs/data.md), mix:NAME[=W],..., or any text spec; "
                        "calibration-free recipes (rtn, magnitude) run no calibration pass")
    c.add_argument("--calib-samples", type=int, default=128, help="calibration windows")
    c.add_argument("--calib-len", type=int, default=512, help="tokens per calibration window")
    c.add_argument("--calib-seed", type=int, default=0, help="where the mix's windows are drawn")
    c.add_argument("--report-samples", type=int, default=0,
                   help="calibration-free recipes: replay N calibration windows for per-layer output errors "
                        "(default 0: no calibration pass; calibrated methods report them for free)")
    c.add_argument("--eval", default=None,
                   help="`suite` (every corpus's evaluation part, per-domain Δ) or a text spec: perplexity "
                        "before/after goes into report.json")
    c.add_argument("--eval-tokens", type=int, default=8192, help="score the first N tokens of --eval")
    c.add_argument("--eval-ctx", type=int, default=1024, help="eval window length")
    c.add_argument("--batch-size", type=int, default=8, help="calibration windows per forward")
    c.add_argument("--sparse-format", default="bitmask", choices=["bitmask", "dense"],
                   help="pruning-only checkpoints: compressed-tensors sparse-(24-)bitmask (small; presso loads it) "
                        "or dense (plain weights; transformers loads it too)")
    c.add_argument("--json", action="store_true", help="print one JSON line")
    c.add_argument("--kv", default=None, metavar="rvq[:stages=S,codebook=C,group=G,keys=auto|pre_rope|post_rope]",
                   help="also calibrate KV-cache RVQ codebooks (presso_kv.safetensors; needs --calib); keys: "
                        "pre_rope codes the keys before RoPE (k_proj's output, after Qwen3's k_norm) and the "
                        "server rotates keys after decoding (auto: pre_rope on RoPE models); post_rope allows "
                        "code-space decode scoring")
    target = c.add_mutually_exclusive_group()  # mixed precision: override a `mixed` recipe's target
    target.add_argument("--target-bits", type=float, default=None,
                        help="mixed recipes: average bits per weight of the targeted Linears (scales included)")
    target.add_argument("--target-size", default=None, help="mixed recipes: whole checkpoint size, e.g. 60MB")
    c.add_argument("--progress", action="store_true", help="force progress bars on")
    c.set_defaults(func=_cmd_compress)
    return c


def add_report(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    r = sub.add_parser("report", help="compare compressed checkpoints: table + size-vs-perplexity PNG")
    r.add_argument("dirs", nargs="+", help="checkpoint directories written by presso compress")
    r.add_argument("--png", default="presso-report.png", help="where to write the plot")
    r.set_defaults(func=_cmd_report)
    return r


def add_sweep(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    w = sub.add_parser("sweep", help="compress + evaluate a grid of recipes (resumable): table + Pareto PNG")
    w.add_argument("--model", required=True, help="model dir, embedded model name or hub id")
    w.add_argument("--grid", required=True, help="grid YAML: shared calib/eval settings and the points")
    w.add_argument("--out", required=True, help="sweep directory (reused: finished points are skipped)")
    w.add_argument("--progress", action="store_true", help="force progress bars on")
    w.set_defaults(func=_cmd_sweep)
    return w
