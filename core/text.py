"""Text normalization, word segmentation and stop words shared by every step.

`normalize` is Unicode NFC plus whitespace folding. It composes characters and never drops
combining marks, so Vietnamese tone marks, Devanagari matras, viramas and anusvara, and
Japanese dakuten survive (CCNet's and datatrove's default normalizers strip category Mn; we
do not). It is for natural-language text; code is never normalized.

`words` segments by language: a Unicode word regex for en and fi (letters with their marks),
syllables for vi (its orthography writes one syllable per token), letter-and-mark runs for hi
(matras and viramas are marks, so they stay inside their word), and a real morphological
analyser for ja (fugashi with the UniDic-lite dictionary; see bench/heuristics.py for the
choice against SudachiPy). MeCab's lattice grows with its input and fugashi crashes the process
on a few megabytes, so Japanese is segmented in pieces of at most `SEGMENT_CHARS`, cut at line
or sentence ends where there is one. A task keeps the words of the Japanese documents it saw last
(`SegmentedDocuments`), so the steps that each need them segment a document once.
"""

import importlib.util
import os
import re
import runpy
import unicodedata
from collections import OrderedDict
from functools import cache, lru_cache

import numpy as np
import regex

from core import _text_stats

_OTHER_WHITE_SPACE = re.compile(r"[^\S \t\n]")  # what str.strip removes but MeCab keeps in a surface
SEGMENT_CHARS = 20_000
# A document's metadata key for its number of words, where a step that had them counted it for the
# shard writer's fertility (dedup's documents file carries it from the filter pass, where a
# Japanese document's words are at hand, to the tokenize pass, which would segment it again).
WORD_COUNT = "word_count"


def normalize(text: str) -> str:
    """NFC, runs of spaces and tabs folded to one space, at most one blank line, ends trimmed.
    White space is the regex module's \\s (the standard library's also takes \\x1c-\\x1f): each run
    of it but newlines is one space, none is left beside a newline, and three newlines or more are
    two. The folding is one pass in C (`fold_white_space`); it was three regular expressions'
    passes, and normalize took 59 µs a document of bench/curate.py's en where it takes 10 now."""
    return _text_stats.fold_white_space(unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n"))


@lru_cache(maxsize=1)
def _japanese_segmenter():
    """A piece of Japanese text -> its morphemes' surfaces. MeCab's own space-separated output
    (`-Owakati`) makes no Python object per morpheme: a quarter less time than iterating
    fugashi's nodes, with the same surfaces (none holds a space, tab or newline: MeCab skips
    them). fugashi strips that output of all white space, though, which would cut other white
    space (\x1c-\x1f survive `normalize`) off a first or last surface ("ก\x1c"): a piece that
    holds any is segmented node by node."""
    import fugashi

    tagger = fugashi.Tagger("-Owakati")

    def segment(piece: str) -> list[str]:
        if _OTHER_WHITE_SPACE.search(piece):
            return [node.surface for node in tagger(piece)]
        return tagger.parse(piece).split(" ")

    return segment


def pieces(text: str, size: int = SEGMENT_CHARS):
    """`text` in consecutive pieces of at most `size` characters, each ending at its last line or
    sentence end (。), or anywhere when it has none."""
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = max(text.rfind("\n", start, end), text.rfind("。", start, end))
            end = cut + 1 if cut > start else end
        yield text[start:end]
        start = end


def code_point_classes(classes: dict[int, str], end: int) -> np.ndarray:
    """Each code point's flags below `end` (uint8): bit b where the regex module's character class
    `[classes[b]]` holds it. The regex module's Unicode is newer than the standard library's (on
    Python 3.11, letters assigned since Unicode 14 count). The Basic Multilingual Plane (0x10000)
    takes a few ms a class, all of Unicode (0x110000) some 50 ms."""
    characters = "".join(map(chr, range(end)))
    flags = np.zeros(end, dtype=np.uint8)
    for bit, members in classes.items():
        for run in regex.finditer(f"[{members}]+", characters):
            flags[run.start() : run.end()] |= 1 << bit
    return flags


def with_flags(count, flags_below):
    """`count(flags)` with `flags_below(0x10000)`, the Basic Multilingual Plane's, or with all of
    Unicode's where it returns None (a character beyond the plane: rare, so a process makes the
    larger table only for such a text). The counting functions of `core._text_stats` return None so."""
    counted = count(flags_below(0x10000))
    return count(flags_below(0x110000)) if counted is None else counted


# A word is a run of word characters (letters with their marks, digits, "_", the zero-width
# joiners that Devanagari writes inside words), then any apostrophe followed by letters and marks
# ("didn't", "l’homme"): the regular expression [WORD_CHARACTERS]+(?:['’][AFTER_APOSTROPHE]+)*,
# which core/_text_stats.c's `split_words` follows: twice as fast as the standard library's re with
# these classes as ranges within the Basic Multilingual Plane (3,000 generated documents, en / fi /
# hi / vi: 28 / 31 / 37 / 45 µs each against 58 / 56 / 71 / 83), 2.5 to 4 times the regex module.
WORD_CHARACTERS, AFTER_APOSTROPHE = r"\p{L}\p{M}\p{N}_\u200c\u200d", r"\p{L}\p{M}"


# A Japanese morpheme is a word when it holds a letter or digit (MeCab's punctuation and symbols are not).
LETTER_OR_DIGIT = r"\p{L}\p{N}"
_LETTER_OR_DIGIT_BIT = 2  # bits 0 and 1 are `split_words`' own: its word characters, and what may follow an apostrophe


@cache
def _word_flags(end: int) -> bytes:
    return code_point_classes({0: WORD_CHARACTERS, 1: AFTER_APOSTROPHE, _LETTER_OR_DIGIT_BIT: LETTER_OR_DIGIT}, end).tobytes()


def _morpheme_words(morphemes: list[str]) -> list[str]:
    return with_flags(lambda flags: _text_stats.words_with(morphemes, flags, _LETTER_OR_DIGIT_BIT), _word_flags)


def words(text: str, language: str) -> list[str]:
    """The words of `text` (punctuation and symbols excluded)."""
    if language == "ja":
        return list(_JAPANESE_WORDS.get(text))
    return with_flags(lambda flags: _text_stats.split_words(text, flags), _word_flags)


class SegmentedDocuments:
    """The segmenter's words of the documents a task saw last, up to `max_chars` characters of
    them: the heuristics, the quality classifier and the tokenizer's fertility each need a Japanese
    document's words, and segmenting costs more than the rest of its curation (bench/curate.py).
    A document's text is one str object through a task's steps, and Python keeps a str's hash, so
    a lookup costs little."""

    def __init__(self, max_chars: int):
        self.max_chars, self.chars, self.entries = max_chars, 0, OrderedDict()

    def get(self, text: str) -> tuple[str, ...]:
        found = self.entries.get(text)
        if found is not None:
            self.entries.move_to_end(text)
            return found
        segment = _japanese_segmenter()
        found = tuple(w for piece in pieces(text) for w in _morpheme_words(segment(piece)))
        self.entries[text] = found
        self.chars += len(text)
        while self.chars > self.max_chars and len(self.entries) > 1:
            oldest, _ = self.entries.popitem(last=False)
            self.chars -= len(oldest)
        return found


# About 2,000 documents of 1,000 characters, more than a filter batch (256) and a tokenizer batch
# (1,000) apart; their words take some 40 MB.
_JAPANESE_WORDS = SegmentedDocuments(2_000_000)


@cache
def stop_words(language: str) -> frozenset[str]:
    """spaCy's stop-word list for the language, read from spaCy's installed files.

    The lists are plain Python files; running them directly avoids importing spaCy itself,
    which costs seconds in every worker process. Vietnamese entries join syllables with "_".
    """
    spec = importlib.util.find_spec("spacy")
    path = os.path.join(os.path.dirname(spec.origin), "lang", language, "stop_words.py")
    return frozenset(w.lower() for w in runpy.run_path(path)["STOP_WORDS"])


def count_stop_words(doc_words: list[str], language: str) -> int:
    """How many words are stop words (`doc_words` lower-cased); for vi, two-syllable stop words count once."""
    stops = stop_words(language)
    count = sum(map(stops.__contains__, doc_words))
    if language == "vi":
        count += sum(map(stops.__contains__, map("_".join, zip(doc_words, doc_words[1:]))))
    return count
