"""Logical half of the paged KV cache: block ids, free list, reference counts, prefix caching.

The scheduler asks this module which physical blocks a request may use; the model runner only ever sees
the resulting block tables. It knows nothing of bytes, tensors or codecs (pure Python, no torch).

Prefix caching: every *full* block of tokens gets a chained hash `hash((parent_hash, tokens))`, so a hash
names the whole prefix up to and including that block. Freed blocks that carry a hash stay readable in an
LRU list until the space is needed; a new request whose prompt starts with the same blocks reuses them.

Sliding windows: when every layer of a model attends over only its last W positions (Mistral), the
scheduler frees a request's leading blocks as soon as no future query can see them (Scheduler._slide),
so a sequence holds about W / block_size + 2 blocks however long it grows. Its block list keeps their
places as FREED, so position p still lives in entry p // block_size. A freed block that carries a
prefix hash stays cached like any other (its K/V are valid for that prefix). Models that mix sliding and
full-attention layers (Gemma 2/3) share one block table across layers and free nothing: the full layers
need every block, and attention simply skips the sliding layers' out-of-window blocks. (Per-layer-group
block tables would also return the sliding layers' pages, at the cost of a second table per request and
a second free list; not done.) `max_blocks_used` is the high-water mark, to measure what windows save.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

NO_HASH = None
FREED = -1  # a request's block-list entry whose block was freed (out of every layer's sliding window)


def chain_hash(parent: int | None, tokens: Sequence[int]) -> int:
    """The hash of a full block given its parent block's hash (None for the first block)."""
    return hash((parent, tuple(tokens)))


@dataclass(slots=True)
class Block:
    """One physical block: how many requests use it and, once full and computed, its prefix hash."""

    block_id: int
    ref_count: int = 0
    block_hash: int | None = NO_HASH
    tokens: tuple[int, ...] = ()


class BlockManager:
    """Allocates fixed-size blocks of token slots to requests.

    Free blocks live in two places: `_free` (never cached, FIFO by id) and `_evictable` (ref count 0 but
    holding a cached prefix, least recently freed first). Allocation prefers `_free` and only then evicts
    the least recently used cached block.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        assert num_blocks > 0 and block_size > 0
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self._free: deque[int] = deque(range(num_blocks))
        self._evictable: OrderedDict[int, None] = OrderedDict()
        self._by_hash: dict[int, int] = {}
        self.prefix_queries = 0  # prompt tokens looked up in the prefix cache
        self.prefix_hits = 0  # of which found cached
        self.max_blocks_used = 0  # high-water mark of blocks held by requests

    # ---- queries -------------------------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        return len(self._free) + len(self._evictable)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def find_cached_prefix(self, token_ids: Sequence[int]) -> list[int]:
        """Block ids of the longest cached run of full blocks that prefixes `token_ids` (not taken yet).

        At least one token is always left uncached, so the request still computes logits for its next token.
        """
        if not self.enable_prefix_caching:
            return []
        found: list[int] = []
        parent: int | None = None
        max_blocks = (len(token_ids) - 1) // self.block_size
        for i in range(max_blocks):
            tokens = tuple(token_ids[i * self.block_size:(i + 1) * self.block_size])
            parent = chain_hash(parent, tokens)
            block_id = self._by_hash.get(parent)
            if block_id is None or self.blocks[block_id].tokens != tokens:
                break
            found.append(block_id)
        return found

    # ---- mutations -----------------------------------------------------------------------------------
    def count_lookup(self, num_tokens: int, num_hit_tokens: int) -> None:
        """Record one admitted prompt's prefix-cache lookup (for the hit-rate metric)."""
        self.prefix_queries += num_tokens
        self.prefix_hits += num_hit_tokens

    def take_cached(self, block_ids: Sequence[int]) -> None:
        """Add a reference to each cached block found by find_cached_prefix."""
        for block_id in block_ids:
            block = self.blocks[block_id]
            if block.ref_count == 0:
                del self._evictable[block_id]
            block.ref_count += 1

    def allocate(self, num: int) -> list[int] | None:
        """`num` fresh blocks with ref count 1, or None (and no change) when there are not enough."""
        if num > self.num_free_blocks:
            return None
        out = []
        for _ in range(num):
            if self._free:
                block_id = self._free.popleft()
            else:
                block_id, _ = self._evictable.popitem(last=False)
                self._uncache(self.blocks[block_id])
            self.blocks[block_id].ref_count = 1
            out.append(block_id)
        self.max_blocks_used = max(self.max_blocks_used, self.num_blocks - self.num_free_blocks)
        return out

    def free(self, block_ids: Sequence[int]) -> None:
        """Drop one reference from each block; tail blocks first, so they are evicted first."""
        for block_id in reversed(block_ids):
            if block_id == FREED:
                continue
            block = self.blocks[block_id]
            assert block.ref_count > 0, f"double free of block {block_id}"
            block.ref_count -= 1
            if block.ref_count == 0:
                if block.block_hash is NO_HASH:
                    self._free.append(block_id)
                else:
                    self._evictable[block_id] = None

    def cache_full_blocks(
        self, block_ids: Sequence[int], token_ids: Sequence[int], num_computed: int,
        start: int = 0, parent: int | None = None,
    ) -> tuple[int, int | None]:
        """Hash every full, computed block from block index `start` (whose parent hash is `parent`).

        Returns (blocks hashed so far, last hash) for the caller to pass back next step.
        """
        if not self.enable_prefix_caching:
            return start, parent
        end = num_computed // self.block_size
        for i in range(start, end):
            block = self.blocks[block_ids[i]]
            tokens = tuple(token_ids[i * self.block_size:(i + 1) * self.block_size])
            if block.block_hash is not NO_HASH:  # a block taken from the prefix cache
                parent = block.block_hash
                continue
            parent = chain_hash(parent, tokens)
            if parent in self._by_hash:  # the same prefix is cached in another block: keep that one
                continue
            block.block_hash, block.tokens = parent, tokens
            self._by_hash[parent] = block.block_id
        return max(start, end), parent

    def _uncache(self, block: Block) -> None:
        if self._by_hash.get(block.block_hash) == block.block_id:
            del self._by_hash[block.block_hash]
        block.block_hash, block.tokens = NO_HASH, ()
