"""engine/ipc.py: the frames between the API and engine-core processes round-trip every field, and a
reader fed arbitrary byte splits yields exactly the messages written."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from presso.server.engine import ipc
from presso.server.engine.types import EngineStats, RequestDelta, SamplingParams, TokenLogprob


def test_params_delta_stats_round_trip():
    params = SamplingParams(max_tokens=7, temperature=0.5, top_k=3, seed=11, stop_token_ids=(4, 5),
                            logprobs=2, logit_bias=((3, -1.5),), guide=("regex", "[ab]+"), min_p=0.1)
    assert ipc.params_from_wire(ipc.params_to_wire(params)) == params
    lp = TokenLogprob(9, -0.25, ((9, -0.25), (8, -2.0)))
    delta = RequestDelta("r-0", (9, 10), (lp, lp), (None, lp), True, "length", 12, 2, 4, 0.125)
    assert ipc.delta_from_wire(ipc.delta_to_wire(delta)) == delta
    bare = RequestDelta("r-1", (), None, None, False, None, 3, 0, 0)
    assert ipc.delta_from_wire(ipc.delta_to_wire(bare)) == bare
    stats = EngineStats(1, 2, 100, 90, 16, 768, "bf16", 5, 3, 0, 10**8, 4.5, 135_000_000)
    assert ipc.stats_from_wire(ipc.stats_to_wire(stats)) == stats


@given(st.lists(st.tuples(st.text(max_size=20), st.lists(st.integers(0, 2**31)), st.none() | st.floats(0, 1)),
                max_size=8),
       st.lists(st.integers(1, 64), max_size=20))
def test_reader_reassembles_any_split(messages, cuts):
    data = b"".join(ipc.encode(("step", m)) for m in messages)
    reader, got, pos = ipc.FrameReader(), [], 0
    for cut in cuts:
        got += reader.feed(data[pos:pos + cut])
        pos += cut
    got += reader.feed(data[pos:])
    assert got == [("step", m) for m in messages]


def test_pipe_read_and_eof():
    r, w = os.pipe()
    try:
        ipc.write_all(w, ipc.encode(("abort", "x")) + ipc.encode(("sync", 3)))
        reader = ipc.FrameReader()
        assert ipc.read_messages(r, reader, 1.0) == [("abort", "x"), ("sync", 3)]
        assert ipc.read_messages(r, reader, 0) == []
        os.close(w)
        w = -1
        assert ipc.read_messages(r, reader, None) is None
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
