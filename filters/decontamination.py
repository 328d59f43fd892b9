"""Benchmark decontamination: a document that shares an n-gram with an evaluation item is removed.

The evaluation sets (HumanEval, MBPP, multilingual benchmarks) are read up front from local or
remote JSONL, JSONL.gz or parquet files; an item is the text of some of its record's fields, and
a set that is wrong in any way (a broken line, a missing field or id, a duplicate id, no items)
stops the run with `path:line: what`, never a silently smaller set. As datatrove's n-gram
decontamination (and GPT-3's), a document goes when it holds any n consecutive tokens of an item,
where the tokens depend on the set's kind:

- **text**: the words of `core.text.words` (fugashi for ja, syllables for vi), NFC and
  lower-cased, so case and punctuation do not hide a copy; 13 words (GPT-3's 13-grams).
- **code**: code tokens (identifiers and keywords, numbers, each other symbol), with whitespace,
  `#` comments, quote characters and trailing commas before a closing bracket dropped, so
  re-indentation, re-wrapping, quote style and Black's reformatting leave the tokens unchanged.
  String contents stay (a HumanEval prompt is mostly its docstring) and identifiers are not
  renamed: with identifiers abstracted, a window of a solution is only its structure
  (`for _ in range(len(_)):`) and unrelated code shares it. 32 tokens: across the 22,000 Python
  files of the standard library and this project's installed packages, the longest run of tokens
  shared with any HumanEval prompt and solution is 26 (a pairwise double loop, and
  `[[1, 2, 3], [4, 5, 6], [7, 8, 9]]`), so 32 leaves a margin; about half the tokens are symbols,
  so 32 code tokens hold about as many words as a 13-gram of text. A HumanEval `test` field is
  best left out of an item: its asserts are lists of numbers that real code shares for 50
  tokens and more (the primes below 100).

An item shorter than its n-gram is one gram of all its tokens, so a document must hold the whole
item (the rule of DeepSeek-Coder's decontamination: exact match for items shorter than its
10-grams); an item of fewer than `MIN_ITEM_TOKENS` tokens is too generic to index and is counted
as `too_short` in the set's entry.

Matching is exact and linear in the document: each token is looked up once in the index's
vocabulary (token -> id, assigned in set and item order, so the same in every process; a token
no item has cannot be in a gram), every window's polynomial hash of the mixed ids comes from one
prefix sum (numpy, uint64), the hashes are looked up in a sorted array, and a hit is confirmed by
comparing the ids themselves, so a hash collision never removes a document.
"""

import gzip
import hashlib
import unicodedata
import zlib
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import regex
from datatrove.data import Document

from core.config import NAME, integer
from core.errors import AuroraError
from core.storage import read_list_file
from core.text import words
from filters.base import FilterConfig, RecipeContext, RecipeFilter, Removal, StepContext

KINDS = ("text", "code")
DEFAULT_NGRAM = {"text": 13, "code": 32}
MIN_ITEM_TOKENS = 3  # DeepSeek-Coder's floor for exact matching
ITEM = "decontamination.item"  # the matched item's id, in the signals and in the rejected document's metadata
_PARQUET_ROWS = 1024

# A string literal is matched whole so that a `#` inside it is not taken for a comment; the match
# is put back unchanged and only comments are dropped.
_STRING = "|".join([
    r'"""(?:[^"\\]++|\\.|"(?!""))*+"""',
    r"'''(?:[^'\\]++|\\.|'(?!''))*+'''",
    r'"(?:[^"\\\n]++|\\.)*+"',
    r"'(?:[^'\\\n]++|\\.)*+'",
])
_COMMENT = regex.compile(rf"({_STRING})|#[^\n]*+", regex.DOTALL)
# Words, and each other symbol but whitespace, quotes and backslashes; a comma before a closing
# bracket is Black's trailing comma.
_CODE_TOKEN = regex.compile(r"\w+|,(?!\s*+[)\]}])|[^\w\s,\"'`\\]")

# splitmix64's constants mix each id; the window hash is sum(x[i + k] * BASE**k) mod 2**64.
_GAMMA, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_BASE = 0xD6E8FEB86659FD93
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)


class EvalSet(NamedTuple):
    """One evaluation set: its items are the `fields` of each record, joined; `id_field` None names
    an item by its line (JSONL) or row (parquet) number, from 1; `ngram` None is the kind's default."""

    name: str
    path: str
    fields: list[str]
    id_field: str | None
    kind: str
    ngram: int | None = None


def code_tokens(text: str) -> list[str]:
    return _CODE_TOKEN.findall(_COMMENT.sub(r"\1", text))


def text_tokens(text: str, language: str) -> list[str]:
    return words(unicodedata.normalize("NFC", text).lower(), language)


def _raw_records(path: str, data: bytes, columns: list[str]):
    """(line or row number, record) for each record of the file's bytes; of a parquet file, only
    its `columns` that exist are read (another column's values, a timestamp out of Python's range
    say, are none of an item's business)."""
    if path.endswith(".parquet"):
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            table = parquet.read(columns=[c for c in dict.fromkeys(columns) if c in parquet.schema_arrow.names])
        except (pa.ArrowException, OSError) as e:
            raise AuroraError(f"{path}: unreadable parquet ({e})") from None
        row = 0
        for batch in table.to_batches(_PARQUET_ROWS):
            try:
                rows = batch.to_pylist()
            except (UnicodeDecodeError, OverflowError, ValueError):  # find the row
                rows = []
                for i in range(batch.num_rows):
                    try:
                        rows += batch.slice(i, 1).to_pylist()
                    except (UnicodeDecodeError, OverflowError, ValueError) as e:
                        what = "invalid UTF-8" if isinstance(e, UnicodeDecodeError) else f"a value Python cannot hold ({e})"
                        raise AuroraError(f"{path}:{row + i + 1}: {what}") from None
            for values in rows:
                row += 1
                yield row, values
        return
    if path.endswith(".jsonl.gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise AuroraError(f"{path}: unreadable gzip ({e})") from None
    elif not path.endswith(".jsonl"):
        raise AuroraError(f"{path}: unsupported evaluation file (expected .jsonl, .jsonl.gz or .parquet)")
    for line_no, line in enumerate(data.split(b"\n"), 1):
        if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):  # a byte-order mark, from editors that write one
            line = line[3:]
        if not line.strip():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            raise AuroraError(f"{path}:{line_no}: invalid UTF-8") from None
        try:
            yield line_no, orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise AuroraError(f"{path}:{line_no}: broken JSON ({e})") from None


def read_items(eval_set: EvalSet) -> tuple[str, list[tuple[str, list[str]]]]:
    """The file's sha256 and its items as (id, [field texts]), in file order."""
    path = eval_set.path
    data = read_list_file(path, "evaluation file")
    items, seen = [], {}
    columns = [*eval_set.fields, *([eval_set.id_field] if eval_set.id_field else [])]
    for place, raw in _raw_records(path, data, columns):
        where = f"{path}:{place}"
        if not isinstance(raw, dict):
            raise AuroraError(f"{where}: not a JSON object")
        texts = []
        for field in eval_set.fields:
            value = raw.get(field)
            if value is None:
                raise AuroraError(f"{where}: no field {field!r}")
            if not isinstance(value, str):
                raise AuroraError(f"{where}: field {field!r} is {type(value).__name__}, not a string")
            texts.append(value)
        if eval_set.id_field is None:
            item_id = str(place)
        else:
            item_id = raw.get(eval_set.id_field)
            if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or item_id == "":
                raise AuroraError(f"{where}: no usable id in field {eval_set.id_field!r} (a non-empty string or an integer)")
            item_id = str(item_id)
        if item_id in seen:
            raise AuroraError(f"{where}: duplicate id {item_id!r} (first at {seen[item_id]})")
        seen[item_id] = place
        items.append((item_id, texts))
    if not items:
        raise AuroraError(f"{path}: no items")
    return hashlib.sha256(data).hexdigest(), items


def _mixed(ids: np.ndarray) -> np.ndarray:
    """splitmix64 of each id: the polynomial hash of raw small ids would be weak."""
    z = (ids.astype(np.uint64) + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _powers(base: int, count: int) -> np.ndarray:
    """base**0 .. base**(count - 1), mod 2**64 (uint64 products wrap)."""
    powers = np.full(count, base, np.uint64)
    if count:
        powers[0] = 1
    return np.cumprod(powers, dtype=np.uint64)


class _Windows:
    """The hash of any window of a sequence of ids, from one prefix sum:
    window (i, L) = (P[i + L] - P[i]) * BASE**-i = sum(x[i + k] * BASE**k), mod 2**64."""

    def __init__(self, ids: np.ndarray):
        self.prefix = np.r_[np.uint64(0), np.cumsum(_mixed(ids) * _powers(_BASE, len(ids)), dtype=np.uint64)]
        self.inverse = _powers(_BASE_INVERSE, len(ids))

    def hashes(self, starts: np.ndarray, length: int) -> np.ndarray:
        return (self.prefix[starts + length] - self.prefix[starts]) * self.inverse[starts]


class _Grams:
    """The grams of the items of one kind (one tokenization): per gram length, the sorted hashes,
    and for each the first item (by rank) that has it and where."""

    def __init__(self):
        self.vocabulary: dict[str, int] = {}  # 0 is a token that no item has
        self.item_ids: dict[int, np.ndarray] = {}
        self._parts: dict[int, list] = {}
        self.tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def add(self, rank: int, tokens: list[str], ngram: int) -> None:
        ids = np.array([self.vocabulary.setdefault(t, len(self.vocabulary) + 1) for t in tokens], np.int64)
        self.item_ids[rank] = ids
        length = min(ngram, len(ids))
        starts = np.arange(len(ids) - length + 1)
        self._parts.setdefault(length, []).append((_Windows(ids).hashes(starts, length), np.full(len(starts), rank), starts))

    def freeze(self) -> "_Grams":
        for length, parts in sorted(self._parts.items()):
            hashes, ranks, starts = (np.concatenate(column) for column in zip(*parts))
            order = np.lexsort((ranks, hashes))
            hashes, ranks, starts = hashes[order], ranks[order], starts[order]
            first = np.r_[True, hashes[1:] != hashes[:-1]]  # a gram shared by items belongs to the first
            self.tables[length] = (hashes[first], ranks[first], starts[first])
        self._parts = {}
        return self

    def first_match(self, tokens: list[str]) -> int | None:
        """The lowest rank of an item that shares a gram with the tokens."""
        ids = np.fromiter(map(self.vocabulary.get, tokens, repeat(0)), np.int64, len(tokens))
        known = np.r_[0, np.cumsum(ids > 0)]
        windows, hits = None, []
        for length, (hashes, ranks, item_starts) in self.tables.items():
            # Only windows of tokens that some item has can match: in code most windows hold a name no item has.
            starts = np.flatnonzero(known[length:] - known[:-length] == length)
            if not len(starts):
                continue
            windows = windows or _Windows(ids)
            found = windows.hashes(starts, length)
            where = np.minimum(np.searchsorted(hashes, found), len(hashes) - 1)
            hit = np.flatnonzero(hashes[where] == found)
            hits.append((ranks[where[hit]], starts[hit], np.full(len(hit), length), item_starts[where[hit]]))
        if not hits:
            return None
        ranks, starts, lengths, item_starts = (np.concatenate(column) for column in zip(*hits))
        for k in np.lexsort((starts, ranks)):  # the first rank whose gram is really there
            rank, start, length, item_start = int(ranks[k]), int(starts[k]), int(lengths[k]), int(item_starts[k])
            if np.array_equal(ids[start:start + length], self.item_ids[rank][item_start:item_start + length]):
                return rank
        return None


def tokens(text: str, kind: str, language: str) -> list[str]:
    """The tokens of `text` for a set of this kind in a pool of this language (a text set in the
    code pool reads English)."""
    if kind == "code":
        return code_tokens(text)
    return text_tokens(text, "en" if language == "code" else language)


class DecontaminationIndex:
    """The grams of every item of the sets, for one pool language; `sets` describes the sets for the manifest."""

    def __init__(self, sets: list[dict], items: list[tuple[str, str]], grams: dict[str, _Grams], language: str):
        self.sets, self._items, self._grams, self._language = sets, items, grams, language

    def match(self, text: str) -> tuple[str, str] | None:
        """(set name, item id) of the first item, sets in order and then items in file order, that
        shares a gram with the text; None when none does."""
        ranks = []
        for kind, grams in self._grams.items():
            rank = grams.first_match(tokens(text, kind, self._language))
            if rank is not None:
                ranks.append(rank)
        return self._items[min(ranks)] if ranks else None


def _check(sets: list[EvalSet]) -> None:
    names = [s.name for s in sets]
    if len(set(names)) != len(names) or not all(names):
        raise AuroraError(f"decontamination: set names must be unique and non-empty, got {names}")
    for s in sets:
        if s.kind not in KINDS:
            raise AuroraError(f"decontamination set {s.name!r}: kind {s.kind!r} is not one of {', '.join(KINDS)}")
        if isinstance(s.fields, str) or not s.fields:
            raise AuroraError(f"decontamination set {s.name!r}: fields must be a non-empty list of field names, got {s.fields!r}")
        if s.ngram is not None and (isinstance(s.ngram, bool) or not isinstance(s.ngram, int) or s.ngram < 1):
            raise AuroraError(f"decontamination set {s.name!r}: ngram {s.ngram!r} is not a positive integer")


def load_index(sets: list[EvalSet], language: str) -> DecontaminationIndex:
    """Reads every set; any fault in one is an `AuroraError` naming the file (and line)."""
    _check(sets)
    described, items, grams = [], [], {}
    for s in sets:
        digest, records = read_items(s)
        ngram = s.ngram or DEFAULT_NGRAM[s.kind]
        too_short = 0
        for item_id, texts in records:
            item_tokens = [t for text in texts for t in tokens(text, s.kind, language)]
            if len(item_tokens) < MIN_ITEM_TOKENS:
                too_short += 1
                continue
            grams.setdefault(s.kind, _Grams()).add(len(items), item_tokens, ngram)
            items.append((s.name, item_id))
        described.append({"name": s.name, "path": s.path, "sha256": digest, "items": len(records), "too_short": too_short})
    return DecontaminationIndex(described, items, {kind: g.freeze() for kind, g in grams.items()}, language)


EVAL_SET_KEYS = {"name", "path", "fields", "id", "kind", "ngram"}


def read_eval_sets(given, path: str) -> tuple[EvalSet, ...]:
    """Evaluation sets to decontaminate against (curation and stage recipes): a `sets` list of
    {name, path, fields, id, kind: text | code, ngram}; () without a section."""
    if given is None:
        return ()
    if not isinstance(given, dict) or set(given) != {"sets"} or not isinstance(given["sets"], list) or not given["sets"]:
        raise AuroraError(f"{path}: 'decontamination' must be a mapping with a non-empty list 'sets'")
    sets = []
    for i, item in enumerate(given["sets"]):
        where = f"{path}: decontamination.sets[{i}]"
        if not isinstance(item, dict) or set(item) - EVAL_SET_KEYS or not {"name", "path", "fields"} <= set(item):
            raise AuroraError(f"{where} must be a mapping with name, path and fields (allowed: {', '.join(sorted(EVAL_SET_KEYS))})")
        name, fields = item["name"], item["fields"]
        if not isinstance(name, str) or not NAME.fullmatch(name) or any(s.name == name for s in sets):
            raise AuroraError(f"{where}: 'name' must be a unique name of letters, digits, '.', '_' and '-' (it names the reason)")
        if not isinstance(item["path"], str) or not item["path"]:
            raise AuroraError(f"{where}: 'path' must be a JSONL or parquet file")
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise AuroraError(f"{where}: 'fields' must list the fields whose text makes an item")
        id_field = item.get("id")
        if id_field is not None and (not isinstance(id_field, str) or not id_field):
            raise AuroraError(f"{where}: 'id' must name the field that identifies an item")
        kind = item.get("kind", "text")
        if kind not in KINDS:
            raise AuroraError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
        ngram = integer(item["ngram"], f"decontamination.sets[{i}].ngram", path, 1, 1000) if "ngram" in item else None
        sets.append(EvalSet(name, item["path"], fields, id_field, kind, ngram))
    return tuple(sets)


@dataclass(frozen=True)
class DecontaminationConfig(FilterConfig):
    """`decontamination: {sets: [...]}`: a document that shares an n-gram with an item of a set is
    removed. A refilter does not replay it: a clean document's check leaves no signal."""

    section = "decontamination"
    not_replayed = "a document it found clean left no signal"
    sets: tuple[EvalSet, ...]

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "DecontaminationConfig | None":
        sets = read_eval_sets(data.get(cls.section), recipe.path)
        return cls(sets) if sets else None

    def steps(self, context: StepContext) -> list:
        return [DecontaminationFilter(context.folder, [s._replace(path=context.local(s.path)) for s in self.sets], context.language)]

    def columns(self, language: str) -> list[tuple[str, str]]:
        return [(ITEM, "string")]

    def basis(self, sha256) -> dict:
        return {"decontamination": [{**{k: v for k, v in s._asdict().items() if k != "path"}, "sha256": sha256(s.path)}
                                    for s in self.sets]}

    def check(self, language: str) -> None:
        load_index(self.sets, language)


def decide(values: dict) -> Removal | None:
    """Removed when it shares an n-gram with an item (`values["set"]`: the item's set)."""
    return None if values["set"] is None else Removal(f"decontamination.{values['set']}")


class DecontaminationFilter(RecipeFilter):
    """Removes a document that shares a gram with an item of the sets, as `decontamination.<set>`,
    with the item's id in its signals and its reject (`decontamination.item`)."""

    name = "🧪 Decontamination"
    step = "decontamination"

    def __init__(self, output_folder, sets: list[EvalSet], language: str):
        super().__init__(output_folder, (ITEM,))
        self.sets, self.language = list(sets), language
        self._index = None

    def measure(self, batch: list[Document]) -> list[dict]:
        if self._index is None:  # once per task, in the worker: the step is pickled without it
            self._index = load_index(self.sets, self.language)
        values = []
        for doc in batch:
            found = self._index.match(doc.text)
            values.append({"set": None} if found is None else {"set": found[0], ITEM: found[1]})
        return values

    def annotate(self, metadata: dict, values: dict) -> None:
        if ITEM in values:
            metadata[ITEM] = values[ITEM]

    def decide(self, values: dict) -> Removal | None:
        return decide(values)
