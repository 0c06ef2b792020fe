"""The peer harness without llama.cpp: the locator tells to run `make peers`, the converter's environment
stubs sentencepiece only when it is missing, and the report's tables compute ratios to the first server."""

from __future__ import annotations

import argparse
import os

import pytest

from presso.compression.checkpoint import llama_cpp
from presso.server.bench import peers_report


def test_missing_build_says_make_peers(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSO_HOME", str(tmp_path))
    with pytest.raises(llama_cpp.LlamaCppMissingError, match="make peers"):
        llama_cpp.llama_bin("llama-server")
    with pytest.raises(llama_cpp.LlamaCppMissingError, match="make peers"):
        llama_cpp.convert_script()
    with pytest.raises(ValueError, match="unknown llama.cpp tool"):
        llama_cpp.llama_bin("llama-cli")


def test_built_tool_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSO_HOME", str(tmp_path))
    tool = tmp_path / "peers" / "build" / "bin" / "llama-bench"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    with pytest.raises(llama_cpp.LlamaCppMissingError):  # present but not executable
        llama_cpp.llama_bin("llama-bench")
    tool.chmod(0o755)
    assert llama_cpp.llama_bin("llama-bench") == tool


def test_converter_env_puts_gguf_py_first(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSO_HOME", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    paths = llama_cpp.gguf_env()["PYTHONPATH"].split(os.pathsep)
    assert paths[0] == str(llama_cpp.source_dir() / "gguf-py") and paths[-1] == "/elsewhere"
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        assert (tmp_path / "peers" / "stubs" / "sentencepiece" / "__init__.py").is_file()


def _report(tok_s: float, ttft: float, itl: float) -> dict:
    return {"output_tokens_per_s": tok_s, "latency": {"ttft_s": {"p50": ttft}, "itl_s": {"p50": itl}}}


def test_serving_table_ratios_to_the_first_server():
    serving = {1: {"llama": _report(60.0, 0.5, 0.008), "presso": _report(30.0, 0.2, 0.032)},
               8: {"llama": _report(80.0, 4.0, 0.040), "presso": _report(120.0, 0.8, 0.060)}}
    lines = peers_report.serving_table(serving, ["llama", "presso"])
    assert lines[0].startswith("| streams | llama out tok/s | presso out tok/s | TTFT p50 llama / presso (ms)")
    assert lines[2] == "| 1 | 60.0 | 30.0 | 500 / 200 | 8.0 / 32.0 | 0.50x, 0.40x, 4.00x |"
    assert lines[3] == "| 8 | 80.0 | 120.0 | 4,000 / 800 | 40.0 / 60.0 | 1.50x, 0.20x, 1.50x |"
    b1 = peers_report.batch1_table({"llama.cpp Q4_1": 130.0, "presso int4": 65.0})
    assert b1[2:] == ["| llama.cpp Q4_1 | 130.0 | 1.00x |", "| presso int4 | 65.0 | 0.50x |"]


def test_plot_writes_a_png(tmp_path):
    serving = {1: {"a": _report(1.0, 0.1, 0.01), "b": _report(2.0, 0.2, 0.02)}}
    out = peers_report.plot(serving, ["a", "b"], tmp_path / "x.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_without_the_build(tmp_path, monkeypatch, tiny_llama_dir):
    from presso.server.bench import peers

    monkeypatch.setenv("PRESSO_HOME", str(tmp_path))
    prompt = tmp_path / "p.txt"
    prompt.write_text("words " * 100)
    args = argparse.Namespace(servers=["llama", "presso"], model=str(tiny_llama_dir), model_int8=str(tiny_llama_dir),
                              prompt_file=str(prompt), batch1=True, rounds=1, duration=1.0, streams=[1])
    with pytest.raises(llama_cpp.LlamaCppMissingError, match="make peers"):
        peers.command(args)
    args.servers = ["presso", "vllm"]
    with pytest.raises(llama_cpp.PressoInputError, match="unknown vllm"):
        peers.command(args)
