"""Published heuristic thresholds per language: the starting point that `aurora calibrate` adjusts.

Sources:
- en: datatrove's defaults for GopherQualityFilter, GopherRepetitionFilter and FineWebQualityFilter
  (Gopher, Rae et al. 2021; FineWeb, Penedo et al. 2024).
- fi, hi, ja, vi: FineWeb-2's per-language configs `configs/fin_Latn.yml`, `hin_Deva.yml`,
  `jpn_Jpan.yml`, `vie_Latn.yml` (github.com/huggingface/fineweb-2): dup_line_frac, top_n_grams,
  dup_n_grams, min/max_avg_word_length, max_non_alpha_words_ratio (our min_alpha_words_ratio),
  line_punct_thr and new_line_ratio. Rules those configs do not set keep the English defaults.
- web_ratios and script: this project's (Aurora-M filtered its web data by stop-word ratio and
  symbol/digit ratio without publishing per-language values); set from clean text by calibration.
- min_lexical_diversity (MATTR over 50-word windows, `filters.heuristics.lexical_diversity`) has no
  published value anywhere: 0.5 is this project's starting value for every language, twice what
  keyword stuffing from a dozen distinct words can reach (12 / 50 = 0.24) and below what clean
  prose scores (0.73 to 0.86 at the 0.5th percentile of ../shared/corpus in every language);
  `aurora calibrate` loosens it for a language whose clean text needs that, like any other rule.

Each was set on the text of one extractor: FineWeb's and FineWeb-2's on trafilatura's output of
Common Crawl WARCs, Gopher's on MassiveText's own HTML-to-text. On text extracted differently
(`readers.html_text`) repetition and line shapes differ, so the en recipes loosen some of them
after calibrating on real pages as this project extracts them (the recipes say which).
"""

GOPHER_REPETITION_EN = {
    "max_dup_line_frac": 0.3, "max_dup_para_frac": 0.3, "max_dup_line_char_frac": 0.2, "max_dup_para_char_frac": 0.2,
    "max_top_2gram_frac": 0.2, "max_top_3gram_frac": 0.18, "max_top_4gram_frac": 0.16,
    "max_dup_5gram_frac": 0.15, "max_dup_6gram_frac": 0.14, "max_dup_7gram_frac": 0.13,
    "max_dup_8gram_frac": 0.12, "max_dup_9gram_frac": 0.11, "max_dup_10gram_frac": 0.10,
}
ENGLISH = {
    "gopher_quality": {
        "min_doc_words": 50, "max_doc_words": 100_000, "min_avg_word_length": 3, "max_avg_word_length": 10,
        "max_symbol_word_ratio": 0.1, "max_bullet_lines_ratio": 0.9, "max_ellipsis_lines_ratio": 0.3,
        "min_alpha_words_ratio": 0.8, "min_stop_words": 2,
    },
    "gopher_repetition": GOPHER_REPETITION_EN,
    "fineweb": {
        "min_line_punct_ratio": 0.12, "max_short_line_ratio": 0.67, "short_line_length": 30,
        "max_char_dup_ratio": 0.01, "max_new_line_ratio": 0.3,
    },
    "web_ratios": {"min_stop_word_ratio": 0.1, "max_symbol_digit_ratio": 0.3, "min_lexical_diversity": 0.5},
    "script": {"min_script_fraction": 0.8, "max_mojibake_ratio": 0.0005},
}


def _fineweb2(avg_word_length, alpha, dup_line, top, dup, line_punct, new_line, extra_script=None):
    thresholds = {group: dict(rules) for group, rules in ENGLISH.items()}
    thresholds["gopher_quality"].update(
        min_avg_word_length=avg_word_length[0], max_avg_word_length=avg_word_length[1], min_alpha_words_ratio=alpha
    )
    thresholds["gopher_repetition"].update(max_dup_line_frac=dup_line)
    thresholds["gopher_repetition"].update({f"max_top_{n}gram_frac": v for n, v in zip((2, 3, 4), top)})
    thresholds["gopher_repetition"].update({f"max_dup_{n}gram_frac": v for n, v in zip(range(5, 11), dup)})
    thresholds["fineweb"].update(min_line_punct_ratio=line_punct, max_new_line_ratio=new_line)
    thresholds["script"].update(extra_script or {})
    return thresholds


PUBLISHED = {
    "en": ENGLISH,
    "fi": _fineweb2((4, 13), 0.755, 0.333, (0.101, 0.132, 0.163), (0.171, 0.149, 0.131, 0.119, 0.106, 0.094), 0.25, 0.219),
    "hi": _fineweb2((2, 21), 0.837, 0.206, (0.208, 0.198, 0.161), (0.135, 0.125, 0.116, 0.108, 0.099, 0.09), 0.091, 0.316),
    "ja": _fineweb2((1, 5), 0.759, 0.375, (0.121, 0.129, 0.145), (0.307, 0.283, 0.264, 0.248, 0.234, 0.223), 0.167, 0.162),
    "vi": _fineweb2((3, 11), 0.803, 0.293, (0.223, 0.197, 0.171), (0.178, 0.163, 0.15, 0.136, 0.124, 0.111), 0.333, 0.103,
                    {"min_vietnamese_diacritic_fraction": 0.2}),
}
