"""Checkpoint readers: corrupt/truncated safetensors and unknown presso file versions are refused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.presso_files import (
    PRESSO_JSON,
    REPORT_JSON,
    read_presso_file,
    write_presso_file,
)
from presso.compression.checkpoint.safetensors_check import check_safetensors


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.randn(16, 8), "b": torch.arange(10, dtype=torch.int32)}, str(path))
    return path


def test_good_file_passes(good_file):
    check_safetensors(good_file)


@pytest.mark.parametrize("keep", [0, 5, 40, -1, -100])
def test_truncated_file_is_rejected(good_file, keep):
    data = good_file.read_bytes()
    good_file.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(PressoInputError, match=f"corrupt safetensors file {good_file}"):
        check_safetensors(good_file)


@pytest.mark.parametrize("damage", ["header-json", "header-length", "trailing", "offsets"])
def test_corrupt_file_is_rejected(good_file, damage):
    data = bytearray(good_file.read_bytes())
    length = int.from_bytes(data[:8], "little")
    if damage == "header-json":
        data[8:12] = b"\xff\xfe{["
    elif damage == "header-length":
        data[:8] = (len(data) * 2).to_bytes(8, "little")
    elif damage == "trailing":
        data += b"garbage!"
    else:
        header = json.loads(data[8 : 8 + length])
        header["a"]["data_offsets"][1] -= 4
        raw = json.dumps(header).encode().ljust(length)
        data[8 : 8 + length] = raw[:length]
    good_file.write_bytes(bytes(data))
    with pytest.raises(PressoInputError, match="corrupt safetensors file"):
        check_safetensors(good_file)


def test_presso_files_round_trip_and_refuse_unknown_versions(tmp_path):
    path = write_presso_file(tmp_path, REPORT_JSON, {"sqnr": float("inf"), "x": [1.5]})
    data = read_presso_file(path)
    assert data == {"format_version": 1, "sqnr": None, "x": [1.5]}
    (tmp_path / PRESSO_JSON).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(PressoInputError, match=r"presso.json: field format_version: unsupported value 99"):
        read_presso_file(tmp_path / PRESSO_JSON)
    (tmp_path / PRESSO_JSON).write_text(json.dumps({"recipe": {}}))
    with pytest.raises(PressoInputError, match=r"presso.json: field format_version is missing"):
        read_presso_file(tmp_path / PRESSO_JSON)


def test_presso_eval_rejects_a_truncated_checkpoint(tiny_llama_dir, tmp_path, cli, sample_text_file):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    result = cli("eval", "--model", str(broken), "--text", str(sample_text_file), "--ctx", "32", "--json")
    assert result.returncode == 2
    assert result.stderr.startswith("presso: error: corrupt safetensors file") and str(weights) in result.stderr
