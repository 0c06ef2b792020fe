"""The calibration mix (deterministic per seed) and the evaluation suite (= per-domain `presso eval`)."""

from __future__ import annotations

import math

import pytest
import torch

from presso.compression.calibration import calibration_windows
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data import corpora
from presso.compression.data.mix import allocate, parse_mix
from presso.compression.eval import loader
from presso.compression.eval.run import evaluate
from presso.compression.eval.suite import suite_report
from presso.compression.eval.suite_run import evaluate_suite


def test_mix_spec_and_allocation():
    assert [n for n, _ in parse_mix("mix")] == corpora.mix_corpora()
    assert "melville" not in corpora.mix_corpora()
    assert parse_mix("mix:kjv=3,pycode") == [("kjv", 3.0), ("pycode", 1.0)]
    assert allocate(10, [("a", 1.0), ("b", 1.0), ("c", 1.0)]) == {"a": 4, "b": 3, "c": 3}
    assert allocate(8, [("kjv", 3.0), ("pycode", 1.0)]) == {"kjv": 6, "pycode": 2}
    for bad in ("mix:bible", "mix:kjv=0", "mix:kjv=x", "mix:kjv,kjv"):
        with pytest.raises(PressoInputError):
            parse_mix(bad)


def test_mix_windows_are_deterministic_per_seed(tiny_llama_dir):
    tok = loader.load_tokenizer(tiny_llama_dir)
    a = calibration_windows(tok, "mix", 10, 48, seed=0)
    b = calibration_windows(tok, "mix", 10, 48, seed=0)
    c = calibration_windows(tok, "mix", 10, 48, seed=1)
    assert a.shape == (10, 48) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # round-robin over the four mix corpora: windows 0..3 come from austen, kjv, pydoc, pycode
    texts = [tok.decode(a[i]) for i in range(4)]
    probes = {name: corpora.part_text(name, "calib") for name in corpora.mix_corpora()}
    for text, name in zip(texts, corpora.mix_corpora(), strict=True):
        middle = text[len(text) // 4 : len(text) // 4 + 24]
        assert middle in probes[name], (name, middle)


def test_mix_windows_come_from_calibration_parts_only(tiny_llama_dir):
    tok = loader.load_tokenizer(tiny_llama_dir)
    windows = calibration_windows(tok, "mix:melville", 6, 40, seed=3)
    calib, evals = corpora.part_text("melville", "calib"), corpora.part_text("melville", "eval")
    for row in windows:
        text = tok.decode(row)
        probe = text[8:40]
        assert probe in calib and probe not in evals


def test_suite_equals_per_domain_eval(tiny_llama_dir):
    result = evaluate_suite(tiny_llama_dir, tiny_llama_dir, windows=2, ctx=64, progress=False)
    ppl = result["perplexity"]
    assert list(ppl["domains"]) == list(corpora.CORPORA)
    for name, domain in ppl["domains"].items():
        single = evaluate(tiny_llama_dir, f"{name}:eval", ctx=64, windows=2, progress=False)
        assert single.perplexity == domain["after"], name
        assert single.tokens_scored == 2 * 63
        assert domain["delta_pct"] == 0.0  # the model is its own reference
    geo = math.exp(sum(math.log(d["after"]) for d in ppl["domains"].values()) / len(ppl["domains"]))
    assert ppl["after"] == pytest.approx(geo, rel=1e-12)
    assert ppl["delta_pct"] == 0.0


def test_suite_report_means():
    from presso.compression.eval.suite import DomainScore, SuiteScores

    after = SuiteScores((DomainScore("a", 11.0, 10, True), DomainScore("b", 24.0, 10, False)), 2, 64)
    report = suite_report({"a": 10.0, "b": 20.0}, after)
    assert report["domains"]["a"]["delta_pct"] == pytest.approx(10.0)
    assert report["domains"]["b"]["delta_pct"] == pytest.approx(20.0)
    assert report["delta_pct"] == pytest.approx(15.0)
    assert report["before"] == pytest.approx(math.sqrt(200.0))
    assert suite_report(None, after)["delta_pct"] is None
