"""Block manager: exact block ids through allocation, freeing, prefix caching and LRU eviction (no torch)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from presso.server.kv.block_manager import BlockManager


def test_pure_python():
    code = "import sys, presso.server.kv.block_manager, presso.server.engine.scheduler; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip() == "False"


def test_allocate_free_fifo_and_exhaustion():
    bm = BlockManager(num_blocks=4, block_size=2)
    assert bm.allocate(3) == [0, 1, 2]
    assert bm.allocate(2) is None and bm.num_free_blocks == 1  # all-or-nothing
    bm.free([0, 1])
    assert bm.allocate(3) == [3, 1, 0]  # free list order: 3, then freed tail-first: 1, 0
    with pytest.raises(AssertionError):
        bm.free([2, 2])


def test_prefix_cache_hit_ref_counts_and_lru_eviction():
    bm = BlockManager(num_blocks=5, block_size=2)
    a = bm.allocate(3)  # [0, 1, 2] holding tokens 10..15
    tokens = [10, 11, 12, 13, 14, 15]
    assert bm.cache_full_blocks(a, tokens, num_computed=5)[0] == 2  # only 2 blocks full and computed
    assert bm.find_cached_prefix([10, 11, 12, 13, 99]) == [0, 1]
    assert bm.find_cached_prefix([10, 11, 12, 13]) == [0]  # at least one token stays uncached
    assert bm.find_cached_prefix([10, 12, 12, 13, 1]) == []
    hit = bm.find_cached_prefix([10, 11, 12, 13, 7, 7])
    bm.take_cached(hit)
    assert [bm.blocks[i].ref_count for i in (0, 1, 2)] == [2, 2, 1]
    bm.free(a)  # 2 -> free list; 1, 0 still used by the second request
    assert bm.num_free_blocks == 3
    bm.free(hit)  # 1 then 0 become evictable, in that order
    assert list(bm._evictable) == [1, 0] and bm.num_free_blocks == 5
    assert bm.allocate(3) == [3, 4, 2]  # never-cached blocks first
    assert bm.allocate(1) == [1]  # then the least recently freed cached block is evicted
    assert bm.find_cached_prefix([10, 11, 12, 13, 0]) == [0]  # block 0 still cached, 1 evicted
    assert bm.blocks[1].block_hash is None


def test_duplicate_prefix_keeps_first_block():
    bm = BlockManager(num_blocks=4, block_size=2)
    a, b = bm.allocate(1), bm.allocate(1)
    bm.cache_full_blocks(a, [1, 2], 2)
    bm.cache_full_blocks(b, [1, 2], 2)
    assert bm.find_cached_prefix([1, 2, 3]) == a
    bm.free(b)
    assert bm.allocate(3) == [2, 3, 1]  # b never got a hash: plain free block
