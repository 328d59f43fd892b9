"""Gopher quality rules (Rae et al. 2021, as in datatrove's GopherQualityFilter) with per-language words.

Words come from `pipeline.text.words`, so Devanagari words keep their matras and Japanese,
which has no spaces, is counted in script runs. Every threshold is a recipe key; a rule
that is absent from the recipe (or null) is not applied.
"""

from datatrove.data import Document

from filters.base import RecordedFilter
from pipeline.text import words

# Frequent function words per language; a real document uses several of them.
STOP_WORDS = {
    "en": {"the", "be", "to", "of", "and", "that", "have", "with"},
    "fi": {"ja", "on", "ei", "se", "että", "oli", "hän", "mutta", "kun", "niin", "myös", "ovat"},
    "hi": {"के", "है", "में", "की", "और", "से", "को", "का", "एक", "पर", "भी", "हैं", "यह", "कि"},
    "ja": {"の", "に", "は", "を", "た", "が", "で", "て", "と", "も", "な", "です", "ます"},
    "vi": {"và", "của", "là", "có", "không", "những", "được", "cho", "các", "một", "này", "trong", "đã", "với"},
}

DEFAULTS = {
    "min_doc_words": 50,
    "max_doc_words": 100_000,
    "min_avg_word_length": 3,
    "max_avg_word_length": 10,
    "max_symbol_word_ratio": 0.1,
    "max_bullet_lines_ratio": 0.9,
    "max_ellipsis_lines_ratio": 0.3,
    "min_alpha_words_ratio": 0.8,
    "min_stop_words": 2,
}

_BULLETS = ("•", "●", "○", "▪", "- ", "* ", "·", "‣", "⁃", "◦")
_ELLIPSIS = ("...", "…")


def gopher_quality(text: str, language: str, rules: dict) -> str | None:
    """The name of the first rule the text breaks, or None when it passes all of them."""
    doc_words = words(text, language)
    n = len(doc_words)
    if n == 0:
        return "gopher_short_document"

    def broken(rule, value, is_max):
        limit = rules.get(rule)
        return limit is not None and (value > limit if is_max else value < limit)

    if broken("min_doc_words", n, False):
        return "gopher_short_document"
    if broken("max_doc_words", n, True):
        return "gopher_long_document"
    avg = sum(map(len, doc_words)) / n
    if broken("min_avg_word_length", avg, False) or broken("max_avg_word_length", avg, True):
        return "gopher_average_word_length"
    symbols = text.count("#") + sum(text.count(e) for e in _ELLIPSIS)
    if broken("max_symbol_word_ratio", symbols / n, True):
        return "gopher_symbol_word_ratio"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if broken("max_bullet_lines_ratio", sum(line.startswith(_BULLETS) for line in lines) / len(lines), True):
        return "gopher_bullet_lines"
    if broken("max_ellipsis_lines_ratio", sum(line.endswith(_ELLIPSIS) for line in lines) / len(lines), True):
        return "gopher_ellipsis_lines"
    alpha = sum(any(c.isalpha() for c in w) for w in doc_words)
    if broken("min_alpha_words_ratio", alpha / n, False):
        return "gopher_alpha_words"
    stop_words = STOP_WORDS.get(language, set())
    if stop_words and broken("min_stop_words", sum(w.lower() in stop_words for w in doc_words), False):
        return "gopher_stop_words"
    return None


class GopherQualityFilter(RecordedFilter):
    name = "🥇 Gopher quality"
    step = "gopher_quality"

    def __init__(self, output_folder, language: str, rules: dict):
        super().__init__(output_folder)
        self.language, self.rules = language, {**DEFAULTS, **rules}

    def filter(self, doc: Document):
        reason = gopher_quality(doc.text, self.language, self.rules)
        return True if reason is None else (False, reason)
