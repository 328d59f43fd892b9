"""The main text of an HTML page, by the extractor a recipe names (`read.extractor`).

- `resiliparse`: resiliparse's main-content extraction without the parts that real pages carry
  around an article and their reference texts leave out: the headline (<h1>, which pages often
  repeat in the body), comment sections, post metadata (bylines, dates) and image alt texts. Then
  every line that repeats an earlier line of the page, compared on its words in lower case, is
  removed: captions printed twice, "Advertisement" between paragraphs, a gallery's captions again
  and again. Left in, they are what the repetition rules (`fineweb.max_char_dup_ratio`, Gopher's
  duplicate lines and n-grams) remove whole pages for. Repeats that make up most of a page
  (`MAX_REPEATED_SHARE`) are left in: such a page is repetition spam, for those rules to remove.
- `trafilatura`: `trafilatura.extract(html, fast=True)`, its own extraction without its fallback
  algorithms (no metadata, no comments, tables kept, no network), repeats removed as above.
- `resiliparse+trafilatura` (the default): `resiliparse`, and `trafilatura` on the pages where
  resiliparse finds fewer than `FALLBACK_WORDS` words, the cheap sign that its main-content
  heuristics missed the article (a page it leaves empty, a post cut to its first paragraphs);
  trafilatura's text is kept when it has more words, and at least `MIN_FALLBACK_WORDS` (fewer is
  no article: a menu's links, which trafilatura returns for a page of nothing else).

trafilatura runs only on pages small and shallow enough for its time to stay bounded
(`TRAFILATURA_MAX_CHARS`, `TRAFILATURA_MAX_DEPTH`); the others get `resiliparse`'s text.

`bench/extraction.py` measures them on real pages with reference texts (`tooling/real_pages.py`).
"""

import logging
import re

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree

EXTRACTORS = ("resiliparse+trafilatura", "resiliparse", "trafilatura")
DEFAULT_EXTRACTOR = EXTRACTORS[0]
FALLBACK_WORDS = 200
MIN_FALLBACK_WORDS = 50  # Gopher's min_doc_words
# trafilatura's time grows with a page's size times its nesting: 0.6 s for 256 KiB of links 10
# deep, 8.5 s 250 deep (resiliparse: under 0.1 s). Real pages nest 19 deep at the median, 56 at
# most, and the articles it rescues are smaller: of the 1,570 real pages of bench/extraction.py,
# a limit of 512 KiB changes the English articles' F1 by 0.0005. So it runs on pages of at most
# TRAFILATURA_MAX_CHARS nested at most TRAFILATURA_MAX_DEPTH deep (about 4 s at worst); other
# pages keep resiliparse's text, whatever the extractor.
TRAFILATURA_MAX_CHARS = 512 << 10
TRAFILATURA_MAX_DEPTH = 64
_DEEPER = " > ".join(["*"] * (TRAFILATURA_MAX_DEPTH + 1))
# Repeats are removed while they are incidental; a page more than half repeats is repetition
# spam, left whole for the repetition rules to judge.
MAX_REPEATED_SHARE = 0.5
# Words as `\w+` finds them, a Han or kana character each (those scripts write no spaces).
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")
_SKIPPED = ["h1"]
# trafilatura logs an ERROR for every page it finds no text in; here that is an outcome, counted as such.
logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


def main_text(html: str, extractor: str = DEFAULT_EXTRACTOR, tree: HTMLTree | None = None) -> str:
    """The main text of `html` (its `tree`, parsed by resiliparse, when the caller has it)."""
    tree = tree if tree is not None else HTMLTree.parse(html)
    if extractor == "trafilatura" and trafilatura_affordable(html, tree):
        return trafilatura_text(html)[0]
    text, words = resiliparse_text(tree)
    if extractor != "resiliparse+trafilatura" or words >= FALLBACK_WORDS or not trafilatura_affordable(html, tree):
        return text
    other, other_words = trafilatura_text(html)
    return other if other_words >= MIN_FALLBACK_WORDS and other_words > words else text


def trafilatura_affordable(html: str, tree: HTMLTree) -> bool:
    """Whether trafilatura may run on the page: small and shallow enough (`TRAFILATURA_MAX_CHARS`)."""
    return len(html) <= TRAFILATURA_MAX_CHARS and (tree.document is None or tree.document.query_selector(_DEEPER) is None)


def resiliparse_text(tree: HTMLTree) -> tuple[str, int]:
    """The `resiliparse` extractor's text and its number of words."""
    text = extract_plain_text(tree, main_content=True, comments=False, post_meta=False, alt_texts=False,
                              list_bullets=False, skip_elements=_SKIPPED)
    return without_repeated_lines(text)


def trafilatura_text(html: str) -> tuple[str, int]:
    """The `trafilatura` extractor's text (its repeats removed as resiliparse's are) and its number of words."""
    import trafilatura  # here: its import (0.17 s) is for runs that extract pages, not every run

    return without_repeated_lines(trafilatura.extract(html, fast=True, with_metadata=False, include_comments=False) or "")


def without_repeated_lines(text: str) -> tuple[str, int]:
    """`text` without the lines whose words (lower-cased) an earlier line already had, and the
    number of words it keeps; lines without a word are kept. When the repeats are more than
    `MAX_REPEATED_SHARE` of the text's characters, `text` is returned whole."""
    seen, kept, words, repeated, total = set(), [], 0, 0, 0
    for line in text.split("\n"):
        found = WORD.findall(line.lower())
        key = " ".join(found)
        total += len(line)
        if key in seen:
            repeated += len(line)
            continue
        if key:
            seen.add(key)
        kept.append(line)
        words += len(found)
    if repeated > MAX_REPEATED_SHARE * total:
        return text, len(WORD.findall(text))
    return "\n".join(kept), words
