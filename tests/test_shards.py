import hashlib

import numpy as np
import pytest
from datatrove.io import get_datafolder
from megatron.core.datasets.indexed_dataset import IndexedDataset

from core.shards import ShardWriter, decode_index, token_dtype


@pytest.mark.parametrize("vocab_size", [8192, 65536, 100_000])
def test_megatron_reads_what_we_write(tmp_path, vocab_size):
    dtype = token_dtype(vocab_size)
    assert dtype == (np.uint16 if vocab_size <= 65536 else np.int32)
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, vocab_size, size=n) for n in (5, 1, 300, 17)]
    writer = ShardWriter(get_datafolder(str(tmp_path)), "s/shard", dtype)
    writer.add_many(np.concatenate(docs[:2]), [5, 1])
    writer.add_many(np.concatenate(docs[2:]), [300, 17])
    info = writer.close()
    assert info["documents"] == 4 and info["tokens"] == 323
    assert info["bin_sha256"] == hashlib.sha256((tmp_path / "s/shard.bin").read_bytes()).hexdigest()
    assert not list(tmp_path.glob("s/*.tmp"))

    dataset = IndexedDataset(str(tmp_path / "s/shard"))
    assert len(dataset) == 4
    assert list(dataset.document_indices) == [0, 1, 2, 3, 4]
    for i, doc in enumerate(docs):
        np.testing.assert_array_equal(dataset[i], doc.astype(dtype))


def test_decode_index_rejects_damage(tmp_path):
    writer = ShardWriter(get_datafolder(str(tmp_path)), "x", np.dtype(np.uint16))
    writer.add_many(np.arange(10), [4, 6])
    writer.close()
    data = (tmp_path / "x.idx").read_bytes()
    assert list(decode_index(data).lengths) == [4, 6]
    with pytest.raises(ValueError, match="magic"):
        decode_index(b"X" + data[1:])
    with pytest.raises(ValueError, match="implies"):
        decode_index(data[:-3])
