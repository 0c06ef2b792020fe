"""Retry-After on a full queue follows the queue: the waiting requests, served max_num_seqs at a time, at the
recent mean end-to-end time (an EWMA of finished requests), clamped to [--retry-after minimum, 60] s."""

from __future__ import annotations

from types import SimpleNamespace

from presso.server.api.state import ServerSettings, ServerState
from presso.server.metrics.registry import ServerMetrics


def test_retry_after_tracks_queue_and_request_time():
    metrics = ServerMetrics("m")
    state = ServerState(SimpleNamespace(max_num_seqs=2), ServerSettings("m"), metrics)
    assert state.retry_after(10) == 1  # no finished request yet: the configured minimum
    metrics.note_duration(2.0)
    assert state.retry_after(3) == 4  # ceil(2 s x (3 + 1) / 2 slots)
    for _ in range(50):
        metrics.note_duration(30.0)
    assert state.retry_after(100) == 60
    metrics.note_duration(0.001)
    assert state.retry_after(0) >= 1
