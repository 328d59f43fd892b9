"""The selection maths of `aurora mix` (pipeline.mix.selection), on keys and lengths made by hand:
no pools, no files."""

import numpy as np
import pytest

from core.errors import AuroraError
from pipeline.mix.selection import (
    BIN_SHIFT,
    document_keys,
    for_training,
    holdout_key,
    part_tokens,
    partial_cut,
    pool_passes,
    selected,
    whole_epochs,
)


def _shards(*shards):
    """`partial_cut`'s view of a pool: (keys, lengths) shard by shard, afresh on each call."""
    return lambda: [(np.asarray(k, np.uint64), np.asarray(n, np.int32)) for k, n in shards]


def _key(bin_: int, low: int) -> int:
    return (bin_ << int(BIN_SHIFT)) | low


def _taken(keys, lengths, cut) -> int:
    keys, lengths = np.asarray(keys, np.uint64), np.asarray(lengths)
    return int(lengths[keys <= np.uint64(cut)].sum())


def _reference_cut(keys, lengths, remainder) -> int:
    """The cut by a full sort of the pool."""
    order = np.argsort(keys, kind="stable")
    return int(np.asarray(keys)[order][np.searchsorted(np.cumsum(np.asarray(lengths)[order]), remainder)])


def test_document_keys_depend_on_seed_component_and_shard_only():
    keys = document_keys(7, "fi", "shards/fi_00000_0000", 1000)
    assert keys.dtype == np.uint64 and len(set(keys.tolist())) == 1000
    assert np.array_equal(keys[:10], document_keys(7, "fi", "shards/fi_00000_0000", 10))
    for other in (document_keys(8, "fi", "shards/fi_00000_0000", 1000), document_keys(7, "en", "shards/fi_00000_0000", 1000),
                  document_keys(7, "fi", "shards/fi_00000_0001", 1000)):
        assert not np.array_equal(keys, other)


def test_subsampling_below_one_epoch_takes_the_smallest_keys_up_to_one_document_over():
    rng = np.random.default_rng(0)
    shards = [(document_keys(1, "web", f"shards/web_{i}", 500), rng.integers(1, 300, 500)) for i in range(3)]
    keys = np.concatenate([k for k, _ in shards])
    lengths = np.concatenate([n for _, n in shards])
    available = int(lengths.sum())
    for budget in (1, 150, available // 3, available - 1):
        full, remainder = whole_epochs("web", budget, available, max_epochs=1)
        assert (full, remainder) == (0, budget)
        cut = partial_cut(_shards(*shards), remainder)
        assert cut == _reference_cut(keys, lengths, remainder)  # streamed by bins = a sort of the whole pool
        taken = keys <= np.uint64(cut)
        assert 0 <= lengths[taken].sum() - budget < lengths[keys == np.uint64(cut)].max()  # under one document over
        assert (~taken).sum() == 0 or keys[taken].max() < keys[~taken].min()  # a prefix of the keys, nothing else


def test_whole_epochs_plus_a_remainder():
    keys = np.array([_key(1, 5), _key(2, 5), _key(3, 5), _key(4, 5)], np.uint64)
    lengths = np.array([10, 20, 30, 40], np.int32)
    full, remainder = whole_epochs("web", 2 * 100 + 25, 100, max_epochs=3)
    assert (full, remainder) == (2, 25)
    cut = partial_cut(_shards((keys, lengths)), remainder)
    assert cut == _key(2, 5) and _taken(keys, lengths, cut) == 30  # 10 + 20: the first to reach 25
    assert pool_passes(full, cut) == [None, None, cut]
    train = np.ones(4, bool)
    per_part = part_tokens(keys, lengths, train, 2, full, cut)
    assert per_part.sum() == 2 * 100 + 30
    for part in range(2):  # each part's share is what its passes select
        assert per_part[part] == sum(int(lengths[selected(keys, train, 2, part, c)].sum()) for c in pool_passes(full, cut))


def test_ties_take_every_document_of_the_cut_key_whatever_their_order():
    tied = _key(7, 42)
    keys = [_key(7, 1), tied, tied, tied, _key(7, 99)]
    lengths = [10, 10, 10, 10, 10]
    cut = partial_cut(_shards((keys, lengths)), 15)
    assert cut == tied and _taken(keys, lengths, cut) == 40  # all three ties, not just the one that reached 15
    for order in ([4, 3, 2, 1, 0], [2, 0, 4, 1, 3]):
        shuffled = ([keys[i] for i in order], [lengths[i] for i in order])
        assert partial_cut(_shards(shuffled), 15) == cut
    split = partial_cut(_shards((keys[:2], lengths[:2]), (keys[2:], lengths[2:])), 15)  # ties across shards
    assert split == cut


def test_a_cut_exactly_at_a_bin_edge_stays_in_that_bin():
    low_bin = [_key(5, 1), _key(5, 2), _key(5, 3)]
    high_bin = [_key(9, 1), _key(9, 2)]
    keys, lengths = low_bin + high_bin, [10, 20, 30, 5, 5]
    # The remainder is exactly the tokens of the first bin: its last document completes it.
    cut = partial_cut(_shards((keys, lengths)), 60)
    assert cut == _key(5, 3) and _taken(keys, lengths, cut) == 60
    # One token more: the first document of the next bin.
    cut = partial_cut(_shards((keys, lengths)), 61)
    assert cut == _key(9, 1) and _taken(keys, lengths, cut) == 65
    # Empty bins between make no difference; a remainder inside the first bin stays there.
    assert partial_cut(_shards((keys, lengths)), 30) == _key(5, 2)


def test_budget_zero_and_budget_equal_to_the_pool():
    keys = document_keys(3, "web", "shards/web_0", 50)
    lengths = np.full(50, 7, np.int32)
    train = np.ones(50, bool)
    assert whole_epochs("web", 0, 350, max_epochs=1) == (0, 0)
    assert partial_cut(_shards((keys, lengths)), 0) is None
    assert pool_passes(0, None) == []
    assert part_tokens(keys, lengths, train, 3, 0, None).tolist() == [0, 0, 0]
    assert whole_epochs("web", 350, 350, max_epochs=1) == (1, 0)
    assert pool_passes(1, None) == [None]
    assert part_tokens(keys, lengths, train, 3, 1, None).sum() == 350


def test_a_budget_over_max_epochs_is_refused():
    assert whole_epochs("safety", 300, 100, max_epochs=3) == (3, 0)
    assert whole_epochs("safety", 250, 100, max_epochs=2.5) == (2, 50)
    with pytest.raises(AuroraError, match=r"component 'safety': a budget of 301 tokens needs 3.01 epochs of its 100-token pool, "
                                          r"more than max_epochs 3"):
        whole_epochs("safety", 301, 100, max_epochs=3)


def test_the_largest_keys_are_held_out_across_shards():
    shards = [document_keys(5, "fi", f"shards/fi_{i}", 40) for i in range(4)]
    keys = np.concatenate(shards)
    assert holdout_key(iter(shards), 0) is None
    assert for_training(keys, None).all()
    holdout = holdout_key(iter(shards), 6)
    assert holdout == int(np.sort(keys)[-6])
    train = for_training(keys, holdout)
    assert (~train).sum() == 6 and keys[train].max() < keys[~train].min()
    # Held-out documents are never selected, in any pass or part.
    assert sum(selected(keys, train, 3, part, cut).sum() for part in range(3) for cut in (None, int(keys.max()))) == 2 * 154


def test_parts_split_every_pass_without_overlap():
    keys = document_keys(9, "code", "shards/code_0", 300)
    train = np.ones(300, bool)
    masks = [selected(keys, train, 4, part, None) for part in range(4)]
    assert (np.sum(masks, axis=0) == 1).all()
