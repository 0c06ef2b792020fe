"""The whole engine on the Triton kernels (interpreter on CPU tensors) vs the CPU kernels.

An int4 group-32 checkpoint with RVQ KV codebooks runs through EngineCore with `kernel_backend="triton"`
(TRITON_INTERPRET=1 is set by tests/conftest.py): the packed-int4 dequant, the head's int8 matmul and
every RVQ encode/decode/attend op come from kernels/*/triton*.py. Greedy tokens must equal the CPU
backend's. Also: a CUDA device on a machine without one fails with one clear line.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig

pytest.importorskip("triton")
pytestmark = pytest.mark.interp

PROMPTS = [list(range(5, 25)), list(range(40, 47)), [7, 9, 11, 13] * 4]


@pytest.fixture(scope="module")
def int4_rvq_dir(quantized_dirs, kv_model_dir, tmp_path_factory):
    """The int4 g32 checkpoint plus the parity model's post-RoPE RVQ codebooks."""
    out = tmp_path_factory.mktemp("int4-rvq") / "model"
    shutil.copytree(quantized_dirs["int4"], out)
    for f in kv_model_dir.glob("presso_kv*"):
        shutil.copy(f, out / f.name)
    return out


def _generate(model_dir, backend, **kw):
    llm = LLM(model_dir, dtype="float32", block_size=4, kv_cache_memory="1MiB", kernel_backend=backend, **kw)
    outs = llm.generate(PROMPTS, SamplingParams(max_tokens=10, temperature=0.0))
    return [o.token_ids for o in outs], llm.engine.kernels


@pytest.mark.parametrize("kv", ["rvq", "int8", "kivi2"])
def test_triton_backend_matches_cpu_backend(int4_rvq_dir, kv):
    cpu_tokens, cpu_kernels = _generate(int4_rvq_dir, None, kv_cache_dtype=kv)
    tri_tokens, tri_kernels = _generate(int4_rvq_dir, "triton", kv_cache_dtype=kv)
    assert tri_tokens == cpu_tokens
    assert all(len(t) == 10 for t in tri_tokens)
    # the comparison means something only if the Triton kernels ran where they exist
    assert tri_kernels["wq_linear"] == "triton" and cpu_kernels["wq_linear"] == "cpu"
    kv_ops = [op for op in tri_kernels if op.startswith("kv_")]
    assert kv_ops and all(tri_kernels[op] == "triton" for op in kv_ops), tri_kernels


def test_triton_backend_with_window_and_pre_rope_codebooks(quantized_dirs, kv_prerope_dir, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(quantized_dirs["int4"], out)
    for f in kv_prerope_dir.glob("presso_kv*"):
        shutil.copy(f, out / f.name)
    cpu_tokens, _ = _generate(out, None, kv_cache_dtype="rvq", kv_window=4)
    tri_tokens, tri_kernels = _generate(out, "triton", kv_cache_dtype="rvq", kv_window=4)
    assert tri_tokens == cpu_tokens and tri_kernels["kv_rvq_decode"] == "triton"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_one_clear_error(int4_rvq_dir, cli):
    with pytest.raises(ValueError, match="no CUDA device"):
        EngineConfig(model=int4_rvq_dir, device="cuda").validate()
    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        EngineConfig(model=int4_rvq_dir, device="tpu").validate()
    r = cli("serve", "--model", str(int4_rvq_dir), "--device", "cuda")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"presso: error: device 'cuda': no CUDA device is available here (torch {torch.__version__}, "
        f"CUDA build: {torch.version.cuda or 'none'})"]
