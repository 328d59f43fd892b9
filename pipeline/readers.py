"""Reading raw sources (jsonl, jsonl.gz, jsonl.zst, parquet; local or s3://) into documents.

Unlike datatrove's readers, which log and skip a line they cannot parse, this reader sends
every bad record to rejects with its reason, so `read = kept + removed + malformed` holds.
A record is one non-blank line of a JSONL file or one row of a parquet file.
"""

import gzip
import io
import os

import fsspec
import orjson
import pyarrow.parquet as pq
import zstandard
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from pipeline.ledger import write_task_record
from pipeline.rejects import RejectWriter
from pipeline.text import normalize

FORMATS = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")


def input_format(path: str) -> str:
    for ext in FORMATS:
        if path.endswith(ext):
            return ext
    raise ValueError(f"{path}: unsupported input format (expected one of {', '.join(FORMATS)})")


def parse_record(record, fallback_id: str, keep_text: bool = False):
    """A parsed record -> (Document, None) or (None, reason).

    Natural-language text is normalized (`pipeline.text.normalize`); with `keep_text` (code,
    where whitespace is meaning) the text is kept exactly as it came."""
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
    doc_id = str(doc_id) if isinstance(doc_id, (str, int)) and doc_id != "" else fallback_id
    metadata = {k: v for k, v in record.items() if k not in ("text", "id")}
    return Document(text=text if keep_text else normalize(text), id=doc_id, metadata=metadata), None


def _jsonl_records(f, path: str):
    """Yield (fallback_id, parsed record or None, reason or None, raw) for each non-blank line."""
    for line_no, raw in enumerate(f, start=1):
        if not raw.strip():
            continue
        fallback_id = f"{path}:{line_no}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield fallback_id, None, "invalid_utf8", raw
            continue
        try:
            yield fallback_id, orjson.loads(line), None, raw
        except orjson.JSONDecodeError:
            yield fallback_id, None, "broken_json", raw


def _parquet_records(f, path: str):
    row = 0
    for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            yield f"{path}:{row}", record, None, None


def iter_records(path: str):
    """Yield (fallback_id, record, reason, raw) for every record of one file."""
    fmt = input_format(path)
    if fmt == ".parquet":
        with fsspec.open(path, "rb") as f:
            yield from _parquet_records(f, path)
    else:
        with fsspec.open(path, "rb") as raw:
            if fmt == ".jsonl.gz":
                f = gzip.GzipFile(fileobj=raw)
            elif fmt == ".jsonl.zst":
                # zstandard's reader has no readline; buffering gives line iteration.
                f = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
            else:
                f = raw
            yield from _jsonl_records(f, path)


def raw_text(raw) -> str:
    """A rejected record as text: the line as read, or the parsed record as JSON."""
    if isinstance(raw, bytes):
        return raw.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
    return orjson.dumps(raw, default=str).decode()


class RawDocumentReader(PipelineStep):
    """Reads the input files of this task; `inputs` is a list of (source name, path), one per task."""

    name = "📖 Raw reader"
    type = "📖 - READER"

    def __init__(self, inputs: list[tuple[str, str]], output_folder, language: str):
        super().__init__()
        self.inputs, self.output_folder, self.language = inputs, output_folder, language

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        read = 0
        with RejectWriter(self.output_folder, "malformed") as rejects:
            for source, path in self.inputs[rank::world_size]:
                try:
                    for fallback_id, record, reason, raw in iter_records(path):
                        read += 1
                        if reason is None:
                            doc, reason = parse_record(record, fallback_id, keep_text=self.language == "code")
                        if reason is not None:
                            self.stat_update(f"malformed_{reason}")
                            rejects.write_record(
                                {"id": fallback_id, "reason": reason, "raw": raw_text(raw if raw is not None else record)},
                                rank,
                            )
                            continue
                        doc.metadata.update(source=source, language=self.language, file=os.path.basename(path))
                        self.stat_update("documents")
                        yield doc
                except (OSError, EOFError, ValueError, zstandard.ZstdError) as e:
                    # A corrupt or truncated file: what was read stays counted; the rest of the file
                    # is one reject naming the error, so the run finishes and the loss is visible.
                    read += 1
                    error = f"{type(e).__name__}: {e}"
                    rejects.write_record({"id": f"{path}:unreadable", "reason": "unreadable_file", "raw": error}, rank)
        write_task_record(self.output_folder, rank, "read", {"read": read, "malformed": dict(rejects.counts)})
