"""`presso-loadtest`: the console entry point (`run` a load against an OpenAI-compatible URL, `compare`
two reports). Bad input prints one line `presso-loadtest: error: ...` and exits with status 2.

argv -> RunConfig -> runner.run -> report.summarize -> JSON file + PNGs + a printed summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadtest.config import LengthDist, LoadtestInputError, RunConfig

PROG = "presso-loadtest"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="load-test any OpenAI-compatible server over HTTP")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="send a bounded load and write a JSON report (+ PNG plots)")
    run.add_argument("--base-url", required=True, help="server root, e.g. http://127.0.0.1:8000 (no /v1)")
    run.add_argument("--model", default=None, help="model id (default: the first of GET /v1/models)")
    run.add_argument("--api", default="completions", choices=["completions", "chat"])
    run.add_argument("--api-key", default=None)
    run.add_argument("--mode", default="concurrency", choices=["concurrency", "rate"])
    run.add_argument("--concurrency", type=int, default=None,
                     help="streams in concurrency mode (default 1); in-flight cap in rate mode (default 1024)")
    run.add_argument("--rate", type=float, default=None, help="Poisson arrival rate, requests/s (rate mode)")
    run.add_argument("--max-requests", type=int, default=None)
    run.add_argument("--duration", type=float, default=None, help="seconds after which no request starts")
    run.add_argument("--prompt-len", default="fixed:64", help="prompt words: fixed:N, uniform:A:B, normal:M:S")
    run.add_argument("--output-len", default="fixed:64", help="max_tokens: fixed:N, uniform:A:B, normal:M:S")
    run.add_argument("--prompt-file", default=None, help="text to cut prompts from (default: synthetic)")
    run.add_argument("--temperature", type=float, default=0.0)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--timeout", type=float, default=300.0, help="per-request timeout, seconds")
    run.add_argument("--extra-body", default="{}", help='JSON merged into each request, e.g. \'{"ignore_eos": true}\'')
    run.add_argument("--out", required=True, help="report JSON path")
    run.add_argument("--plots", default=None, help="folder for PNGs (latency CDF, throughput over time)")
    cmp = sub.add_parser("compare", help="compare two reports side by side (table + optional PNG)")
    cmp.add_argument("a")
    cmp.add_argument("b")
    cmp.add_argument("--labels", default=None, help="two comma-separated names (default: the file stems)")
    cmp.add_argument("--png", default=None, help="write overlaid CDFs and throughput bars here")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    try:
        extra = json.loads(args.extra_body)
    except ValueError:
        raise LoadtestInputError(f"--extra-body: not valid JSON: {args.extra_body!r}") from None
    if not isinstance(extra, dict):
        raise LoadtestInputError("--extra-body must be a JSON object")
    if args.prompt_file is not None and not Path(args.prompt_file).is_file():
        raise LoadtestInputError(f"--prompt-file {args.prompt_file}: no such file")
    default_conc = 1 if args.mode == "concurrency" else 1024
    config = RunConfig(
        base_url=args.base_url, model=args.model, api=args.api, api_key=args.api_key, mode=args.mode,
        concurrency=default_conc if args.concurrency is None else args.concurrency, rate=args.rate,
        max_requests=args.max_requests, duration_s=args.duration,
        prompt_len=LengthDist.parse(args.prompt_len, "--prompt-len"),
        output_len=LengthDist.parse(args.output_len, "--output-len"),
        prompt_file=args.prompt_file, temperature=args.temperature, seed=args.seed, timeout_s=args.timeout,
        extra_body=extra,
    )
    config.check()
    return config


def summary_lines(report: dict) -> list[str]:
    lat = report["latency"]
    lines = [f"model {report['model']}: {report['requests']['ok']}/{report['requests']['total']} ok in "
             f"{report['duration_s']:.1f} s, {report['request_rate']:.2f} req/s, "
             f"{report['output_tokens_per_s']:.1f} output tokens/s"]
    for key, name in (("ttft_s", "TTFT"), ("itl_s", "ITL"), ("tpot_s", "TPOT"), ("e2e_s", "e2e")):
        s = lat[key]
        if s["count"]:
            lines.append(f"  {name:5s} p50 {s['p50'] * 1e3:8.1f} ms  p90 {s['p90'] * 1e3:8.1f} ms  "
                         f"p99 {s['p99'] * 1e3:8.1f} ms  (n={s['count']})")
    if report["errors"]:
        lines.append(f"  errors: {report['errors']}")
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    from loadtest import plots, report, runner

    config = config_from_args(args)
    result = runner.run(config)
    rep = report.summarize(result)
    out = Path(args.out)
    report.save(rep, out)
    print("\n".join(summary_lines(rep)))
    print(f"report: {out}")
    if args.plots:
        for path in plots.plot_run(rep, Path(args.plots), out.stem):
            print(f"plot: {path}")
    return 0 if rep["requests"]["ok"] else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from loadtest import compare, plots, report

    a, b = report.load(args.a), report.load(args.b)
    labels = (Path(args.a).stem, Path(args.b).stem)
    if args.labels is not None:
        parts = [p.strip() for p in args.labels.split(",")]
        if len(parts) != 2 or not all(parts):
            raise LoadtestInputError(f"--labels needs two comma-separated names, got {args.labels!r}")
        labels = (parts[0], parts[1])
    print(compare.format_table(compare.compare(a, b), labels))
    if args.png:
        print(f"plot: {plots.plot_compare([a, b], list(labels), Path(args.png))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return cmd_run(args) if args.command == "run" else cmd_compare(args)
    except LoadtestInputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
