import gzip
import json

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from datatrove.io import get_datafolder

from core.ledger import read_task_records
from core.rejects import count_rejects
from readers.records import RawDocumentReader

GOOD = [{"id": "a", "text": "first document", "url": "u1"}, {"text": "second, without id"}]
BAD_LINES = [
    b'{"id": "b", "text": "broken',
    b'{"id": "c", "text": "caf\xe9"}',
    b'{"id": "d", "body": "no text"}',
    b'{"id": "e", "text": 3.5}',
    b'{"id": "f", "text": "   "}',
    b'["not", "an", "object"]',
]


def _lines():
    return [orjson.dumps(GOOD[0]), b"", *BAD_LINES, orjson.dumps(GOOD[1])]


def _read(tmp_path, path):
    out = get_datafolder(str(tmp_path / "out"))
    docs = list(RawDocumentReader([("web", str(path))], out, "en").run(rank=0, world_size=1))
    return docs, read_task_records(out, 0)["read"], count_rejects(out)


def _check(docs, record, rejects, place):
    assert [d.text for d in docs] == ["first document", "second, without id"]
    assert docs[0].id == "a" and docs[0].metadata["fields"] == {"url": "u1"} and docs[0].metadata["source"] == "web"
    assert docs[1].id.endswith(place)  # no id: the record's place in its file
    expected = {"broken_json": 1, "invalid_utf8": 1, "missing_text": 1, "text_not_string": 1, "empty_text": 1, "not_an_object": 1}
    assert record == {"read": 8, "malformed": expected, "removed": {}}
    assert rejects == expected


def test_jsonl_plain_gzip_zstd(tmp_path):
    data = b"\n".join(_lines()) + b"\n"
    (tmp_path / "a.jsonl").write_bytes(data)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    # A line of an uncompressed file is named by its byte offset (the same whatever the work unit
    # that reads it); of a compressed file, always read whole, by its line number.
    offset = len(data) - len(orjson.dumps(GOOD[1])) - 1
    for name, place in (("a.jsonl", f"a.jsonl:@{offset}"), ("b.jsonl.gz", "b.jsonl.gz:9"), ("c.jsonl.zst", "c.jsonl.zst:9")):
        _check(*_read(tmp_path / name.replace(".", "_"), tmp_path / name), place)


def test_parquet_rows(tmp_path):
    table = pa.table({"id": ["a", None, "x"], "text": ["first document", "second", None]})
    pq.write_table(table, tmp_path / "t.parquet")
    docs, record, rejects = _read(tmp_path, tmp_path / "t.parquet")
    assert [d.text for d in docs] == ["first document", "second"] and docs[1].id.endswith("t.parquet:2")
    assert record == {"read": 3, "malformed": {"missing_text": 1}, "removed": {}}


def test_reject_keeps_raw_line(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "ok"}\n{"id": 1, "text": "caf\xe9"}\n')
    _read(tmp_path, tmp_path / "a.jsonl")
    rejects = gzip.decompress((tmp_path / "out/rejects/malformed/00000.jsonl.gz").read_bytes()).decode()
    record = json.loads(rejects)
    assert record["reason"] == "invalid_utf8" and record["raw"] == '{"id": 1, "text": "caf\\xe9"}'


def test_truncated_gzip_is_counted_not_fatal(tmp_path):
    data = gzip.compress(b"\n".join(orjson.dumps({"text": f"doc {i}"}) for i in range(2000)))
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) // 2])
    docs, record, rejects = _read(tmp_path, tmp_path / "t.jsonl.gz")
    assert rejects == {"unreadable_file": 1}
    assert record["read"] == len(docs) + 1


def test_a_parquet_value_python_cannot_hold_is_a_counted_unreadable_row_group(tmp_path):
    """A timestamp beyond year 9999 raises OverflowError in Arrow's conversion: the row group is
    one `unreadable_file` record, and the task goes on."""
    from readers.records import iter_records

    path = tmp_path / "ts.parquet"
    pq.write_table(pa.table({"text": ["one", "two"], "ts": pa.array([10**15, 1], pa.timestamp("s"))}), path)
    assert [reason for _, _, reason, _ in iter_records(str(path))] == ["unreadable_file"]
