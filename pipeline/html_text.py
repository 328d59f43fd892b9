"""The main text of an HTML page, by the extractor a recipe names (`read.extractor`).

- `resiliparse`: resiliparse's main-content extraction without the parts that real pages carry
  around an article and their reference texts leave out: the headline (<h1>, which pages often
  repeat in the body), comment sections, post metadata (bylines, dates) and image alt texts. Then
  every line that repeats an earlier line of the page, compared on its words in lower case, is
  removed: captions printed twice, "Advertisement" between paragraphs, a gallery's captions again
  and again. Left in, they are what the repetition rules (`fineweb.max_char_dup_ratio`, Gopher's
  duplicate lines and n-grams) remove whole pages for.
- `trafilatura`: `trafilatura.extract(html, fast=True)`, its own extraction without its fallback
  algorithms (no metadata, tables kept, no network).
- `resiliparse+trafilatura` (the default): `resiliparse`, and trafilatura on the pages of at most
  `FALLBACK_MAX_CHARS` where resiliparse finds fewer than `FALLBACK_WORDS` words, the cheap sign
  that its main-content heuristics missed the article (a page it leaves empty, a post cut to its
  first paragraphs); trafilatura's text is kept when it has more words, and at least
  `MIN_FALLBACK_WORDS` (fewer is no article: a menu's links, which trafilatura returns for a page
  of nothing else).

`bench/extraction.py` measures them on real pages with reference texts (`tooling/real_pages.py`).
"""

import logging
import re

import trafilatura
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

EXTRACTORS = ("resiliparse+trafilatura", "resiliparse", "trafilatura")
DEFAULT_EXTRACTOR = EXTRACTORS[0]
FALLBACK_WORDS = 200
MIN_FALLBACK_WORDS = 50  # Gopher's min_doc_words
# trafilatura takes about 3 s a MB of HTML that is all short lines or links (resiliparse: under
# 0.3 s); real pages over 1 MiB that resiliparse finds little in are product and collection
# listings, not articles (16 of the 1,570 real pages of bench/extraction.py).
FALLBACK_MAX_CHARS = 1 << 20
# Words as `\w+` finds them, a Han or kana character each (those scripts write no spaces).
_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")
_SKIPPED = ["h1"]
# trafilatura logs an ERROR for every page it finds no text in; here that is an outcome, counted as such.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


def main_text(html: str, extractor: str = DEFAULT_EXTRACTOR, tree: HTMLTree | None = None) -> str:
    """The main text of `html` (its `tree`, parsed by resiliparse, when the caller has it)."""
    if extractor == "trafilatura":
        return _trafilatura(html)
    text, words = _resiliparse(tree if tree is not None else HTMLTree.parse(html))
    if extractor == "resiliparse" or words >= FALLBACK_WORDS or len(html) > FALLBACK_MAX_CHARS:
        return text
    other = _trafilatura(html)
    other_words = len(_WORD.findall(other))
    return other if other_words >= MIN_FALLBACK_WORDS and other_words > words else text


def _resiliparse(tree: HTMLTree) -> tuple[str, int]:
    """The text and its number of words."""
    text = extract_plain_text(tree, main_content=True, comments=False, post_meta=False, alt_texts=False,
                              list_bullets=False, skip_elements=_SKIPPED)
    return without_repeated_lines(text)


def _trafilatura(html: str) -> str:
    return trafilatura.extract(html, fast=True, with_metadata=False, include_comments=False) or ""


def without_repeated_lines(text: str) -> tuple[str, int]:
    """`text` without the lines whose words (lower-cased) an earlier line already had, and the
    number of words it keeps; lines without a word are kept."""
    seen, kept, words = set(), [], 0
    for line in text.split("\n"):
        found = _WORD.findall(line.lower())
        key = " ".join(found)
        if key in seen:
            continue
        if key:
            seen.add(key)
        kept.append(line)
        words += len(found)
    return "\n".join(kept), words
