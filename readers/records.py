"""Reading raw sources (jsonl, jsonl.gz, jsonl.zst, parquet, warc, warc.gz, wet, wet.gz; local or s3://) into documents.

Unlike datatrove's readers, which log and skip a line they cannot parse, this reader sends
every bad record to rejects with its reason, so `read = kept + removed + malformed` holds.
A record is one non-blank line of a JSONL file, one row of a parquet file, or one document record of
a WARC or WET file (`readers.warc`: an HTML response, its main text; a WET conversion).

A reject's reason says where it goes: `read.` reasons are the reader's content decisions (a record
too large, a WARC response that is not HTML...), removed documents in `rejects/read`; the others
are broken data, malformed records in `rejects/malformed`.

Hostile input is bounded and never fatal: a record larger than `max_document_bytes` is skipped
without being held in memory (removed as `read.max_document_bytes`); a file that breaks part
way (truncated gzip, corrupt zstd or parquet) ends with one `unreadable_file` record (a parquet
file with a readable footer: that row group does, see work units below); a row with
invalid UTF-8 is one `invalid_utf8` reject, not its whole parquet file. The record's other
fields are kept, JSON-safe, under `metadata["fields"]`, apart from the fields the pipeline adds.

Work units: a large input is read in several tasks, each one `WorkUnit` (`work_units`), so a task
restarts at most a unit's work, not a 50 GB file's. The split depends on the recipe's
`read.unit_bytes` and the files' sizes only, never on the number of workers, and it changes
nothing in what is read: documents, their order and every decision are the same for any split.
- Uncompressed JSONL splits into byte ranges [start, end). A line belongs to the unit in which it
  starts: a unit from byte s > 0 skips the line that holds byte s - 1 (the previous unit's) and
  reads every line that starts before its end, past the end if the line goes on.
- Parquet splits into ranges of whole row groups, grouped until their compressed size (from the
  footer) reaches `unit_bytes`; a row group is never split. A row group that breaks ends with one
  `unreadable_file` record and the reader goes on with the next one, as a unit of its own would.
- Compressed JSONL (gzip, zstd) cannot be entered mid-stream: one unit per file; nor can a WARC
  file, which has no index of its records: one unit per file, compressed or not.

A record without a usable `id` is named by its place, the same whatever the split: a row of a
parquet file by its row number (`path:row`, from 1; the footer gives each row group's first row);
a line of an uncompressed JSONL file by the byte offset where it starts (`path:@offset`), which a
unit starting mid-file knows while its line number it could only count from the file's start; a
line of a compressed file, always read whole, by its line number (`path:line`, from 1); a record of
a WARC file by its number (`path:N`, from 1).
"""

import base64
import datetime
import decimal
import gzip
import io
import json
import math
import os
import zlib
from typing import NamedTuple

import fsspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from core.ledger import write_task_record
from core.rejects import RejectWriter
from core.text import normalize
from readers.html_text import DEFAULT_EXTRACTOR
from readers.warc import TOO_LARGE, WARC_FORMATS, warc_records

FORMATS = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet", *WARC_FORMATS)
MAX_DOCUMENT_BYTES = 8 << 20  # the recipe's `read.max_document_bytes` default
REMOVAL_PREFIX = "read."  # reasons that are content decisions (removed documents), not broken data
_BOM = b"\xef\xbb\xbf"
# An integer orjson reads as a float (beyond 64 bits: from 2**64, 20 digits, and below -2**63, a
# minus and 19 digits), found as that many zeros once every digit is one: one table pass over the
# line costs a tenth of a regular expression's search.
_LONG_NUMBERS, _DIGITS_AS_ZERO = (b"0" * 20, b"-" + b"0" * 19), bytes.maketrans(b"123456789", b"0" * 9)
_MAX_DEPTH = 64  # nesting of a record's fields (orjson writes at most 255 levels)
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)  # what orjson writes as a number
_LINE_CHUNK = 1 << 20
_PARQUET_ROWS, _PYTHON_ROWS = 256, 64
# What a file that breaks part way raises: it ends with one `unreadable_file` record.
# OverflowError: a parquet value Python cannot hold (a timestamp beyond year 9999).
READ_ERRORS = (OSError, EOFError, ValueError, OverflowError, zlib.error, zstandard.ZstdError, pa.ArrowException)


def input_format(path: str) -> str:
    for ext in FORMATS:
        if path.endswith(ext):
            return ext
    raise ValueError(f"{path}: unsupported input format (expected one of {', '.join(FORMATS)})")


class WorkUnit(NamedTuple):
    """One task's part of an input: bytes [start, end) of an uncompressed JSONL file, row groups
    [start, end) of a parquet file; `end` None reads to the end of the file (so (0, None) is the
    whole file, and the only unit of a compressed one)."""

    source: str
    path: str
    start: int = 0
    end: int | None = None

    def describe(self) -> str:
        if (self.start, self.end) == (0, None):
            return self.path
        what = "row groups" if input_format(self.path) == ".parquet" else "bytes"
        return f"{self.path} {what} {self.start} to {'the end' if self.end is None else self.end}"


def work_units(inputs: list[tuple[str, str]], unit_bytes: int) -> list[WorkUnit]:
    """The work units of the (source, path) inputs, in input order, each file's in file order."""
    units = []
    for source, path in inputs:
        starts = _unit_starts(path, unit_bytes)
        units += [WorkUnit(source, path, start, end) for start, end in zip(starts, starts[1:] + [None])]
    return units


def _unit_starts(path: str, unit_bytes: int) -> list[int]:
    """Where each unit of a file starts: a byte of JSONL, a row group of parquet. A file that cannot
    be split, or whose parquet footer cannot be read, is one unit; its reader reports what is wrong."""
    fmt = input_format(path)
    if fmt == ".jsonl":
        fs, plain = fsspec.core.url_to_fs(path)
        return list(range(0, fs.size(plain), unit_bytes)) or [0]
    if fmt != ".parquet":
        return [0]
    try:
        with fsspec.open(path, "rb") as f:
            metadata = _parquet_file(f).metadata
        groups = [metadata.row_group(g) for g in range(metadata.num_row_groups)]
        sizes = [sum(group.column(c).total_compressed_size for c in range(group.num_columns)) for group in groups]
    except READ_ERRORS:
        return [0]
    starts, size = [0], 0
    for group, group_size in enumerate(sizes[:-1]):  # a unit is closed once it reaches unit_bytes
        size += group_size
        if size >= unit_bytes:
            starts.append(group + 1)
            size = 0
    return starts


class TooDeep(ValueError):
    pass


def json_safe(value, depth: int = 0):
    """A field value as JSON can carry it exactly: integers beyond 64 bits and decimals as their
    digits, bytes as `base64:...`, dates in ISO 8601, non-finite floats as their names."""
    if depth > _MAX_DEPTH:
        raise TooDeep
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if _INT_RANGE[0] <= value <= _INT_RANGE[1] else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)  # e.g. a timedelta: its text, not a crash


def parse_record(record, fallback_id: str, keep_text: bool = False):
    """A parsed record -> (Document, None) or (None, reason).

    Natural-language text is normalized (`core.text.normalize`); with `keep_text` (code,
    where whitespace is meaning) the text is kept exactly as it came. The id is the record's
    `id` when it is a non-empty string or an integer; otherwise `fallback_id`, the record's place
    in its file (see the module's docstring), and an `id` of another type stays among the fields."""
    if not isinstance(record, dict):
        return None, "not_an_object"
    if "text" not in record or record["text"] is None:
        return None, "missing_text"
    text = record["text"]
    if not isinstance(text, str):
        return None, "text_not_string"
    if not text.strip():
        return None, "empty_text"
    doc_id = record.get("id")
    usable_id = (isinstance(doc_id, str) and doc_id != "") or (isinstance(doc_id, int) and not isinstance(doc_id, bool))
    try:
        fields = {k: json_safe(v) for k, v in record.items() if k != "text" and not (k == "id" and (usable_id or v is None))}
    except (TooDeep, RecursionError):
        return None, "nested_too_deep"
    metadata = {"fields": fields}
    return Document(text=text if keep_text else normalize(text), id=str(doc_id) if usable_id else fallback_id,
                    metadata=metadata), None


def _loads(line: bytes):
    record = orjson.loads(line)
    digits = line.translate(_DIGITS_AS_ZERO)
    if any(number in digits for number in _LONG_NUMBERS):
        try:  # exact integers of any size (the line is valid JSON, so both parsers agree on the rest)
            record = json.loads(line)
        except (RecursionError, ValueError):
            pass
    return record


def lines(f, limit: int):
    """(line number, line bytes or None when longer than `limit`, its size) for every line."""
    line_no = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        line_no += 1
        size = len(line)
        if size > limit and not line.endswith(b"\n"):
            while not line.endswith(b"\n"):  # skip the rest of the line without keeping it
                line = f.readline(_LINE_CHUNK)
                if not line:
                    break
                size += len(line)
            line = None
        yield line_no, line, size


class _ZstdStream(io.RawIOBase):
    """The decompressed bytes of a stream of zstd frames. python-zstandard's own stream reader ends
    quietly when its input stops inside a frame, so a truncated file would lose its tail without a
    word; here that is an error. Input goes in small chunks, which bounds what one chunk of a
    decompression bomb can expand to."""

    def __init__(self, raw):
        self._raw, self._pending, self._in_frame, self._error = raw, b"", False, None
        self._frame = zstandard.ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            if self._error is not None:  # raised once what came before it has been read
                raise self._error
            chunk = self._raw.read(1 << 13)
            if not chunk:
                if self._in_frame:
                    raise EOFError("zstd stream ends inside a frame (truncated file)")
                return 0
            self._pending = self._decompress(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n

    def _decompress(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            self._in_frame = True
            try:
                out.append(self._frame.decompress(chunk))
            except zstandard.ZstdError as e:  # e.g. garbage after a complete frame
                self._error = e
                break
            chunk = b""
            if self._frame.eof:  # the frame is complete; what follows starts the next one
                chunk, self._in_frame = self._frame.unused_data, False
                self._frame = zstandard.ZstdDecompressor().decompressobj()
        return b"".join(out)


def _skip_to_line(f, start: int) -> int:
    """Move `f` to the first line that starts at or after byte `start`; returns that offset. The
    line that holds byte start - 1 belongs to the unit before, so it is read through and dropped,
    a chunk at a time however long it is."""
    if start == 0:
        return 0
    f.seek(start - 1)
    offset = start - 1
    while True:
        chunk = f.readline(_LINE_CHUNK)
        offset += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return offset


def _jsonl_records(f, path: str, limit: int, offset: int | None = None, end: int | None = None):
    """Yield (fallback_id, parsed record or None, reason or None, raw) for each non-blank line. With
    `offset`, the byte offset of `f`'s first line in an uncompressed file, lines are named by their
    offsets and those that start at or after `end` are left to the next unit; without it (a
    compressed stream, read whole) by their line numbers."""
    for line_no, raw, size in lines(f, limit):
        if offset is None:
            fallback_id = f"{path}:{line_no}"
        elif end is not None and offset >= end:
            return
        else:
            fallback_id, offset = f"{path}:@{offset}", offset + size
        if raw is None:
            yield fallback_id, None, TOO_LARGE, f"a record of {size:,} bytes"
            continue
        if raw.startswith(_BOM):  # a byte-order mark, from editors that write one
            raw = raw[len(_BOM):]
        if not raw.strip():
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            yield fallback_id, None, "invalid_utf8", raw
            continue
        try:
            yield fallback_id, _loads(raw), None, raw
        except orjson.JSONDecodeError:
            yield fallback_id, None, "broken_json", raw


def _as_bytes(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with its text columns as bytes, which decode one value at a time."""
    columns = [c.view(pa.binary()) if pa.types.is_string(c.type) else
               c.view(pa.large_binary()) if pa.types.is_large_string(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _decoded(record: dict):
    try:
        return {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in record.items()}, None
    except UnicodeDecodeError:
        return None, "invalid_utf8"


def _text_sizes(batch: pa.RecordBatch) -> list[int] | None:
    """Each row's `text` size in bytes, measured in Arrow (nothing is copied into Python), or None
    when the batch has no text column of string or binary type."""
    if "text" not in batch.schema.names:
        return None
    column = batch.column("text")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            or pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return None
    return pc.fill_null(pc.binary_length(column), 0).to_pylist()


def _python_rows(batch: pa.RecordBatch):
    """(record, None) or (None, "invalid_utf8") per row, made into Python values a few rows at a time."""
    for start in range(0, batch.num_rows, _PYTHON_ROWS):
        rows = batch.slice(start, _PYTHON_ROWS)
        try:
            yield from ((record, None) for record in rows.to_pylist())
        except UnicodeDecodeError:  # one bad value: find it row by row
            yield from (_decoded(record) for record in _as_bytes(rows).to_pylist())


def _parquet_file(f) -> pq.ParquetFile:
    parquet = pq.ParquetFile(f)
    names = parquet.schema_arrow.names
    if len(set(names)) != len(names):  # the last would win silently when a row becomes a record
        raise ValueError(f"duplicate column names {sorted({n for n in names if names.count(n) > 1})}")
    return parquet


def _parquet_records(f, path: str, limit: int, start: int = 0, end: int | None = None):
    """The rows of row groups [start, end), a row group at a time: one that breaks ends with one
    `unreadable_file` record and the next goes on from its first row (known from the footer), as
    it would in a unit of its own, so what is read does not depend on the split."""
    parquet = _parquet_file(f)
    metadata = parquet.metadata
    row = sum(metadata.row_group(group).num_rows for group in range(start))
    for group in range(start, metadata.num_row_groups if end is None else end):
        try:
            yield from _row_group_records(parquet, group, row, path, limit)
        except READ_ERRORS as e:
            yield f"{path}:unreadable", None, "unreadable_file", f"row group {group}: {type(e).__name__}: {e}"
        row += metadata.row_group(group).num_rows


def _row_group_records(parquet: pq.ParquetFile, group: int, row: int, path: str, limit: int):
    """The rows of one row group, numbered on from `row`, in batches of `_PARQUET_ROWS`, made into
    Python values `_PYTHON_ROWS` at a time; an oversized text is measured in Arrow and rejected
    without a Python copy. Arrow decodes a row group at a time, so a file's memory is bounded by its
    largest row group, not by the file."""
    for batch in parquet.iter_batches(batch_size=_PARQUET_ROWS, row_groups=[group]):
        sizes = _text_sizes(batch)
        small = batch if sizes is None else batch.filter(pa.array([size <= limit for size in sizes]))
        records = _python_rows(small)
        for i in range(batch.num_rows):
            row += 1
            fallback_id = f"{path}:{row}"
            if sizes is not None and sizes[i] > limit:
                yield fallback_id, None, TOO_LARGE, f"a text of {sizes[i]:,} bytes"
                continue
            record, reason = next(records)
            if reason is not None:
                yield fallback_id, None, reason, _as_bytes(batch.slice(i, 1)).to_pylist()[0]
            else:
                yield fallback_id, record, None, None


def iter_records(path: str, max_document_bytes: int = MAX_DOCUMENT_BYTES, start: int = 0, end: int | None = None,
                 extractor: str = DEFAULT_EXTRACTOR):
    """Yield (fallback_id, record, reason, raw) for every record of one file, or of its work unit
    [start, end) (`WorkUnit`). A file that breaks part way ends with one `unreadable_file` record
    whose raw is the error: what was read before stays counted, and the caller goes on with its
    next file. `extractor`: how an HTML page becomes text (`readers.html_text`)."""
    fmt = input_format(path)
    try:
        with fsspec.open(path, "rb") as raw:
            if fmt == ".parquet":
                yield from _parquet_records(raw, path, max_document_bytes, start, end)
                return
            if fmt in WARC_FORMATS:
                f = gzip.GzipFile(fileobj=raw) if fmt.endswith(".gz") else io.BufferedReader(raw) if not hasattr(raw, "peek") else raw
                yield from warc_records(f, path, max_document_bytes, extractor)
            elif fmt == ".jsonl.gz":
                yield from _jsonl_records(gzip.GzipFile(fileobj=raw), path, max_document_bytes)
            elif fmt == ".jsonl.zst":
                yield from _jsonl_records(io.BufferedReader(_ZstdStream(raw)), path, max_document_bytes)
            else:
                f = io.BufferedReader(raw) if not hasattr(raw, "peek") else raw  # readline(limit) on any backend
                yield from _jsonl_records(f, path, max_document_bytes, _skip_to_line(f, start), end)
    except READ_ERRORS as e:
        yield f"{path}:unreadable", None, "unreadable_file", f"{type(e).__name__}: {e}"


def readable_documents(path: str, max_document_bytes: int = MAX_DOCUMENT_BYTES, extractor: str = DEFAULT_EXTRACTOR):
    """The documents of one file that the run's reader would pass on; bad records and a broken file's
    rest are skipped here (the run itself counts them). For passes that only look at text."""
    for fallback_id, record, reason, _ in iter_records(path, max_document_bytes, extractor=extractor):
        if reason is None:
            doc, reason = parse_record(record, fallback_id)
            if reason is None:
                yield doc


def raw_text(raw) -> str:
    """A rejected record as text: the line as read, the error that ended a file, or the parsed record as JSON."""
    if isinstance(raw, bytes):
        return raw.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
    if isinstance(raw, str):
        return raw
    return orjson.dumps(json_safe(raw)).decode()


class RawDocumentReader(PipelineStep):
    """Reads the work units of this task: `inputs` are `WorkUnit`s, one per task (`work_units`), or
    (source name, path) pairs, each a whole file (a pool read in one task).

    With `whole_records`, a parsed record is not made into a document's text here: the document
    carries it whole in `metadata["record"]`, with the record as read for its text, for a later
    step to turn into text or remove with its reason (instruction data, `pipeline.instructions`)."""

    name = "📖 Raw reader"
    type = "📖 - READER"

    def __init__(self, inputs: list[WorkUnit] | list[tuple[str, str]], output_folder, language: str,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES, whole_records: bool = False, extractor: str = DEFAULT_EXTRACTOR):
        super().__init__()
        self.units = [WorkUnit(*unit) for unit in inputs]
        self.output_folder, self.language = output_folder, language
        self.max_document_bytes, self.whole_records, self.extractor = max_document_bytes, whole_records, extractor

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        read = 0
        with RejectWriter(self.output_folder, "malformed") as rejects, RejectWriter(self.output_folder, "read") as removed:
            for source, path, start, end in self.units[rank::world_size]:
                for fallback_id, record, reason, raw in self._timed(iter_records(path, self.max_document_bytes, start, end, self.extractor)):
                    read += 1
                    if reason is None and self.whole_records:
                        doc = Document(text=raw_text(raw if raw is not None else record), id=fallback_id, metadata={"record": record})
                    elif reason is None:
                        doc, reason = parse_record(record, fallback_id, keep_text=self.language == "code")
                    if reason is not None:
                        self.stat_update(f"malformed_{reason}")
                        writer = removed if reason.startswith(REMOVAL_PREFIX) else rejects
                        writer.write_record({"id": fallback_id, "reason": reason, "raw": raw_text(raw if raw is not None else record)}, rank)
                        continue
                    doc.metadata.update(source=source, language=self.language, file=os.path.basename(path))
                    self.stat_update("documents")
                    yield doc
        write_task_record(self.output_folder, rank, "read",
                          {"read": read, "malformed": dict(rejects.counts), "removed": dict(removed.counts)})

    def _timed(self, records):
        """The records, each one's reading (decompressing, parsing, a WARC page's extraction) in
        the step's time stats: the share of the run that bench/curate.py prints for reading."""
        while True:
            with self.track_time("record"):
                record = next(records, None)
            if record is None:
                return
            yield record
