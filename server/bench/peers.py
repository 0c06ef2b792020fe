"""`presso bench peers`: presso serve vs llama.cpp's llama-server under the same client, in one run.

Servers (named in --servers): `presso` (presso serve, default engine), `presso-compile` (--compile: decode
steps through torch.compile), `presso-thread` / `presso-process`
(the EngineCore in a worker thread / its own process), `llama` (llama-server on the Q4_1 GGUF of the
dense model, made with llama.cpp's own converter and quantizer). All are started once and stay up; at
each stream count every server gets the same closed-loop `presso-loadtest` workload in turn (the order
alternates between stream counts), so no two loads overlap. Then batch-1 decode without HTTP:
`llama-bench` tg128 (Q4_1, Q8_0) vs `presso bench engine` (int4, int8; also with --compile when
`presso-compile` is served). -> peers_report: markdown + PNGs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from presso.compression.checkpoint import PressoInputError, llama_cpp, resolve_model_dir

SERVERS = ("presso", "presso-compile", "presso-thread", "presso-process", "llama")
_PRESSO_FLAGS = {"presso": [], "presso-compile": ["--compile"], "presso-thread": ["--no-engine-process"],
                 "presso-process": ["--engine-process"]}


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    proc: subprocess.Popen
    base_url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    """A console script of this venv (presso, presso-loadtest)."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else (shutil.which(name) or name)


def start_server(name: str, args, work: Path) -> Server:
    port = _free_port()
    if name == "llama":
        gguf = llama_cpp.quantize(resolve_model_dir(args.dense_model), "smollm2-135m", "Q4_1")
        cmd = [str(llama_cpp.llama_bin("llama-server")), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
               "-np", str(args.llama_parallel), "-c", str(args.llama_ctx), "-t", str(args.threads)]
    else:
        cmd = [_tool("presso"), "serve", "--model", str(args.model), "--port", str(port), "--served-model-name",
               name, "--log-level", "warning", *_PRESSO_FLAGS[name]]
    log = work / f"{name}.log"
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    server = Server(name, proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 900  # --compile compiles its decode graphs before it reports healthy
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"{name} did not become healthy in 300 s:\n{log.read_text()[-2000:]}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(60)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def loadtest(server: Server, streams: int, duration: float | None, out: Path, args,
             max_requests: int | None = None) -> dict:
    """One closed-loop presso-loadtest run against `server`; its JSON report."""
    cmd = [_tool("presso-loadtest"), "run", "--base-url", server.base_url, "--concurrency", str(streams),
           "--prompt-file", str(args.prompt_file), "--prompt-len", "normal:128:32",
           "--output-len", f"fixed:{args.output_tokens}", "--temperature", "0", "--seed", "0",
           "--extra-body", json.dumps({"ignore_eos": True}), "--out", str(out)]
    cmd += ["--duration", str(duration)] if duration else []
    cmd += ["--max-requests", str(max_requests)] if max_requests else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"presso-loadtest against {server.name} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return json.loads(out.read_text())


def serving_runs(args, work: Path) -> dict[int, dict[str, dict]]:
    """{streams: {server: loadtest report}}; one load at a time, server order alternating per stream count."""
    servers = [start_server(name, args, work) for name in args.servers]
    try:
        for s in servers:  # warm-up: first requests pay lazy initialisation on both sides
            loadtest(s, 2, None, work / f"warmup-{s.name}.json", args, max_requests=4)
        results: dict[int, dict[str, dict]] = {}
        for i, streams in enumerate(args.streams):
            results[streams] = {}
            for _ in range(args.rounds):
                order = servers if i % 2 == 0 else servers[::-1]
                for s in order:
                    rep = loadtest(s, streams, args.duration, work / f"{s.name}-c{streams}.json", args)
                    results[streams].setdefault(s.name, rep)
                    best = results[streams][s.name]
                    if rep["output_tokens_per_s"] > best["output_tokens_per_s"]:
                        results[streams][s.name] = rep
                    print(f"{s.name:15s} {streams:3d} streams: {rep['output_tokens_per_s']:7.1f} out tok/s, ITL p50 "
                          f"{rep['latency']['itl_s'].get('p50', float('nan')) * 1e3:6.1f} ms", flush=True)
    finally:
        for s in servers:
            stop_server(s)
    return results


def batch1(args, work: Path) -> dict[str, float]:
    """Decode tok/s at batch 1 without HTTP: llama-bench tg128 per GGUF type, presso bench engine per checkpoint."""
    out: dict[str, float] = {}
    dense = resolve_model_dir(args.dense_model)
    for qtype in ("Q4_1", "Q8_0"):
        gguf = llama_cpp.quantize(dense, "smollm2-135m", qtype)
        proc = subprocess.run([str(llama_cpp.llama_bin("llama-bench")), "-m", str(gguf), "-p", "0", "-n", "128",
                               "-t", str(args.threads), "-o", "json"], capture_output=True, text=True, check=True)
        out[f"llama.cpp {qtype}"] = json.loads(proc.stdout)[0]["avg_ts"]
    runs = [("presso int4", args.model, []), ("presso int8", args.model_int8, [])]
    if "presso-compile" in args.servers:
        runs += [("presso int4 --compile", args.model, ["--compile"]), ("presso int8 --compile", args.model_int8, ["--compile"])]
    for label, model, flags in runs:
        proc = subprocess.run([_tool("presso"), "bench", "engine", "--model", str(model), "--batches", "1",
                               "--tokens", "128", "--threads", str(args.threads), "--json", *flags],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"presso bench engine {model} failed:\n{proc.stderr[-2000:]}")
        out[label] = json.loads(proc.stdout)["presso"]["1"]["decode_tokens_per_s"]
    return out


def command(args) -> int:
    from presso.server.bench import peers_report

    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        raise PressoInputError(f"--servers: unknown {', '.join(unknown)} (known: {', '.join(SERVERS)})")
    for path in (args.model, *([args.model_int8] if args.batch1 else [])):
        if not (Path(path) / "config.json").is_file():
            raise PressoInputError(f"{path}: no checkpoint there (presso compress --recipe w4g64|w8 --out {path})")
    if not Path(args.prompt_file).is_file():
        raise PressoInputError(f"--prompt-file {args.prompt_file}: no such file (presso data pull austen)")
    if "llama" in args.servers or args.batch1:
        llama_cpp.llama_bin("llama-server")  # LlamaCppMissingError -> `make peers`
    if args.rounds < 1 or args.duration <= 0 or not args.streams:
        raise PressoInputError("--rounds must be >= 1, --duration > 0 and --streams non-empty")
    args.plots = args.plots or str(Path(args.out).with_suffix(""))
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    serving = serving_runs(args, work)
    b1 = batch1(args, work) if args.batch1 else {}
    meta = {"started": started, "load_before": load_before, "load_after": os.getloadavg(),
            "argv": " ".join(["presso", "bench", "peers", *sys.argv[3:]]), "cpus": os.cpu_count()}
    text = peers_report.write(args, serving, b1, meta)
    print(text)
    return 0

