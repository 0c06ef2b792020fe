"""Bad CLI input: one clear line on stderr, exit status 2, nothing else printed."""

from __future__ import annotations

import pytest


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("presso: error:")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_model_dir(cli, tmp_path, sample_text_file):
    missing = tmp_path / "nope"
    result = cli("eval", "--model", str(missing), "--text", str(sample_text_file))
    _assert_one_line_error(result, "not found", str(missing))


def test_dir_without_config(cli, tmp_path, sample_text_file):
    result = cli("eval", "--model", str(tmp_path), "--text", str(sample_text_file))
    _assert_one_line_error(result, "config.json", str(tmp_path))


def test_unknown_text_spec(cli, tiny_llama_dir):
    result = cli("eval", "--model", str(tiny_llama_dir), "--text", "gutenberg:moby-dick")
    _assert_one_line_error(result, "gutenberg:moby-dick")


def test_unknown_austen_novel(cli, tiny_llama_dir):
    result = cli("eval", "--model", str(tiny_llama_dir), "--text", "austen:ulysses")
    _assert_one_line_error(result, "ulysses", "emma")


@pytest.mark.parametrize("ctx", ["0", "-5", "1"])
def test_bad_ctx(cli, tiny_llama_dir, sample_text_file, ctx):
    result = cli("eval", "--model", str(tiny_llama_dir), "--text", str(sample_text_file), "--ctx", ctx)
    _assert_one_line_error(result, "--ctx")


def test_ctx_beyond_model_limit(cli, tiny_llama_dir, sample_text_file):
    result = cli("eval", "--model", str(tiny_llama_dir), "--text", str(sample_text_file), "--ctx", "4096")
    _assert_one_line_error(result, "max_position_embeddings")


def test_unknown_hub_id_offline(cli, tmp_path, sample_text_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("eval", "--model", "no-such-org/no-such-model", "--text", str(sample_text_file))
    _assert_one_line_error(result, "no-such-org/no-such-model")
