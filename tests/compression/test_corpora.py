"""Corpora from Debian: every corpus pulled for real, split into disjoint calibration / evaluation parts."""

from __future__ import annotations

import json

import pytest

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data import corpora
from presso.compression.data.texts import load_text


@pytest.fixture(scope="module")
def pulled() -> dict[str, dict]:
    return {name: json.loads((corpora.pull_corpus(name) / corpora.MANIFEST).read_text()) for name in corpora.CORPORA}


def test_every_corpus_has_pinned_sources_and_licenses(pulled):
    for name, manifest in pulled.items():
        assert manifest["corpus"] == name and manifest["sources"]
        for source in manifest["sources"]:
            assert len(source["sha256"]) == 64 and source["version"] and source["license"]


def test_parts_are_disjoint_by_document(pulled):
    for name, manifest in pulled.items():
        calib = manifest["parts"]["calib"]["documents"]
        evals = manifest["parts"]["eval"]["documents"]
        assert calib and evals, name
        assert not set(calib) & set(evals), name
        assert len(set(calib)) == len(calib) and len(set(evals)) == len(evals), name


def test_parts_are_disjoint_by_text(pulled):
    """No 400-character passage of an evaluation part occurs in the same corpus's calibration part."""
    for name in pulled:
        calib, evals = load_text(f"{name}:calib"), load_text(f"{name}:eval")
        assert len(calib) > 200_000 and len(evals) > 100_000, name
        step = len(evals) // 25
        passages = [evals[i : i + 400] for i in range(step // 2, len(evals) - 400, step)]
        assert len(passages) >= 20
        shared = [p for p in passages if p in calib]
        assert not shared, f"{name}: {shared[0][:80]!r} is in both parts"


def test_real_content(pulled):
    assert load_text("austen:eval").startswith("PRIDE AND PREJUDICE")
    assert "It is a truth universally acknowledged" in load_text("austen:eval")
    assert "In the beginning God created the heaven and the earth." in load_text("kjv:calib")
    assert "def " in load_text("pycode:eval") and "import " in load_text("pycode:calib")
    assert ".. " in load_text("pydoc:eval")  # reST directives
    moby = load_text("melville:calib") + load_text("melville:eval")
    assert "Call me Ishmael." in moby and "Project Gutenberg" not in moby
    assert pulled["melville"]["in_mix"] is False
    assert pulled["austen"]["parts"]["eval"]["documents"] == ["pride-and-prejudice"]
    assert len(pulled["kjv"]["parts"]["calib"]["documents"]) + len(pulled["kjv"]["parts"]["eval"]["documents"]) == 66


def test_split_rule_puts_each_document_in_one_part():
    corpus = corpora.CORPORA["kjv"]
    docs = [(f"d{i}", f"text {i}") for i in range(12)]
    parts = corpora.split_documents(corpus, docs)
    assert [n for n, _ in parts["eval"]] == ["d4", "d9"]
    assert sorted(parts["calib"] + parts["eval"]) == sorted(docs)


def test_unknown_corpus_and_part():
    with pytest.raises(PressoInputError, match="unknown corpus"):
        corpora.get_corpus("wikipedia")
    with pytest.raises(PressoInputError, match="unknown text spec"):
        load_text("kjv:train")
