"""Main-text extraction on real pages with reference texts (`tooling/real_pages.py`: mozilla/
readability's test pages, WCXB's development split): quality and speed of each extractor, side by
side in one process, the pages taken in turn by every extractor (interleaved, so that the machine's
load falls on all alike).

Extractors: `readers.html_text`'s three (`resiliparse+trafilatura`, the default; `resiliparse`;
`trafilatura`, its fast mode), the reader's extraction before them (`resiliparse-plain`:
`extract_plain_text(tree, main_content=True)`), and trafilatura with its defaults
(`trafilatura.extract(html)`, the anchor: its own extraction, then its fallbacks).

Scores, as WCXB's `evaluate.py` and the standard extraction benchmarks compute them: per page,
precision, recall and F1 of the extracted words against the reference's (multisets of `\\w+`
in lower case; a Han or kana character is a word of its own, since those scripts write no
spaces), then the mean over pages. Pages/s: of the group's pages, HTML already decoded to text,
parsing included. `trafilatura as fallback`: the share of the group's pages that the default
extractor hands to trafilatura.
Groups: each source, language and page kind with at least `--min-pages` pages; English articles
of both sources; all pages.

    .venv/bin/python bench/extraction.py [--min-pages 2] [--limit N]

Pages are read from the cache (`python -m tooling.real_pages` fills it); without it, the bench says so and stops.
"""

import argparse
import os
import sys
import time
from collections import defaultdict

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import trafilatura  # noqa: E402
from resiliparse.extract.html2text import extract_plain_text  # noqa: E402
from resiliparse.parse.html import HTMLTree  # noqa: E402

from readers import html_text  # noqa: E402
from readers.warc import decode_html  # noqa: E402
from tooling.real_pages import cache_dir, load_pages, word_scores  # noqa: E402

EXTRACTORS = {
    "resiliparse+trafilatura": lambda html: html_text.main_text(html, "resiliparse+trafilatura"),
    "resiliparse": lambda html: html_text.main_text(html, "resiliparse"),
    "trafilatura (fast)": lambda html: html_text.main_text(html, "trafilatura"),
    "resiliparse-plain": lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True),
    "trafilatura (defaults)": lambda html: trafilatura.extract(html) or "",
}
ANCHOR = "trafilatura (defaults)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-pages", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="at most this many pages (0: all)")
    args = parser.parse_args()
    pages = load_pages()
    if not pages:
        sys.exit(f"no real pages in {cache_dir()}: run `python -m tooling.real_pages` first")
    pages = pages[:args.limit] if args.limit else pages
    htmls = [decode_html(page.html, []) or "" for page in pages]
    seconds, results, fallback = defaultdict(list), defaultdict(list), []
    for page, html in zip(pages, htmls):
        for name, extract in EXTRACTORS.items():
            start = time.perf_counter()
            text = extract(html)
            seconds[name].append(time.perf_counter() - start)
            results[name].append(word_scores(page.reference, text))
        tree = HTMLTree.parse(html)
        fallback.append(html_text.resiliparse_text(tree)[1] < html_text.FALLBACK_WORDS and html_text.trafilatura_affordable(html, tree))

    groups = defaultdict(list)
    for i, page in enumerate(pages):
        groups[f"{page.source} {page.language} {page.kind}"].append(i)
        if page.language == "en" and page.kind == "article":
            groups["en article, both sources"].append(i)
    groups["all"] = list(range(len(pages)))
    print(f"{len(pages)} real pages from {cache_dir()}\n")
    print(f"| pages | n | trafilatura as fallback | extractor | precision | recall | F1 | pages/s | x {ANCHOR} |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for group, members in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        if len(members) < args.min_pages:
            continue
        anchor_speed = len(members) / sum(seconds[ANCHOR][i] for i in members)
        share = sum(fallback[i] for i in members) / len(members)
        for name in EXTRACTORS:
            p, r, f = (sum(results[name][i][k] for i in members) / len(members) for k in range(3))
            speed = len(members) / sum(seconds[name][i] for i in members)
            print(f"| {group} | {len(members)} | {share:.1%} | {name} | {p:.3f} | {r:.3f} | {f:.3f} | {speed:,.0f} | {speed / anchor_speed:.1f} |")

if __name__ == "__main__":
    main()
