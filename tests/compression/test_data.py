"""Real text: Austen novels from Debian's r-cran-janeaustenr, and text specs."""

from __future__ import annotations

import pytest

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data import austen
from presso.compression.data.texts import load_text


def test_austen_novels_are_real_text():
    austen.pull_austen()
    pride = load_text("austen:pride-and-prejudice")
    assert "It is a truth universally acknowledged" in pride
    assert len(pride) > 600_000
    emma = load_text("austen:emma")
    assert emma.startswith("EMMA") and "Woodhouse" in emma
    for novel in austen.NOVELS:
        assert austen.novel_path(novel).stat().st_size > 400_000


def test_r_object_names_are_aliases():
    assert austen.canonical_novel("prideprejudice") == "pride-and-prejudice"
    assert austen.canonical_novel("Sense_and_Sensibility") == "sense-and-sensibility"
    with pytest.raises(PressoInputError, match="unknown Austen novel"):
        austen.canonical_novel("dracula")


def test_text_file_and_errors(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello")
    assert load_text(str(path)) == "hello"
    (tmp_path / "empty.txt").write_text("  ")
    with pytest.raises(PressoInputError, match="empty"):
        load_text(str(tmp_path / "empty.txt"))
    with pytest.raises(PressoInputError, match="unknown text spec"):
        load_text(str(tmp_path / "missing.txt"))
