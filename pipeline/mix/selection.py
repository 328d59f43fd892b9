"""Which documents a stage takes from a pool: pure functions of keys and lengths, no I/O.

A document's key is a 64-bit hash of the seed, the component and the document (its pool shard
and index), so the choice does not depend on workers or order. The `validation_documents` with
the largest keys are held out; the rest are the training documents. A budget of `k` whole pools
plus a remainder takes every training document `k` times, then those with the smallest keys
until the remainder is reached: the component lands at most one document above its budget
(documents that share the cut's key are all taken, so the choice never depends on order).

The cut is found with bounded memory: the caller hands in the pool shard by shard, one pass sums
tokens into 65,536 bins of the key's top 16 bits, and a second sorts the documents of the one bin
where the remainder is reached. A document goes to the part (`keys % parts`) its key names.
"""

import hashlib
from collections.abc import Callable, Iterable

import numpy as np

from core.errors import AuroraError

BIN_SHIFT = np.uint64(48)  # 65,536 histogram bins of the key's top 16 bits
BINS = 1 << 16


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def document_keys(seed: int, component: str, shard_prefix: str, count: int) -> np.ndarray:
    """The selection key of each document of a pool shard: a hash of seed, component and document."""
    base = hashlib.blake2b(f"{seed}\0{component}\0{shard_prefix}".encode(), digest_size=8).digest()
    return _splitmix64(np.uint64(int.from_bytes(base, "little")) + np.arange(count, dtype=np.uint64))


def holdout_key(shard_keys: Iterable[np.ndarray], count: int) -> int | None:
    """The smallest key of the `count` documents with the largest keys, which are held out for
    validation (keys from it on); None when none are. At most `count` keys are kept at a time.
    The caller makes sure some documents are left to train on."""
    if count == 0:
        return None
    top = np.zeros(0, dtype=np.uint64)
    for keys in shard_keys:
        top = np.concatenate([top, keys])
        top = np.partition(top, len(top) - count)[-count:] if len(top) > count else top
    return int(top.min())


def for_training(keys: np.ndarray, holdout: int | None) -> np.ndarray:
    """Which documents are for training: all but the held-out (keys from `holdout` on)."""
    return keys < np.uint64(holdout) if holdout is not None else np.ones(len(keys), bool)


def whole_epochs(component: str, budget: int, available: int, max_epochs: float) -> tuple[int, int]:
    """(whole passes over the pool, tokens left for the partial pass) of a budget over a pool of
    `available` training tokens; a budget needing more than `max_epochs` passes is refused."""
    if budget > max_epochs * available:
        raise AuroraError(
            f"component '{component}': a budget of {budget:,} tokens needs {budget / available:.2f} "
            f"epochs of its {available:,}-token pool, more than max_epochs {max_epochs}"
        )
    full = budget // available
    return full, budget - full * available


def bin_tokens(keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Tokens per key bin (the key's top 16 bits) of some documents."""
    return np.bincount((keys >> BIN_SHIFT).astype(np.int64), weights=lengths, minlength=BINS).astype(np.int64)


def partial_cut(shards: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], remainder: int) -> int | None:
    """The largest key to take so the documents with keys up to it first reach `remainder` tokens;
    None for no partial pass. `shards()` gives the training documents' (keys, lengths) shard by
    shard, afresh each time it is called (twice: the histogram, then the bin the cut is in)."""
    if remainder <= 0:
        return None
    histogram = np.zeros(BINS, dtype=np.int64)
    for keys, lengths in shards():
        histogram += bin_tokens(keys, lengths)
    cumulative = np.cumsum(histogram)
    crossing = int(np.searchsorted(cumulative, remainder))  # the first bin whose end reaches the remainder
    before = int(cumulative[crossing - 1]) if crossing else 0
    keys, lengths = [], []
    for shard_keys, shard_lengths in shards():
        in_bin = (shard_keys >> BIN_SHIFT) == crossing
        keys.append(shard_keys[in_bin])
        lengths.append(shard_lengths[in_bin].astype(np.int64))
    keys, lengths = np.concatenate(keys), np.concatenate(lengths)
    order = np.argsort(keys, kind="stable")
    taken = before + np.cumsum(lengths[order])
    return int(keys[order][int(np.searchsorted(taken, remainder))])


def parts_of(keys: np.ndarray, parts: int) -> np.ndarray:
    """The part each document goes to."""
    return keys % np.uint64(parts)


def part_tokens(keys: np.ndarray, lengths: np.ndarray, train: np.ndarray, parts: int, full_epochs: int,
                cut: int | None) -> np.ndarray:
    """Tokens each part takes from these documents: whole epochs, then the partial pass."""
    part = parts_of(keys, parts).astype(np.int64)
    tokens = full_epochs * np.bincount(part[train], weights=lengths[train], minlength=parts).astype(np.int64)
    if cut is not None:
        taken = train & (keys <= np.uint64(cut))
        tokens += np.bincount(part[taken], weights=lengths[taken], minlength=parts).astype(np.int64)
    return tokens


def pool_passes(full_epochs: int, cut: int | None) -> list[int | None]:
    """The passes over a pool, in order: a whole one (None) per epoch, then the partial one (its cut)."""
    return [None] * full_epochs + ([cut] if cut is not None else [])


def selected(keys: np.ndarray, train: np.ndarray, parts: int, part: int, cut: int | None) -> np.ndarray:
    """Which documents one pass (`cut`, None for a whole one) gives to `part`."""
    mine = train & (parts_of(keys, parts) == np.uint64(part))
    if cut is not None:
        mine &= keys <= np.uint64(cut)
    return mine
