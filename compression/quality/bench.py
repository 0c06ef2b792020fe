"""`presso bench quality`: presso's presets and llama.cpp's calibrated quants on the evaluation suite, one scorer.

dense model -> calibration windows (the default mix; one set for both tools) -> each preset compressed by
presso (cached in WORK/presets/NAME) and each llama.cpp type built from the same windows (peer.py) ->
every model's suite scores (eval/suite_run.scores_of: same windows, plain transformers forward passes,
fp32) -> Δ per domain against the dense model -> rows for report.py (markdown table + PNG).
Never in CI: it needs `make peers` and minutes per model.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from presso.compression.calibration import calibration_windows
from presso.compression.checkpoint.presso_files import REPORT_JSON, read_presso_file
from presso.compression.eval import loader
from presso.compression.eval.suite import DomainScore, SuiteScores, delta_pct
from presso.compression.eval.suite_run import scores_of


@dataclass(frozen=True, slots=True)
class QualityOptions:
    model_dir: Path
    presets: tuple[str, ...]
    llama_types: tuple[str, ...]
    work: Path
    calib: str = "mix"
    calib_samples: int = 128
    calib_len: int = 512
    calib_seed: int = 0
    windows: int = 8
    ctx: int = 1024
    imatrix: bool = True
    progress: bool = False


@dataclass(frozen=True, slots=True)
class QualityRow:
    name: str
    tool: str  # presso | llama.cpp | dense
    linear_bits: float | None  # bits per Linear weight as stored (scales/zeros/block headers included)
    perplexity: dict[str, float]  # per domain
    deltas: dict[str, float]  # Δ % per domain vs dense
    seconds: float  # building the model (compress / imatrix + quantize), not scoring; 0 when cached

    @property
    def mean_delta(self) -> float:
        return sum(self.deltas.values()) / len(self.deltas)


def calib_key(opts: QualityOptions) -> str:
    spec = f"{opts.calib}|{opts.calib_samples}|{opts.calib_len}|{opts.calib_seed}"
    return f"{opts.model_dir.name}-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


def _row(name: str, tool: str, bits: float | None, scores: SuiteScores, dense: SuiteScores, seconds: float):
    ref = dense.perplexities()
    ppl = scores.perplexities()
    return QualityRow(name, tool, bits, ppl, {k: delta_pct(ref[k], v) for k, v in ppl.items()}, seconds)


def _preset(opts: QualityOptions, name: str, log) -> tuple[Path, float]:
    from presso.compression.quantize import CompressOptions, compress

    out = opts.work / calib_key(opts) / "presets" / name
    if (out / REPORT_JSON).is_file():
        return out, 0.0
    log(f"compressing {name} ...")
    start = time.perf_counter()
    compress(CompressOptions(model_dir=opts.model_dir, recipe=name, out=out, calib=opts.calib,
                             calib_samples=opts.calib_samples, calib_len=opts.calib_len, calib_seed=opts.calib_seed,
                             progress=opts.progress))
    return out, time.perf_counter() - start


def run_quality(opts: QualityOptions, log=print) -> list[QualityRow]:
    from presso.compression.quality.peer import peer_models

    def score(path: Path, name: str) -> SuiteScores:
        """Suite scores, cached per model name under the calibration's work dir (a rerun resumes)."""
        cache = opts.work / calib_key(opts) / "scores" / f"{name.replace(' ', '_')}-{opts.windows}x{opts.ctx}.json"
        if cache.is_file():
            data = json.loads(cache.read_text())
            return SuiteScores(tuple(DomainScore(**d) for d in data["domains"]), data["windows"], data["ctx"])
        log(f"scoring {name} ...")
        scores = scores_of(path, opts.windows, opts.ctx, progress=opts.progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"model": str(path), "windows": scores.windows, "ctx": scores.ctx,
                                     "domains": [asdict(d) for d in scores.domains]}, indent=1))
        return scores

    dense = score(opts.model_dir, "dense")
    rows = [_row("dense (fp32)", "dense", None, dense, dense, 0.0)]
    for name in opts.presets:
        path, seconds = _preset(opts, name, log)
        bits = (read_presso_file(path / REPORT_JSON).get("bits_per_weight") or {}).get("quantized_linears")
        rows.append(_row(f"presso {name}", "presso", bits, score(path, f"presso-{Path(name).stem}"), dense, seconds))
    if opts.llama_types:
        tokenizer = loader.load_tokenizer(opts.model_dir)
        windows = calibration_windows(tokenizer, opts.calib, opts.calib_samples, opts.calib_len, opts.calib_seed)
        start = time.perf_counter()
        log("llama.cpp: convert, importance matrix, quantize, dequantize ...")
        peers = peer_models(opts.model_dir, tokenizer, windows, list(opts.llama_types),
                            opts.work / calib_key(opts) / "llama.cpp", opts.imatrix)
        built = time.perf_counter() - start
        for label, (path, sizes) in peers.items():
            log(f"{label}: tensor types {json.dumps(sizes.types)}")
            rows.append(_row(label, "llama.cpp", sizes.linear_bits, score(path, path.name), dense, built / len(peers)))
    return rows
