"""Shared fixtures: tiny random Llama / GPT-2 models and a tiny BPE tokenizer built in tmp dirs.

TRITON_INTERPRET is set before anything imports triton, so Triton kernels run on the CPU here.
Tiers: a test that starts processes (the `presso` console script, a live server, Prometheus) or uses
the real SmolLM2 is marked `slow`; `make test-fast` runs the rest (`pytest -m "not slow"`).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # shared helpers: `from live_server import ...`

SAMPLE_TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be on his "
    "first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families, "
    "that he is considered the rightful property of some one or other of their daughters.\n"
) * 40

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(out: Path, vocab_size: int = 384):
    """Train a byte-level BPE on SAMPLE_TEXT and save it as an HF fast tokenizer in `out`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([SAMPLE_TEXT], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def build_tiny_model(out: Path, arch: str, seed: int = 0, dtype: str = "float32", max_positions: int = 512) -> Path:
    """A random 2-layer model of family `arch` ('llama' or 'gpt2') with the tiny tokenizer, in `out`."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out)
    vocab = len(tokenizer)
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
            tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    elif arch == "gpt2":
        config = GPT2Config(
            vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
    else:
        raise ValueError(f"unknown tiny arch {arch!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype))
    model.save_pretrained(out, safe_serialization=True)
    return out


# Fixtures that start processes: every test using one is `slow`.
PROCESS_FIXTURES = frozenset({"cli", "server", "client", "launch", "live", "loadtest", "presso_tiny",
                              "start_prometheus", "prometheus_bins", "promtool", "start_server_fn"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def sample_text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "sample.txt"
    path.write_text(SAMPLE_TEXT)
    return path


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `presso` console entry point in a subprocess."""
    # The console script, not `python -m`: -m would put the cwd (the repo root, whose `kernels/` folder
    # transformers would then probe as a top-level package) on sys.path.
    exe = str(Path(sys.executable).with_name("presso"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


