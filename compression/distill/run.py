"""`presso distill`: compressed checkpoint + its dense teacher + text -> a recovered checkpoint, same format.

checks (text != eval text, ranges, output dir) -> [perplexity before] -> load student (student.py) and fp32
teacher -> train (train.py; resumable from `<out>.partial`) -> in a temp dir beside --out: the source's
files with the trained tensors written back (export.py), presso.json and report.json with a `distill`
block -> [perplexity after, loaded from the written files as `presso eval` does] -> rename to --out.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from presso.compression.checkpoint.atomic import atomic_directory, check_output_dir
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.distill import state
from presso.compression.distill.data import token_stream
from presso.compression.distill.export import trained_tensors, write_tensors
from presso.compression.distill.modules import GroupQuantLinear
from presso.compression.distill.records import write_records
from presso.compression.distill.student import Student, load_student
from presso.compression.distill.train import TrainConfig, make_optimizer, train
from presso.compression.eval import loader
from presso.compression.eval.run import evaluate
from presso.kernels import envs


@dataclass(frozen=True, slots=True)
class DistillOptions:
    model_dir: Path  # compressed student checkpoint
    teacher_dir: Path  # its dense original
    out: Path
    text: str  # training text spec
    train: TrainConfig
    eval_text: str | None = None
    eval_tokens: int = 8192
    eval_ctx: int = 1024
    resume: bool = False
    save_every: int = 25
    progress: bool = True


def check_options(opts: DistillOptions) -> None:
    cfg = opts.train
    if opts.eval_text is not None and _same_text(opts.text, opts.eval_text):
        raise PressoInputError(f"--eval {opts.eval_text!r} is the training --text: KD must not be evaluated on it")
    for flag, value, ok in (("--steps", cfg.steps, cfg.steps >= 1), ("--batch-size", cfg.batch_size, cfg.batch_size >= 1),
                            ("--seq-len", cfg.seq_len, cfg.seq_len >= 2), ("--lr", cfg.lr, cfg.lr > 0),
                            ("--temperature", cfg.temperature, cfg.temperature > 0),
                            ("--hidden-weight", cfg.hidden_weight, cfg.hidden_weight >= 0),
                            ("--save-every", opts.save_every, opts.save_every >= 1)):
        if not ok:
            raise PressoInputError(f"{flag}: out-of-range value {value!r}")
    check_output_dir(opts.out)


def _same_text(a: str, b: str) -> bool:
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return a.strip() == b.strip() or (pa.is_file() and pb.is_file() and pa.resolve() == pb.resolve())


def _settings(opts: DistillOptions) -> dict:
    """What a resumed run must share with the interrupted one."""
    return {"model": str(opts.model_dir.resolve()), "teacher": str(opts.teacher_dir.resolve()), "text": opts.text,
            **asdict(opts.train)}


def _eval(model_dir: Path, opts: DistillOptions) -> float:
    return evaluate(model_dir, opts.eval_text, ctx=opts.eval_ctx, max_tokens=opts.eval_tokens,
                    progress=opts.progress).perplexity


def load_teacher(teacher_dir: Path, student: torch.nn.Module) -> torch.nn.Module:
    """The dense original in fp32, frozen; refuses one whose vocabulary or block layout differs."""
    teacher = loader.load_model(teacher_dir, "float32")
    for attr in ("vocab_size", "num_hidden_layers", "hidden_size"):
        s, t = getattr(student.config, attr, None), getattr(teacher.config, attr, None)
        if s != t:
            raise PressoInputError(f"{teacher_dir}/config.json: {attr} {t} differs from the student's {s}")
    return teacher.requires_grad_(False).eval()


def fit(model_dir: Path, teacher_dir: Path, text: str, cfg: TrainConfig, partial: Path | None = None,
        settings: dict | None = None, save_every: int = 25, stop_after: int | None = None,
        progress: bool = True) -> tuple[Student, state.Snapshot]:
    """Load student + teacher and train; with `partial`, resume from / snapshot into it (same `settings`)."""
    student = load_student(model_dir)
    teacher = load_teacher(teacher_dir, student.model)
    ids = token_stream(loader.load_tokenizer(model_dir), text, cfg.seq_len)
    params = student.trainable()
    bits = {f"{n}.zero": m.bits for n, m in student.modules.items() if isinstance(m, GroupQuantLinear)}
    opt = make_optimizer(params, cfg.lr, bits)
    snap = state.Snapshot(0, [], 0.0)
    if partial is not None and (partial / state.STATE_FILE).exists():
        snap = state.load(partial, settings or {}, params, opt)

    def checkpoint(s: state.Snapshot) -> None:
        if partial is not None:
            state.save(partial, settings or {}, s, params, opt)

    snap = train(student.model, teacher, ids, params, opt, cfg, snap, checkpoint, save_every, stop_after, progress)
    return student, snap


def distill(opts: DistillOptions, stop_after: int | None = None) -> dict | None:
    """Run KD; -> report.json's `distill` block, or None when `stop_after` interrupted it (state kept)."""
    check_options(opts)
    if envs.num_threads():
        torch.set_num_threads(envs.num_threads())
    start_time = time.perf_counter()
    partial = state.partial_dir(opts.out)
    if (partial / state.STATE_FILE).exists() and not opts.resume:
        raise PressoInputError(f"{partial} holds an interrupted run: pass --resume to continue it, or delete it")
    ppl_before = _eval(opts.model_dir, opts) if opts.eval_text else None
    student, snap = fit(opts.model_dir, opts.teacher_dir, opts.text, opts.train, partial, _settings(opts),
                        opts.save_every, stop_after, opts.progress)
    if snap.step < opts.train.steps:
        return None
    with atomic_directory(opts.out) as tmp:
        write_tensors(student, trained_tensors(student), tmp)
        for path in opts.model_dir.iterdir():
            if path.is_file() and not path.name.endswith(".safetensors") and path.name not in ("presso.json",
                                                                                                 "report.json"):
                shutil.copy2(path, tmp / path.name)
        ppl_after = _eval(tmp, opts) if opts.eval_text else None
        block = write_records(opts, student.kind, snap, ppl_before, ppl_after, time.perf_counter() - start_time, tmp)
    shutil.rmtree(partial, ignore_errors=True)
    return block
