"""Flagged words, as BigScience ROOTS filtered its web data: the share of a document's words that a
per-language list of flagged words and phrases covers, against a per-language threshold.

A list is UTF-8, one entry per line; blank lines and lines starting with `#` are ignored. An entry
is segmented with `core.text.words`, exactly as documents are, so it is a sequence of words: a
phrase in any language, syllables in Vietnamese (whose words are several syllables), the fugashi
morphemes in Japanese (a flagged word matches where the segmenter cuts a document into the same
morphemes, never inside another word). Words match after NFC and case folding on both sides;
nothing else is stripped, so Vietnamese tone marks and Devanagari signs must match exactly.
"""

import unicodedata
from dataclasses import dataclass, replace

from datatrove.data import Document

from core.config import number, section
from core.errors import AuroraError
from core.storage import list_lines
from core.text import words
from filters.base import FilterConfig, RecipeContext, RecipeFilter, Removal, StepContext

# At each document word that starts entries, one comparison per distinct length, each of that
# many words: lengths are kept small, and real flagged phrases are short (the longest in LDNOOBW's
# English list is 6 words, in ROOTS's Hindi list 4). A longer line is a sentence or a paste.
MAX_ENTRY_WORDS = 8
MAX_ENTRY_CHARS = 1000  # checked before segmenting: a line of megabytes is a paste, not a phrase


@dataclass(frozen=True)
class FlaggedWords:
    """A loaded list: its entries as tuples of folded words, and for each entry's first word the
    lengths of the entries that start with it, longest first."""

    entries: frozenset[tuple[str, ...]]
    lengths: dict[str, tuple[int, ...]]


def _fold(word: str) -> str:
    """How list entries and document words are both compared (the text is already NFC)."""
    return word.casefold()


def load_flagged_words(path: str, language: str) -> FlaggedWords:
    """The list at `path` for `language`; a file that is missing, empty or has a line that is not
    a usable entry is an AuroraError naming the file and line, before any document is read."""
    entries = set()
    for line, text in list_lines(path, "flagged-words list"):
        text = unicodedata.normalize("NFC", text)
        if len(text) > MAX_ENTRY_CHARS:
            raise AuroraError(f"{path}:{line}: entry of {len(text):,} characters, more than the {MAX_ENTRY_CHARS} a flagged phrase may have")
        entry = tuple(_fold(w) for w in words(text, language))
        if not entry:
            raise AuroraError(f"{path}:{line}: entry {text!r} has no word characters")
        if len(entry) > MAX_ENTRY_WORDS:
            raise AuroraError(f"{path}:{line}: entry of {len(entry)} words, more than the {MAX_ENTRY_WORDS} a flagged phrase may have")
        entries.add(entry)
    if not entries:
        raise AuroraError(f"flagged-words list {path} has no entries")
    lengths: dict[str, set[int]] = {}
    for entry in entries:
        lengths.setdefault(entry[0], set()).add(len(entry))
    return FlaggedWords(frozenset(entries), {first: tuple(sorted(ns, reverse=True)) for first, ns in lengths.items()})


def flagged_ratio(doc_words: list[str], flagged: FlaggedWords) -> float:
    """The share of the words that some entry covers: an entry of k words covers k words, and a
    word inside overlapping matches counts once. A document without words has ratio 0."""
    if not doc_words:
        return 0.0
    folded = [_fold(w) for w in doc_words]
    # Most words start no entry: picking out those that do in one comprehension took 15 ms where a
    # loop over every word took 26 ms (40,000 words of English).
    starts = [i for i, w in enumerate(folded) if w in flagged.lengths]
    covered = end = 0  # `end`: one past the last word covered so far; matches are met in order of their start
    for i in starts:
        for n in flagged.lengths[folded[i]]:
            if tuple(folded[i : i + n]) in flagged.entries:  # the longest entry here covers every shorter one
                covered += max(0, i + n - max(i, end))
                end = max(end, i + n)
                break
    return covered / len(folded)


@dataclass(frozen=True)
class FlaggedWordsConfig(FilterConfig):
    """`flagged_words: {list, max_ratio}` of a text recipe."""

    section = "flagged_words"
    languages = ("text",)
    basis_meaning = "list"
    list: str
    max_ratio: float

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "FlaggedWordsConfig | None":
        if data.get(cls.section) is None:
            return None
        path = recipe.path
        given = section(data, cls.section, {"list", "max_ratio"}, path)
        if not isinstance(given.get("list"), str) or not given["list"]:
            raise AuroraError(f"{path}: 'flagged_words.list' must be the path of a word list")
        ratio = number(given.get("max_ratio"), "flagged_words.max_ratio", path)
        if not 0 <= ratio <= 1:
            raise AuroraError(f"{path}: 'flagged_words.max_ratio' must be in [0, 1], got {ratio!r}")
        return cls(given["list"], ratio)

    def steps(self, context: StepContext) -> list:
        return [FlaggedWordsFilter(context.folder, context.language, replace(self, list=context.local(self.list)))]

    def columns(self, language: str) -> list[tuple[str, str]]:
        return [(RATIO, "float64")]

    def basis(self, sha256) -> dict:
        return {"flagged_words": sha256(self.list)}

    def check(self, language: str) -> None:
        load_flagged_words(self.list, language)


RATIO = "flagged_words.ratio"


def decide(values: dict, config: FlaggedWordsConfig) -> Removal | None:
    ratio = values[RATIO]
    return Removal("flagged_words.max_ratio", ratio, config.max_ratio) if ratio > config.max_ratio else None


class FlaggedWordsFilter(RecipeFilter):
    """Removes a document whose flagged-words ratio is above `max_ratio`."""

    name = "🚩 Flagged words"
    step = "flagged_words"

    def __init__(self, output_folder, language: str, config: FlaggedWordsConfig):
        super().__init__(output_folder, (RATIO,))
        self.language, self.config = language, config
        self._flagged = None

    def __getstate__(self):  # each task loads the list in its own process
        return {**self.__dict__, "_flagged": None}

    def measure(self, batch: list[Document]) -> list[dict]:
        if self._flagged is None:
            self._flagged = load_flagged_words(self.config.list, self.language)
        return [{RATIO: flagged_ratio(words(doc.text, self.language), self._flagged)} for doc in batch]

    def decide(self, values: dict) -> Removal | None:
        return decide(values, self.config)
