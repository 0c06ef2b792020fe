"""The one `presso` parser (presso.server.cli.build_parser) registers every command; `eval` carries the
engine flags of --kv-cache scoring, generated from EngineConfig like those of serve and bench."""

from __future__ import annotations

import dataclasses

import pytest

from presso.server.cli import build_parser
from presso.server.engine.config import EngineConfig

COMMANDS = ["pull", "data", "eval", "compress", "distill", "report", "sweep", "serve", "bench"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(f"    {name} " in text for name in COMMANDS), text


@pytest.mark.parametrize("argv", [[c, "--help"] for c in COMMANDS] + [["bench", w, "--help"] for w in
                                                                      ("engine", "kv", "guided", "kernels")])
def test_every_command_parses_its_help(argv):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 0


def test_the_separate_aqlm_command_is_gone(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["aqlm", "--model", "m", "--out", "o"])
    assert exit_.value.code == 2 and "invalid choice: 'aqlm'" in capsys.readouterr().err


def test_eval_gets_engine_flags_at_registration():
    base = ["eval", "--model", "m", "--text", "t"]
    defaults = {f.name: f.default for f in dataclasses.fields(EngineConfig)}
    plain = build_parser().parse_args(base)
    assert plain.kv_cache_dtype is None and plain.device == defaults["device"]
    assert plain.kv_window == defaults["kv_window"] and plain.make_scorer(plain) is None
    args = build_parser().parse_args([*base, "--kv-cache", "int8", "--kv-window", "4", "--kernel-backend", "reference"])
    assert (args.kv_cache_dtype, args.kv_window, args.kernel_backend) == ("int8", 4, "reference")
