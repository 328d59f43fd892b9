"""Language-aware quality heuristics: metrics as plain functions, rules as recipe thresholds.

Five groups, each a datatrove step that removes a document with the reason `<group>.<rule>`:

- `gopher_quality`   Gopher (Rae et al. 2021) quality rules, as in datatrove's GopherQualityFilter
- `gopher_repetition` Gopher repetition rules (duplicate lines/paragraphs, top and duplicate n-grams)
- `fineweb`          FineWeb's line rules (terminal punctuation, short lines, duplicated characters, newlines)
- `web_ratios`       the stop-word ratio and symbol-and-digit ratio used for Aurora-M's web data, and
                     lexical diversity (against keyword stuffing)
- `script`           share of letters in the language's script, and mojibake

A rule is a recipe key `min_<metric>` or `max_<metric>`: the document is removed when the metric
is below a min or above a max. `aurora calibrate` prints every metric's distribution on clean
text. Words come from `core.text.words`, so each language is segmented properly. `RULES`
declares each rule's valid range, which recipe loading checks.
"""

from dataclasses import dataclass
from functools import cache, cached_property, lru_cache, partial
from math import inf

import numpy as np
import regex

from core import _text_stats
from core.config import number
from core.errors import AuroraError
from core.text import code_point_classes, count_stop_words, with_flags, words
from filters.base import FilterConfig, RecipeContext, RecipeFilter, Removal, StepContext

GROUPS = ("gopher_quality", "gopher_repetition", "fineweb", "web_ratios", "script")
# Settings that shape a metric rather than bound it.
SETTINGS = {"short_line_length": 30}

BULLETS = ("•", "●", "○", "▪", "■", "◦", "‣", "⁃", "- ", "* ", "· ", "➢", "►", "→")
ELLIPSES = ("...", "…")
# Sentence-final punctuation across our scripts: Latin, Devanagari danda, Japanese full width, closing quotes.
TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", ")", "।", "॥", "。", "！", "？", "」", "』", "）", ":", ";")
SCRIPTS = {  # the characters of each language's script, as the inside of a character class
    "en": r"\p{Latin}",
    "fi": r"\p{Latin}",
    "vi": r"\p{Latin}",
    "hi": r"\p{Devanagari}",
    "ja": r"\p{Han}\p{Hiragana}\p{Katakana}ー",
}
# UTF-8 read as Windows-1252 (or Latin-1): each continuation byte 0x80-0xBF shows as one of
# these characters. A 2-byte character (U+0080-U+01FF: ä, é, ă, đ, ơ, ư) becomes Â-Ç plus one of
# them ("Ã¤"); a 3-byte one (Devanagari, Vietnamese tone letters, Japanese, "’") becomes à-ï plus
# two ("à¤¹", "â€™"). Requiring the continuation characters keeps "ä”" in real text apart.
_CONTINUATION = "\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"  # noqa: E501
# A sequence is a lead of one (Â-Ç) or of two (à-ï) followed by as many continuation characters,
# or U+FFFD alone: core/_text_stats.c's `mojibake` counts them from each code point's flags (these
# bits), as the regular expression [Â-Ç][C]|[à-ï][C]{2}|\ufffd finds them, a tenth of its time.
MOJIBAKE_FLAGS = {0: "\u00c2-\u00c7", 1: "\u00e0-\u00ef", 2: _CONTINUATION, 3: "\ufffd"}
# The classes of characters the heuristics count, each a bit of a code point's flags (`_class_flags`):
# letters (\p{L} is the regex module's, a newer Unicode than str.isalpha's on Python 3.11), the
# language's script among them, symbols and digits (Unicode's and ASCII's), and white space other
# than the space and newline that normalized text keeps.
LETTER, SCRIPT, SYMBOL_OR_DIGIT, OTHER_SPACE, VIETNAMESE = range(5)  # the last for vi only: its letters in lower case
_CLASSES = {LETTER: r"\p{L}", SYMBOL_OR_DIGIT: r"\p{S}\p{N}#@%&*_^~|\\/<>\[\]{}=+$", OTHER_SPACE: r"^\S \n"}
_VIETNAMESE = "ăâđêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"  # lower case


@cache
def _class_flags(language: str, end: int) -> bytes:
    """Each code point's flags below `end`: bit LETTER, SCRIPT (a letter of the language's script),
    SYMBOL_OR_DIGIT, OTHER_SPACE and for vi VIETNAMESE (`core.text.code_point_classes`)."""
    classes = {**_CLASSES, SCRIPT: SCRIPTS[language]} | ({VIETNAMESE: _VIETNAMESE} if language == "vi" else {})
    flags = code_point_classes(classes, end)
    flags[(flags & (1 << LETTER)) == 0] &= ~np.uint8(1 << SCRIPT)  # the script's letters only
    return flags.tobytes()


@cache
def _mojibake_flags(end: int) -> bytes:
    return code_point_classes(MOJIBAKE_FLAGS, end).tobytes()


def mojibake_count(text: str) -> int:
    return with_flags(lambda flags: _text_stats.mojibake(text, flags), _mojibake_flags)


def class_counts(text: str, language: str) -> tuple[int, ...]:
    """How many characters of `text` have each bit (LETTER, SCRIPT, SYMBOL_OR_DIGIT, OTHER_SPACE)."""
    return with_flags(lambda flags: _text_stats.class_counts(text, flags), partial(_class_flags, language))


def words_with(ws: list[str], bit: int, language: str) -> list[str]:
    """The words that hold a character of the class `bit` (LETTER, VIETNAMESE, ...)."""
    return with_flags(lambda flags: _text_stats.words_with(ws, flags, bit), partial(_class_flags, language))


@dataclass(frozen=True)
class Analysis:
    text: str
    language: str
    lines: list[str]  # non-empty lines, stripped
    paragraphs: list[str]  # non-empty blocks between blank lines, stripped
    words: list[str]

    @cached_property
    def lowered(self) -> list[str]:
        return lower_words(self.words)

    @cached_property
    def stop_words(self) -> int:
        return count_stop_words(self.lowered, self.language)

    @cached_property
    def classes(self) -> tuple[int, ...]:
        return class_counts(self.text, self.language)


@lru_cache(maxsize=2)  # a document passes every group before the next comes; a few big ones must not pile up
def analyze(text: str, language: str) -> Analysis:
    """Segment once; consecutive filters on the same document hit this cache."""
    return Analysis(
        text=text,
        language=language,
        lines=[line.strip() for line in text.split("\n") if line.strip()],
        paragraphs=[p.strip() for p in regex.split(r"\n\s*\n", text) if p.strip()],
        words=words(text, language),
    )


def lower_words(ws: list[str]) -> list[str]:
    """The words lower-cased, in one call on them all: a newline ends each word as its end would."""
    return "\n".join(ws).lower().split("\n") if ws else []


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def gopher_quality_metrics(a: Analysis, settings: dict) -> dict:
    n = len(a.words)
    symbols = a.text.count("#") + sum(a.text.count(e) for e in ELLIPSES)
    return {
        "doc_words": n,
        "avg_word_length": _ratio(sum(map(len, a.words)), n),
        "symbol_word_ratio": _ratio(symbols, n),
        "bullet_lines_ratio": _ratio(sum(line.startswith(BULLETS) for line in a.lines), len(a.lines)),
        "ellipsis_lines_ratio": _ratio(sum(line.endswith(ELLIPSES) for line in a.lines), len(a.lines)),
        "alpha_words_ratio": _ratio(len(words_with(a.words, LETTER, a.language)), n),
        "stop_words": a.stop_words,
    }


def _duplicates(elements: list[str]) -> tuple[int, int]:
    """(number of elements seen before, their characters), as Gopher counts them."""
    seen, count, chars = set(), 0, 0
    for element in elements:
        if element in seen:
            count += 1
            chars += len(element)
        else:
            seen.add(element)
    return count, chars


# Gopher's n-gram rules, in the order core/_text_stats.c's `repetition` gives their fractions of
# the words' characters: the top n-gram's characters times its count, and the characters of the
# words an n-gram that occurred earlier covers (each word once).
_NGRAM_METRICS = [f"top_{n}gram_frac" for n in (2, 3, 4)] + [f"dup_{n}gram_frac" for n in range(5, 11)]


def gopher_repetition_metrics(a: Analysis, settings: dict) -> dict:
    text_chars = len(a.text)
    dup_lines, dup_line_chars = _duplicates(a.lines)
    dup_paras, dup_para_chars = _duplicates(a.paragraphs)
    metrics = {
        "dup_line_frac": _ratio(dup_lines, len(a.lines)),
        "dup_para_frac": _ratio(dup_paras, len(a.paragraphs)),
        "dup_line_char_frac": _ratio(dup_line_chars, text_chars),
        "dup_para_char_frac": _ratio(dup_para_chars, text_chars),
    }
    metrics.update(zip(_NGRAM_METRICS, _text_stats.repetition(a.words)))
    return metrics


def fineweb_metrics(a: Analysis, settings: dict) -> dict:
    short = settings.get("short_line_length", SETTINGS["short_line_length"])
    _, dup_line_chars = _duplicates(a.lines)
    return {
        "line_punct_ratio": _ratio(sum(line.endswith(TERMINAL_PUNCTUATION) for line in a.lines), len(a.lines)),
        "short_line_ratio": _ratio(sum(len(line) <= short for line in a.lines), len(a.lines)),
        "char_dup_ratio": _ratio(dup_line_chars, len(a.text.replace("\n", ""))),
        "new_line_ratio": _ratio(a.text.count("\n"), len(a.words)),
    }


LEXICAL_DIVERSITY_WINDOW = 50


def lexical_diversity(ws: list[str], window: int = LEXICAL_DIVERSITY_WINDOW) -> float:
    """Moving-average type-token ratio (MATTR, Covington and McFall 2010) of the lower-cased words.

    Plain distinct-words-over-words falls as a document grows (common words recur), so a long
    clean page would score like a short spammy one. MATTR averages the type-token ratio of every
    window of `window` consecutive words, which does not depend on length. 50 words is a few
    sentences: long enough that prose shows its variety, short enough that most web pages span
    many windows; keyword stuffing from k distinct words scores at most k / 50 however long it is.
    A document of at most `window` words gets its plain type-token ratio. Words are those of
    `core.text.words`: fugashi morphemes for ja, syllables for vi.
    """
    return _text_stats.mattr(lower_words(ws), window)


def web_ratio_metrics(a: Analysis, settings: dict) -> dict:
    return {
        "stop_word_ratio": _ratio(a.stop_words, len(a.words)),
        "symbol_digit_ratio": _ratio(a.classes[SYMBOL_OR_DIGIT], len(a.text) - a.text.count(" ") - a.text.count("\n") - a.classes[OTHER_SPACE]),
        "lexical_diversity": _text_stats.mattr(a.lowered, LEXICAL_DIVERSITY_WINDOW),
    }


def script_metrics(a: Analysis, settings: dict) -> dict:
    letters = a.classes[LETTER]
    metrics = {
        "script_fraction": _ratio(a.classes[SCRIPT], letters),
        "mojibake_ratio": _ratio(mojibake_count(a.text), letters),
    }
    if a.language == "vi":
        # Vietnamese is Latin with its own diacritics; most running text has them on many syllables.
        metrics["vietnamese_diacritic_fraction"] = _ratio(len(words_with(a.lowered, VIETNAMESE, a.language)), len(a.words))
    return metrics


METRICS = {
    "gopher_quality": gopher_quality_metrics,
    "gopher_repetition": gopher_repetition_metrics,
    "fineweb": fineweb_metrics,
    "web_ratios": web_ratio_metrics,
    "script": script_metrics,
}


# Each rule with its range of valid thresholds, (low, high, type), from its metric's definition
# above; recipe loading refuses anything outside. SHARE: a part of its whole, in [0, 1]. RATIO: can
# pass 1: symbols and newlines per word, top n-grams (occurrences overlap, so their characters can
# outnumber the words'), Vietnamese stop words (a two-syllable one counts on top of its syllables),
# mojibake sequences per letter (a sequence may hold no letter). LENGTH: mean characters per word.
# COUNT: whole words or characters.
SHARE, RATIO, LENGTH, COUNT = (0, 1, float), (0, inf, float), (0, inf, float), (0, inf, int)
RULES = {
    "gopher_quality": {
        "min_doc_words": COUNT, "max_doc_words": COUNT, "min_avg_word_length": LENGTH, "max_avg_word_length": LENGTH,
        "max_symbol_word_ratio": RATIO, "max_bullet_lines_ratio": SHARE, "max_ellipsis_lines_ratio": SHARE,
        "min_alpha_words_ratio": SHARE, "min_stop_words": COUNT,
    },
    "gopher_repetition": {
        "max_dup_line_frac": SHARE, "max_dup_para_frac": SHARE, "max_dup_line_char_frac": SHARE, "max_dup_para_char_frac": SHARE,
        **{f"max_top_{n}gram_frac": RATIO for n in (2, 3, 4)},
        **{f"max_dup_{n}gram_frac": SHARE for n in range(5, 11)},
    },
    "fineweb": {
        "min_line_punct_ratio": SHARE, "max_short_line_ratio": SHARE, "short_line_length": COUNT,
        "max_char_dup_ratio": SHARE, "max_new_line_ratio": RATIO,
    },
    "web_ratios": {"min_stop_word_ratio": RATIO, "max_symbol_digit_ratio": SHARE, "min_lexical_diversity": SHARE},
    "script": {"min_script_fraction": SHARE, "max_mojibake_ratio": RATIO, "min_vietnamese_diacritic_fraction": SHARE},
}


def rule_names(group: str, language: str) -> list[str]:
    """Every key the group accepts for the language."""
    return [r for r in RULES[group] if language == "vi" or r != "min_vietnamese_diacritic_fraction"]


def metric_names(group: str, language: str) -> list[str]:
    """The metrics the group computes for the language, in the order its function returns them."""
    return list(dict.fromkeys(rule[4:] for rule in rule_names(group, language) if rule not in SETTINGS))


@dataclass(frozen=True)
class GroupRules:
    """The config of one group's step: its thresholds (and settings), in the recipe's order."""

    group: str
    thresholds: dict

    @property
    def settings(self) -> dict:
        return {k: v for k, v in self.thresholds.items() if k in SETTINGS}

    @cached_property
    def checks(self) -> tuple[tuple[str, float, bool, str], ...]:
        """(signal column, threshold, whether it is a minimum, reason) of each rule that is on, in
        the thresholds' order: `decide` runs for every document of every group."""
        return tuple((f"{self.group}.{rule[4:]}", limit, rule.startswith("min_"), f"{self.group}.{rule}")
                     for rule, limit in self.thresholds.items() if limit is not None and rule not in SETTINGS)


def measure(a: Analysis, rules: GroupRules) -> dict:
    """The group's metrics of a document, named by their signal columns (`<group>.<metric>`), as
    `decide` reads them."""
    return {f"{rules.group}.{metric}": float(value) for metric, value in METRICS[rules.group](a, rules.settings).items()}


def decide(values: dict, rules: GroupRules) -> Removal | None:
    """The first rule of the group, in threshold order, that the values break: a metric below a
    `min_` threshold or above a `max_` one; None when none is broken."""
    for column, limit, minimum, reason in rules.checks:
        value = values[column]
        if (value < limit) if minimum else (value > limit):
            return Removal(reason, value, limit)
    return None


class HeuristicFilter(RecipeFilter):
    """One group of rules with the recipe's thresholds for one language."""

    def __init__(self, output_folder, language: str, rules: GroupRules):
        self.step, self.name = rules.group, NAMES[rules.group]  # before datatrove names the step's stats after it
        super().__init__(output_folder, tuple(f"{rules.group}.{m}" for m in metric_names(rules.group, language)))
        self.language, self.rules = language, rules

    def measure(self, batch):
        return [measure(analyze(doc.text, self.language), self.rules) for doc in batch]

    def decide(self, values):
        return decide(values, self.rules)


NAMES = {
    "gopher_quality": "🥇 Gopher quality",
    "gopher_repetition": "👯 Gopher repetition",
    "fineweb": "🍷 FineWeb quality",
    "web_ratios": "🔣 Stop-word, symbol and diversity ratios",
    "script": "🔤 Script",
}


@dataclass(frozen=True)
class HeuristicsConfig(FilterConfig):
    """`heuristics:` of a text recipe: {group: {rule: threshold}}, each threshold in its rule's
    range (`RULES`); a rule set to null is off. The groups run in `GROUPS` order."""

    section = "heuristics"
    languages = ("text",)
    groups: dict  # group -> its thresholds and settings, as the recipe gives them

    @classmethod
    def read(cls, data: dict, recipe: RecipeContext) -> "HeuristicsConfig":
        groups = data.get(cls.section)
        if groups is None:
            return cls({})
        path = recipe.path
        if not isinstance(groups, dict):  # `[]`, `0` or `false` would mean no heuristics
            raise AuroraError(f"{path}: 'heuristics' must be a mapping of groups (or left out for none)")
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise AuroraError(f"{path}: unknown heuristic group 'heuristics.{unknown[0]}' (allowed: {', '.join(GROUPS)})")
        for group, rules in groups.items():
            if not isinstance(rules, dict):
                raise AuroraError(f"{path}: 'heuristics.{group}' must be a mapping of rule to threshold")
            check_thresholds(rules, {rule: RULES[group][rule] for rule in rule_names(group, recipe.language)},
                             f"heuristics.{group}.", recipe)
        return cls(groups)

    def steps(self, context: StepContext) -> list:
        return [HeuristicFilter(context.folder, context.language, GroupRules(group, self.groups[group]))
                for group in GROUPS if group in self.groups]

    def columns(self, language: str) -> list[tuple[str, str]]:
        return [(f"{group}.{metric}", "float64") for group in GROUPS if group in self.groups for metric in metric_names(group, language)]

    def basis(self, sha256) -> dict:
        return {"heuristics": {group: GroupRules(group, rules).settings for group, rules in self.groups.items()}}

    def refilter_problem(self, basis: dict, run_basis: dict) -> str | None:
        """A group the run did not run, or whose settings shape its metrics otherwise; dropping
        a group or changing a threshold replays."""
        for group, settings in basis["heuristics"].items():
            if group not in run_basis["heuristics"]:
                return f"heuristics.{group} was not run"
            if settings != run_basis["heuristics"][group]:
                return f"heuristics.{group} settings {settings} differ from the run's {run_basis['heuristics'][group]}"
        return None


def check_thresholds(rules: dict, ranges: dict, prefix: str, recipe: RecipeContext) -> None:
    """Each threshold a known rule's, within the rule's range (low, high, type); null is allowed (off)."""
    path = recipe.path
    for key, value in rules.items():
        if key not in ranges:
            raise AuroraError(f"{path}: unknown rule '{prefix}{key}' for {recipe.language} (allowed: {', '.join(ranges)})")
        if value is None:
            continue
        number(value, prefix + key, path)
        low, high, kind = ranges[key]
        if (kind is int and not isinstance(value, int)) or not low <= value <= high:
            what = "an integer" if kind is int else "a number"
            span = f">= {low:g}" if high == inf else f"in [{low:g}, {high:g}]"
            raise AuroraError(f"{path}: '{prefix}{key}' must be {what} {span}, got {value!r}")
