"""Work units: large inputs split into several tasks, and nothing read differs whatever the split."""

import gzip
import random
import textwrap

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import demo_records
from datatrove.io import get_datafolder
from megatron.core.datasets.indexed_dataset import IndexedDataset
from tokenizers import Tokenizer

from core.errors import AuroraError
from core.ledger import read_task_records
from manifests.manifest import build_pool_manifest
from pipeline.recipe import load_recipe
from readers.records import RawDocumentReader, WorkUnit, work_units

UNIT = 4 << 10  # the smallest `read.unit_bytes`
WORDS = ["word", "café", "€uro", "𝔘𝔫𝔦", "日本語", "naïve", "x"]


def _line(rng: random.Random, i: int, length: int | None = None) -> bytes:
    """A record's line (newline included), with an id or without (then its place names it); of
    exactly `length` bytes when given."""
    record = {"id": f"r{i}"} if i % 2 else {}
    if length is None:
        record["text"] = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 120)))
    else:  # as many "a" as fill the line to `length`
        record["text"] = "a" * (length - len(orjson.dumps({**record, "text": ""})) - 1)
    return orjson.dumps(record) + b"\n"


def _jsonl_across_boundaries(units: int) -> bytes:
    """Records of varied lengths and multi-byte UTF-8, where each unit boundary meets, in turn: a
    line starting exactly on it, a blank line ending just before it, a blank line on it, a broken
    JSON line across it, a three-byte character across it, and an ordinary line across it."""
    rng, data, i = random.Random(3), bytearray(), 0
    for boundary in range(UNIT, units * UNIT, UNIT):
        while len(data) < boundary - 1000:  # a random line is at most about 900 bytes
            data += _line(rng, i)
            i += 1
        gap = boundary - len(data)
        case = boundary // UNIT % 6
        if case == 0:  # exactly at the boundary
            data += _line(rng, i, gap)
        elif case == 1:  # byte boundary - 1 is a blank line's newline: the next line is the new unit's
            data += _line(rng, i, gap - 1) + b"\n"
        elif case == 2:  # a blank line on the boundary
            data += _line(rng, i, gap) + b"\n"
        elif case == 3:
            data += _line(rng, i, gap - 10) + b'{"id": "broken", "text": "cut\n'
        elif case == 4:  # the boundary falls inside a "€"
            data += _line(rng, i, gap - 11) + b'{"text":"\xe2\x82\xac\xe2\x82\xac"}\n'
        i += 1
        data += _line(rng, i)
        i += 1
    return bytes(data) + b'{"text": "the last line has no newline"}'


def _read(units, out) -> tuple[list, list, list[dict]]:
    """Read units as the curate pass does, a task each: (documents, rejects, each task's ledger)."""
    folder = get_datafolder(str(out))
    reader = RawDocumentReader(units, folder, "en", max_document_bytes=2000)
    docs = [(d.id, d.text, d.metadata) for rank in range(len(units)) for d in reader.run(rank=rank, world_size=len(units))]
    rejects = [orjson.loads(line) for step in ("malformed", "read") for path in sorted(out.glob(f"rejects/{step}/*.gz"))
               for line in gzip.open(path)]
    ledgers = [read_task_records(folder, rank)["read"] for rank in range(len(units))]
    return docs, rejects, ledgers


def _same_whatever_the_split(path, tmp_path) -> tuple[list, list]:
    """The file read as one unit and as units of 4 KiB: the same documents, rejects and counts."""
    whole = work_units([("web", str(path))], 1 << 40)
    split = work_units([("web", str(path))], UNIT)
    assert whole == [WorkUnit("web", str(path))] and len(split) > 1
    docs, rejects, ledgers = _read(whole, tmp_path / "whole")
    split_docs, split_rejects, split_ledgers = _read(split, tmp_path / "split")
    assert split_docs == docs and split_rejects == rejects
    assert sum(ledger["read"] for ledger in split_ledgers) == ledgers[0]["read"] == len(docs) + len(rejects)
    assert len({doc_id for doc_id, _, _ in docs}) == len(docs)  # nothing read twice
    return docs, rejects


def test_jsonl_split_at_line_starts_reads_the_same(tmp_path):
    path = tmp_path / "in.jsonl"
    data = _jsonl_across_boundaries(250)
    path.write_bytes(data)
    starts = list(range(0, len(data), UNIT))
    assert [(u.start, u.end) for u in work_units([("web", str(path))], UNIT)] == list(zip(starts, starts[1:] + [None]))
    docs, rejects = _same_whatever_the_split(path, tmp_path)
    assert len(docs) > 2000
    assert [r["reason"] for r in rejects] == ["broken_json"] * 42
    # A line without an id is named by the byte offset where it starts, whatever unit read it.
    for doc_id, text, _ in docs:
        if not doc_id.startswith("r"):
            offset = int(doc_id.rsplit(":@", 1)[1])
            assert data[offset - 1:offset] in (b"", b"\n") and orjson.loads(data[offset:].split(b"\n", 1)[0])["text"] == text


def test_jsonl_line_longer_than_a_unit_is_read_once(tmp_path):
    path = tmp_path / "in.jsonl"
    big = orjson.dumps({"text": "long " * 3000}) + b"\n"  # 15 kB: past max_document_bytes, removed unread
    path.write_bytes(b'{"text": "before"}\n' + big + b'{"text": "after"}\n')
    docs, rejects = _same_whatever_the_split(path, tmp_path)
    assert [text for _, text, _ in docs] == ["before", "after"]
    assert [(r["id"].rsplit("/", 1)[1], r["reason"]) for r in rejects] == [("in.jsonl:@19", "read.max_document_bytes")]


def _parquet_rows(count: int) -> list[dict]:
    rng = random.Random(5)
    rows = [{"id": f"p{i}" if i % 3 else None, "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 150)))}
            for i in range(count)]
    rows[7]["text"] = None  # missing_text
    rows[100]["text"] = "big " * 1000  # removed as read.max_document_bytes
    return rows


def test_parquet_split_by_row_groups_reads_the_same(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(_parquet_rows(600)), path, row_group_size=40)
    units = work_units([("web", str(path))], UNIT)
    assert units[0].start == 0 and units[-1].end is None
    assert all(a.end == b.start for a, b in zip(units, units[1:]))  # contiguous whole row groups
    docs, rejects = _same_whatever_the_split(path, tmp_path)
    assert len(docs) == 598 and sorted(r["reason"] for r in rejects) == ["missing_text", "read.max_document_bytes"]
    assert docs[-3][0].endswith("in.parquet:598")  # no id: the row number, counted from the file's start


def test_parquet_row_group_larger_than_a_unit_is_one_unit(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [f"row {i} " + "padding " * 200 for i in range(30)]}), path, row_group_size=10,
                   compression="none")
    assert [(u.start, u.end) for u in work_units([("web", str(path))], UNIT)] == [(0, 1), (1, 2), (2, None)]


def test_broken_parquet_row_group_is_one_reject_whatever_the_split(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [f"row {i} " + "x" * 300 for i in range(100)]}), path, row_group_size=10,
                   compression="none")
    column = pq.read_metadata(path).row_group(4).column(0)
    data = bytearray(path.read_bytes())
    start = column.data_page_offset
    data[start:start + 64] = b"\xff" * 64  # the page header of row group 4: the footer stays readable
    path.write_bytes(bytes(data))
    docs, rejects = _same_whatever_the_split(path, tmp_path)
    assert [r["reason"] for r in rejects] == ["unreadable_file"] and len(docs) == 90
    assert docs[40][0].endswith("in.parquet:51")  # row group 5 starts at row 51


def test_compressed_and_small_files_are_one_unit(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"text": "x"}\n' * 5000))
    (tmp_path / "small.jsonl").write_bytes(b'{"text": "x"}\n' * 10)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not a parquet file")
    inputs = [("web", str(tmp_path / name)) for name in ("a.jsonl.gz", "small.jsonl", "empty.jsonl", "broken.parquet")]
    assert work_units(inputs, UNIT) == [WorkUnit(source, path) for source, path in inputs]


def _recipe_file(tmp_path, read: str = "") -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent("""\
        name: units
        language: en
        sources: [{name: web, paths: [in.jsonl]}]
        output: out
        assets: {lid_model: lid.176.ftz, tokenizer: tokenizer.json}
        langid: {min_score: 0.5}
        """) + read)
    return str(path)


@pytest.mark.parametrize("value", ["100", "2048", "2199023255552", "1.5", "'big'", "true", "null"])
def test_unit_bytes_out_of_range_is_one_line(tmp_path, value):
    with pytest.raises(AuroraError) as error:
        load_recipe(_recipe_file(tmp_path, f"read: {{unit_bytes: {value}}}\n"))
    assert "'read.unit_bytes' must be an integer from 4,096 of at most 1,099,511,627,776" in str(error.value)
    assert "\n" not in str(error.value)


def test_unit_bytes_default_and_setting(tmp_path):
    assert load_recipe(_recipe_file(tmp_path)).unit_bytes == 256 << 20
    assert load_recipe(_recipe_file(tmp_path, "read: {unit_bytes: 1048576}\n")).unit_bytes == 1 << 20


def test_unfinished_unit_is_named_with_its_range(tmp_path):
    recipe = load_recipe(_recipe_file(tmp_path))
    units = [WorkUnit("web", "/data/in.jsonl", 0, 4096), WorkUnit("web", "/data/in.parquet", 3, None)]
    assert [u.describe() for u in units] == ["/data/in.jsonl bytes 0 to 4096", "/data/in.parquet row groups 3 to the end"]
    with pytest.raises(AuroraError, match=r"task 0 \(/data/in.jsonl bytes 0 to 4096\) did not finish"):
        build_pool_manifest(get_datafolder(str(tmp_path / "run")), recipe, [("web", "/data/in.jsonl")], None,
                            [u.describe() for u in units])


def _demo_inputs(workspace, folder) -> None:
    """Half the fi demo input, uncompressed: its first two files' lines as they are (malformed ones
    included) as JSONL, the records of its last file with a string text as parquet, 20 rows a group."""
    folder.mkdir()
    files = sorted((workspace / "data/demo/fi").glob("*.jsonl.gz"))
    (folder / "web.jsonl").write_bytes(b"".join(gzip.decompress(path.read_bytes()) for path in files[:2]))
    records = [r for r in demo_records(workspace, "fi") if r["id"].startswith("fi-03-") and isinstance(r.get("text"), str)]
    assert len(files) == 4 and len(records) > 100
    pq.write_table(pa.Table.from_pylist(records), folder / "web.parquet", row_group_size=20)


def _curated(workspace, run, tmp_path, read: str, workers: int):
    from pipeline.curate import curate

    recipe = tmp_path / f"{run}.yaml"
    recipe.write_text((workspace / "recipes/demo/fi.yaml").read_text() + read)
    manifest = curate(load_recipe(str(recipe)), inputs=[str(tmp_path / "inputs" / "*")], output=str(tmp_path / run),
                      workers=workers)
    tokenizer = Tokenizer.from_file(str(workspace / "assets" / "tokenizer.json"))
    documents = [tokenizer.decode(dataset[i].tolist()[:-1], skip_special_tokens=False)
                 for shard in manifest["shards"] for dataset in [IndexedDataset(str(tmp_path / run / shard["prefix"]))]
                 for i in range(len(dataset))]
    rejects = {step.name: [orjson.loads(line) for path in sorted(step.glob("*.gz")) for line in gzip.open(path)]
               for step in sorted((tmp_path / run / "rejects").glob("*"))}
    tasks = len(list((tmp_path / run / "logs" / "filter" / "completions").glob("*")))
    return manifest, documents, rejects, tasks


def test_curate_gives_the_same_documents_and_funnel_for_any_unit_size(in_workspace, tmp_path):
    _demo_inputs(in_workspace, tmp_path / "inputs")
    manifest, documents, rejects, tasks = _curated(in_workspace, "whole", tmp_path, "", workers=1)
    assert tasks == 2 and len(documents) > 100
    small = "read: {unit_bytes: 65536}\n"
    split_manifest, split_documents, split_rejects, split_tasks = _curated(in_workspace, "split", tmp_path, small, workers=2)
    assert split_tasks > 10 and len(split_manifest["shards"]) >= split_tasks
    assert split_documents == documents and split_rejects == rejects
    assert split_manifest["funnel"] == manifest["funnel"] and split_manifest["totals"] == manifest["totals"]
    assert split_manifest["inputs"] == manifest["inputs"]  # still one entry per file
    assert split_manifest["dedup"]["clusters"] == manifest["dedup"]["clusters"]
    assert manifest["funnel"]["malformed"] and manifest["funnel"]["removed"].get("exact_duplicate")
    # The split follows the recipe and the inputs only: another worker count runs the same tasks
    # and writes the same shards.
    again, _, _, again_tasks = _curated(in_workspace, "split-again", tmp_path, small, workers=1)
    assert again_tasks == split_tasks and again == split_manifest
